"""How a run moves: queued → running → succeeded, failed or cancelled, and never back.

Several writers touch one run: the job itself (running, heartbeats, progress, its
own result), the runner that watches it (the local supervisor, or the AWS Batch
job-state events) and the user (cancel). Each change here is a function of the
run as stored, applied with the store's revision check and re-applied to a fresh
read on :class:`~annotrain.domain.errors.ConflictError`, so no writer overwrites
another and a final status is never left.

Whoever ends a run also forgets its server record and records its usage; both are
idempotent (the meter counts a (run, dimension, start) once), so two writers
ending the same run count it once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from annotrain.domain.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidRequestError,
    JobSubmitError,
)
from annotrain.domain.records import JobKind, Run, RunStatus, Server, UsageRecord
from annotrain.ports import Clock, JobRunner, JobSpec, RunStore, ServerStore, UsageMeter

# A run is written by at most a handful of writers at once; more conflicts in a
# row than this means something rewrites it in a loop.
MAX_CONFLICT_RETRIES = 20

_ACTIVITY = {JobKind.TRAIN: "training", JobKind.PREANNOTATE: "inference", JobKind.OCR: "ocr"}


class RunRecords(RunStore, ServerStore, UsageMeter, Protocol):
    """What the runners keep about a job: its run, its server record, its usage."""


def usage_dimension(kind: JobKind, use_gpu: bool) -> str:
    """The billing dimension of a job: ``training_gpu_hours``, ``ocr_cpu_hours``…"""
    return f"{_ACTIVITY[kind]}_{'gpu' if use_gpu else 'cpu'}_hours"


def update_run_with(
    store: RunStore, run_id: str, change: Callable[[Run], Run | None]
) -> tuple[Run, bool]:
    """Apply ``change`` to the stored run, again to a fresh read after a conflict.

    Args:
        store: Where the run is.
        run_id: Which run.
        change: Given the run as stored, returns it changed, or None to leave it.
            It may be called several times, so it must only compute.

    Returns:
        The run as stored afterwards, and whether ``change`` changed it.

    Raises:
        NotFoundError: There is no such run.
        ConflictError: Others changed the run more than MAX_CONFLICT_RETRIES times in
            a row while this change was being applied.
    """
    for attempt in range(MAX_CONFLICT_RETRIES + 1):
        run = store.get_run(run_id)
        changed = change(run)
        if changed is None or changed == run:
            return run, False
        try:
            return store.update_run(changed), True
        except ConflictError:
            if attempt == MAX_CONFLICT_RETRIES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def check_submittable(run: Run, spec: JobSpec) -> None:
    """Refuse to submit a job for a run that is not waiting for one.

    Raises:
        InvalidRequestError: The run is of another kind than the job, or not queued.
        AlreadyExistsError: A job was submitted for the run already.
    """
    if run.kind is not spec.kind:
        raise InvalidRequestError("kind", f"run {run.id!r} is a {run.kind} run, not {spec.kind}")
    if run.job_ref is not None:
        raise AlreadyExistsError("job", run.id)
    if run.status is not RunStatus.QUEUED:
        raise InvalidRequestError(
            "run_id", f"run {run.id!r} is {run.status}; only a queued run can be submitted"
        )


def started(run: Run, *, at: datetime, job_ref: str) -> Run | None:
    """The run as running under ``job_ref``; None when there is nothing to change.

    A queued run starts at ``at``. A running one only takes the new handle (a
    retried AWS Batch attempt, a supervisor learning the job's process id). A final
    one stays as it is: a late start never revives a run.
    """
    if run.status is RunStatus.QUEUED:
        return replace(run, status=RunStatus.RUNNING, started_at=at, job_ref=job_ref)
    if run.status is RunStatus.RUNNING and run.job_ref != job_ref:
        return replace(run, job_ref=job_ref, started_at=run.started_at or at)
    return None


def finished(
    run: Run,
    status: RunStatus,
    *,
    at: datetime,
    reason: str | None,
    started_at: datetime | None = None,
) -> Run | None:
    """The run ended in ``status``; None when it had ended already (the first end stands).

    Args:
        run: The run as stored.
        status: A final status.
        at: When it ended.
        reason: Why it failed or was cancelled; ignored for success.
        started_at: When it started, if the runner knows and the run does not (the
            news of its start came late, or never).
    """
    if not status.is_final:
        raise ValueError(f"{status} is not a final status")
    if run.status.is_final:
        return None
    ended = replace(run, status=status, finished_at=at, started_at=run.started_at or started_at)
    if status is RunStatus.SUCCEEDED:
        return replace(ended, failure_reason=None, progress=100.0)
    return replace(ended, failure_reason=reason)


def requeued(run: Run, *, job_ref: str) -> Run | None:
    """A running run sent back to the queue (its process was lost); None unless running."""
    if run.status is not RunStatus.RUNNING:
        return None
    return replace(
        run, status=RunStatus.QUEUED, started_at=None, heartbeat_at=None, job_ref=job_ref
    )


def mark_started(store: RunRecords, run_id: str, *, at: datetime, job_ref: str, host: str) -> Run:
    """Record that a run's job started, and its server record while it runs.

    Args:
        store: The run, server and usage records.
        run_id: Which run.
        at: When the job started.
        job_ref: The runner's handle of the job.
        host: Where it runs, for the servers page.

    Returns:
        The run as stored afterwards (possibly final already: then no server record
        is left behind).
    """
    run, _ = update_run_with(store, run_id, lambda r: started(r, at=at, job_ref=job_ref))
    if run.status is RunStatus.RUNNING:
        store.put_server(
            Server(run.id, run.kind, run.project_id, run.created_by,
                   run.started_at or at, run.use_gpu, host)
        )  # fmt: skip
        # Whoever ended the run meanwhile removed the record before this put it:
        # take it away again rather than show a finished job as running.
        if store.get_run(run_id).status.is_final:
            store.remove_server(run_id)
    return run


def mark_finished(
    store: RunRecords,
    run_id: str,
    status: RunStatus,
    *,
    at: datetime,
    reason: str | None,
    started_at: datetime | None = None,
    spans: Iterable[tuple[datetime, datetime]] | None = None,
) -> Run:
    """End a run (unless it ended already), forget its server record, record its usage.

    Usage is recorded even when the run had ended already (the job reported its
    own result), since the job does not meter itself; the meter counts it once.

    Args:
        store: The run, server and usage records.
        run_id: Which run.
        status: The final status, if the run has none yet.
        at: When it ended.
        reason: Why it failed or was cancelled.
        started_at: When it started, where the run does not say.
        spans: The (start, end) of each attempt that used a machine, when the runner
            knows them (AWS Batch attempts); by default from ``started_at`` to
            ``finished_at``.

    Returns:
        The run as stored afterwards.
    """
    run, _ = update_run_with(
        store,
        run_id,
        lambda r: finished(r, status, at=at, reason=reason, started_at=started_at),
    )
    if spans is None:
        spans = [(run.started_at, run.finished_at or at)] if run.started_at else []
    record_usage(store, run, spans)
    # Last: a run without a server record is settled, usage included.
    store.remove_server(run_id)
    return run


def record_usage(
    store: UsageMeter, run: Run, spans: Iterable[tuple[datetime, datetime]]
) -> list[UsageRecord]:
    """Record the hours a run used, one record per span; empty spans are left out."""
    dimension = usage_dimension(run.kind, run.use_gpu)
    records = [
        UsageRecord(dimension, (end - start).total_seconds() / 3600, start, end, run.id)
        for start, end in spans
        if end > start
    ]
    for record in records:
        store.record_usage(record)
    return records


def submit_job(store: RunRecords, runner: JobRunner, clock: Clock, spec: JobSpec) -> None:
    """Hand a stored run's job to the runner; a refusal fails the run and is raised.

    Raises:
        JobSubmitError: The runner did not take the job; the run is marked failed.
    """
    try:
        runner.submit(spec)
    except Exception as exc:
        reason = f"the job could not be submitted: {exc}"
        mark_finished(store, spec.run_id, RunStatus.FAILED, at=clock.now(), reason=reason)
        raise JobSubmitError(spec.run_id, str(exc)) from exc
