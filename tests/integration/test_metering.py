"""Metering: server hours per dimension into the ledger, sent with MeterUsage (botocore
Stubber: moto has no meter_usage) so that a crash or a retry never bills an hour twice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from fakes import FakeClock

from annotrain.adapters.marketplace_meter import MarketplaceUsageReporter
from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.errors import ConflictError, InvalidRequestError
from annotrain.domain.records import (
    JobKind,
    MeteringEntry,
    MeteringState,
    Run,
    RunStatus,
    UsageRecord,
)
from annotrain.services.metering import billable_hours, send_metering

PRODUCT = "prod-code-1234"
NOW = datetime(2026, 11, 21, 13, 10, tzinfo=UTC)
H10 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
H11 = H10 + timedelta(hours=1)
H12 = H10 + timedelta(hours=2)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "lab.db") as sqlite_store:
        yield sqlite_store


@pytest.fixture
def client() -> Any:
    return boto3.client(
        "meteringmarketplace", region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def _use(store: SqliteStore, run_id: str, dimension: str, start: datetime, end: datetime) -> None:
    store.record_usage(
        UsageRecord(dimension, (end - start).total_seconds() / 3600, start, end, run_id)
    )


def _expect(stubber: Stubber, hour: datetime, dimension: str, quantity: int, record: str) -> None:
    stubber.add_response(
        "meter_usage",
        {"MeteringRecordId": record},
        {"ProductCode": PRODUCT, "Timestamp": hour, "UsageDimension": dimension,
         "UsageQuantity": quantity, "DryRun": False},
    )  # fmt: skip


class CrashBeforeSent:
    """The store, except that marking an entry sent crashes the process once."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def update_metering(self, entry: MeteringEntry) -> MeteringEntry:
        if entry.state is MeteringState.SENT and not self.crashed:
            self.crashed = True
            raise SystemExit("killed between the send and the ledger write")
        return self._store.update_metering(entry)


def test_the_complete_hours_in_metering_window_are_counted() -> None:
    assert billable_hours(NOW) == [H10 - timedelta(hours=2), H10 - timedelta(hours=1), H10, H11,
                                   H12]  # fmt: skip


def test_hours_are_whole_server_hours_per_dimension_rounded_up(
    store: SqliteStore, client: Any
) -> None:
    _use(store, "a", "training_gpu_hours", H10, H11 + timedelta(minutes=30))
    _use(store, "b", "training_gpu_hours", H10 + timedelta(minutes=30), H10 + timedelta(minutes=45))
    _use(
        store, "c", "inference_cpu_hours", H12 + timedelta(minutes=50), H12 + timedelta(minutes=55)
    )
    store.create_run(Run("d", 1, JobKind.TRAIN, RunStatus.RUNNING, "ann", H12, use_gpu=False,
                         started_at=H12 + timedelta(minutes=30)))  # fmt: skip
    with Stubber(client) as stubber:
        _expect(stubber, H10, "training_gpu_hours", 2, "r1")  # 1 + 0.25 server-hours
        _expect(stubber, H11, "training_gpu_hours", 1, "r2")  # 0.5
        _expect(stubber, H12, "inference_cpu_hours", 1, "r3")  # 5 minutes
        _expect(stubber, H12, "training_cpu_hours", 1, "r4")  # a run still running
        report = send_metering(store, MarketplaceUsageReporter(client), FakeClock(NOW),
                               product_code=PRODUCT)  # fmt: skip
        stubber.assert_no_pending_responses()
    assert sorted(e.record_id or "" for e in report.sent) == ["r1", "r2", "r3", "r4"]


def test_a_crash_after_sending_resends_the_identical_request_once_and_never_again(
    store: SqliteStore, client: Any
) -> None:
    _use(store, "a", "training_gpu_hours", H11, H12)
    crashing = CrashBeforeSent(store)
    with Stubber(client) as stubber:
        _expect(stubber, H11, "training_gpu_hours", 1, "rec-1")
        with pytest.raises(SystemExit):
            send_metering(crashing, MarketplaceUsageReporter(client), FakeClock(NOW),  # type: ignore[arg-type]
                          product_code=PRODUCT)  # fmt: skip
        (left,) = store.list_metering(since=H10, until=NOW).items
        assert left.state is MeteringState.SENDING
        # More usage of that hour turns up late: the hour keeps the quantity it was sent with.
        _use(store, "late", "training_gpu_hours", H11, H12)
        # MeterUsage answers an identical request with the same record id, not a new charge.
        _expect(stubber, H11, "training_gpu_hours", 1, "rec-1")
        later = FakeClock(NOW + timedelta(minutes=60))
        report = send_metering(store, MarketplaceUsageReporter(client), later, product_code=PRODUCT)
        stubber.assert_no_pending_responses()
        # Sent: the next runs send nothing for it (an unexpected call would fail the stub).
        for minutes in (70, 130):
            again = FakeClock(NOW + timedelta(minutes=minutes))
            send_metering(store, MarketplaceUsageReporter(client), again, product_code=PRODUCT)
    assert [(e.hour, e.state, e.record_id, e.quantity, e.attempts) for e in report.sent] == [
        (H11, MeteringState.SENT, "rec-1", 1, 2)
    ]
    (entry,) = store.list_metering(since=H10, until=NOW + timedelta(hours=3)).items
    assert entry.state is MeteringState.SENT


