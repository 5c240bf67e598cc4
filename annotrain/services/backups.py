"""Backups of a single-node lab: make, list, prune, restore.

A backup is an online copy of the SQLite database plus every other file of the data
folder (blobs — task images, snapshots, models —, job logs, the first-boot marker…),
each streamed to the target while its SHA-256 is computed, and a manifest listing
every file with its size and digest, written last. A backup without a manifest is
partial and never restored.

A restore reads the manifest, copies every file into a staging folder inside the
data folder while checking its size and digest, checks the database copy, and only
then swaps the staged files in for the current ones. A missing, damaged or changed
file stops it before anything is replaced, naming the file. The caller holds the
data folder's lock alone (``annotrain restore`` does), so no server writes meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, cast

from annotrain import __version__
from annotrain.domain.backup_manifest import (
    MANIFEST,
    BackupFile,
    BackupManifest,
    check_backup_path,
    parse_manifest,
)
from annotrain.domain.errors import (
    AnnotrainError,
    BackupInProgressError,
    BackupRefusedError,
    NotFoundError,
    SingleNodeOnlyError,
)
from annotrain.ports import BackupTarget, Clock, LabDatabase
from annotrain.services.access import Principal, require_admin

__all__ = [
    "DATABASE_FILE",
    "BackupSummary",
    "RestoreResult",
    "SingleNodeBackups",
    "create_backup",
    "list_backups",
    "prune_backups",
    "restore_backup",
]

#: The database's name in the data folder and in a backup.
DATABASE_FILE = "annotrain.db"
_CHUNK_BYTES = 1024 * 1024
# Never backed up, never swapped by a restore: the live database's side files, the
# lock, and the working folders of backups and restores under way.
_SIDE_FILES = tuple(DATABASE_FILE + s for s in ("-wal", "-shm", "-journal"))
_WORK_PREFIXES = (".backup-", ".restore-")
_LOCK_FILES = (".annotrain.lock", ".annotrain-backup.lock")
# The blob store's temporary files (a put under way).
_BLOB_TEMP_MARK = "~tmp-"


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """A backup as listed.

    Attributes:
        name: Its name (the UTC time it started).
        complete: Whether its manifest is there (False: partial, never restored).
        created_at: When it started (complete backups).
        total_bytes: Its files' size together (complete backups).
        files: How many files (complete backups).
        counts: Rows per table at backup time (complete backups).
        location: Where it is (give it to ``annotrain restore --from``).
    """

    name: str
    complete: bool
    location: str
    created_at: datetime | None = None
    total_bytes: int = 0
    files: int = 0
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore brought back.

    Attributes:
        manifest: The restored backup's manifest.
        previous: Where the replaced data was kept (None: deleted).
    """

    manifest: BackupManifest
    previous: Path | None


def create_backup(
    *,
    data_dir: Path,
    database: LabDatabase,
    target: BackupTarget,
    clock: Clock,
    exclude: tuple[Path, ...] = (),
    name: str | None = None,
) -> BackupManifest:
    """Back the lab up while it runs: database (online copy), every file, manifest last.

    Args:
        data_dir: The lab's data folder.
        database: The live database.
        target: Where the backup goes.
        clock: Names the backup.
        exclude: Folders inside the data folder that are not lab data (a backup
            folder kept there).
        name: The backup's name (default: from the clock, unique in the target).

    Raises:
        AnnotrainError: Reading the lab or writing the target failed; the backup is
            left partial (no manifest) and never restored.
    """
    started = clock.now()
    name = name or _fresh_name(target, started)
    work = data_dir / f".backup-{secrets.token_hex(6)}"
    work.mkdir(mode=0o700)
    try:
        copy = work / DATABASE_FILE
        database.backup_into(copy)
        counts = database.count_copy(copy)
        files = [_send(target, name, DATABASE_FILE, copy)]
        for relative, path in _lab_files(data_dir, exclude):
            files.append(_send(target, name, relative, path))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    manifest = BackupManifest(name, started, __version__, tuple(files), counts)
    target.write(name, MANIFEST, io.BytesIO(manifest.to_json()))
    return manifest


