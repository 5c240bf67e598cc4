"""AWS Batch job-state changes, turned into run updates: how the serverless lab sees crashes.

A job reports its own progress and result (``batch_jobs.runtime``). What it cannot
report, AWS Batch does: EventBridge delivers a "Batch Job State Change" event for
each status a job passes, and :func:`apply_batch_job_event` records it:

- SUBMITTED, PENDING, RUNNABLE, STARTING: nothing changes (a run starts queued,
  and a retried attempt never sends a running run back);
- RUNNING: the run runs, and its server record appears;
- SUCCEEDED: the run succeeded, unless it had already ended;
- FAILED: the run failed with a reason a person can act on (Spot reclaims, out of
  memory, exit codes), unless it had already ended; a job terminated by a cancel
  stays cancelled.

On SUCCEEDED and FAILED the server record goes and each attempt's machine time is
recorded. Events may come twice or out of order; a final run never changes again,
and repeating an event records nothing twice.

The shape of a job here is that of ``describe_jobs`` and of the event's
``detail`` alike, so :class:`BatchJob` reads both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from annotrain.domain.errors import NotFoundError
from annotrain.domain.records import Run, RunStatus
from annotrain.ports import Clock
from annotrain.services.run_lifecycle import (
    RunRecords,
    mark_finished,
    mark_started,
    update_run_with,
)

EVENT_DETAIL_TYPE = "Batch Job State Change"
# The reason BatchJobRunner.cancel gives terminate_job; the FAILED event carries it back.
CANCELLED_REASON = "cancelled by user"
RUN_ID_VARIABLE = "ANNOTRAIN_RUN_ID"
# job_ref of a run while BatchJobRunner.submit waits for AWS Batch to name its job.
SUBMITTING_REF = "batch:submitting"

BATCH_RUN_STATUS: Mapping[str, RunStatus] = {
    "SUBMITTED": RunStatus.QUEUED,
    "PENDING": RunStatus.QUEUED,
    "RUNNABLE": RunStatus.QUEUED,
    "STARTING": RunStatus.QUEUED,
    "RUNNING": RunStatus.RUNNING,
    "SUCCEEDED": RunStatus.SUCCEEDED,
    "FAILED": RunStatus.FAILED,
}

# Reasons AWS Batch gives that say nothing a person can act on.
_UNINFORMATIVE = ("Essential container in task exited",)
_CONTAINER_DID_NOT_START = (
    "CannotPullContainerError",
    "CannotStartContainerError",
    "CannotCreateContainerError",
    "CannotInspectContainerError",
    "ResourceInitializationError",
)


@dataclass(frozen=True, slots=True)
class BatchAttempt:
    """One attempt at a job: one container on one host.

    Attributes:
        started_at: When its container started.
        stopped_at: When it stopped.
        status_reason: Why it stopped (``Host EC2 (instance i-…) terminated.``).
        exit_code: Its container's exit code.
        container_reason: Its container's stop reason (``OutOfMemoryError: …``).
    """

    started_at: datetime | None
    stopped_at: datetime | None
    status_reason: str | None
    exit_code: int | None
    container_reason: str | None


@dataclass(frozen=True, slots=True)
class BatchJob:
    """What AWS Batch says of a job, from ``describe_jobs`` or an event's ``detail``.

    Attributes:
        job_id: The Batch job id.
        status: SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED or FAILED.
        run_id: The run it serves (its ``run_id`` parameter or ``ANNOTRAIN_RUN_ID``).
        status_reason: Why it is in this status.
        exit_code: The last container's exit code.
        container_reason: The last container's stop reason.
        started_at: When it (last) started running.
        stopped_at: When it stopped.
        attempts: Its attempts, oldest first.
    """

    job_id: str
    status: str
    run_id: str | None
    status_reason: str | None = None
    exit_code: int | None = None
    container_reason: str | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    attempts: tuple[BatchAttempt, ...] = ()

    @classmethod
    def from_description(cls, job: Mapping[str, Any]) -> BatchJob:
        """Read a job as ``describe_jobs`` or a job-state event's ``detail`` gives it."""
        container = job.get("container") or {}
        attempts = tuple(
            BatchAttempt(
                _time(attempt.get("startedAt")),
                _time(attempt.get("stoppedAt")),
                attempt.get("statusReason"),
                (attempt.get("container") or {}).get("exitCode"),
                (attempt.get("container") or {}).get("reason"),
            )
            for attempt in job.get("attempts") or ()
        )
        last = attempts[-1] if attempts else None
        exit_code = container.get("exitCode")
        if exit_code is None and last is not None:
            exit_code = last.exit_code
        return cls(
            job_id=str(job.get("jobId", "")),
            status=str(job.get("status", "")),
            run_id=_run_id(job),
            status_reason=job.get("statusReason"),
            exit_code=exit_code,
            container_reason=container.get("reason") or (last.container_reason if last else None),
            started_at=_time(job.get("startedAt")),
            stopped_at=_time(job.get("stoppedAt")),
            attempts=attempts,
        )

    @property
    def run_status(self) -> RunStatus | None:
        """The run status this job status means; None for one this code does not know."""
        return BATCH_RUN_STATUS.get(self.status)

    @property
    def cancelled(self) -> bool:
        """Whether it stopped because a user cancelled its run."""
        return self.status_reason == CANCELLED_REASON

    def attempt_spans(self) -> list[tuple[datetime, datetime]] | None:
        """(start, stop) of each attempt that ran; None when Batch gave no attempts."""
        if not self.attempts:
            return None
        return [
            (a.started_at, a.stopped_at) for a in self.attempts if a.started_at and a.stopped_at
        ]


