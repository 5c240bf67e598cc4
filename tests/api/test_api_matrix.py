"""Every route by every role: allowed ones succeed, the others are refused.

Members whose role does not allow a route get 403; users who are not members of
the project get 404, as for a project that does not exist.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import ROLES, TEXT_CONFIG, Lab
from PIL import Image

from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.domain.tasks import Completion, CompletionState

EVERYONE = frozenset(ROLES)
MEMBERS = frozenset({"admin", "owner", "manager", "annotator", "reviewer"})
MANAGERS = frozenset({"admin", "owner", "manager"})
OWNERS = frozenset({"admin", "owner"})
REVIEWERS = frozenset({"admin", "owner", "manager", "reviewer"})
#: The completion's author (the annotator) and those who manage the project.
AUTHOR_OR_MANAGERS = MANAGERS | {"annotator"}
COMPLETION = "/api/v1/projects/{pid}/tasks/{tid}/completions/{cid}"
IMAGE_ID = "0123456789abcdef0123456789abcdef"
SINCE = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
IMAGE_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="box" toName="image"><Label value="Drug"/></RectangleLabels></View>'
)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="PNG")
    return out.getvalue()


OCR_RUN = "ocr-0123456789abcdef"


def _ocr_project(lab: Lab) -> None:
    """An image project with an uploaded image task, an OCR run and a job runner."""
    from fake_runner import RecordingRunner

    from annotrain.domain.records import JobKind, Run, RunStatus
    from annotrain.domain.tasks import Task

    _image_project_with(f"projects/{{pid}}/images/{IMAGE_ID}")(lab)
    reference = f"/api/v1/projects/{lab.project_id}/images/{IMAGE_ID}"
    lab.store.add_tasks(lab.project_id, [Task(None, {"image": reference})])
    run = Run(OCR_RUN, lab.project_id, JobKind.OCR, RunStatus.QUEUED, "owner", SINCE)
    lab.store.create_run(run)
    lab.client.app.state.runner = RecordingRunner(lab.store)  # type: ignore[attr-defined]


def _image_project_with(key: str) -> Callable[[Lab], None]:
    """Give the project an image config and a PNG at ``key`` (``{pid}`` filled in)."""

    def prepare(lab: Lab) -> None:
        project = lab.store.get_project(lab.project_id)
        lab.store.update_project(replace(project, label_config=IMAGE_CONFIG))
        blobs = FilesystemBlobStore(lab.tmp_path / "blobs")
        blobs.put(key.format(pid=lab.project_id), io.BytesIO(_png()), content_type="image/png")

    return prepare


def _project_with_training_script(lab: Lab) -> None:
    blobs = FilesystemBlobStore(lab.tmp_path / "blobs")
    blobs.put(f"projects/{lab.project_id}/training-script.py", io.BytesIO(b"print('hi')\n"))


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    allowed: frozenset[str]
    ok: int = 200
    body: Any = None
    in_project: bool = True
    #: The state of the annotator's completion ``{cid}`` names.
    completion: CompletionState = CompletionState.SUBMITTED
    #: Multipart files to send instead of a JSON body.
    files: Any = None
    #: What the lab needs before the call (an image, an upload).
    prepare: Callable[[Lab], None] | None = None


ROUTES = {
    "system": Route("GET", "/api/v1/system", EVERYONE, in_project=False),
    "create project": Route(
        "POST",
        "/api/v1/projects",
        EVERYONE,
        201,
        {"name": "Mine", "labeling_config": TEXT_CONFIG},
        in_project=False,
    ),
    "check config": Route(
        "POST",
        "/api/v1/projects/check-config",
        EVERYONE,
        body={"labeling_config": TEXT_CONFIG},
        in_project=False,
    ),
    "list projects": Route("GET", "/api/v1/projects", EVERYONE, in_project=False),
    "read project": Route("GET", "/api/v1/projects/{pid}", MEMBERS),
    "update project": Route("PATCH", "/api/v1/projects/{pid}", MANAGERS, body={"name": "New"}),
    "delete project": Route("DELETE", "/api/v1/projects/{pid}", OWNERS, 204),
    "read config": Route("GET", "/api/v1/projects/{pid}/config", MEMBERS),
    "replace config": Route(
        "PUT", "/api/v1/projects/{pid}/config", MANAGERS, body={"labeling_config": TEXT_CONFIG}
    ),
    "list members": Route("GET", "/api/v1/projects/{pid}/members", MEMBERS),
    "put member": Route(
        "PUT",
        "/api/v1/projects/{pid}/members",
        MANAGERS,
        body={"user": "newbie", "role": "Annotator", "priority": 2},
    ),
    "remove member": Route("DELETE", "/api/v1/projects/{pid}/members/newbie", MANAGERS, 204),
    "import tasks": Route(
        "POST",
        "/api/v1/projects/{pid}/tasks/import",
        MANAGERS,
        201,
        [{"data": {"text": "Aspirin daily."}}],
    ),
    "import files": Route(
        "POST",
        "/api/v1/projects/{pid}/tasks/import/files",
        MANAGERS,
        201,
        files=[("files", ("notes.csv", b"text\nAspirin daily.\n", "text/csv"))],
    ),
    # A folder store cannot presign: the role checks come first, then 501.
    "presign image upload": Route(
        "POST",
        "/api/v1/projects/{pid}/tasks/import/presigned",
        MANAGERS,
        501,
        {"content_type": "image/png"},
    ),
    "confirm image uploads": Route(
        "POST",
        "/api/v1/projects/{pid}/tasks/import/presigned/confirm",
        MANAGERS,
        201,
        {"upload_ids": [IMAGE_ID]},
        prepare=_image_project_with(f"uploads/{{pid}}/{IMAGE_ID}"),
    ),
    "read image": Route(
        "GET",
        "/api/v1/projects/{pid}/images/" + IMAGE_ID,
        MEMBERS,
        prepare=_image_project_with(f"projects/{{pid}}/images/{IMAGE_ID}"),
    ),
    "upload images and pdfs": Route(
        "POST",
        "/api/v1/projects/{pid}/tasks/upload",
        MANAGERS,
        201,
        files=[("files", ("page.png", _png(), "image/png"))],
        prepare=_ocr_project,
    ),
    "start ocr": Route("POST", "/api/v1/projects/{pid}/ocr", MANAGERS, 202, prepare=_ocr_project),
    "read ocr": Route("GET", f"/api/v1/ocr/{OCR_RUN}", MEMBERS, prepare=_ocr_project),
    "list tasks": Route("GET", "/api/v1/projects/{pid}/tasks", MEMBERS),
    "read task": Route("GET", "/api/v1/projects/{pid}/tasks/{tid}", MEMBERS),
    "delete task": Route("DELETE", "/api/v1/projects/{pid}/tasks/{tid}", MANAGERS, 204),
    "export": Route("GET", "/api/v1/projects/{pid}/export?format=csv", MEMBERS),
    "create completion": Route(
        "POST", "/api/v1/projects/{pid}/tasks/{tid}/completions", MEMBERS, 201, {"result": []}
    ),
    "update completion": Route(
        "PATCH", COMPLETION, AUTHOR_OR_MANAGERS, body={"result": [], "revision": 1}
    ),
    "submit completion": Route(
        "POST",
        COMPLETION + "/submit",
        AUTHOR_OR_MANAGERS,
        body={"revision": 1},
        completion=CompletionState.DRAFT,
    ),
    "delete completion": Route("DELETE", COMPLETION, AUTHOR_OR_MANAGERS, 204),
    "upload training script": Route(
        "PUT",
        "/api/v1/projects/{pid}/training-script",
        OWNERS,
        files=[("file", ("train.py", b"print('hi')\n", "text/x-python"))],
    ),
    "read training script": Route(
        "GET",
        "/api/v1/projects/{pid}/training-script",
        MANAGERS,
        prepare=_project_with_training_script,
    ),
    "delete training script": Route(
        "DELETE", "/api/v1/projects/{pid}/training-script", OWNERS, 204
    ),
    "review completion": Route(
        "POST", COMPLETION + "/review", REVIEWERS, body={"accepted": True, "comment": "ok"}
    ),
}


def _call(lab: Lab, route: Route, headers: dict[str, str]) -> Any:
    cid = None
    if "{cid}" in route.path:
        completion = Completion(None, (), author="annotator", state=route.completion)
        cid = lab.store.add_completion(lab.project_id, lab.task_id, completion).id
    if route.prepare is not None:
        route.prepare(lab)
    path = route.path.format(pid=lab.project_id, tid=lab.task_id, cid=cid)
    if route.files is not None:
        return lab.client.request(route.method, path, files=route.files, headers=headers)
    return lab.client.request(route.method, path, json=route.body, headers=headers)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ROUTES)
def test_route_allows_exactly_its_roles(lab: Lab, name: str, role: str) -> None:
    route = ROUTES[name]
    response = _call(lab, route, lab.auth(role))
    if role in route.allowed:
        expected = route.ok
    elif route.in_project and role == "outsider":
        expected = 404
    else:
        expected = 403
    assert response.status_code == expected, response.text
    if expected >= 400:
        codes = {403: "forbidden", 404: "not_found", 501: "presigned_urls_unavailable"}
        assert response.json()["error"]["code"] == codes[expected]


@pytest.mark.parametrize("name", ROUTES)
def test_route_refuses_a_request_without_a_token(lab: Lab, name: str) -> None:
    response = _call(lab, ROUTES[name], {})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("name", ROUTES)
def test_route_refuses_an_unknown_token(lab: Lab, name: str) -> None:
    response = _call(lab, ROUTES[name], {"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401


def test_every_api_route_is_in_the_matrix(lab: Lab) -> None:
    paths = lab.client.get("/openapi.json").json()["paths"]
    served = {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/")
        for method in operations
    }
    covered = {
        (
            r.method,
            r.path.replace("{pid}", "{project_id}")
            .replace("/newbie", "/{member}")
            .replace("{tid}", "{task_id}")
            .replace("{cid}", "{completion_id}")
            .replace(IMAGE_ID, "{image_id}")
            .replace(OCR_RUN, "{ocr_id}")
            .partition("?")[0],
        )
        for r in ROUTES.values()
    }
    from test_api_jobs import covered_operations  # the job routes' part of the matrix

    assert served == covered | covered_operations()
