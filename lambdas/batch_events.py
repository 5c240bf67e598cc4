"""The EventBridge target for "Batch Job State Change": records what AWS Batch says of a job.

Environment: ``ANNOTRAIN_TABLE`` (the DynamoDB table) and, optionally,
``ANNOTRAIN_OVERFLOW_BUCKET`` (where items too big for DynamoDB go). Both are read
on the first event, not at import; the store is then kept for the container's
later events.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from annotrain.ports import Clock
from annotrain.services.job_events import apply_batch_job_event
from annotrain.services.run_lifecycle import RunRecords

_LOG = logging.getLogger("annotrain.lambdas.batch_events")


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: apply one job-state event to its run."""
    from annotrain.adapters.system_clock import SystemClock

    table = os.environ.get("ANNOTRAIN_TABLE")
    if not table:
        raise RuntimeError("ANNOTRAIN_TABLE is not set: the function does not know its table")
    store = _store(table, os.environ.get("ANNOTRAIN_OVERFLOW_BUCKET"))
    return handle(event, store, SystemClock())


def handle(event: Mapping[str, Any], store: RunRecords, clock: Clock) -> dict[str, Any]:
    """Apply the event, log one JSON line of what happened, and return it."""
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
    _LOG.setLevel(logging.INFO)
    _LOG.info(json.dumps(outcome))
    return outcome


@functools.cache
def _store(table: str, overflow_bucket: str | None) -> RunRecords:
    from annotrain.adapters.dynamodb import DynamoDbStore

    store: RunRecords = DynamoDbStore(table, overflow_bucket=overflow_bucket)
    return store
