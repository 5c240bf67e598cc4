"""What every job's entry does around its work: arguments, store, status, heartbeat, exit code.

A job module wires its work function and nothing else::

    if __name__ == "__main__":
        main(train)

and :func:`run_job` does the rest: reads ``--run-id`` (or ``ANNOTRAIN_RUN_ID``),
opens the store the environment names (``ANNOTRAIN_DB``: SQLite on a single node;
``ANNOTRAIN_TABLE``, with ``ANNOTRAIN_OVERFLOW_BUCKET``: DynamoDB on AWS) and the blob
store (``ANNOTRAIN_BLOB_DIR``: a folder; ``ANNOTRAIN_DATA_BUCKET``: S3), marks the
run running, keeps its heartbeat every ``ANNOTRAIN_HEARTBEAT_SECONDS`` (30), calls
the work, and marks the run succeeded, or failed with the error's message.

Exit codes: 0 the run succeeded (or had ended before the job began: nothing to
do), 1 it failed or could not be recorded, 2 the job was started wrongly (no run
id, no store configured).

A stop signal (SIGTERM from a cancel, or from AWS Batch reclaiming a Spot host)
ends the process without marking anything: a cancel has recorded the run's
status already, and a reclaimed attempt is retried by Batch, so the run must
stay as it is. The runner, or the Batch job-state event, records what the job
could not.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

from annotrain.domain.errors import AnnotrainError, NotFoundError
from annotrain.domain.records import Run, RunStatus
from annotrain.ports import BlobStore, Clock, RunStore
from annotrain.services.run_lifecycle import finished, update_run_with

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_HEARTBEAT_SECONDS = 30.0

_LOG = logging.getLogger("batch_jobs")


class JobSetupError(AnnotrainError):
    """The job was started without what it needs to find its run."""


@dataclass
class JobContext:
    """What a job's work is given.

    Attributes:
        run_id: The run it serves.
        store: Where the run is (and, through the same object, what else the job reads).
        clock: The time.
        stop_requested: Set when the run ended while the work was under way (it was
            cancelled): the work should stop as soon as it can.
        blobs: The blob store the environment names, if it names one.
    """

    run_id: str
    store: RunStore
    clock: Clock
    stop_requested: threading.Event = field(default_factory=threading.Event)
    blobs: BlobStore | None = None

    def blob_store(self) -> BlobStore:
        """The blob store (snapshots, logs, models).

        Raises:
            JobSetupError: The environment names none.
        """
        if self.blobs is None:
            raise JobSetupError(
                "no blob store: set ANNOTRAIN_BLOB_DIR to the lab's blob folder (single node) "
                "or ANNOTRAIN_DATA_BUCKET to its S3 bucket (AWS)"
            )
        return self.blobs

    def run(self) -> Run:
        """The run as stored now."""
        return self.store.get_run(self.run_id)

    def update_run(self, change: Callable[[Run], Run]) -> Run:
        """Store a change of the run (progress, metrics, history).

        ``change`` is applied to the run as stored and applied again to a fresh read
        if the heartbeat or the runner wrote in between, so updates never conflict.
        A run that has ended is left as it is.
        """

        def unless_ended(run: Run) -> Run | None:
            return None if run.status.is_final else change(run)

        run, _ = update_run_with(self.store, self.run_id, unless_ended)
        return run


Work = Callable[[JobContext], None]
StoreOpener = Callable[[Mapping[str, str]], RunStore]
BlobOpener = Callable[[Mapping[str, str]], BlobStore | None]


def open_store(environ: Mapping[str, str]) -> RunStore:
    """The store the environment names: SQLite (single node) or DynamoDB (AWS).

    Raises:
        JobSetupError: Neither ``ANNOTRAIN_DB`` nor ``ANNOTRAIN_TABLE`` is set.
    """
    if database := environ.get("ANNOTRAIN_DB"):
        from annotrain.adapters.sqlite import SqliteStore

        sqlite_store: RunStore = SqliteStore(Path(database))
        return sqlite_store
    if table := environ.get("ANNOTRAIN_TABLE"):
        from annotrain.adapters.dynamodb import DynamoDbStore

        bucket = environ.get("ANNOTRAIN_OVERFLOW_BUCKET", "")
        dynamodb_store: RunStore = DynamoDbStore(table, overflow_bucket=bucket)
        return dynamodb_store
    raise JobSetupError(
        "no store: set ANNOTRAIN_DB to the SQLite file (single node) or ANNOTRAIN_TABLE "
        "to the DynamoDB table (AWS)"
    )


def open_blob_store(environ: Mapping[str, str]) -> BlobStore | None:
    """The blob store the environment names: a folder (single node) or S3 (AWS); else None."""
    if folder := environ.get("ANNOTRAIN_BLOB_DIR"):
        from annotrain.adapters.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(folder)
    if bucket := environ.get("ANNOTRAIN_DATA_BUCKET"):
        from annotrain.adapters.s3 import S3BlobStore

        return S3BlobStore(bucket)
    return None


def run_job(
    work: Work,
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    store_opener: StoreOpener = open_store,
    blob_opener: BlobOpener = open_blob_store,
    clock: Clock | None = None,
    heartbeat_interval: float | None = None,
) -> int:
    """Run a job's work for its run, keeping the run's status; returns the exit code.

    Args:
        work: The job's work, given a :class:`JobContext`.
        argv: The arguments (``--run-id``); ``sys.argv[1:]`` by default.
        environ: The environment; ``os.environ`` by default.
        store_opener: Opens the store from the environment.
        blob_opener: Opens the blob store from the environment (None when it names none).
        clock: The time; the system clock by default.
        heartbeat_interval: Seconds between heartbeats; by default
            ``ANNOTRAIN_HEARTBEAT_SECONDS`` or 30.
    """
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description="Run one annotrain job for its run.")
    parser.add_argument("--run-id", default=environ.get("ANNOTRAIN_RUN_ID"))
    args = parser.parse_args(argv)
    if not args.run_id:
        _LOG.error("no run: pass --run-id or set ANNOTRAIN_RUN_ID")
        return EXIT_USAGE
    try:
        interval = heartbeat_interval or float(
            environ.get("ANNOTRAIN_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_SECONDS)
        )
        store = store_opener(environ)
        blobs = blob_opener(environ)
    except (JobSetupError, ValueError) as exc:
        _LOG.error("%s", exc)
        return EXIT_USAGE
    if clock is None:
        from annotrain.adapters.system_clock import SystemClock

        clock = SystemClock()
    context = JobContext(args.run_id, store, clock, blobs=blobs)
    try:
        run, _ = update_run_with(store, args.run_id, lambda r: _begun(r, clock))
    except NotFoundError as exc:
        _LOG.error("%s", exc)
        return EXIT_FAILED
    if run.status.is_final:
        _LOG.info("run %s is %s already: nothing to do", run.id, run.status)
        return EXIT_SUCCEEDED

    stop_beating = threading.Event()
    heart = threading.Thread(
        target=_keep_heartbeat,
        args=(context, interval, stop_beating),
        name="annotrain-heartbeat",
        daemon=True,
    )
    heart.start()
    status, reason = RunStatus.SUCCEEDED, None
    try:
        work(context)
    except Exception as exc:  # noqa: BLE001 - any error of the work fails the run, with its message
        _LOG.exception("run %s failed", args.run_id)
        status, reason = RunStatus.FAILED, failure_message(exc)
    finally:
        stop_beating.set()
        heart.join()
    try:
        run, _ = update_run_with(
            store, args.run_id, lambda r: finished(r, status, at=clock.now(), reason=reason)
        )
    except Exception:  # noqa: BLE001 - the result could not be stored: say so by the exit code
        _LOG.exception("run %s: could not record that it %s", args.run_id, status)
        return EXIT_FAILED
    _LOG.info("run %s %s", run.id, run.status)
    return EXIT_FAILED if status is RunStatus.FAILED else EXIT_SUCCEEDED


def main(work: Work) -> NoReturn:
    """A job module's ``__main__``: log to stderr, run the work, exit with its code."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    raise SystemExit(run_job(work))


def failure_message(exc: Exception) -> str:
    """What a run's failure reason says of an error: domain errors speak for themselves."""
    if isinstance(exc, AnnotrainError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _begun(run: Run, clock: Clock) -> Run | None:
    now = clock.now()
    if run.status is RunStatus.QUEUED:
        return replace(run, status=RunStatus.RUNNING, started_at=now, heartbeat_at=now)
    if run.status is RunStatus.RUNNING:  # the runner recorded the start first
        return replace(run, heartbeat_at=now)
    return None


def _keep_heartbeat(context: JobContext, interval: float, stop: threading.Event) -> None:
    def beat(run: Run) -> Run | None:
        return None if run.status.is_final else replace(run, heartbeat_at=context.clock.now())

    while not stop.wait(interval):
        try:
            run, _ = update_run_with(context.store, context.run_id, beat)
        except Exception:  # noqa: BLE001 - a missed beat is no reason to stop the work
            _LOG.warning("run %s: heartbeat not recorded", context.run_id, exc_info=True)
            continue
        if run.status.is_final:
            _LOG.info("run %s is %s: asking the work to stop", run.id, run.status)
            context.stop_requested.set()
            return
