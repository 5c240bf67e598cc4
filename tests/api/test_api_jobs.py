"""The job routes: servers, trainings, models, pre-annotations and licenses (real);
backups (501 until their issue lands, after the same role checks they will keep).

``JOB_ROUTES`` is this part of the route-by-role matrix; test_api_matrix checks
that the two matrices together cover every route.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import ROLES, SAMPLE_CONFIG, Lab
from fakes import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_api_matrix import EVERYONE, MANAGERS, MEMBERS

from annotrain.adapters.backup_targets import FolderBackupTarget
from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.adapters.local_runner import LocalJobRunner
from annotrain.adapters.sqlite_backup import SqliteLabDatabase
from annotrain.domain.config import parse_labeling_config
from annotrain.domain.labelstudio import load_tasks
from annotrain.domain.records import JobKind, ModelEntry, Run, RunStatus, Server
from annotrain.domain.tasks import Member, Role
from annotrain.domain.training_plan import ModelKind
from annotrain.services.backups import SingleNodeBackups

ADMINS = frozenset({"admin"})
SAMPLE_TASKS = Path(__file__).resolve().parents[2] / "examples" / "sample_project" / "tasks.json"
SINCE = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class JobRoute:
    method: str
    path: str
    allowed: frozenset[str]
    ok: int = 501
    in_project: bool = True
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None


RUN_ID = "run-1"
PRE_ID = "pre-1"
MODEL = "notes-ner"
JOB_ROUTES = {
    "start training": JobRoute(
        "POST", "/api/v1/projects/{pid}/trainings", MANAGERS, 202, body={"params": {"epochs": 1}}
    ),
    "list trainings": JobRoute("GET", "/api/v1/projects/{pid}/trainings", MEMBERS, 200),
    "compare trainings": JobRoute("GET", "/api/v1/trainings/compare?ids={rid},run-0", MEMBERS, 200),
    "read training": JobRoute("GET", "/api/v1/trainings/{rid}", MEMBERS, 200),
    "read training logs": JobRoute("GET", "/api/v1/trainings/{rid}/logs", MEMBERS, 200),
    "read training report": JobRoute("GET", "/api/v1/trainings/{rid}/report", MEMBERS, 200),
    "cancel training": JobRoute("POST", "/api/v1/trainings/{rid}/cancel", MANAGERS, 202),
    "list models": JobRoute("GET", "/api/v1/models", EVERYONE, 200, in_project=False),
    "read model": JobRoute("GET", "/api/v1/models/{model}", MEMBERS, 200),
    "download model": JobRoute("GET", "/api/v1/models/{model}/download", MANAGERS, 200),
    "deploy model": JobRoute("POST", "/api/v1/projects/{pid}/models/{model}/deploy", MANAGERS, 200),
    "pre-annotate": JobRoute(
        "POST", "/api/v1/projects/{pid}/preannotations", MANAGERS, 202, body={"models": [MODEL]}
    ),
    "read pre-annotation": JobRoute("GET", "/api/v1/preannotations/{pre}", MEMBERS, 200),
    "list servers": JobRoute("GET", "/api/v1/servers", EVERYONE, 200, in_project=False),
    "stop server": JobRoute("POST", "/api/v1/servers/{rid}/stop", MANAGERS, 202),
    "list licenses": JobRoute("GET", "/api/v1/licenses", ADMINS, 200, in_project=False),
    # The role check comes first; an admin's unsigned document is then refused.
    "import license": JobRoute(
        "POST", "/api/v1/licenses", ADMINS, 422, in_project=False, body={"document": "{}"}
    ),
    "delete license": JobRoute("DELETE", "/api/v1/licenses/{lid}", ADMINS, 204, in_project=False),
    "list backups": JobRoute("GET", "/api/v1/backups", ADMINS, 200, in_project=False),
    "start backup": JobRoute("POST", "/api/v1/backups", ADMINS, 202, in_project=False),
}
#: The path parameters as the OpenAPI document names them.
OPENAPI_NAMES = {
    "{pid}": "{project_id}",
    "/trainings/{rid}": "/trainings/{training_id}",
    "/preannotations/{pre}": "/preannotations/{preannotation_id}",
    "/servers/{rid}": "/servers/{run_id}",
    "{model}": "{name}",
    "{lid}": "{license_id}",
}


def covered_operations() -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route in JOB_ROUTES."""
    covered = set()
    for route in JOB_ROUTES.values():
        path = route.path
        for ours, theirs in OPENAPI_NAMES.items():
            path = path.replace(ours, theirs)
        covered.add((route.method, path.partition("?")[0]))
    return covered


