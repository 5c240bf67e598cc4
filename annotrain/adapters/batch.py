"""The JobRunner port on AWS Batch: the serverless mode.

A job is one Batch job on the GPU or the CPU queue, with the job definition of its
kind, the run id as its ``run_id`` parameter and as ``ANNOTRAIN_RUN_ID``. Batch
retries an attempt whose host went away (a Spot reclaim: status reasons
``Host EC2…``) up to three attempts, and no other failure: a job that failed on
its own would fail the same way again.

The job reports its own progress and result; what it cannot report (a Spot
reclaim, an out-of-memory kill) reaches the store through the job-state events
(:mod:`annotrain.services.job_events`), not through this class.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from annotrain.domain.errors import (
    AlreadyExistsError,
    AnnotrainError,
    InvalidRequestError,
    NotFoundError,
)
from annotrain.domain.records import JobKind, Run, RunStatus
from annotrain.ports import Clock, JobSpec, JobStatus
from annotrain.services.job_events import (
    CANCELLED_REASON,
    RUN_ID_VARIABLE,
    SUBMITTING_REF,
    BatchJob,
    batch_failure_reason,
)
from annotrain.services.run_lifecycle import (
    RunRecords,
    check_submittable,
    finished,
    update_run_with,
)

ATTEMPTS = 3
# Batch retries an attempt whose host was taken away; any other failure is final.
RETRY_STRATEGY: Mapping[str, Any] = {
    "attempts": ATTEMPTS,
    "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ],
}
_JOB_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_JOB_NAME = 128


class BatchJobRunnerError(AnnotrainError):
    """AWS Batch refused a request; the message says which and why."""


class BatchJobRunner:
    """Runs jobs as AWS Batch jobs.

    Args:
        store: Where runs and their server records are kept.
        queues: The job queue names or ARNs, under ``"gpu"`` and ``"cpu"``.
        job_definitions: The job definition (name, name:revision or ARN) of each kind.
        gpu_job_definitions: Job definitions for GPU runs, where a kind's GPU image
            differs from its CPU one; kinds left out use ``job_definitions``.
        client: A boto3 Batch client; one is made on first use when None.
        job_name_prefix: What job names start with (``annotrain-train-<run id>``).
        clock: The time; the system clock by default.
    """

    def __init__(
        self,
        store: RunRecords,
        *,
        queues: Mapping[str, str],
        job_definitions: Mapping[JobKind, str],
        gpu_job_definitions: Mapping[JobKind, str] | None = None,
        client: Any = None,  # a boto3 Batch client (boto3 ships no types)
        job_name_prefix: str = "annotrain",
        clock: Clock | None = None,
    ) -> None:
        missing = {"gpu", "cpu"} - set(queues)
        if missing:
            raise InvalidRequestError("queues", f"name the {' and '.join(sorted(missing))} queue")
        undefined = [kind.value for kind in JobKind if kind not in job_definitions]
        if undefined:
            raise InvalidRequestError(
                "job_definitions", f"no job definition for {', '.join(undefined)}"
            )
        self._store = store
        self._queues = dict(queues)
        self._job_definitions = dict(job_definitions)
        self._gpu_job_definitions = dict(gpu_job_definitions or {})
        self._client = client
        self._prefix = job_name_prefix
        self._clock = clock

    @property
    def client(self) -> Any:
        """The Batch client, made on first use."""
        if self._client is None:
            import boto3  # type: ignore[import-untyped]  # no stubs: the client is Any

            self._client = boto3.client("batch")
        return self._client

    def submit(self, spec: JobSpec) -> str:
        """Submit a Batch job for a stored, queued run; returns the Batch job id.

        The job id is stored as the run's ``job_ref``.

        Raises:
            NotFoundError: The run does not exist.
            InvalidRequestError: The run is not queued or is of another kind.
            AlreadyExistsError: The run was submitted already.
            BatchJobRunnerError: AWS Batch refused the job.
        """
        run = self._store.get_run(spec.run_id)
        check_submittable(run, spec)
        queue = self._queues["gpu" if spec.use_gpu else "cpu"]
        definition = (
            self._gpu_job_definitions.get(spec.kind) if spec.use_gpu else None
        ) or self._job_definitions[spec.kind]
        request = {
            "jobName": self._job_name(spec),
            "jobQueue": queue,
            "jobDefinition": definition,
            "parameters": {"run_id": spec.run_id},
            "containerOverrides": {
                "environment": [{"name": RUN_ID_VARIABLE, "value": spec.run_id}],
            },
            "retryStrategy": RETRY_STRATEGY,
            "tags": {
                "annotrain:run-id": spec.run_id,
                "annotrain:kind": spec.kind.value,
                "annotrain:project-id": str(run.project_id),
            },
            "propagateTags": True,
        }
        # Claim the run before Batch hears of it, so that two submits never make two jobs.
        _, claimed = update_run_with(self._store, spec.run_id, _claim)
        if not claimed:
            raise AlreadyExistsError("job", spec.run_id)
        try:
            response = self._call("submit_job", f"submit the job of run {spec.run_id!r}", request)
        except BaseException:
            update_run_with(self._store, spec.run_id, _unclaim)
            raise
        job_id = str(response["jobId"])

        def keep_job_id(stored: Run) -> Run | None:
            if stored.job_ref == SUBMITTING_REF:
                return replace(stored, job_ref=job_id)
            return None

        run, _ = update_run_with(self._store, spec.run_id, keep_job_id)
        if run.status is RunStatus.CANCELLED:  # cancelled while Batch was taking the job
            self._terminate(run.id, job_id)
        return job_id

    def cancel(self, run_id: str) -> None:
        """Terminate the run's Batch job ("cancelled by user") and cancel the run.

        Cancelling a finished run does nothing.

        Raises:
            NotFoundError: The run does not exist.
            BatchJobRunnerError: AWS Batch refused to terminate the job.
        """
        run = self._store.get_run(run_id)
        if run.status.is_final:
            return
        if run.job_ref not in (None, SUBMITTING_REF):  # submit terminates one it names late
            self._terminate(run_id, run.job_ref)
        update_run_with(
            self._store,
            run_id,
            lambda r: finished(r, RunStatus.CANCELLED, at=self._now(), reason=CANCELLED_REASON),
        )
        # The FAILED event that follows records the usage; the servers page is right now.
        self._store.remove_server(run_id)

    def status(self, run_id: str) -> JobStatus:
        """Where the run's job stands: the store's final status, else what Batch says.

        A run the store has ended keeps that status (Batch calls a cancelled job
        FAILED); a job Batch no longer describes is as the store has it.

        Raises:
            NotFoundError: The run does not exist or was never submitted.
            BatchJobRunnerError: AWS Batch refused to describe the job.
        """
        run = self._store.get_run(run_id)
        if run.job_ref is None:
            raise NotFoundError("job", run_id)
        if run.status.is_final or run.job_ref == SUBMITTING_REF:
            return JobStatus(run.status, run.job_ref, run.failure_reason)
        response = self._call(
            "describe_jobs", f"describe the job of run {run_id!r}", {"jobs": [run.job_ref]}
        )
        described = response.get("jobs") or []
        if not described:
            return JobStatus(run.status, run.job_ref, run.failure_reason)
        job = BatchJob.from_description(described[0])
        status = job.run_status or run.status
        reason = batch_failure_reason(job) if status is RunStatus.FAILED else None
        if status is RunStatus.FAILED and job.cancelled:
            status, reason = RunStatus.CANCELLED, CANCELLED_REASON
        return JobStatus(status, run.job_ref, reason)

    def _terminate(self, run_id: str, job_id: str) -> None:
        self._call(
            "terminate_job",
            f"terminate the job of run {run_id!r}",
            {"jobId": job_id, "reason": CANCELLED_REASON},
        )

    def _call(self, operation: str, what: str, request: Mapping[str, Any]) -> Any:
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )

        try:
            return getattr(self.client, operation)(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise BatchJobRunnerError(
                f"AWS Batch would not {what}: {error.get('Code', '?')}: {error.get('Message', exc)}"
            ) from exc
        except BotoCoreError as exc:
            raise BatchJobRunnerError(f"could not reach AWS Batch to {what}: {exc}") from exc

    def _job_name(self, spec: JobSpec) -> str:
        name = _JOB_NAME_UNSAFE.sub("-", f"{self._prefix}-{spec.kind.value}-{spec.run_id}")
        return name[:_MAX_JOB_NAME]

    def _now(self) -> datetime:
        if self._clock is None:
            from annotrain.adapters.system_clock import SystemClock

            self._clock = SystemClock()
        return self._clock.now()


def _claim(run: Run) -> Run | None:
    if run.status is RunStatus.QUEUED and run.job_ref is None:
        return replace(run, job_ref=SUBMITTING_REF)
    return None


def _unclaim(run: Run) -> Run | None:
    return replace(run, job_ref=None) if run.job_ref == SUBMITTING_REF else None