def list_backups(target: BackupTarget) -> list[BackupSummary]:
    """Every backup in the target, newest first; partial ones say so."""
    summaries = []
    for name in reversed(target.names()):
        location = f"{target.describe()}/{name}"
        try:
            manifest = _read_manifest(target, name)
        except (NotFoundError, BackupRefusedError):
            summaries.append(BackupSummary(name, complete=False, location=location))
            continue
        summaries.append(
            BackupSummary(
                name,
                complete=True,
                location=location,
                created_at=manifest.created_at,
                total_bytes=manifest.total_bytes,
                files=len(manifest.files),
                counts=dict(manifest.counts),
            )
        )
    return summaries


def prune_backups(target: BackupTarget, keep: int) -> list[str]:
    """Keep the ``keep`` newest complete backups; delete older ones and partial ones.

    Call it only while no backup into the same target runs (``annotrain backup`` holds
    the backup lock): a partial backup is then one that failed.

    Returns:
        The names deleted.
    """
    if keep < 1:
        raise ValueError("keep at least one backup")
    listed = list_backups(target)
    complete = [b.name for b in listed if b.complete]
    doomed = complete[keep:] + [b.name for b in listed if not b.complete]
    for name in doomed:
        target.delete_backup(name)
    return sorted(doomed)


def restore_backup(
    *,
    target: BackupTarget,
    name: str,
    data_dir: Path,
    database: LabDatabase,
    exclude: tuple[Path, ...] = (),
    keep_previous: bool = False,
) -> RestoreResult:
    """Replace the lab's data with a backup's, after checking every file of it.

    The caller holds the data folder's lock alone: nothing else may use the lab.

    Raises:
        BackupRefusedError: The backup is partial (no manifest), or a file is missing,
            of another size or another digest, or the database copy is unsound. Nothing
            was replaced.
        AnnotrainError: The swap failed midway; the message says where both the
            backup's files and the previous ones are.
    """
    manifest = _read_manifest(target, name)
    if not any(f.path == DATABASE_FILE for f in manifest.files):
        raise BackupRefusedError(f"{target.describe()}/{name}/{MANIFEST}", "lists no database")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = data_dir / f".restore-{secrets.token_hex(6)}"
    staged, previous = work / "staged", work / "previous"
    staged.mkdir(mode=0o700, parents=True)
    try:
        for entry in manifest.files:
            _fetch_checked(target, name, entry, staged)
        try:
            database.check_copy(staged / DATABASE_FILE)
        except AnnotrainError as exc:
            where = f"{target.describe()}/{name}/{BackupFile(DATABASE_FILE, 0, '').stored_at}"
            raise BackupRefusedError(where, str(exc)) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _swap(data_dir, staged, previous, work, exclude)
    if keep_previous:
        return RestoreResult(manifest, previous)
    shutil.rmtree(work)
    return RestoreResult(manifest, None)