@pytest.fixture
def jobs(lab: Lab) -> Lab:
    """The lab with the sample tasks, a training running in its project and an older
    one, a model with its files, a pre-annotation, and a job runner (not started)."""
    schema = parse_labeling_config(SAMPLE_CONFIG)
    lab.store.add_tasks(lab.project_id, load_tasks(SAMPLE_TASKS.read_bytes(), schema))
    _running_training(lab, RUN_ID, lab.project_id)
    lab.store.create_run(
        Run("run-0", lab.project_id, JobKind.TRAIN, RunStatus.FAILED, "owner", SINCE)
    )
    lab.store.create_run(
        Run(PRE_ID, lab.project_id, JobKind.PREANNOTATE, RunStatus.QUEUED, "owner", SINCE)
    )
    lab.store.register_model(
        ModelEntry(
            MODEL, 1, ModelKind.NER, ("Medication",), lab.project_id, RUN_ID,
            "models/notes-ner/1", "base", SINCE,
        )
    )  # fmt: skip
    blobs = FilesystemBlobStore(lab.tmp_path / "blobs")
    blobs.put("models/notes-ner/1/annotrain.json", io.BytesIO(b"{}"))
    runner = LocalJobRunner(lab.store, log_dir=lab.tmp_path / "logs")
    lab.client.app.state.runner = runner  # type: ignore[attr-defined]
    lab.client.app.state.backups = inline_backups(lab)  # type: ignore[attr-defined]
    return lab


def inline_backups(lab: Lab) -> SingleNodeBackups:
    """Backups of the lab into a folder beside it, run at once rather than in a thread."""
    return SingleNodeBackups(
        data_dir=lab.tmp_path,
        database=SqliteLabDatabase(lab.tmp_path / "annotrain.db"),
        target=FolderBackupTarget(lab.tmp_path.parent / f"{lab.tmp_path.name}-backups"),
        clock=FakeClock(),
        start_thread=lambda run: run(),
    )


def _running_training(lab: Lab, run_id: str, project_id: int, by: str = "owner") -> None:
    run = Run(run_id, project_id, JobKind.TRAIN, RunStatus.RUNNING, by, SINCE, use_gpu=True)
    lab.store.create_run(run)
    lab.store.put_server(Server(run_id, JobKind.TRAIN, project_id, by, SINCE, True, "node:42"))


def _call(lab: Lab, route: JobRoute, headers: dict[str, str]) -> Any:
    path = route.path.format(pid=lab.project_id, rid=RUN_ID, model=MODEL, lid="lic-1", pre=PRE_ID)
    return lab.client.request(route.method, path, json=route.body, headers=headers)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", JOB_ROUTES)
def test_job_route_allows_exactly_its_roles(jobs: Lab, name: str, role: str) -> None:
    route = JOB_ROUTES[name]
    response = _call(jobs, route, jobs.auth(role))
    if role in route.allowed:
        expected = route.ok
    elif route.in_project and role == "outsider":
        expected = 404
    else:
        expected = 403
    assert response.status_code == expected, response.text
    if expected >= 400:
        codes = {
            403: "forbidden", 404: "not_found", 422: "invalid_license", 501: "not_implemented"
        }  # fmt: skip
        assert response.json()["error"]["code"] == codes[expected]


