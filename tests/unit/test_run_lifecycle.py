"""The run lifecycle: forward only, revision-checked, retried on conflict, billed once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes import InMemoryStore

from annotrain.domain.errors import ConflictError
from annotrain.domain.records import JobKind, Run, RunStatus
from annotrain.services.run_lifecycle import (
    MAX_CONFLICT_RETRIES,
    finished,
    mark_finished,
    mark_started,
    started,
    update_run_with,
    usage_dimension,
)

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def queued(**kwargs: Any) -> Run:
    return Run("run-1", 1, JobKind.TRAIN, RunStatus.QUEUED, "ana", T0, **kwargs)


@pytest.mark.parametrize(
    ("kind", "use_gpu", "dimension"),
    [
        (JobKind.TRAIN, True, "training_gpu_hours"),
        (JobKind.TRAIN, False, "training_cpu_hours"),
        (JobKind.PREANNOTATE, True, "inference_gpu_hours"),
        (JobKind.PREANNOTATE, False, "inference_cpu_hours"),
        (JobKind.OCR, False, "ocr_cpu_hours"),
    ],
)
def test_each_kind_bills_its_own_dimension(kind: JobKind, use_gpu: bool, dimension: str) -> None:
    assert usage_dimension(kind, use_gpu) == dimension


@pytest.mark.parametrize("final", [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED])
def test_a_final_run_never_starts_or_ends_again(final: RunStatus) -> None:
    run = replace(queued(), status=final, finished_at=T0)
    assert started(run, at=T0, job_ref="x") is None
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
        assert finished(run, status, at=T0, reason="late") is None


def test_only_a_final_status_ends_a_run() -> None:
    with pytest.raises(ValueError, match="final"):
        finished(queued(), RunStatus.RUNNING, at=T0, reason=None)


def test_a_running_run_takes_a_new_handle_but_keeps_its_start() -> None:
    run = replace(queued(), status=RunStatus.RUNNING, started_at=T0, job_ref="a")
    again = started(run, at=T0 + timedelta(hours=1), job_ref="b")
    assert again is not None
    assert (again.started_at, again.job_ref) == (T0, "b")
    assert started(again, at=T0, job_ref="b") is None


class ConflictingStore(InMemoryStore):
    """Another writer gets in first, ``conflicts`` times."""

    def __init__(self, conflicts: int) -> None:
        super().__init__()
        self.conflicts = conflicts

    def update_run(self, run: Run) -> Run:
        if self.conflicts > 0:
            self.conflicts -= 1
            stored = self.get_run(run.id)
            super().update_run(replace(stored, heartbeat_at=T0))  # the other writer
        return super().update_run(run)


def test_a_change_is_applied_again_to_what_another_writer_stored() -> None:
    store = ConflictingStore(conflicts=3)
    store.create_run(queued())

    run, changed = update_run_with(store, "run-1", lambda r: replace(r, progress=r.progress + 10))

    assert changed
    assert (run.progress, run.heartbeat_at) == (10.0, T0)


def test_a_run_rewritten_endlessly_gives_up_with_the_conflict() -> None:
    store = ConflictingStore(conflicts=MAX_CONFLICT_RETRIES + 5)
    store.create_run(queued())
    with pytest.raises(ConflictError):
        update_run_with(store, "run-1", lambda r: replace(r, progress=50.0))


def test_a_change_that_changes_nothing_writes_nothing() -> None:
    store = InMemoryStore()
    stored = store.create_run(queued())

    run, changed = update_run_with(store, "run-1", lambda r: replace(r))

    assert (run, changed, store.update_calls) == (stored, False, 0)


def test_ending_a_run_twice_bills_it_once_and_keeps_the_first_end() -> None:
    store = InMemoryStore()
    store.create_run(queued(use_gpu=True))
    mark_started(store, "run-1", at=T0, job_ref="h:1", host="h:1")

    first = mark_finished(store, "run-1", RunStatus.FAILED, at=T0 + timedelta(hours=2), reason="a")
    second = mark_finished(store, "run-1", RunStatus.SUCCEEDED, at=T0 + timedelta(hours=3),
                           reason=None)  # fmt: skip

    assert second == first
    assert (first.status, first.failure_reason) == (RunStatus.FAILED, "a")
    [usage] = store.all_usage()
    assert (usage.dimension, usage.quantity) == ("training_gpu_hours", 2.0)
    assert store.all_servers() == []


class EndsWhileStarting(InMemoryStore):
    """Another writer ends the run right after the start is stored."""

    def put_server(self, server: Any) -> None:
        super().put_server(server)
        run = self.get_run(server.run_id)
        if not run.status.is_final:
            ended = finished(run, RunStatus.FAILED, at=T0, reason="killed")
            assert ended is not None
            self.update_run(ended)
            self.remove_server(server.run_id)
            super().put_server(server)  # the starter's write lands last


def test_a_run_that_ended_while_it_was_being_started_leaves_no_server_record() -> None:
    store = EndsWhileStarting()
    store.create_run(queued())

    mark_started(store, "run-1", at=T0, job_ref="h:1", host="h:1")

    assert store.get_run("run-1").status is RunStatus.FAILED
    assert store.all_servers() == []
