"""Who uses a single-node lab's data folder: a lock file that a restore takes alone.

``serve``, the CLI's local jobs, ``backup`` and ``first-boot`` hold a shared lock on
``DATA_DIR/.annotrain.lock`` while they run; ``restore`` takes it exclusively, so it
refuses to replace the data under a running server, and a server cannot start in
the middle of a restore. The lock is ``flock(2)``: the kernel drops it when the
process ends, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from annotrain.domain.errors import BackupInProgressError, LabBusyError

__all__ = ["BACKUP_LOCK_FILE", "LOCK_FILE", "LabLock"]

#: The lock file, in the data folder (never backed up, never replaced by a restore).
LOCK_FILE = ".annotrain.lock"
#: Held by the one backup under way (the daily timer's, or one an admin started).
BACKUP_LOCK_FILE = ".annotrain-backup.lock"


class LabLock:
    """The data folder's lock.

    Args:
        data_dir: The lab's data folder (created ``0o700`` when absent).
    """

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / LOCK_FILE
        self._backup_path = data_dir / BACKUP_LOCK_FILE

    @contextlib.contextmanager
    def shared(self, what: str) -> Iterator[None]:
        """Hold the lock beside other users of the lab.

        Raises:
            LabBusyError: A restore holds the lab.
        """
        with self._locked(fcntl.LOCK_SH) as taken:
            if not taken:
                raise LabBusyError(
                    f"cannot {what}: a restore is replacing the lab's data in "
                    f"{self._path.parent}; try again when it has finished"
                )
            yield

    @contextlib.contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Hold the lock alone.

        Raises:
            LabBusyError: A server, a job, a backup or first boot uses the lab.
        """
        with self._locked(fcntl.LOCK_EX) as taken:
            if not taken:
                raise LabBusyError(
                    f"cannot {what}: the lab in {self._path.parent} is in use (the API server, "
                    "a job, a backup or first boot). Stop it first: "
                    "sudo systemctl stop annotrain-api annotrain-backup.timer"
                )
            yield

    @contextlib.contextmanager
    def only_backup(self) -> Iterator[None]:
        """Hold the backup lock: one backup of the lab at a time.

        Raises:
            BackupInProgressError: Another backup runs.
        """
        with self._locked(fcntl.LOCK_EX, self._backup_path) as taken:
            if not taken:
                raise BackupInProgressError(f"another backup of the lab in {self._path.parent}")
            yield

    @contextlib.contextmanager
    def _locked(self, mode: int, path: Path | None = None) -> Iterator[bool]:
        path = path or self._path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
