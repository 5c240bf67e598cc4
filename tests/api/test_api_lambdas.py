"""The Lambda handlers: API Gateway HTTP API v2.0 events through Mangum, DynamoDB under moto."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_events import http_api_event, lambda_context
from conftest import TEXT_CONFIG

from annotrain.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ANN = {"username": "ann", "cognito:groups": "[annotators]"}
EVENT_BUS = "annotrain-events"
BATCH_ARN = "arn:aws:batch:us-east-1:123456789012"
#: What the stack gives the jobs function (infra/api.py BatchTargets).
JOBS_ENVIRONMENT = {
    "ANNOTRAIN_GPU_QUEUE": f"{BATCH_ARN}:job-queue/gpu",
    "ANNOTRAIN_CPU_QUEUE": f"{BATCH_ARN}:job-queue/cpu",
    "ANNOTRAIN_JOB_DEFINITION_TRAIN": f"{BATCH_ARN}:job-definition/cpu-train:1",
    "ANNOTRAIN_JOB_DEFINITION_PREANNOTATE": f"{BATCH_ARN}:job-definition/cpu-preannotate:1",
    "ANNOTRAIN_JOB_DEFINITION_OCR": f"{BATCH_ARN}:job-definition/cpu-ocr:1",
    "ANNOTRAIN_GPU_JOB_DEFINITION_TRAIN": f"{BATCH_ARN}:job-definition/gpu-train:1",
    "ANNOTRAIN_GPU_JOB_DEFINITION_PREANNOTATE": f"{BATCH_ARN}:job-definition/gpu-preannotate:1",
}


@pytest.fixture
def lambdas(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3

    from annotrain.adapters.dynamodb import create_table

    for name, value in {
        "ANNOTRAIN_MODE": "serverless",
        "ANNOTRAIN_TABLE": "annotrain",
        "ANNOTRAIN_OVERFLOW_BUCKET": "annotrain-items",
        "ANNOTRAIN_DATA_BUCKET": "annotrain-data",
        **JOBS_ENVIRONMENT,
        "ANNOTRAIN_EVENT_BUS": EVENT_BUS,
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client("events", region_name=REGION).create_event_bus(Name=EVENT_BUS)
    for bucket in ("annotrain-items", "annotrain-data"):
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=bucket)
    create_table(boto3.client("dynamodb", region_name=REGION), "annotrain")
    import lambdas.api as module

    get_settings.cache_clear()
    module._app.cache_clear()
    module._handler.cache_clear()
    try:
        yield module
    finally:
        module._app.cache_clear()
        module._handler.cache_clear()
        get_settings.cache_clear()


ADMIN = {"username": "root", "cognito:groups": "[admin]"}


def _invoke(
    handler: Any,
    method: str,
    path: str,
    body: Any = None,
    query: str = "",
    claims: dict[str, Any] = ANN,
) -> Any:
    event = http_api_event(method, path, claims=claims, body=body)
    event["rawQueryString"] = query
    response = handler(event, lambda_context())
    return response["statusCode"], json.loads(response["body"] or "null")


def test_projects_and_tasks_through_the_projects_function(lambdas: Any) -> None:
    status, project = _invoke(
        lambdas.projects_handler,
        "POST",
        "/api/v1/projects",
        {"name": "P", "labeling_config": TEXT_CONFIG},
    )
    assert status == 201, project
    tasks_url = f"/api/v1/projects/{project['id']}/tasks"
    status, imported = _invoke(
        lambdas.projects_handler,
        "POST",
        tasks_url + "/import",
        [{"data": {"text": f"Note {i}."}} for i in range(3)],
    )
    assert (status, imported["imported"]) == (201, 3)
    status, page = _invoke(lambdas.projects_handler, "GET", tasks_url, query="page=2&page_size=2")
    assert status == 200
    assert page["total"] == 3
    assert [t["id"] for t in page["items"]] == imported["task_ids"][2:]


def test_the_serverless_lab_tells_callers_who_they_are_and_their_role_in_each_project(
    lambdas: Any,
) -> None:
    status, system = _invoke(lambdas.system_handler, "GET", "/api/v1/system")
    assert (status, system["user"]) == (200, {"name": "ann", "role": "user"})
    status, system = _invoke(lambdas.system_handler, "GET", "/api/v1/system", claims=ADMIN)
    assert (status, system["user"]) == (200, {"name": "root", "role": "admin"})
    for name in ("Mine", "Theirs"):
        status, created = _invoke(
            lambdas.projects_handler,
            "POST",
            "/api/v1/projects",
            {"name": name, "labeling_config": TEXT_CONFIG},
            claims=ANN if name == "Mine" else ADMIN,
        )
        assert (status, created["my_role"]) == (201, "Owner")
    theirs = created["id"]
    _invoke(
        lambdas.projects_handler,
        "PUT",
        f"/api/v1/projects/{theirs}/members",
        {"user": "ann", "role": "Annotator"},
        claims=ADMIN,
    )
    # The roles come from the table (one BatchGetItem), as the store contract pins.
    status, page = _invoke(lambdas.projects_handler, "GET", "/api/v1/projects")
    assert status == 200
    assert {p["name"]: p["my_role"] for p in page["items"]} == {
        "Mine": "Owner",
        "Theirs": "Annotator",
    }
    status, page = _invoke(lambdas.projects_handler, "GET", "/api/v1/projects", claims=ADMIN)
    assert {p["name"]: p["my_role"] for p in page["items"]} == {"Mine": None, "Theirs": "Owner"}
    status, project = _invoke(lambdas.projects_handler, "GET", f"/api/v1/projects/{theirs}")
    assert (status, project["my_role"]) == (200, "Annotator")


def test_each_function_serves_only_its_routes(lambdas: Any) -> None:
    status, system = _invoke(lambdas.system_handler, "GET", "/api/v1/system")
    assert (status, system["mode"]) == (200, "serverless")
    assert _invoke(lambdas.system_handler, "GET", "/api/v1/projects")[0] == 404
    assert _invoke(lambdas.projects_handler, "GET", "/api/v1/system")[0] == 404
    path = "/api/v1/projects/1/tasks/1/completions"
    assert _invoke(lambdas.projects_handler, "POST", path, {"result": []})[0] == 404
    # The completions function serves it (no such project here: a JSON 404 from the route).
    status, body = _invoke(lambdas.completions_handler, "POST", path, {"result": []})
    assert (status, body["error"]["message"]) == (404, "project 1 does not exist")


def test_a_function_not_set_to_serverless_refuses_to_start(
    lambdas: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANNOTRAIN_MODE", "single_node")
    get_settings.cache_clear()
    with pytest.raises(RuntimeError, match="ANNOTRAIN_MODE=serverless"):
        _invoke(lambdas.system_handler, "GET", "/api/v1/system")


def test_importing_the_handlers_builds_nothing() -> None:
    code = (
        "import sys, lambdas.api; "
        "print(','.join(m for m in ('fastapi', 'boto3', 'mangum', 'pydantic_settings', "
        "'aws_lambda_powertools', 'aws_xray_sdk') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


def test_an_api_handler_is_built_with_powertools_but_without_the_xray_sdk() -> None:
    """The X-Ray SDK's import would be most of the cold start (lambdas/observability.py)."""
    code = (
        "import sys, lambdas.api as m; m._observed('projects'); "
        "print('aws_lambda_powertools' in sys.modules, 'aws_xray_sdk' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["True", "False"]


def test_each_request_is_one_json_log_line_with_the_request_id_and_no_secrets(
    lambdas: Any, lambda_output: Any
) -> None:
    secret = "s3cr3t-bearer-token-of-ann"
    event = http_api_event(
        "POST",
        "/api/v1/projects",
        claims=ANN,
        body={"name": "Private name", "labeling_config": TEXT_CONFIG},
    )
    event["headers"]["authorization"] = f"Bearer {secret}"
    event["requestContext"]["requestId"] = "Yx2bQhvZoAMEPsA="
    event["routeKey"] = "POST /api/v1/projects"
    response = lambdas.projects_handler(event, lambda_context("annotrain-api-projects"))
    assert response["statusCode"] == 201
    printed = lambda_output()
    (line,) = [p for p in printed if p.get("message") == "request"]
    assert line["correlation_id"] == "Yx2bQhvZoAMEPsA="  # API Gateway's request id
    assert (line["route"], line["path"], line["status"]) == (
        "POST /api/v1/projects", "/api/v1/projects", 201,
    )  # fmt: skip
    assert line["duration_ms"] >= 0
    assert line["function_name"] == "annotrain-api-projects"
    assert line["level"] == "INFO"
    text = json.dumps(printed)
    assert secret not in text
    assert "Private name" not in text  # no request (or response) body


def test_a_draft_is_changed_submitted_reviewed_and_exported_on_dynamodb(lambdas: Any) -> None:
    _, project = _invoke(
        lambdas.projects_handler,
        "POST",
        "/api/v1/projects",
        {"name": "P", "labeling_config": TEXT_CONFIG},
    )
    base = f"/api/v1/projects/{project['id']}"
    _, imported = _invoke(
        lambdas.projects_handler, "POST", base + "/tasks/import", [{"data": {"text": "Aspirin."}}]
    )
    completions = f"{base}/tasks/{imported['task_ids'][0]}/completions"
    status, draft = _invoke(
        lambdas.completions_handler, "POST", completions, {"result": [], "draft": True}
    )
    assert (status, draft["draft"], draft["revision"]) == (201, True, 1)
    span = {
        "id": "r1", "type": "labels", "from_name": "label", "to_name": "text",
        "value": {"start": 0, "end": 7, "labels": ["Drug"]},
    }  # fmt: skip
    url = f"{completions}/{draft['id']}"
    status, changed = _invoke(
        lambdas.completions_handler, "PATCH", url, {"result": [span], "revision": 1}
    )
    assert (status, changed["revision"]) == (200, 2)
    stale = _invoke(lambdas.completions_handler, "POST", url + "/submit", {"revision": 1})
    assert stale[0] == 409
    status, submitted = _invoke(
        lambdas.completions_handler, "POST", url + "/submit", {"revision": 2}
    )
    assert (status, submitted["draft"]) == (200, False)
    status, reviewed = _invoke(
        lambdas.completions_handler, "POST", url + "/review", {"accepted": True}
    )
    assert (status, reviewed["reviews"][0]["reviewer"]) == (200, "ann")
    status, exported = _invoke(
        lambdas.projects_handler, "GET", base + "/export", query="format=json"
    )
    assert status == 200
    assert exported[0]["annotations"][0]["result"][0]["value"]["labels"] == ["Drug"]


def test_an_image_upload_through_the_projects_function(lambdas: Any) -> None:
    import base64
    import io

    from PIL import Image

    config = (
        '<View><Image name="image" value="$image"/>'
        '<RectangleLabels name="box" toName="image"><Label value="Drug"/></RectangleLabels></View>'
    )
    status, project = _invoke(
        lambdas.projects_handler,
        "POST",
        "/api/v1/projects",
        {"name": "P", "labeling_config": config},
    )
    assert status == 201, project
    png = io.BytesIO()
    Image.new("RGB", (6, 4), (10, 200, 10)).save(png, format="PNG")
    boundary = "annotrain-boundary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="scan.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + png.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    # API Gateway hands binary bodies over base64-encoded.
    event = http_api_event(
        "POST", f"/api/v1/projects/{project['id']}/tasks/import/files", claims=ANN
    )
    event["headers"]["content-type"] = f"multipart/form-data; boundary={boundary}"
    event["body"] = base64.b64encode(form).decode()
    event["isBase64Encoded"] = True
    response = lambdas.projects_handler(event, lambda_context())
    assert response["statusCode"] == 201, response["body"]
    (task_id,) = json.loads(response["body"])["task_ids"]

    status, task = _invoke(
        lambdas.projects_handler, "GET", f"/api/v1/projects/{project['id']}/tasks/{task_id}"
    )
    read = lambdas.projects_handler(
        http_api_event("GET", task["data"]["image"], claims=ANN), lambda_context()
    )
    assert read["statusCode"] == 200
    assert read["isBase64Encoded"] is True
    assert base64.b64decode(read["body"]) == png.getvalue()