class SingleNodeBackups:
    """The backups ``POST /api/v1/backups`` starts: one at a time, in a thread.

    Args:
        data_dir: The lab's data folder.
        database: The live database.
        target: Where backups go.
        clock: Names them.
        exclude: Folders inside the data folder that are not lab data.
        only_backup: Held while a backup runs, across processes (the data folder's
            backup lock); raises BackupInProgressError when another holds it.
        start_thread: Runs the backup (tests pass one that runs it at once).
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        database: LabDatabase,
        target: BackupTarget,
        clock: Clock,
        exclude: tuple[Path, ...] = (),
        only_backup: Callable[[], AbstractContextManager[None]] | None = None,
        start_thread: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._data_dir = data_dir
        self._database = database
        self._target = target
        self._clock = clock
        self._exclude = exclude
        self._only_backup = only_backup or contextlib.nullcontext
        self._start_thread = start_thread or _daemon_thread
        self._lock = threading.Lock()
        self._running: str | None = None
        self.last_error: str | None = None

    @property
    def running(self) -> str | None:
        """The name of the backup under way, if any."""
        return self._running

    def start(self, principal: Principal) -> BackupSummary:
        """Start a backup (admins); returns it as it stands (partial, under way).

        Raises:
            PermissionDeniedError: The caller is not an admin.
            BackupInProgressError: Another backup is under way.
        """
        require_admin(principal, "backing the lab up")
        with self._lock:
            if self._running is not None:
                raise BackupInProgressError(f"the backup {self._running}")
            guard = self._only_backup()
            guard.__enter__()  # raises when a backup runs in another process
            try:
                name = _fresh_name(self._target, self._clock.now())
            except BaseException:
                guard.__exit__(None, None, None)
                raise
            self._running = name
        try:
            self._start_thread(lambda: self._run(name, guard))
        except BaseException:
            with self._lock:
                self._running = None
            guard.__exit__(None, None, None)
            raise
        return BackupSummary(name, complete=False, location=f"{self._target.describe()}/{name}")

    def list(self, principal: Principal) -> list[BackupSummary]:
        """The target's backups, newest first (admins)."""
        require_admin(principal, "listing backups")
        return list_backups(self._target)

    def _run(self, name: str, guard: AbstractContextManager[None]) -> None:
        try:
            create_backup(
                data_dir=self._data_dir, database=self._database, target=self._target,
                clock=self._clock, exclude=self._exclude, name=name,
            )  # fmt: skip
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - kept for the listing; the backup stays partial
            self.last_error = f"{name}: {exc}"
        finally:
            with self._lock:
                self._running = None
                guard.__exit__(None, None, None)


def _daemon_thread(run: Callable[[], None]) -> None:
    threading.Thread(target=run, name="annotrain-backup", daemon=True).start()


def _fresh_name(target: BackupTarget, started: datetime) -> str:
    base = f"annotrain-{started:%Y%m%dT%H%M%SZ}"
    taken = set(target.names())
    if base not in taken:
        return base
    for number in range(2, 10000):
        if f"{base}-{number}" not in taken:
            return f"{base}-{number}"
    raise AnnotrainError(f"too many backups named {base} in {target.describe()}")


def _lab_files(data_dir: Path, exclude: tuple[Path, ...]) -> Iterator[tuple[str, Path]]:
    """Every regular file of the lab but the live database, by relative path, sorted."""
    skipped = {p.resolve() for p in exclude}
    top_skipped = {DATABASE_FILE, *_LOCK_FILES, *_SIDE_FILES}
    for folder, dirs, names in os.walk(data_dir):
        here = Path(folder)
        at_top = here == data_dir
        dirs[:] = sorted(
            d
            for d in dirs
            if (here / d).resolve() not in skipped
            and not (at_top and d.startswith(_WORK_PREFIXES))
            and not (here / d).is_symlink()
        )
        for file_name in sorted(names):
            path = here / file_name
            if (at_top and file_name in top_skipped) or _BLOB_TEMP_MARK in file_name:
                continue
            if path.is_symlink() or not path.is_file():
                continue  # the lab makes neither; a link could lead out of the folder
            relative = path.relative_to(data_dir).as_posix()
            try:
                check_backup_path(relative)
            except ValueError as exc:
                raise AnnotrainError(f"{path}: cannot be backed up ({exc}); rename it") from None
            yield relative, path


def _send(target: BackupTarget, name: str, relative: str, path: Path) -> BackupFile:
    with path.open("rb") as source:
        reader = _HashingReader(source)
        target.write(name, BackupFile(relative, 0, "").stored_at, cast(BinaryIO, reader))
    return BackupFile(relative, reader.size, reader.hexdigest())


