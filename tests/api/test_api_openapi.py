"""The OpenAPI document: checked in, summarised per route; inputs at the edges.

The property run over every operation is test_api_schemathesis.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab, make_settings

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
