"""The EventBridge target for "Batch Job State Change": records what AWS Batch says of a job.

Environment: ``ANNOTRAIN_TABLE`` (the DynamoDB table) and, optionally,
``ANNOTRAIN_OVERFLOW_BUCKET`` (where items too big for DynamoDB go). Both are read
on the first event, not at import; the store is then kept for the container's
later events.

Each event is one JSON log line (``message`` "batch job state change", with
``job_id``, ``batch_status``, ``run_id``, ``run_status`` and ``failure_reason``
at the top level, where the Monitoring stack's failed-runs filter reads
``run_status``) and one ``JobStateChanges`` metric of the ``annotrain``
namespace, by ``batch_status`` (Lambda Powertools, :mod:`lambdas.observability`;
the correlation id is the EventBridge event's id).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from annotrain.ports import Clock
from annotrain.services.job_events import apply_batch_job_event
from annotrain.services.run_lifecycle import RunRecords

#: The metric counted once per job-state event, by its ``batch_status`` dimension.
JOB_STATE_METRIC = "JobStateChanges"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: apply one job-state event to its run."""
    return _observed()(event, context)


def _apply(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from annotrain.adapters.system_clock import SystemClock

    table = os.environ.get("ANNOTRAIN_TABLE")
    if not table:
        raise RuntimeError("ANNOTRAIN_TABLE is not set: the function does not know its table")
    store = _store(table, os.environ.get("ANNOTRAIN_OVERFLOW_BUCKET"))
    return handle(event, store, SystemClock())


@functools.cache
def _observed() -> Any:
    from lambdas.observability import instrument

    # Nobody waits on a job-state event: its AWS calls are traced as well.
    return instrument(_apply, trace_aws_calls=True)


def handle(event: Mapping[str, Any], store: RunRecords, clock: Clock) -> dict[str, Any]:
    """Apply the event, log one JSON line and count one metric of what happened; return it."""
    from aws_lambda_powertools.metrics import MetricUnit

    from lambdas.observability import logger, metrics

    detail = event.get("detail") or {}
    run = apply_batch_job_event(event, store, clock)
    outcome = {
        "message": "batch job state change",
        "job_id": detail.get("jobId"),
        "batch_status": detail.get("status"),
        "run_id": run.id if run else None,
        "run_status": run.status.value if run else None,
        "failure_reason": run.failure_reason if run else None,
    }
    logger().info(outcome["message"], extra={k: v for k, v in outcome.items() if k != "message"})
    counted = metrics()
    counted.add_dimension(name="batch_status", value=str(detail.get("status") or "UNKNOWN"))
    counted.add_metric(name=JOB_STATE_METRIC, unit=MetricUnit.Count, value=1)
    return outcome


@functools.cache
def _store(table: str, overflow_bucket: str | None) -> RunRecords:
    from annotrain.adapters.dynamodb import DynamoDbStore

    store: RunRecords = DynamoDbStore(table, overflow_bucket=overflow_bucket)
    return store
