"""One error shape for everything, mapped in one place; body limits; /health."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEXT_CONFIG, Lab, make_settings
from fastapi import APIRouter
from fastapi.testclient import TestClient

from annotrain.adapters.sqlite import SqliteStore
from annotrain.api import create_app
from annotrain.domain.errors import (
    AlreadyExistsError,
    ConfigIssue,
    ConflictError,
    ImportProblem,
    InvalidRequestError,
    LabelingConfigError,
    NotFoundError,
    PermissionDeniedError,
    StoreUnavailableError,
    TaskImportError,
)

RAISED = {
    "not_found": (NotFoundError("project", 3), 404),
    "conflict": (ConflictError("project", 3, 1, 2), 409),
    "already_exists": (AlreadyExistsError("user", "ann"), 409),
    "invalid_request": (InvalidRequestError("epochs", "must be 1 or more"), 422),
    "invalid_labeling_config": (
        LabelingConfigError([ConfigIssue("Labels", "toName", "names no tag", "name one")]),
        422,
    ),
    "invalid_tasks": (TaskImportError([ImportProblem(0, "no data")]), 422),
    "store_unavailable": (StoreUnavailableError("busy"), 503),
    "forbidden": (PermissionDeniedError("training", "Owners"), 403),
}


@pytest.fixture
def raising_client(tmp_path: Path) -> Iterator[TestClient]:
    router = APIRouter()

    @router.get("/raise/{code}")
    def raise_it(code: str) -> None:
        raise RAISED[code][0]

    with SqliteStore(tmp_path / "a.db") as store:
        app = create_app(routers=[router], settings=make_settings(tmp_path), store=store)
        with TestClient(app) as client:
            yield client


@pytest.mark.parametrize("code", RAISED)
def test_each_domain_error_has_its_status_and_code(raising_client: TestClient, code: str) -> None:
    response = raising_client.get(f"/api/v1/raise/{code}")
    assert response.status_code == RAISED[code][1]
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_an_invalid_request_names_its_field(raising_client: TestClient) -> None:
    error = raising_client.get("/api/v1/raise/invalid_request").json()["error"]
    assert error["field"] == "epochs"


def test_refused_tasks_list_every_problem(raising_client: TestClient) -> None:
    error = raising_client.get("/api/v1/raise/invalid_tasks").json()["error"]
    assert error["details"][0]["task_index"] == 0
    assert error["details"][0]["reason"] == "no data"


def test_an_unknown_path_is_a_json_404(lab: Lab) -> None:
    response = lab.client.get("/api/v1/nothing-here", headers=lab.auth("admin"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_malformed_json_is_a_422_in_the_same_shape(lab: Lab) -> None:
    response = lab.client.post(
        "/api/v1/projects",
        content=b"{not json",
        headers={**lab.auth("owner"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_health_needs_no_token(lab: Lab) -> None:
    response = lab.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.fixture
def small_limit_client(tmp_path: Path) -> Iterator[TestClient]:
    with SqliteStore(tmp_path / "a.db") as store:
        settings = make_settings(tmp_path, max_json_bytes=200)
        app = create_app(settings=settings, store=store)
        with TestClient(app) as client:
            yield client


def test_a_body_declared_too_large_is_refused_with_413(small_limit_client: TestClient) -> None:
    body = {"name": "x" * 300, "labeling_config": TEXT_CONFIG}
    response = small_limit_client.post("/api/v1/projects", json=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_streamed_body_over_the_limit_is_refused_with_413(
    small_limit_client: TestClient,
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 50
        yield b'"}'

    response = small_limit_client.post(
        "/api/v1/projects", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_creating_the_app_opens_no_store_until_a_request_needs_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "lab"
    app = create_app(settings=make_settings(data_dir))
    assert not data_dir.exists()
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert not data_dir.exists()
        assert (
            client.get("/api/v1/system", headers={"Authorization": "Bearer x"}).status_code == 401
        )
    assert (data_dir / "annotrain.db").exists()
    app.state.store_source.get().close()


def test_a_body_that_is_not_utf8_is_a_validation_error_naming_the_body(lab: Lab) -> None:
    response = lab.client.post(
        "/api/v1/projects",
        content=b'{"name": "\xff\xfe"}',
        headers={**lab.auth("owner"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("validation_error", "body")