def batch_failure_reason(job: BatchJob) -> str:
    """Why a Batch job failed, put so that a person knows what to do about it."""
    last = job.attempts[-1] if job.attempts else None
    reasons = [
        r
        for r in (job.status_reason, last.status_reason if last else None, job.container_reason)
        if r and r not in _UNINFORMATIVE
    ]
    detail = f" ({'; '.join(reasons)})" if reasons else ""
    count = len(job.attempts)
    attempts = f"{count} attempt{'' if count == 1 else 's'}"
    if any(r.startswith("Host EC2") for r in reasons):
        return (
            f"the host was terminated (Spot reclaim) after {attempts}{detail}: "
            "submit the run again, or give the queue on-demand capacity"
        )
    if job.exit_code == 137:
        return (
            f"exit code 137: out of memory? The container was killed (SIGKILL){detail}: "
            "give the job more memory or lower the batch size"
        )
    if any("OutOfMemoryError" in r for r in reasons):
        return f"out of memory{detail}: give the job more memory or lower the batch size"
    if any(r.startswith("Job attempt duration exceeded timeout") for r in reasons):
        return f"timed out{detail}: raise the job timeout or train on less data"
    if any(r.startswith(_CONTAINER_DID_NOT_START) for r in reasons):
        return f"the container did not start{detail}: check the job definition's image and role"
    if job.exit_code not in (None, 0):
        return f"exit code {job.exit_code}{detail}: see the job's log"
    return "; ".join(reasons) or "AWS Batch reported the job failed and gave no reason"


def apply_batch_job_event(event: Mapping[str, Any], store: RunRecords, clock: Clock) -> Run | None:
    """Record what a "Batch Job State Change" event says of a run.

    Args:
        event: The EventBridge event (``detail`` holds the job).
        store: The run, server and usage records.
        clock: The time, for what the event does not date.

    Returns:
        The run as stored afterwards (unchanged when the event has nothing new), or
        None when the event is not about a run this lab knows.
    """
    if event.get("detail-type", EVENT_DETAIL_TYPE) != EVENT_DETAIL_TYPE:
        return None
    job = BatchJob.from_description(event.get("detail") or {})
    if job.run_id is None:
        return None
    try:
        run = store.get_run(job.run_id)
    except NotFoundError:
        return None
    if run.job_ref not in (None, SUBMITTING_REF, job.job_id):
        return run  # an earlier job of this run, replaced since: its news is stale
    status = job.run_status
    if status is None:
        return run
    now = clock.now()
    if status is RunStatus.QUEUED:
        return _note_job_ref(store, run.id, job.job_id)
    if status is RunStatus.RUNNING:
        started = job.started_at or now
        return mark_started(store, run.id, at=started, job_ref=job.job_id, host=job.job_id)
    if status is RunStatus.FAILED and job.cancelled:
        status, reason = RunStatus.CANCELLED, CANCELLED_REASON
    elif status is RunStatus.FAILED:
        reason = batch_failure_reason(job)
    else:
        reason = None
    return mark_finished(
        store,
        run.id,
        status,
        at=job.stopped_at or now,
        reason=reason,
        started_at=job.started_at,
        spans=job.attempt_spans(),
    )


def _note_job_ref(store: RunRecords, run_id: str, job_id: str) -> Run:
    """Keep the job id on a queued run that lacks it (its submit could not store it)."""

    def note(run: Run) -> Run | None:
        if run.job_ref in (None, SUBMITTING_REF) and run.status is RunStatus.QUEUED:
            return replace(run, job_ref=job_id)
        return None

    run, _ = update_run_with(store, run_id, note)
    return run


def _run_id(job: Mapping[str, Any]) -> str | None:
    parameters = job.get("parameters") or {}
    if parameters.get("run_id"):
        return str(parameters["run_id"])
    for holder in ("container", "containerOverrides"):
        environment: Sequence[Mapping[str, Any]] = (job.get(holder) or {}).get("environment") or ()
        for variable in environment:
            if variable.get("name") == RUN_ID_VARIABLE and variable.get("value"):
                return str(variable["value"])
    return None


def _time(milliseconds: Any) -> datetime | None:
    """A Batch time (milliseconds since the epoch) as an aware datetime; 0 means never."""
    if not isinstance(milliseconds, int | float) or milliseconds <= 0:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, UTC)
