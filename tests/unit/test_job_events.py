"""Batch job-state events → runs: every status, repeated and out-of-order events."""

from __future__ import annotations

import itertools
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_events import lambda_context
from fakes import FakeClock, InMemoryStore

from annotrain.domain.records import JobKind, Run, RunStatus, Server
from annotrain.services.job_events import (
    BatchJob,
    apply_batch_job_event,
    batch_failure_reason,
)

JOB = "4c7599ae-0a82-49aa-ba5a-4727fcce14a8"
CREATED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
STARTED = CREATED + timedelta(minutes=5)
STOPPED = STARTED + timedelta(minutes=30)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def attempt(
    start: datetime = STARTED,
    stop: datetime = STOPPED,
    reason: str = "Essential container in task exited",
    exit_code: int | None = 0,
) -> dict[str, Any]:
    container: dict[str, Any] = {"logStreamName": f"annotrain-train/default/{JOB}"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    return {"container": container, "startedAt": ms(start), "stoppedAt": ms(stop),
            "statusReason": reason}  # fmt: skip


def event(status: str, run_id: str = "run-1", **detail: Any) -> dict[str, Any]:
    """An EventBridge "Batch Job State Change" event, as AWS Batch sends it."""
    body: dict[str, Any] = {
        "jobName": f"annotrain-train-{run_id}",
        "jobId": JOB,
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/annotrain-gpu",
        "status": status,
        "attempts": [],
        "createdAt": ms(CREATED),
        "retryStrategy": {"attempts": 3},
        "dependsOn": [],
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/annotrain-train:1",
        "parameters": {"run_id": run_id},
        "container": {
            "image": "annotrain-jobs:gpu",
            "command": ["python", "-m", "batch_jobs.train", "--run-id", run_id],
            "environment": [{"name": "ANNOTRAIN_RUN_ID", "value": run_id}],
        },
    }
    if status not in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING"):
        body["startedAt"] = ms(STARTED)
    if status in ("SUCCEEDED", "FAILED"):
        body["stoppedAt"] = ms(STOPPED)
        body["attempts"] = [attempt(exit_code=0 if status == "SUCCEEDED" else 1)]
        body["container"]["exitCode"] = 0 if status == "SUCCEEDED" else 1
    body.update(detail)
    return {
        "version": "0",
        "id": "c8f9c4b5-76e5-d76a-f980-7011e206042b",
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": "123456789012",
        "time": "2026-11-21T12:35:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:batch:us-east-1:123456789012:job/{JOB}"],
        "detail": body,
    }


def failed(*attempts: dict[str, Any], reason: str | None = None, **detail: Any) -> dict[str, Any]:
    last = attempts[-1]
    extra: dict[str, Any] = {
        "attempts": list(attempts),
        "container": {"exitCode": last["container"].get("exitCode")},
        "stoppedAt": last["stoppedAt"],
    }
    if reason is not None:
        extra["statusReason"] = reason
    extra.update(detail)
    return event("FAILED", **extra)


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(STOPPED + timedelta(hours=1))


def submitted_run(store: InMemoryStore, run_id: str = "run-1", **kwargs: Any) -> Run:
    run = store.create_run(
        Run(run_id, 3, JobKind.TRAIN, RunStatus.QUEUED, "ana", CREATED, use_gpu=True, **kwargs)
    )
    return store.update_run(replace(run, job_ref=JOB))


def apply(store: InMemoryStore, clock: FakeClock, *events: dict[str, Any]) -> Run | None:
    result = None
    for one in events:
        result = apply_batch_job_event(one, store, clock)
    return result


# --- each status -----------------------------------------------------------------


