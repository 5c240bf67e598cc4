"""BatchJobRunner against AWS Batch under moto (no Docker: moto's jobs end at once)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes import InMemoryStore, list_all

from annotrain.adapters.batch import RETRY_STRATEGY, BatchJobRunner, BatchJobRunnerError
from annotrain.domain.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from annotrain.domain.records import JobKind, Run, RunStatus, Server
from annotrain.ports import JobSpec

REGION = "us-east-1"
CREATED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
DEFINITIONS = {
    JobKind.TRAIN: "annotrain-train",
    JobKind.PREANNOTATE: "annotrain-preannotate",
    JobKind.OCR: "annotrain-ocr",
}


@dataclass
class BatchAccount:
    """A moto AWS Batch set up as the lab's stack sets it up, and the requests it got."""

    client: Any
    queue_arns: dict[str, str]
    definition_arns: dict[str, str]
    requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def record(self, operation: str) -> None:
        def keep(params: dict[str, Any], **_: Any) -> None:
            self.requests.setdefault(operation, []).append(dict(params))

        self.client.meta.events.register(f"provide-client-params.batch.{operation}", keep)

    def describe(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.describe_jobs(jobs=[job_id])["jobs"][0]
        return job


@pytest.fixture
def aws(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto with Batch jobs that run without Docker."""
    from moto import mock_aws

    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", raising=False)
    with mock_aws(config={"batch": {"use_docker": False}}):
        yield


@pytest.fixture
def batch(aws: None) -> BatchAccount:
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID

    client = boto3.client("batch", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName="annotrain-batch", AssumeRolePolicyDocument="{}")
    role = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/annotrain-batch"
    queue_arns = {}
    for kind in ("gpu", "cpu"):
        environment = client.create_compute_environment(
            computeEnvironmentName=f"annotrain-{kind}",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role,
        )
        queue = client.create_job_queue(
            jobQueueName=f"annotrain-{kind}",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[
                {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}
            ],
        )
        queue_arns[kind] = queue["jobQueueArn"]
    definition_arns = {}
    for name in [*DEFINITIONS.values(), "annotrain-train-gpu"]:
        definition = client.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={
                "image": "annotrain-jobs:latest",
                "command": ["python", "-m", "batch_jobs.x", "--run-id", "Ref::run_id"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "2048"},
                ],
            },
        )
        definition_arns[name] = definition["jobDefinitionArn"]
    account = BatchAccount(client, queue_arns, definition_arns)
    for operation in ("SubmitJob", "TerminateJob"):
        account.record(operation)
    return account


@pytest.fixture
def store(run_store: Any) -> Any:
    """The store the runner records into (tests/integration/conftest.py)."""
    return run_store


def make_runner(store: Any, batch: BatchAccount, **kwargs: Any) -> BatchJobRunner:
    options: dict[str, Any] = {
        "queues": {"gpu": "annotrain-gpu", "cpu": "annotrain-cpu"},
        "job_definitions": DEFINITIONS,
        "client": batch.client,
    }
    options.update(kwargs)
    return BatchJobRunner(store, **options)


def new_run(store: Any, run_id: str, kind: JobKind = JobKind.TRAIN, **kwargs: Any) -> Run:
    stored: Run = store.create_run(Run(run_id, 7, kind, RunStatus.QUEUED, "ana", CREATED, **kwargs))
    return stored


def test_a_gpu_training_goes_to_the_gpu_queue_with_its_parameters_and_spot_retries(
    store: Any, batch: BatchAccount
) -> None:
    runner = make_runner(store, batch)
    new_run(store, "run-1", use_gpu=True)

    job_id = runner.submit(JobSpec(JobKind.TRAIN, "run-1", use_gpu=True))

    assert store.get_run("run-1").job_ref == job_id
    [request] = batch.requests["SubmitJob"]
    assert request["jobQueue"] == "annotrain-gpu"
    assert request["jobDefinition"] == "annotrain-train"
    assert request["jobName"] == "annotrain-train-run-1"
    assert request["parameters"] == {"run_id": "run-1"}
    assert request["containerOverrides"]["environment"] == [
        {"name": "ANNOTRAIN_RUN_ID", "value": "run-1"}
    ]
    assert request["retryStrategy"] == {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    assert request["retryStrategy"] == RETRY_STRATEGY
    job = batch.describe(job_id)
    assert job["jobQueue"] == batch.queue_arns["gpu"]
    assert job["jobDefinition"] == batch.definition_arns["annotrain-train"]
    assert job["parameters"]["run_id"] == "run-1"
    assert {"name": "ANNOTRAIN_RUN_ID", "value": "run-1"} in job["container"]["environment"]
    assert job["tags"] == {
        "annotrain:run-id": "run-1",
        "annotrain:kind": "train",
        "annotrain:project-id": "7",
    }


def test_a_cpu_job_goes_to_the_cpu_queue_with_the_definition_of_its_kind(
    store: Any, batch: BatchAccount
) -> None:
    runner = make_runner(store, batch)
    new_run(store, "run-1", kind=JobKind.OCR)

    job_id = runner.submit(JobSpec(JobKind.OCR, "run-1"))

    job = batch.describe(job_id)
    assert job["jobQueue"] == batch.queue_arns["cpu"]
    assert job["jobDefinition"] == batch.definition_arns["annotrain-ocr"]


def test_gpu_runs_take_the_gpu_job_definition_where_one_is_given(
    store: Any, batch: BatchAccount
) -> None:
    runner = make_runner(store, batch, gpu_job_definitions={JobKind.TRAIN: "annotrain-train-gpu"})
    new_run(store, "gpu", use_gpu=True)
    new_run(store, "cpu")

    gpu = batch.describe(runner.submit(JobSpec(JobKind.TRAIN, "gpu", use_gpu=True)))
    cpu = batch.describe(runner.submit(JobSpec(JobKind.TRAIN, "cpu")))

    assert gpu["jobDefinition"] == batch.definition_arns["annotrain-train-gpu"]
    assert cpu["jobDefinition"] == batch.definition_arns["annotrain-train"]


def test_cancel_terminates_the_job_and_cancels_the_run(store: Any, batch: BatchAccount) -> None:
    runner = make_runner(store, batch)
    new_run(store, "run-1")
    job_id = runner.submit(JobSpec(JobKind.TRAIN, "run-1"))
    store.put_server(Server("run-1", JobKind.TRAIN, 7, "ana", CREATED, False, job_id))

    runner.cancel("run-1")

    assert batch.requests["TerminateJob"] == [{"jobId": job_id, "reason": "cancelled by user"}]
    assert batch.describe(job_id)["statusReason"] == "cancelled by user"
    run = store.get_run("run-1")
    assert (run.status, run.failure_reason) == (RunStatus.CANCELLED, "cancelled by user")
    assert run.finished_at is not None
    assert list_all(lambda token: store.list_servers(token=token)) == []
    assert runner.status("run-1").status is RunStatus.CANCELLED

    runner.cancel("run-1")  # a finished run: nothing to do
    assert len(batch.requests["TerminateJob"]) == 1
    assert store.get_run("run-1") == run


def test_status_reads_the_job_from_batch_until_the_run_has_ended(
    store: Any, batch: BatchAccount
) -> None:
    runner = make_runner(store, batch)
    new_run(store, "run-1")
    job_id = runner.submit(JobSpec(JobKind.TRAIN, "run-1"))

    status = runner.status("run-1")

    # moto's jobs succeed at once; the store hears of it only through the event.
    assert (status.status, status.job_ref, status.reason) == (RunStatus.SUCCEEDED, job_id, None)
    assert store.get_run("run-1").status is RunStatus.QUEUED


def test_status_of_a_failed_job_says_why(
    store: Any, batch: BatchAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    runner = make_runner(store, batch)
    new_run(store, "run-1")
    runner.submit(JobSpec(JobKind.TRAIN, "run-1"))

    status = runner.status("run-1")

    assert status.status is RunStatus.FAILED
    assert status.reason


@dataclass
class FakeBatchClient:
    """A Batch client that describes one job in the status a test sets."""

    job: dict[str, Any]
    submitted: list[dict[str, Any]] = field(default_factory=list)

    def submit_job(self, **request: Any) -> dict[str, Any]:
        self.submitted.append(request)
        return {"jobId": self.job["jobId"], "jobName": request["jobName"]}

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        return {"jobs": [self.job] if self.job["jobId"] in jobs else []}


@pytest.mark.parametrize(
    ("batch_status", "expected"),
    [
        ("SUBMITTED", RunStatus.QUEUED),
        ("PENDING", RunStatus.QUEUED),
        ("RUNNABLE", RunStatus.QUEUED),
        ("STARTING", RunStatus.QUEUED),
        ("RUNNING", RunStatus.RUNNING),
        ("SUCCEEDED", RunStatus.SUCCEEDED),
        ("FAILED", RunStatus.FAILED),
    ],
)
def test_every_batch_status_maps_to_a_run_status(
    store: Any, batch_status: str, expected: RunStatus
) -> None:
    client = FakeBatchClient({"jobId": "job-1", "status": batch_status})
    runner = BatchJobRunner(
        store, queues={"gpu": "g", "cpu": "c"}, job_definitions=DEFINITIONS, client=client
    )
    new_run(store, "run-1")
    runner.submit(JobSpec(JobKind.TRAIN, "run-1"))

    assert runner.status("run-1").status is expected


def test_status_of_a_job_killed_for_memory_names_the_exit_code() -> None:
    store = InMemoryStore()
    client = FakeBatchClient(
        {
            "jobId": "job-1",
            "status": "FAILED",
            "statusReason": "Essential container in task exited",
            "container": {"exitCode": 137},
            "attempts": [{"container": {"exitCode": 137}, "startedAt": 1, "stoppedAt": 2}],
        }
    )
    runner = BatchJobRunner(
        store, queues={"gpu": "g", "cpu": "c"}, job_definitions=DEFINITIONS, client=client
    )
    new_run(store, "run-1")
    runner.submit(JobSpec(JobKind.TRAIN, "run-1"))

    status = runner.status("run-1")

    assert status.status is RunStatus.FAILED
    assert (status.reason or "").startswith("exit code 137: out of memory?")


def test_a_job_batch_no_longer_describes_is_as_the_store_has_it(
    store: Any, batch: BatchAccount
) -> None:
    runner = make_runner(store, batch)
    run = new_run(store, "run-1")
    store.update_run(replace(run, job_ref="aged-out-job-id"))

    status = runner.status("run-1")

    assert (status.status, status.job_ref) == (RunStatus.QUEUED, "aged-out-job-id")


def test_submit_refuses_a_run_twice_a_run_not_queued_and_an_unknown_run(
    store: Any, batch: BatchAccount
) -> None:
    runner = make_runner(store, batch)
    new_run(store, "run-1")
    runner.submit(JobSpec(JobKind.TRAIN, "run-1"))
    with pytest.raises(AlreadyExistsError):
        runner.submit(JobSpec(JobKind.TRAIN, "run-1"))
    with pytest.raises(NotFoundError):
        runner.submit(JobSpec(JobKind.TRAIN, "run-404"))
    run = new_run(store, "run-2")
    store.update_run(replace(run, status=RunStatus.FAILED))
    with pytest.raises(InvalidRequestError):
        runner.submit(JobSpec(JobKind.TRAIN, "run-2"))
    assert len(batch.requests["SubmitJob"]) == 1


def test_a_job_batch_refuses_is_an_error_that_says_so_and_the_run_can_be_submitted_again(
    store: Any, batch: BatchAccount
) -> None:
    runner = make_runner(store, batch, queues={"gpu": "no-such-queue", "cpu": "annotrain-cpu"})
    new_run(store, "run-1", use_gpu=True)

    with pytest.raises(BatchJobRunnerError, match="no-such-queue"):
        runner.submit(JobSpec(JobKind.TRAIN, "run-1", use_gpu=True))

    assert store.get_run("run-1").job_ref is None
    good = make_runner(store, batch)
    assert good.submit(JobSpec(JobKind.TRAIN, "run-1", use_gpu=True))


def test_the_client_is_made_on_first_use_from_the_environment(
    store: Any, batch: BatchAccount
) -> None:
    runner = make_runner(store, batch, client=None)
    new_run(store, "run-1")

    job_id = runner.submit(JobSpec(JobKind.TRAIN, "run-1"))

    assert batch.describe(job_id)["jobName"] == "annotrain-train-run-1"


def test_a_runner_needs_both_queues_and_a_definition_for_every_kind(store: Any) -> None:
    with pytest.raises(InvalidRequestError, match="gpu"):
        BatchJobRunner(store, queues={"cpu": "c"}, job_definitions=DEFINITIONS)
    with pytest.raises(InvalidRequestError, match="ocr"):
        BatchJobRunner(
            store,
            queues={"gpu": "g", "cpu": "c"},
            job_definitions={JobKind.TRAIN: "t", JobKind.PREANNOTATE: "p"},
        )


def test_importing_the_batch_adapter_loads_no_aws_package() -> None:
    code = (
        "import sys, annotrain.adapters.batch, annotrain.services.job_events; "
        "print([m for m in ('boto3', 'botocore') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
