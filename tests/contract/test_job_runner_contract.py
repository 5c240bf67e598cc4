"""The JobRunner contract: the local process pool and AWS Batch answer alike.

Self-contained (its own moto set-up) so that it runs without the store adapters.
The local runner runs a script that waits a minute; moto's Batch jobs end at once,
which the contract allows (after submit a job is queued, running or ended).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes import InMemoryStore

from annotrain.domain.errors import NotFoundError
from annotrain.domain.records import JobKind, Run, RunStatus
from annotrain.ports import JobRunner, JobSpec

REGION = "us-east-1"
CREATED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@dataclass
class Lab:
    """A runner and the store it records into."""

    runner: JobRunner
    store: Any

    def new_run(self, run_id: str) -> JobSpec:
        self.store.create_run(Run(run_id, 1, JobKind.TRAIN, RunStatus.QUEUED, "ana", CREATED))
        return JobSpec(JobKind.TRAIN, run_id)


def _local(tmp_path: Path) -> Iterator[Lab]:
    from annotrain.adapters.local_runner import LocalJobRunner

    store = InMemoryStore()
    runner = LocalJobRunner(
        store,
        log_dir=tmp_path / "logs",
        command=lambda spec: [sys.executable, "-c", "import time; time.sleep(60)"],
        poll_interval=0.05,
        grace_period=1.0,
    )
    with runner:
        yield Lab(runner, store)


def _batch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    import boto3
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID

    from annotrain.adapters.batch import BatchJobRunner

    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", raising=False)
    with mock_aws(config={"batch": {"use_docker": False}}):
        client = boto3.client("batch", region_name=REGION)
        boto3.client("iam", region_name=REGION).create_role(
            RoleName="annotrain-batch", AssumeRolePolicyDocument="{}"
        )
        environment = client.create_compute_environment(
            computeEnvironmentName="annotrain",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/annotrain-batch",
        )
        order = [{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}]
        for queue in ("annotrain-gpu", "annotrain-cpu"):
            client.create_job_queue(
                jobQueueName=queue, state="ENABLED", priority=1, computeEnvironmentOrder=order
            )
        for kind in JobKind:
            client.register_job_definition(
                jobDefinitionName=f"annotrain-{kind.value}",
                type="container",
                containerProperties={"image": "annotrain-jobs", "vcpus": 1, "memory": 512},
            )
        store = InMemoryStore()
        runner = BatchJobRunner(
            store,
            queues={"gpu": "annotrain-gpu", "cpu": "annotrain-cpu"},
            job_definitions={kind: f"annotrain-{kind.value}" for kind in JobKind},
            client=client,
        )
        yield Lab(runner, store)


@pytest.fixture(params=["local", "batch"])
def lab(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Lab]:
    """A JobRunner: local processes, or AWS Batch under moto."""
    if request.param == "local":
        yield from _local(tmp_path)
    else:
        request.getfixturevalue("aws_credentials")
        yield from _batch(monkeypatch)


def test_submit_returns_a_handle(lab: Lab) -> None:
    handle = lab.runner.submit(lab.new_run("run-1"))
    assert isinstance(handle, str)
    assert handle


def test_status_of_an_unknown_run_is_not_found(lab: Lab) -> None:
    with pytest.raises(NotFoundError):
        lab.runner.status("run-404")


def test_status_of_a_run_never_submitted_is_not_found(lab: Lab) -> None:
    lab.new_run("run-1")
    with pytest.raises(NotFoundError):
        lab.runner.status("run-1")


def test_after_submit_a_job_is_queued_running_or_ended(lab: Lab) -> None:
    lab.runner.submit(lab.new_run("run-1"))

    status = lab.runner.status("run-1")

    assert status.status in (RunStatus.QUEUED, RunStatus.RUNNING) or status.status.is_final
    assert status.job_ref


def test_cancel_ends_the_run_cancelled_and_a_second_cancel_does_nothing(lab: Lab) -> None:
    lab.runner.submit(lab.new_run("run-1"))

    lab.runner.cancel("run-1")

    status = lab.runner.status("run-1")
    assert status.status is RunStatus.CANCELLED
    run = lab.store.get_run("run-1")
    assert run.status is RunStatus.CANCELLED

    lab.runner.cancel("run-1")

    assert lab.runner.status("run-1") == status
    assert lab.store.get_run("run-1") == run


def test_cancel_of_an_unknown_run_is_not_found(lab: Lab) -> None:
    with pytest.raises(NotFoundError):
        lab.runner.cancel("run-404")
