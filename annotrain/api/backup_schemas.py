"""The HTTP contract of ``/api/v1/backups``, mapped explicitly from the service's summaries."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from annotrain.services.backups import BackupSummary


class BackupOut(BaseModel):
    """A backup of the single-node lab."""

    name: str = Field(description="the UTC time it started: annotrain-YYYYMMDDTHHMMSSZ")
    status: str = Field(
        description="complete (its manifest is written), running (under way in this "
        "server), or partial (it did not finish: never restored)"
    )
    location: str = Field(description="where it is: give it to 'annotrain restore --from'")
    created_at: datetime | None = None
    total_bytes: int = 0
    files: int = 0
    counts: dict[str, int] = Field(
        default_factory=dict, description="rows per table at backup time, reviews one by one"
    )


class BackupList(BaseModel):
    """The lab's backups, newest first."""

    items: list[BackupOut]
    last_error: str | None = Field(
        default=None, description="why the last backup this server started failed, if it did"
    )


def backup_out(summary: BackupSummary, *, running: str | None = None) -> BackupOut:
    """The HTTP view of a backup."""
    if summary.complete:
        status = "complete"
    elif summary.name == running:
        status = "running"
    else:
        status = "partial"
    return BackupOut(
        name=summary.name,
        status=status,
        location=summary.location,
        created_at=summary.created_at,
        total_bytes=summary.total_bytes,
        files=summary.files,
        counts=summary.counts,
    )