def test_a_throttled_send_is_retried_later_and_a_final_refusal_is_not(
    store: SqliteStore, client: Any
) -> None:
    _use(store, "a", "training_gpu_hours", H11, H12)
    _use(store, "b", "inference_gpu_hours", H11, H12)
    with Stubber(client) as stubber:
        stubber.add_client_error("meter_usage", "ThrottlingException", "slow down")
        stubber.add_client_error("meter_usage", "CustomerNotEntitledException", "no subscription")
        first = send_metering(store, MarketplaceUsageReporter(client), FakeClock(NOW),
                              product_code=PRODUCT)  # fmt: skip
        _expect(stubber, H11, "inference_gpu_hours", 1, "rec-2")
        later = FakeClock(NOW + timedelta(minutes=60))
        second = send_metering(store, MarketplaceUsageReporter(client), later, product_code=PRODUCT)
        stubber.assert_no_pending_responses()
    assert [e.dimension for e in first.retry_later] == ["inference_gpu_hours"]
    assert [e.dimension for e in first.rejected] == ["training_gpu_hours"]
    assert "CustomerNotEntitledException" in (first.rejected[0].last_error or "")
    assert [e.record_id for e in second.sent] == ["rec-2"]


def test_an_hour_left_unsent_past_six_hours_is_rejected_without_a_call(
    store: SqliteStore, client: Any
) -> None:
    _use(store, "a", "training_gpu_hours", H11, H12)
    with Stubber(client) as stubber:
        stubber.add_client_error("meter_usage", "InternalServiceErrorException", "down")
        send_metering(store, MarketplaceUsageReporter(client), FakeClock(NOW), product_code=PRODUCT)
        later = FakeClock(NOW + timedelta(hours=7))
        report = send_metering(store, MarketplaceUsageReporter(client), later, product_code=PRODUCT)
        stubber.assert_no_pending_responses()
    (entry,) = report.rejected
    assert "older than six hours" in (entry.last_error or "")


# --- the ledger (SQLite) ------------------------------------------------------------------


def _entry(hour: datetime = H10, quantity: int = 2) -> MeteringEntry:
    return MeteringEntry(hour, "training_gpu_hours", quantity, MeteringState.PENDING, NOW)


def test_the_ledger_keeps_the_first_quantity_of_an_hour(store: SqliteStore) -> None:
    first = store.add_metering(_entry(quantity=2))
    again = store.add_metering(_entry(quantity=5))
    assert (again.quantity, again.revision) == (2, 1)
    assert again == first


def test_ledger_updates_are_revision_checked_and_the_quantity_is_fixed(store: SqliteStore) -> None:
    stored = store.add_metering(_entry())
    sending = store.update_metering(replace(stored, state=MeteringState.SENDING, attempts=1))
    assert (sending.state, sending.revision) == (MeteringState.SENDING, 2)
    with pytest.raises(ConflictError):
        store.update_metering(replace(stored, state=MeteringState.SENT))
    with pytest.raises(InvalidRequestError, match="fixed"):
        store.update_metering(replace(sending, quantity=3))


def test_the_ledger_lists_by_hour_and_state_page_by_page(store: SqliteStore) -> None:
    for hours in range(5):
        store.add_metering(_entry(H10 + timedelta(hours=hours)))
    sent = store.list_metering(since=H10, until=NOW).items[0]
    store.update_metering(replace(sent, state=MeteringState.SENT))
    pending = frozenset({MeteringState.PENDING})
    page = store.list_metering(since=H10, until=NOW + timedelta(days=1), states=pending, limit=2)
    assert [e.hour for e in page.items] == [H11, H12]
    assert page.next_token is not None
    rest = store.list_metering(
        since=H10, until=NOW + timedelta(days=1), states=pending, limit=2, token=page.next_token
    )
    assert [e.hour for e in rest.items] == [H12 + timedelta(hours=1), H12 + timedelta(hours=2)]
    assert rest.next_token is None
