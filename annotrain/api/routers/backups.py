"""``/api/v1/backups``: admins back a single-node lab up and list its backups.

A backup runs in the server's background (one at a time); the listing shows it as
``running`` until its manifest is written. A serverless lab answers 501
``single_node_only`` with where its recovery (PITR, object versions) is documented.
Restoring is the CLI's (``annotrain restore``): it needs the server stopped.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Request, status

from annotrain.api.backup_schemas import BackupList, BackupOut, backup_out
from annotrain.api.deps import AppSettings, CurrentUser
from annotrain.api.errors import error_responses
from annotrain.ports import Clock
from annotrain.services import backups
from annotrain.settings import Mode, Settings

router = APIRouter(prefix="/backups", tags=["backups"], responses=error_responses(401, 403, 503))

_BUILD_LOCK = threading.Lock()
SINGLE_NODE_ONLY: dict[int | str, dict[str, Any]] = {
    501: {"description": 'a serverless lab: code "single_node_only", the message says how '
          "it recovers instead (DynamoDB point-in-time recovery, S3 object versions)"},
    409: {"description": 'code "backup_in_progress": a backup is already running'},
}  # fmt: skip


@router.get("", responses=SINGLE_NODE_ONLY)
def list_backups(user: CurrentUser, settings: AppSettings, request: Request) -> BackupList:
    """List the lab's backups, newest first (admins; single node)."""
    if settings.mode == Mode.SERVERLESS:
        backups.refuse_serverless_backups(user, "listing backups")
    lab = _backups(request, settings)
    running = lab.running
    items = [backup_out(b, running=running) for b in lab.list(user)]
    return BackupList(items=items, last_error=lab.last_error)


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=SINGLE_NODE_ONLY)
def start_backup(user: CurrentUser, settings: AppSettings, request: Request) -> BackupOut:
    """Start a backup of the lab: database, files, manifest (admins; single node)."""
    if settings.mode == Mode.SERVERLESS:
        backups.refuse_serverless_backups(user, "backing the lab up")
    lab = _backups(request, settings)
    summary = lab.start(user)
    return backup_out(summary, running=summary.name)


def _backups(request: Request, settings: Settings) -> backups.SingleNodeBackups:
    """The app's backups, built on first use from the settings (tests set their own)."""
    state = request.app.state
    with _BUILD_LOCK:
        existing: backups.SingleNodeBackups | None = getattr(state, "backups", None)
        if existing is None:
            existing = _build(settings, state.clock)
            state.backups = existing
    return existing


def _build(settings: Settings, clock: Clock) -> backups.SingleNodeBackups:
    from annotrain.adapters.backup_targets import backup_target_for, folders_kept_out
    from annotrain.adapters.lab_lock import LabLock
    from annotrain.adapters.sqlite_backup import SqliteLabDatabase

    target = backup_target_for(settings.backup_location)
    return backups.SingleNodeBackups(
        data_dir=settings.data_dir,
        database=SqliteLabDatabase(settings.database_path),
        target=target,
        clock=clock,
        exclude=folders_kept_out(target, settings.data_dir),
        only_backup=LabLock(settings.data_dir).only_backup,
    )