def _read_manifest(target: BackupTarget, name: str) -> BackupManifest:
    where = f"{target.describe()}/{name}/{MANIFEST}"
    try:
        with target.open(name, MANIFEST) as stream:
            data = stream.read(256 * 1024**2)
    except NotFoundError:
        raise BackupRefusedError(
            where, "missing: the backup is partial (it did not finish); choose a complete one"
        ) from None
    manifest = parse_manifest(data, where)
    if manifest.name != name:
        raise BackupRefusedError(where, f"names the backup {manifest.name}, not {name}")
    return manifest


def _fetch_checked(target: BackupTarget, name: str, entry: BackupFile, staged: Path) -> None:
    where = f"{target.describe()}/{name}/{entry.stored_at}"
    destination = staged / entry.path
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        source = target.open(name, entry.stored_at)
    except NotFoundError:
        raise BackupRefusedError(where, "missing from the backup") from None
    digest = hashlib.sha256()
    size = 0
    with source, open(destination, "xb") as out:
        os.fchmod(out.fileno(), 0o600)
        while chunk := source.read(_CHUNK_BYTES):
            size += len(chunk)
            if size > entry.size:
                raise BackupRefusedError(where, f"larger than the {entry.size} bytes listed")
            digest.update(chunk)
            out.write(chunk)
    if size != entry.size:
        raise BackupRefusedError(where, f"{size} bytes, the manifest lists {entry.size}")
    if digest.hexdigest() != entry.sha256:
        raise BackupRefusedError(
            where, "its SHA-256 differs from the manifest's: damaged or changed since the backup"
        )


def _swap(
    data_dir: Path, staged: Path, previous: Path, work: Path, exclude: tuple[Path, ...]
) -> None:
    """Move the current lab aside and the staged one in, entry by entry; undo on failure."""
    previous.mkdir(mode=0o700)
    kept = {p.resolve() for p in exclude}
    current = [
        entry
        for entry in sorted(data_dir.iterdir())
        if entry.name not in _LOCK_FILES and not entry.name.startswith(_WORK_PREFIXES)
        and entry.resolve() not in kept
    ]  # fmt: skip
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for entry in current:
            os.replace(entry, previous / entry.name)
            moved_out.append(entry.name)
        for entry in sorted(staged.iterdir()):
            os.replace(entry, data_dir / entry.name)
            moved_in.append(entry.name)
    except OSError as exc:
        try:
            for entry_name in moved_in:
                os.replace(data_dir / entry_name, staged / entry_name)
            for entry_name in moved_out:
                os.replace(previous / entry_name, data_dir / entry_name)
        except OSError as undo:
            raise AnnotrainError(
                f"the restore failed while swapping ({exc}) and could not be undone ({undo}): "
                f"the backup's files are in {staged}, the previous ones in {previous}; move "
                f"them into {data_dir} by hand"
            ) from exc
        shutil.rmtree(work, ignore_errors=True)
        raise AnnotrainError(
            f"the restore failed while swapping ({exc}); the lab is as it was"
        ) from exc


class _HashingReader:
    """A binary stream that counts and hashes what is read through it."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._digest.update(data)
        self.size += len(data)
        return data

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


#: Where a serverless lab's recovery is documented.
SERVERLESS_RECOVERY_DOC = "docs/backup.md#serverless-labs"


def refuse_serverless_backups(principal: Principal, action: str) -> None:
    """Admins only; then the error that says how a serverless lab recovers instead.

    Raises:
        PermissionDeniedError: The caller is not an admin.
        SingleNodeOnlyError: Always, for admins.
    """
    require_admin(principal, action)
    raise SingleNodeOnlyError(
        action,
        "its DynamoDB table keeps point-in-time recovery (35 days) and its S3 buckets keep "
        "every object version; restore from those, and move single projects with "
        f"'annotrain project export/import' (see {SERVERLESS_RECOVERY_DOC})",
    )
