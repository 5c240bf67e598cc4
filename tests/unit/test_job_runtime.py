"""batch_jobs.runtime: a job's run status, heartbeat and exit code around trivial work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes import InMemoryStore

from annotrain.adapters.system_clock import SystemClock
from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.records import JobKind, Run, RunStatus
from batch_jobs.runtime import (
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    EXIT_USAGE,
    JobContext,
    JobSetupError,
    open_store,
    run_job,
)

CREATED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    store.create_run(Run("run-1", 1, JobKind.TRAIN, RunStatus.QUEUED, "ana", CREATED))
    return store


def run(store: InMemoryStore, work: Any, *argv: str, **kwargs: Any) -> int:
    options: dict[str, Any] = {"environ": {}, "heartbeat_interval": 0.02}
    options.update(kwargs)
    return run_job(
        work, list(argv or ["--run-id", "run-1"]), store_opener=lambda _: store, **options
    )


def test_work_that_returns_succeeds_the_run_and_exits_0(store: InMemoryStore) -> None:
    seen: list[Run] = []

    code = run(store, lambda context: seen.append(context.run()))

    assert code == EXIT_SUCCEEDED
    [during] = seen
    assert during.status is RunStatus.RUNNING
    assert during.started_at is not None
    assert during.heartbeat_at is not None
    after = store.get_run("run-1")
    assert (after.status, after.progress, after.failure_reason) == (RunStatus.SUCCEEDED, 100, None)
    assert after.finished_at is not None
    assert after.finished_at >= during.started_at


def test_work_that_raises_fails_the_run_with_the_error_and_exits_1(store: InMemoryStore) -> None:
    def work(context: JobContext) -> None:
        raise ValueError("the dataset snapshot is empty")

    assert run(store, work) == EXIT_FAILED

    after = store.get_run("run-1")
    assert after.status is RunStatus.FAILED
    assert after.failure_reason == "ValueError: the dataset snapshot is empty"
    assert after.finished_at is not None


def test_a_domain_error_is_the_reason_as_it_is_written(store: InMemoryStore) -> None:
    def work(context: JobContext) -> None:
        raise InvalidRequestError("epochs", "must be between 1 and 100")

    assert run(store, work) == EXIT_FAILED
    assert store.get_run("run-1").failure_reason == "epochs: must be between 1 and 100"


def test_the_run_already_started_by_the_runner_keeps_its_start(store: InMemoryStore) -> None:
    queued = store.get_run("run-1")
    started = datetime(2026, 11, 21, 12, 1, tzinfo=UTC)
    store.update_run(
        replace(queued, status=RunStatus.RUNNING, started_at=started, job_ref="host:42")
    )

    assert run(store, lambda context: None) == EXIT_SUCCEEDED

    after = store.get_run("run-1")
    assert (after.status, after.started_at, after.job_ref) == (
        RunStatus.SUCCEEDED, started, "host:42",
    )  # fmt: skip


def test_a_run_that_ended_before_the_job_began_is_left_and_the_work_not_done(
    store: InMemoryStore,
) -> None:
    cancelled = store.update_run(replace(store.get_run("run-1"), status=RunStatus.CANCELLED))
    called = []

    assert run(store, called.append) == EXIT_SUCCEEDED

    assert called == []
    assert store.get_run("run-1") == cancelled


def test_the_heartbeat_beats_while_the_work_runs(store: InMemoryStore) -> None:
    beats: set[datetime | None] = set()

    def work(context: JobContext) -> None:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            beats.add(context.run().heartbeat_at)
            time.sleep(0.01)

    assert run(store, work, clock=SystemClock()) == EXIT_SUCCEEDED
    assert len(beats) >= 3


def test_progress_updates_of_the_work_never_conflict_with_the_heartbeat(
    store: InMemoryStore,
) -> None:
    def work(context: JobContext) -> None:
        for epoch in range(1, 101):
            context.update_run(
                lambda r, e=epoch: replace(r, epoch=e, progress=e * 0.9,
                                           history=(*r.history, {"epoch": e}))
            )  # fmt: skip
            time.sleep(0.002)

    assert run(store, work, heartbeat_interval=0.001) == EXIT_SUCCEEDED

    after = store.get_run("run-1")
    assert after.epoch == 100
    assert [h["epoch"] for h in after.history] == list(range(1, 101))


def test_a_cancel_while_working_asks_the_work_to_stop_and_stays_a_cancel(
    store: InMemoryStore,
) -> None:
    def work(context: JobContext) -> None:
        current = context.run()
        # The user cancels from elsewhere (the API, through the runner).
        context.store.update_run(replace(current, status=RunStatus.CANCELLED))
        assert context.stop_requested.wait(timeout=5)
        context.update_run(lambda r: replace(r, progress=50.0))  # ignored: the run has ended

    assert run(store, work) == EXIT_SUCCEEDED

    after = store.get_run("run-1")
    assert (after.status, after.progress) == (RunStatus.CANCELLED, 0.0)


def test_the_run_id_comes_from_the_environment_without_the_argument(
    store: InMemoryStore,
) -> None:
    code = run_job(
        lambda context: None,
        [],
        environ={"ANNOTRAIN_RUN_ID": "run-1"},
        store_opener=lambda _: store,
        heartbeat_interval=1,
    )
    assert code == EXIT_SUCCEEDED
    assert store.get_run("run-1").status is RunStatus.SUCCEEDED


def test_no_run_id_or_no_store_is_a_usage_error(store: InMemoryStore) -> None:
    assert run_job(lambda context: None, [], environ={}, store_opener=lambda _: store) == EXIT_USAGE
    assert run_job(lambda context: None, ["--run-id", "run-1"], environ={}) == EXIT_USAGE
    bad_interval = {"ANNOTRAIN_HEARTBEAT_SECONDS": "often"}
    assert run(store, lambda c: None, environ=bad_interval, heartbeat_interval=None) == EXIT_USAGE
    assert store.get_run("run-1").status is RunStatus.QUEUED


def test_an_unknown_run_exits_1(store: InMemoryStore) -> None:
    assert run(store, lambda context: None, "--run-id", "run-404") == EXIT_FAILED


def test_a_result_that_cannot_be_stored_exits_1(store: InMemoryStore) -> None:
    def work(context: JobContext) -> None:
        def refuse(run: Run) -> Run:
            raise OSError("disk full")

        store.update_run = refuse  # type: ignore[method-assign]

    assert run(store, work) == EXIT_FAILED


@pytest.mark.parametrize(
    ("environ", "module", "expected"),
    [
        ({"ANNOTRAIN_DB": "/var/lib/annotrain/lab.db"}, "sqlite",
         ("SqliteStore", Path("/var/lib/annotrain/lab.db"))),
        ({"ANNOTRAIN_TABLE": "annotrain", "ANNOTRAIN_OVERFLOW_BUCKET": "items"}, "dynamodb",
         ("DynamoDbStore", "annotrain", "items")),
    ],
)  # fmt: skip
def test_the_store_is_the_one_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], module: str, expected: tuple[Any]
) -> None:
    fake = types.ModuleType(f"annotrain.adapters.{module}")
    fake.SqliteStore = lambda path: ("SqliteStore", path)  # type: ignore[attr-defined]
    fake.DynamoDbStore = lambda table, overflow_bucket: (  # type: ignore[attr-defined]
        "DynamoDbStore", table, overflow_bucket,
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, f"annotrain.adapters.{module}", fake)

    assert open_store(environ) == expected
    with pytest.raises(JobSetupError, match="ANNOTRAIN_DB"):
        open_store({})


def test_main_exits_with_the_code_and_says_why_on_stderr() -> None:
    code = "from batch_jobs.runtime import main; main(lambda context: None)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANNOTRAIN_")}
    out = subprocess.run(
        [sys.executable, "-c", code, "--run-id", "run-1"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == EXIT_USAGE
    assert "set ANNOTRAIN_DB" in out.stderr


def test_importing_the_runtime_opens_nothing() -> None:
    code = (
        "import sys, batch_jobs.runtime; print([m for m in sys.modules if m in "
        "('boto3', 'annotrain.adapters.sqlite', 'annotrain.adapters.dynamodb', 'torch')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
