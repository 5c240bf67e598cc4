"""The Clock port over the machine's clock."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """The real time, timezone-aware UTC."""

    def now(self) -> datetime:
        """Now, timezone-aware UTC."""
        return datetime.now(UTC)
