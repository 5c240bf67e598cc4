"""Active learning across functions: completions → EventBridge → the jobs function → Batch.

The completions function puts each submitted completion on the lab's bus (moto's
EventBridge). A rule with the stack's pattern copies the bus's events into an SQS
queue (moto delivers to SQS; a Lambda target would need Docker), and each is then
handed to the jobs function as EventBridge hands a Lambda its event. The jobs
function's Batch client is a recording one (moto's Batch would run Docker).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_events import http_api_event, lambda_context
from test_api_lambdas import EVENT_BUS, JOBS_ENVIRONMENT, REGION, lambdas  # noqa: F401

from annotrain.adapters.eventbridge import COMPLETION_SUBMITTED, SOURCE, EventBridgeEvents
from annotrain.domain.errors import InvalidRequestError
from annotrain.services.events import CompletionSubmitted

OWNER = {"username": "olga", "cognito:groups": "[user]"}
CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Labels name="label" toName="text"><Label value="Drug"/></Labels></View>'
)
THRESHOLD = 50
EARLIER = 5  # tasks annotated before active learning is turned on
DRUG = [{
    "from_name": "label", "to_name": "text", "type": "labels",
    "value": {"start": 5, "end": 12, "text": "aspirin", "labels": ["Drug"]},
}]  # fmt: skip


class RecordingBatch:
    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    def submit_job(self, **request: Any) -> dict[str, Any]:
        self.submitted.append(request)
        return {"jobId": f"job-{len(self.submitted)}", "jobName": request["jobName"]}


def _call(handler: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = handler(http_api_event(method, path, claims=OWNER, body=body), lambda_context())
    return response["statusCode"], json.loads(response["body"] or "null")


def _bus_to_queue() -> tuple[Any, str]:
    """An SQS queue that receives what the stack's rule would send the jobs function."""
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="lab-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events", region_name=REGION)
    pattern = {"source": [SOURCE], "detail-type": [COMPLETION_SUBMITTED]}
    events.put_rule(Name="completions", EventBusName=EVENT_BUS, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="completions", EventBusName=EVENT_BUS, Targets=[{"Id": "jobs", "Arn": arn}]
    )
    return sqs, url


def _delivered(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return out
        for message in messages:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_submits_cross_the_bus_and_the_jobs_function_starts_a_training_at_the_threshold(
    lambdas: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    batch = RecordingBatch()
    make_client = boto3.client
    monkeypatch.setattr(
        boto3,
        "client",
        lambda service, *a, **k: batch if service == "batch" else make_client(service, *a, **k),
    )
    sqs, url = _bus_to_queue()
    status, project = _call(
        lambdas.projects_handler, "POST", "/api/v1/projects",
        {"name": "Drugs", "labeling_config": CONFIG},
    )  # fmt: skip
    assert status == 201, project
    base = f"/api/v1/projects/{project['id']}"
    annotated = [
        {"data": {"text": f"Take aspirin {i} times."}, "annotations": [{"result": DRUG}]}
        for i in range(EARLIER)
    ]
    fresh = [{"data": {"text": f"Take aspirin {i} times."}} for i in range(THRESHOLD)]
    status, imported = _call(
        lambdas.projects_handler, "POST", f"{base}/tasks/import", annotated + fresh
    )
    assert status == 201, imported
    status, first = _call(
        lambdas.jobs_handler, "POST", f"{base}/trainings",
        {"active_learning": {"enabled": True, "threshold": THRESHOLD}},
    )  # fmt: skip
    assert status == 202, first
    assert len(batch.submitted) == 1  # the training asked for now

    runs = []
    for task_id in imported["task_ids"][EARLIER:]:
        status, body = _call(
            lambdas.completions_handler, "POST", f"{base}/tasks/{task_id}/completions",
            {"result": DRUG},
        )  # fmt: skip
        assert status == 201, body
        (event,) = _delivered(sqs, url)
        assert event["detail"]["task_id"] == task_id
        runs.append(lambdas.jobs_handler(event, lambda_context())["training_run_id"])

    assert runs[:-1] == [None] * (THRESHOLD - 1)
    assert runs[-1] is not None
    assert len(batch.submitted) == 2
    started = batch.submitted[-1]
    assert started["jobQueue"] == JOBS_ENVIRONMENT["ANNOTRAIN_CPU_QUEUE"]
    assert started["jobDefinition"] == JOBS_ENVIRONMENT["ANNOTRAIN_JOB_DEFINITION_TRAIN"]
    status, training = _call(lambdas.jobs_handler, "GET", f"/api/v1/trainings/{runs[-1]}")
    assert (status, training["status"]) == (200, "queued")
    assert training["source"] == "active_learning"


def test_a_gpu_training_is_refused_when_the_stack_has_no_gpu_queue(
    lambdas: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from annotrain.settings import get_settings

    monkeypatch.delenv("ANNOTRAIN_GPU_QUEUE")
    get_settings.cache_clear()
    _, project = _call(
        lambdas.projects_handler,
        "POST",
        "/api/v1/projects",
        {"name": "P", "labeling_config": CONFIG},
    )
    status, body = _call(
        lambdas.jobs_handler, "POST", f"/api/v1/projects/{project['id']}/trainings",
        {"use_gpu": True},
    )  # fmt: skip
    assert status == 422, body
    assert "GPU" in body["error"]["message"] or "gpu" in body["error"]["message"]


def test_the_jobs_function_refuses_to_start_without_its_batch_settings(
    lambdas: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from annotrain.settings import get_settings

    monkeypatch.delenv("ANNOTRAIN_CPU_QUEUE")
    get_settings.cache_clear()
    with pytest.raises(RuntimeError, match="ANNOTRAIN_CPU_QUEUE"):
        _call(lambdas.jobs_handler, "GET", "/api/v1/models")


def test_a_publish_the_bus_refuses_is_logged_and_the_submit_stands(
    aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    events = EventBridgeEvents("no-such-bus", client=boto3.client("events", region_name=REGION))
    events.publish(CompletionSubmitted(1, 2, 3))
    assert "was not published to no-such-bus" in caplog.text


def test_an_event_of_another_shape_is_refused() -> None:
    from annotrain.adapters.eventbridge import completion_submitted_from

    event = {"detail-type": COMPLETION_SUBMITTED, "detail": {"project_id": 1, "task_id": "2"}}
    with pytest.raises(InvalidRequestError):
        completion_submitted_from(event)
    good = {**event, "detail": {"project_id": 1, "task_id": 2, "completion_id": 3}}
    assert completion_submitted_from(good) == CompletionSubmitted(1, 2, 3)
