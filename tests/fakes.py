"""Fakes of the ports, for tests of what uses them: small, thread-safe, faithful to the rules.

``InMemoryStore`` keeps runs, server records and usage the way the ports say a
store must (annotrain/ports.py): revision-checked updates that raise
ConflictError, NotFoundError and AlreadyExistsError, opaque page tokens, limits of
at most MAX_PAGE_SIZE. Tests that take the store through a fixture run against
SqliteStore too once it is there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from annotrain.domain.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)
from annotrain.domain.records import Run, RunStatus, Server, UsageRecord
from annotrain.ports import MAX_PAGE_SIZE, Page

T = TypeVar("T")
_TOKEN_PREFIX = "mem:"


class InMemoryStore:
    """RunStore, ServerStore and UsageMeter in memory, safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}
        self._servers: dict[str, Server] = {}
        self._usage: dict[tuple[str, str, datetime], UsageRecord] = {}
        self.update_calls = 0

    # --- RunStore ------------------------------------------------------------------

    def create_run(self, run: Run) -> Run:
        with self._lock:
            if run.id in self._runs:
                raise AlreadyExistsError("run", run.id)
            stored = replace(run, revision=1)
            self._runs[run.id] = stored
            return stored

    def get_run(self, run_id: str) -> Run:
        with self._lock:
            try:
                return self._runs[run_id]
            except KeyError:
                raise NotFoundError("run", run_id) from None

    def update_run(self, run: Run) -> Run:
        with self._lock:
            self.update_calls += 1
            current = self._runs.get(run.id)
            if current is None or current.revision != run.revision:
                actual = None if current is None else current.revision
                raise ConflictError("run", run.id, run.revision, actual)
            stored = replace(run, revision=run.revision + 1)
            self._runs[run.id] = stored
            return stored

    def list_runs(
        self, project_id: int, *, limit: int = 100, token: str | None = None
    ) -> Page[Run]:
        with self._lock:
            runs = [r for r in self._runs.values() if r.project_id == project_id]
        runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return _page(runs, limit, token)

    def list_runs_by_status(
        self, status: RunStatus, *, limit: int = 100, token: str | None = None
    ) -> Page[Run]:
        with self._lock:
            runs = [r for r in self._runs.values() if r.status is status]
        runs.sort(key=lambda r: (r.created_at, r.id))
        return _page(runs, limit, token)

    # --- ServerStore ---------------------------------------------------------------

    def put_server(self, server: Server) -> None:
        with self._lock:
            self._servers[server.run_id] = server

    def remove_server(self, run_id: str) -> None:
        with self._lock:
            self._servers.pop(run_id, None)

    def list_servers(self, *, limit: int = 100, token: str | None = None) -> Page[Server]:
        with self._lock:
            servers = sorted(self._servers.values(), key=lambda s: (s.since, s.run_id))
        return _page(servers, limit, token)

    # --- UsageMeter ----------------------------------------------------------------

    def record_usage(self, record: UsageRecord) -> None:
        with self._lock:
            self._usage.setdefault((record.run_id, record.dimension, record.start), record)

    def list_usage(
        self, *, since: datetime, until: datetime, limit: int = 100, token: str | None = None
    ) -> Page[UsageRecord]:
        with self._lock:
            uses = [u for u in self._usage.values() if since <= u.start < until]
        uses.sort(key=lambda u: (u.start, u.run_id, u.dimension))
        return _page(uses, limit, token)

    # --- for assertions ------------------------------------------------------------

    def all_usage(self) -> list[UsageRecord]:
        """Every use recorded, oldest first."""
        far = timedelta(days=365 * 100)
        now = datetime.now(UTC)
        return list_all(
            lambda token: self.list_usage(since=now - far, until=now + far, token=token)
        )

    def all_servers(self) -> list[Server]:
        """Every server record."""
        return list_all(lambda token: self.list_servers(token=token))


def list_all(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    """Every item of a paginated listing: ``fetch(token)`` gives one page."""
    items: list[T] = []
    token: str | None = None
    while True:
        page = fetch(token)
        items.extend(page.items)
        if (token := page.next_token) is None:
            return items


def _page(items: Sequence[T], limit: int, token: str | None) -> Page[T]:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequestError("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
    start = 0
    if token is not None:
        digits = token.removeprefix(_TOKEN_PREFIX)
        if not token.startswith(_TOKEN_PREFIX) or not digits.isdigit():
            raise InvalidRequestError("token", "not a token this store gave")
        start = int(digits)
    end = start + limit
    next_token = f"{_TOKEN_PREFIX}{end}" if end < len(items) else None
    return Page(list(items[start:end]), next_token)


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move the time forward; returns the new now."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now
