"""Metering: server hours per dimension, sent hourly to AWS Marketplace, never billed twice.

Usage comes from the runs: whoever ends a run records its span as a
:class:`~annotrain.domain.records.UsageRecord` under its dimension
(``training_gpu_hours``, ``training_cpu_hours``, ``inference_gpu_hours``,
``inference_cpu_hours``, ``ocr_*``); runs still running count from their start to now.

Each run of :func:`send_metering` (hourly, by a systemd timer on the AMI):

1. counts the server time of every complete UTC hour still inside MeterUsage's
   window (six hours; an hour is complete once it ended ``SETTLE_DELAY`` ago, so
   runs that just ended are settled), per dimension, rounded up to whole
   server-hours;
2. writes each non-zero (hour, dimension) into the ledger as ``pending`` unless
   it is there already: the first count is the one billed, the quantity is fixed;
3. sends each ``pending`` or ``sending`` entry: marks it ``sending`` (revision-
   checked, so two senders do not both take a pending entry), calls MeterUsage,
   then marks it ``sent`` with AWS's record id. A refusal that may pass later
   (throttling, network) puts it back to ``pending`` for the next run; a final one
   (too old, not entitled…) marks it ``rejected``.

A crash between ``sending`` and ``sent`` leaves the entry ``sending``; the next run
sends the identical request again (same product code, hour, dimension and
quantity), which MeterUsage answers with the same record id instead of billing
again. That is why the quantity is fixed before the first send.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from annotrain.domain.errors import ConflictError, MeteringRefusedError
from annotrain.domain.records import MeteringEntry, MeteringState, RunStatus
from annotrain.ports import (
    MAX_PAGE_SIZE,
    Clock,
    MeteringLedger,
    RunStore,
    UsageMeter,
    UsageReporter,
)
from annotrain.services.run_lifecycle import usage_dimension

HOUR = timedelta(hours=1)
#: MeterUsage takes records up to six hours old.
METER_WINDOW = timedelta(hours=6)
#: Kept clear of the window's edge: a send takes time, clocks differ.
WINDOW_MARGIN = timedelta(minutes=10)
#: An hour is counted this long after it ended, once runs that ended in it are settled.
SETTLE_DELAY = timedelta(minutes=5)
#: How far back usage records are read for an hour (runs longer than this that ended
#: since are still counted while they ran, from the running run).
USAGE_LOOKBACK = timedelta(days=31)
#: Server time below this in an hour is rounding noise, not an hour to bill.
_EPSILON_HOURS = 1e-9


class MeteringStores(RunStore, UsageMeter, MeteringLedger, Protocol):
    """What metering reads (runs, usage) and writes (the ledger)."""


@dataclass(slots=True)
class MeteringReport:
    """What one send did.

    Attributes:
        counted: The ledger's entry of every non-zero (hour, dimension) counted this
            time (an hour counted before keeps its first quantity).
        sent: Entries AWS took.
        retry_later: Entries whose send failed and will be tried again.
        rejected: Entries AWS (or the window) refused for good.
    """

    counted: list[MeteringEntry] = field(default_factory=list)
    sent: list[MeteringEntry] = field(default_factory=list)
    retry_later: list[MeteringEntry] = field(default_factory=list)
    rejected: list[MeteringEntry] = field(default_factory=list)


def hour_start(value: datetime) -> datetime:
    """The start of the UTC hour ``value`` falls in."""
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def billable_hours(now: datetime) -> list[datetime]:
    """The complete hours MeterUsage still takes, oldest first."""
    last = hour_start(now - SETTLE_DELAY) - HOUR
    hours: list[datetime] = []
    hour = last
    while hour > now - METER_WINDOW + WINDOW_MARGIN:
        hours.append(hour)
        hour -= HOUR
    return sorted(hours)


def hourly_usage(
    store: MeteringStores, hours: Iterable[datetime], now: datetime
) -> dict[tuple[datetime, str], float]:
    """Server-hours per (hour, dimension) over the given hours, from usage and running runs."""
    wanted = sorted(hours)
    if not wanted:
        return {}
    first, end = wanted[0], wanted[-1] + HOUR
    totals: dict[tuple[datetime, str], float] = defaultdict(float)
    for dimension, start, stop in _spans(store, first - USAGE_LOOKBACK, end, now):
        for hour in wanted:
            overlap = min(stop, hour + HOUR) - max(start, hour)
            if overlap > timedelta(0):
                totals[(hour, dimension)] += overlap / HOUR
    return dict(totals)


def send_metering(
    store: MeteringStores, reporter: UsageReporter, clock: Clock, *, product_code: str
) -> MeteringReport:
    """Count the complete hours, then send what the ledger has not had taken yet.

    Args:
        store: Runs, usage and the ledger.
        reporter: MeterUsage (``MarketplaceUsageReporter``).
        clock: Now.
        product_code: The Marketplace product code (the PAYG license's).

    Returns:
        What was counted, sent, left for later and refused.
    """
    now = clock.now()
    report = MeteringReport()
    for (hour, dimension), hours in sorted(hourly_usage(store, billable_hours(now), now).items()):
        quantity = math.ceil(hours - _EPSILON_HOURS)
        if quantity <= 0:
            continue
        entry = MeteringEntry(hour, dimension, quantity, MeteringState.PENDING, now)
        report.counted.append(store.add_metering(entry))
    for entry in list(_unsent(store, now)):
        _send_one(store, reporter, clock, entry, product_code, report)
    return report


def _send_one(
    store: MeteringStores,
    reporter: UsageReporter,
    clock: Clock,
    entry: MeteringEntry,
    product_code: str,
    report: MeteringReport,
) -> None:
    now = clock.now()
    if entry.hour <= now - METER_WINDOW:
        too_old = replace(
            entry,
            state=MeteringState.REJECTED,
            updated_at=now,
            last_error="older than six hours, which MeterUsage no longer takes: it was not "
            "sent in time (was the metering timer stopped?)",
        )
        report.rejected.append(store.update_metering(too_old))
        return
    try:
        sending = store.update_metering(
            replace(entry, state=MeteringState.SENDING, attempts=entry.attempts + 1, updated_at=now)
        )
    except ConflictError:
        return  # another sender took it meanwhile
    try:
        record_id = reporter.meter_usage(
            product_code=product_code,
            hour=sending.hour,
            dimension=sending.dimension,
            quantity=sending.quantity,
        )
    except MeteringRefusedError as exc:
        state = MeteringState.PENDING if exc.retry else MeteringState.REJECTED
        after = store.update_metering(
            replace(sending, state=state, last_error=str(exc), updated_at=clock.now())
        )
        (report.retry_later if exc.retry else report.rejected).append(after)
        return
    sent = store.update_metering(
        replace(
            sending,
            state=MeteringState.SENT,
            record_id=record_id,
            last_error=None,
            updated_at=clock.now(),
        )
    )
    report.sent.append(sent)


def _unsent(store: MeteringLedger, now: datetime) -> Iterator[MeteringEntry]:
    token: str | None = None
    states = frozenset({MeteringState.PENDING, MeteringState.SENDING})
    while True:
        page = store.list_metering(
            since=now - USAGE_LOOKBACK, until=now, states=states, limit=MAX_PAGE_SIZE, token=token
        )
        yield from page.items
        if (token := page.next_token) is None:
            return


def _spans(
    store: MeteringStores, since: datetime, until: datetime, now: datetime
) -> Iterator[tuple[str, datetime, datetime]]:
    token: str | None = None
    while True:
        page = store.list_usage(since=since, until=until, limit=MAX_PAGE_SIZE, token=token)
        for record in page.items:
            yield record.dimension, record.start, record.end
        if (token := page.next_token) is None:
            break
    token = None
    while True:
        runs = store.list_runs_by_status(RunStatus.RUNNING, limit=MAX_PAGE_SIZE, token=token)
        for run in runs.items:
            if run.started_at is not None:
                yield usage_dimension(run.kind, run.use_gpu), run.started_at, now
        if (token := runs.next_token) is None:
            return
