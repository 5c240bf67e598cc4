"""The OpenAPI document: checked in, summarised per route, and no input makes a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotrain.api import create_app
from annotrain.api.openapi import document

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "docs" / "openapi.json"


def current_document(tmp_path: Path) -> dict[str, Any]:
    return create_app(settings=make_settings(tmp_path)).openapi()


def test_make_openapi_prints_the_apps_document(tmp_path: Path) -> None:
    assert document() == current_document(tmp_path)


def test_the_checked_in_openapi_document_is_current(tmp_path: Path) -> None:
    document = current_document(tmp_path)
    assert json.loads(CHECKED_IN.read_text()) == document, (
        "docs/openapi.json is out of date: run `make openapi`"
    )


def test_every_route_has_a_summary(tmp_path: Path) -> None:
    for path, operations in current_document(tmp_path)["paths"].items():
        for method, operation in operations.items():
            assert operation.get("description") or operation.get("summary"), (method, path)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
FIELDS = (
    "name", "labeling_config", "description", "user", "role", "priority", "data",
    "result", "draft", "lead_time", "revision", "accepted", "comment", "content_type",
    "expires_in", "upload_ids",
)  # fmt: skip


def _bodies() -> st.SearchStrategy[Any]:
    known = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4)
    return JSON | known | st.lists(st.dictionaries(st.sampled_from(("data", "annotations")), JSON))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operation=st.sampled_from(
        [
            ("POST", "/api/v1/projects"),
            ("GET", "/api/v1/projects"),
            ("GET", "/api/v1/projects/{pid}"),
            ("PATCH", "/api/v1/projects/{pid}"),
            ("PUT", "/api/v1/projects/{pid}/config"),
            ("PUT", "/api/v1/projects/{pid}/members"),
            ("DELETE", "/api/v1/projects/{pid}/members/{text}"),
            ("POST", "/api/v1/projects/{pid}/tasks/import"),
            ("POST", "/api/v1/projects/{pid}/tasks/import/files"),
            ("POST", "/api/v1/projects/{pid}/tasks/import/presigned"),
            ("POST", "/api/v1/projects/{pid}/tasks/import/presigned/confirm"),
            ("GET", "/api/v1/projects/{pid}/images/{text}"),
            ("GET", "/api/v1/projects/{pid}/tasks"),
            ("GET", "/api/v1/projects/{pid}/tasks/{tid}"),
            ("GET", "/api/v1/projects/{pid}/export"),
            ("POST", "/api/v1/projects/{pid}/tasks/{tid}/completions"),
            ("PATCH", "/api/v1/projects/{pid}/tasks/{tid}/completions/{tid}"),
            ("POST", "/api/v1/projects/{pid}/tasks/{tid}/completions/{tid}/submit"),
            ("DELETE", "/api/v1/projects/{pid}/tasks/{tid}/completions/{tid}"),
            ("POST", "/api/v1/projects/{pid}/tasks/{tid}/completions/{tid}/review"),
        ]
    ),
    pid=st.one_of(st.just(1), st.integers(), st.just(2**70), st.text(max_size=8)),
    tid=st.one_of(st.just(1), st.integers(), st.just(2**70)),
    text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8),
    query=st.dictionaries(
        st.sampled_from(
            ("page", "page_size", "tags", "has_completions", "format", "annotator", "skip_empty")
        ),
        st.one_of(st.integers(), st.text(max_size=5)),
        max_size=3,
    ),
    body=_bodies(),
    role=st.sampled_from(("admin", "owner", "annotator", "outsider")),
)
def test_no_input_makes_a_server_error(
    lab: Lab,
    operation: tuple[str, str],
    pid: Any,
    tid: int,
    text: str,
    query: dict[str, Any],
    body: Any,
    role: str,
) -> None:
    method, template = operation
    from urllib.parse import quote

    path = template.format(pid=quote(str(pid), safe=""), tid=tid, text=quote(text, safe=""))
    response = lab.client.request(
        method,
        path,
        params=query,
        json=body if method in ("POST", "PUT", "PATCH") else None,
        headers=lab.auth(role),
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}


@pytest.mark.parametrize("role", ["admin", "owner"])
def test_a_huge_page_number_is_an_empty_page_not_an_error(lab: Lab, role: str) -> None:
    url = f"/api/v1/projects/{lab.project_id}/tasks?page=99999999999&page_size=1000"
    response = lab.client.get(url, headers=lab.auth(role))
    assert response.status_code in (200, 422)


@pytest.mark.parametrize(
    "path", ["/api/v1/projects/{big}", "/api/v1/projects/1/tasks/{big}", "/api/v1/projects/0"]
)
def test_an_id_no_store_can_hold_is_refused_naming_it(lab: Lab, path: str) -> None:
    response = lab.client.get(path.format(big=2**70), headers=lab.auth("admin"))
    assert response.status_code == 422
    assert response.json()["error"]["field"] in ("project_id", "task_id")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/projects/{pid}/tasks/import", b'[{"data": {"text": "x", "n": 1e999}}]'),
        ("/api/v1/projects/{pid}/tasks/{tid}/completions", b'{"result": [], "lead_time": 1e999}'),
        ("/api/v1/projects/{pid}/tasks/import", b'[{"data": {"text": "x", "n": NaN}}]'),
    ],
)
def test_numbers_json_cannot_hold_are_refused_not_crashed_on(
    lab: Lab, path: str, body: bytes
) -> None:
    response = lab.client.post(
        path.format(pid=lab.project_id, tid=lab.task_id),
        content=body,
        headers={**lab.auth("owner"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
