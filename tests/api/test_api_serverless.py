"""Serverless identity: the JWT claims API Gateway verified, as Mangum passes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_events import http_api_event
from conftest import TEXT_CONFIG, make_settings
from mangum import Mangum

from annotrain.adapters.sqlite import SqliteStore
from annotrain.api import create_app


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[Mangum]:
    settings = make_settings(tmp_path, mode="serverless", table="t", overflow_bucket="b")
    # The store does not matter here: identity does (DynamoDB has its own contract suite).
    with SqliteStore(tmp_path / "a.db") as store:
        yield Mangum(create_app(settings=settings, store=store), lifespan="off")


def invoke(handler: Mangum, event: dict[str, Any]) -> tuple[int, Any]:
    response = handler(event, object())  # type: ignore[arg-type]
    return response["statusCode"], json.loads(response["body"] or "null")


def test_the_verified_user_is_the_caller(handler: Mangum) -> None:
    claims = {"username": "ann", "cognito:groups": "[annotators]"}
    status, body = invoke(
        handler,
        http_api_event(
            "POST", "/api/v1/projects", claims=claims,
            body={"name": "P", "labeling_config": TEXT_CONFIG},
        ),
    )  # fmt: skip
    assert status == 201, body
    assert body["created_by"] == "ann"
    status, system = invoke(handler, http_api_event("GET", "/api/v1/system", claims=claims))
    assert (status, system["mode"]) == (200, "serverless")


def test_the_admin_group_makes_an_admin(handler: Mangum) -> None:
    owner = {"cognito:username": "ann"}
    invoke(
        handler,
        http_api_event(
            "POST", "/api/v1/projects", claims=owner,
            body={"name": "P", "labeling_config": TEXT_CONFIG},
        ),
    )  # fmt: skip
    admin = {"username": "root", "cognito:groups": "[admin]"}
    other = {"username": "bob", "cognito:groups": "[]"}
    assert invoke(handler, http_api_event("GET", "/api/v1/projects", claims=admin))[1]["total"] == 1
    assert invoke(handler, http_api_event("GET", "/api/v1/projects", claims=other))[1]["total"] == 0


def test_a_request_without_verified_claims_is_refused(handler: Mangum) -> None:
    status, body = invoke(handler, http_api_event("GET", "/api/v1/system", claims=None))
    assert status == 401
    assert body["error"]["code"] == "not_authenticated"


def test_a_bearer_header_alone_is_not_trusted_serverless(handler: Mangum) -> None:
    event = http_api_event("GET", "/api/v1/system", claims=None)
    event["headers"]["authorization"] = "Bearer anything"
    assert invoke(handler, event)[0] == 401