@pytest.mark.parametrize("status", ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING"])
def test_statuses_before_running_leave_the_run_queued(
    store: InMemoryStore, clock: FakeClock, status: str
) -> None:
    run = submitted_run(store)

    assert apply(store, clock, event(status)) == run
    assert store.get_run("run-1") == run
    assert store.all_servers() == []


def test_a_status_before_running_keeps_the_job_id_a_submit_could_not_store(
    store: InMemoryStore, clock: FakeClock
) -> None:
    store.create_run(Run("run-1", 3, JobKind.TRAIN, RunStatus.QUEUED, "ana", CREATED))

    run = apply(store, clock, event("RUNNABLE"))

    assert run is not None
    assert (run.status, run.job_ref) == (RunStatus.QUEUED, JOB)


def test_running_starts_the_run_and_shows_it_on_the_servers_page(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)

    run = apply(store, clock, event("RUNNING"))

    assert run is not None
    assert (run.status, run.started_at, run.job_ref) == (RunStatus.RUNNING, STARTED, JOB)
    assert store.all_servers() == [Server("run-1", JobKind.TRAIN, 3, "ana", STARTED, True, JOB)]


def test_succeeded_ends_the_run_removes_its_server_and_records_its_gpu_hours(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)

    run = apply(store, clock, event("RUNNING"), event("SUCCEEDED"))

    assert run is not None
    assert (run.status, run.finished_at, run.failure_reason) == (
        RunStatus.SUCCEEDED, STOPPED, None,
    )  # fmt: skip
    assert store.all_servers() == []
    [usage] = store.all_usage()
    assert (usage.dimension, usage.quantity, usage.run_id) == ("training_gpu_hours", 0.5, "run-1")
    assert (usage.start, usage.end) == (STARTED, STOPPED)


def test_succeeded_leaves_a_run_the_job_reported_as_it_reported(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)
    apply(store, clock, event("RUNNING"))
    running = store.get_run("run-1")
    reported = store.update_run(
        replace(running, status=RunStatus.SUCCEEDED, finished_at=STOPPED - timedelta(seconds=3),
                progress=100.0, metrics={"ner": {"f1": 0.91}})
    )  # fmt: skip

    run = apply(store, clock, event("SUCCEEDED"))

    assert run == reported
    assert store.all_servers() == []
    assert len(store.all_usage()) == 1


def test_succeeded_never_overwrites_a_failure_the_job_reported(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)
    apply(store, clock, event("RUNNING"))
    reported = store.update_run(
        replace(store.get_run("run-1"), status=RunStatus.FAILED, finished_at=STOPPED,
                failure_reason="no completions to train on: submit some first")
    )  # fmt: skip

    assert apply(store, clock, event("SUCCEEDED")) == reported


def test_a_spot_reclaim_on_every_attempt_fails_the_run_saying_so_and_bills_each_attempt(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)
    reclaimed = "Host EC2 (instance i-0123456789abcdef0) terminated."
    attempts = [
        attempt(STARTED + timedelta(hours=i), STARTED + timedelta(hours=i, minutes=20),
                reclaimed, exit_code=None)
        for i in range(3)
    ]  # fmt: skip

    run = apply(store, clock, event("RUNNING"), failed(*attempts, reason=reclaimed))

    assert run is not None
    assert run.status is RunStatus.FAILED
    assert (run.failure_reason or "").startswith(
        "the host was terminated (Spot reclaim) after 3 attempts"
    )
    assert "i-0123456789abcdef0" in (run.failure_reason or "")
    usage = store.all_usage()
    assert [u.start for u in usage] == [STARTED + timedelta(hours=i) for i in range(3)]
    assert all(abs(u.quantity - 1 / 3) < 1e-9 for u in usage)
    assert store.all_servers() == []


def test_a_container_killed_for_memory_fails_the_run_asking_about_memory(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)
    oom = attempt(exit_code=137)
    oom["container"]["reason"] = "OutOfMemoryError: Container killed due to memory usage"

    run = apply(store, clock, event("RUNNING"), failed(oom))

    assert run is not None
    assert (run.failure_reason or "").startswith("exit code 137: out of memory?")
    assert "OutOfMemoryError" in (run.failure_reason or "")


@pytest.mark.parametrize(
    ("reason", "exit_code", "expected"),
    [
        ("Essential container in task exited", 2, "exit code 2: see the job's log"),
        (None, 137, "exit code 137: out of memory?"),
        ("OutOfMemoryError: Container killed due to memory usage", None, "out of memory ("),
        ("Job attempt duration exceeded timeout", None, "timed out ("),
        ("CannotPullContainerError: pull image manifest has been retried 1 time(s)", None,
         "the container did not start ("),
        ("Host EC2 (instance i-1) terminated.", None,
         "the host was terminated (Spot reclaim) after 1 attempt ("),
        ("Something new from AWS", None, "Something new from AWS"),
        (None, None, "AWS Batch reported the job failed and gave no reason"),
    ],
)  # fmt: skip
def test_failure_reasons_say_what_to_do(
    reason: str | None, exit_code: int | None, expected: str
) -> None:
    detail = failed(attempt(reason=reason or "", exit_code=exit_code), reason=reason)["detail"]
    assert batch_failure_reason(BatchJob.from_description(detail)).startswith(expected)


def test_failed_keeps_the_message_of_a_job_that_reported_its_own_failure(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)
    apply(store, clock, event("RUNNING"))
    reported = store.update_run(
        replace(store.get_run("run-1"), status=RunStatus.FAILED, finished_at=STOPPED,
                failure_reason="label 'Sym' has no examples in the training split")
    )  # fmt: skip

    run = apply(store, clock, failed(attempt(exit_code=1)))

    assert run == reported
    assert store.all_servers() == []
    assert len(store.all_usage()) == 1


def test_a_job_terminated_by_a_cancel_leaves_the_run_cancelled(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)
    apply(store, clock, event("RUNNING"))
    cancelled = store.update_run(
        replace(store.get_run("run-1"), status=RunStatus.CANCELLED, finished_at=STOPPED,
                failure_reason="cancelled by user")
    )  # fmt: skip

    run = apply(store, clock, failed(attempt(exit_code=143), reason="cancelled by user"))

    assert run == cancelled


def test_a_job_terminated_with_the_cancel_reason_cancels_a_run_not_yet_ended(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)

    run = apply(store, clock, failed(attempt(exit_code=143), reason="cancelled by user"))

    assert run is not None
    assert (run.status, run.failure_reason) == (RunStatus.CANCELLED, "cancelled by user")


# --- repeats, order, strangers ------------------------------------------------------------


@pytest.mark.parametrize("status", ["RUNNABLE", "RUNNING", "SUCCEEDED", "FAILED"])
def test_an_event_delivered_twice_changes_nothing_the_second_time(
    store: InMemoryStore, clock: FakeClock, status: str
) -> None:
    submitted_run(store)
    once = apply(store, clock, event(status))
    servers, usage = store.all_servers(), store.all_usage()

    twice = apply(store, clock, event(status))

    assert twice == once
    assert (store.all_servers(), store.all_usage()) == (servers, usage)


@pytest.mark.parametrize(
    ("statuses", "final"),
    [
        (["RUNNABLE", "RUNNING", "SUCCEEDED"], RunStatus.SUCCEEDED),
        (["RUNNABLE", "STARTING", "RUNNING", "FAILED"], RunStatus.FAILED),
    ],
)
def test_events_in_any_order_end_the_same_with_no_server_left(
    clock: FakeClock, statuses: list[str], final: RunStatus
) -> None:
    outcomes = []
    for order in itertools.permutations(statuses):
        store = InMemoryStore()
        submitted_run(store)
        run = apply(store, clock, *(event(status) for status in order))
        assert run is not None
        assert store.all_servers() == []
        assert [(u.start, u.end) for u in store.all_usage()] == [(STARTED, STOPPED)]
        outcomes.append(replace(run, revision=0))
    run = outcomes[0]
    assert all(outcome == run for outcome in outcomes)
    assert (run.status, run.started_at, run.finished_at) == (final, STARTED, STOPPED)


def test_a_retried_attempt_keeps_the_run_running_from_its_first_start(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)
    second_start = STARTED + timedelta(minutes=40)
    reclaimed = attempt(exit_code=None, reason="Host EC2 (instance i-1) terminated.")

    run = apply(
        store,
        clock,
        event("RUNNING"),
        event("RUNNABLE", attempts=[reclaimed]),
        event("RUNNING", startedAt=ms(second_start), attempts=[reclaimed]),
    )

    assert run is not None
    assert (run.status, run.started_at) == (RunStatus.RUNNING, STARTED)
    assert [s.run_id for s in store.all_servers()] == ["run-1"]


def test_the_run_id_is_read_from_the_environment_when_parameters_lack_it(
    store: InMemoryStore, clock: FakeClock
) -> None:
    submitted_run(store)
    from_container = event("RUNNING", parameters={})
    from_overrides = event("RUNNING", parameters={}, container={})
    from_overrides["detail"]["containerOverrides"] = {
        "environment": [{"name": "ANNOTRAIN_RUN_ID", "value": "run-1"}]
    }

    assert BatchJob.from_description(from_container["detail"]).run_id == "run-1"
    assert BatchJob.from_description(from_overrides["detail"]).run_id == "run-1"
    run = apply(store, clock, from_overrides)
    assert run is not None
    assert run.status is RunStatus.RUNNING


def test_events_about_no_known_run_change_nothing(store: InMemoryStore, clock: FakeClock) -> None:
    run = submitted_run(store)
    no_run_id = event("RUNNING", parameters={}, container={})
    not_batch = {**event("RUNNING"), "detail-type": "ECS Task State Change"}

    assert apply(store, clock, no_run_id) is None
    assert apply(store, clock, not_batch) is None
    assert apply(store, clock, event("RUNNING", run_id="run-404")) is None
    assert apply(store, clock, event("RUNNING", jobId="an-older-job-of-run-1")) == run
    assert apply(store, clock, event("NEWSTATUS")) == run
    assert store.get_run("run-1") == run


# --- the Lambda function ----------------------------------------------------------------


def test_the_handler_module_loads_no_store_and_no_aws_package_at_import() -> None:
    code = (
        "import sys, lambdas.batch_events; "
        "print([m for m in ('boto3', 'botocore', 'annotrain.adapters.dynamodb', "
        "'aws_lambda_powertools', 'aws_xray_sdk') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def dynamodb_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, ...]]]:
    """A stand-in annotrain.adapters.dynamodb whose DynamoDbStore is the in-memory store."""
    from lambdas import batch_events

    opened: list[tuple[Any, ...]] = []
    shared = InMemoryStore()
    submitted_run(shared)

    def dynamodb_store(table: str, *, overflow_bucket: str | None = None) -> InMemoryStore:
        opened.append((table, overflow_bucket))
        return shared

    module = types.ModuleType("annotrain.adapters.dynamodb")
    module.DynamoDbStore = dynamodb_store  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "annotrain.adapters.dynamodb", module)
    batch_events._store.cache_clear()
    yield opened
    batch_events._store.cache_clear()


def test_the_handler_opens_the_store_once_logs_json_and_counts_each_state_change(
    dynamodb_module: list[tuple[Any, ...]],
    monkeypatch: pytest.MonkeyPatch,
    lambda_output: Callable[[], list[dict[str, Any]]],
) -> None:
    from lambdas.batch_events import JOB_STATE_METRIC, handler

    monkeypatch.setenv("ANNOTRAIN_TABLE", "annotrain")
    monkeypatch.setenv("ANNOTRAIN_OVERFLOW_BUCKET", "annotrain-items")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "annotrain")

    handler(event("RUNNING"), lambda_context("annotrain-job-events"))
    running = lambda_output()
    outcome = handler(event("SUCCEEDED"), lambda_context("annotrain-job-events"))
    succeeded = lambda_output()

    assert dynamodb_module == [("annotrain", "annotrain-items")]
    assert outcome["run_status"] == "succeeded"
    for printed, (batch_status, run_status) in (
        (running, ("RUNNING", "running")),
        (succeeded, ("SUCCEEDED", "succeeded")),
    ):
        (line,) = [p for p in printed if p.get("message") == "batch job state change"]
        # Top-level keys: the Monitoring stack's failed-runs filter reads $.run_status.
        assert (line["batch_status"], line["run_status"]) == (batch_status, run_status)
        assert (line["run_id"], line["job_id"]) == ("run-1", JOB)
        assert line["level"] == "INFO"
        assert line["correlation_id"] == event("RUNNING")["id"]  # the EventBridge event's id
        assert line["function_name"] == "annotrain-job-events"
        blobs = [p for p in printed if "_aws" in p and JOB_STATE_METRIC in p]
        (blob,) = blobs
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "annotrain"
        assert {"Name": JOB_STATE_METRIC, "Unit": "Count"} in directive["Metrics"]
        assert all("batch_status" in dimensions for dimensions in directive["Dimensions"])
        assert (blob[JOB_STATE_METRIC], blob["batch_status"]) == ([1.0], batch_status)


def test_the_handler_refuses_to_guess_its_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from lambdas.batch_events import handler

    monkeypatch.delenv("ANNOTRAIN_TABLE", raising=False)
    with pytest.raises(RuntimeError, match="ANNOTRAIN_TABLE"):
        handler(event("RUNNING"), lambda_context())