@pytest.mark.parametrize("name", JOB_ROUTES)
def test_job_route_refuses_a_request_without_a_token(jobs: Lab, name: str) -> None:
    response = _call(jobs, JOB_ROUTES[name], {})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_run_that_is_no_training_is_not_found_as_a_training(jobs: Lab) -> None:
    run = Run("ocr-1", jobs.project_id, JobKind.OCR, RunStatus.QUEUED, "owner", SINCE)
    jobs.store.create_run(run)
    response = jobs.client.get("/api/v1/trainings/ocr-1", headers=jobs.auth("owner"))
    assert response.status_code == 404


def test_servers_show_kind_project_who_since_and_gpu(jobs: Lab) -> None:
    (server,) = jobs.client.get("/api/v1/servers", headers=jobs.auth("annotator")).json()["items"]
    assert server == {
        "run_id": RUN_ID,
        "kind": "train",
        "project_id": jobs.project_id,
        "started_by": "owner",
        "since": "2026-11-21T08:00:00Z",
        "resource": "GPU",
        "host": "node:42",
    }


def test_users_see_only_the_servers_of_their_projects_and_admins_all(jobs: Lab) -> None:
    other = jobs.client.post(
        "/api/v1/projects",
        json={"name": "Other", "labeling_config": jobs.client.get(
            f"/api/v1/projects/{jobs.project_id}/config", headers=jobs.auth("owner")
        ).json()["labeling_config"]},
        headers=jobs.auth("outsider"),
    ).json()["id"]  # fmt: skip
    _running_training(jobs, "run-2", other, by="outsider")

    def seen(role: str) -> list[str]:
        items = jobs.client.get("/api/v1/servers", headers=jobs.auth(role)).json()["items"]
        return [s["run_id"] for s in items]

    assert seen("admin") == [RUN_ID, "run-2"]
    assert seen("owner") == [RUN_ID]
    assert seen("outsider") == ["run-2"]
    assert seen("newbie") == []


def test_stopping_a_server_cancels_its_run_through_the_runner(jobs: Lab) -> None:
    response = jobs.client.post(f"/api/v1/servers/{RUN_ID}/stop", headers=jobs.auth("manager"))
    assert response.status_code == 202
    assert response.json() == {"run_id": RUN_ID, "status": "cancelled"}
    assert jobs.store.get_run(RUN_ID).status is RunStatus.CANCELLED


def test_stopping_without_a_job_runner_answers_503_after_the_role_checks(jobs: Lab) -> None:
    jobs.client.app.state.runner = None  # type: ignore[attr-defined]
    path = f"/api/v1/servers/{RUN_ID}/stop"
    assert jobs.client.post(path, headers=jobs.auth("annotator")).status_code == 403
    assert jobs.client.post(path, headers=jobs.auth("outsider")).status_code == 404
    response = jobs.client.post(path, headers=jobs.auth("owner"))
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "job_runner_unavailable"
    assert "no job runner" in error["message"]
    assert jobs.store.get_run(RUN_ID).status is RunStatus.RUNNING


def test_stopping_an_unknown_run_is_not_found(jobs: Lab) -> None:
    response = jobs.client.post("/api/v1/servers/nope/stop", headers=jobs.auth("admin"))
    assert response.status_code == 404


def test_a_member_added_to_a_project_sees_its_servers(jobs: Lab) -> None:
    jobs.store.put_member(jobs.project_id, Member("newbie", Role.REVIEWER))
    items = jobs.client.get("/api/v1/servers", headers=jobs.auth("newbie")).json()["items"]
    assert [s["run_id"] for s in items] == [RUN_ID]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operation=st.sampled_from([(r.method, r.path) for r in JOB_ROUTES.values()]),
    text=st.text(min_size=1, max_size=40),
    role=st.sampled_from(ROLES),
)
def test_no_path_value_makes_a_job_route_answer_500(
    jobs: Lab, operation: tuple[str, str], text: str, role: str
) -> None:
    method, path = operation
    value = quote(text, safe="")
    url = path.format(pid=value, rid=value, model=value, lid=value, pre=value)
    response = jobs.client.request(method, url, headers=jobs.auth(role))
    assert response.status_code < 500 or response.status_code in (501, 503), response.text
    assert response.status_code < 300 or "error" in response.json()
