"""The single node's database file for backups: online copies, checks, counts.

:class:`SqliteLabDatabase` copies the live database with SQLite's online backup API
(``sqlite3.Connection.backup``): one step, under a read transaction, so the copy is
one consistent snapshot while the API and jobs keep writing (WAL readers never block
writers). Restores check a copy with ``PRAGMA integrity_check`` and its schema
version before it replaces anything.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from annotrain.adapters.sqlite import DEFAULT_BUSY_TIMEOUT_S, _load_migrations
from annotrain.domain.errors import AnnotrainError

__all__ = ["SqliteLabDatabase"]


class SqliteLabDatabase:
    """LabDatabase over the SQLite file of a single-node lab.

    Args:
        path: The live database file (``DATA_DIR/annotrain.db``).
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def backup_into(self, path: Path) -> None:
        """Copy the live database to ``path`` in one consistent step.

        Raises:
            AnnotrainError: The database is missing or cannot be read.
        """
        if not self._path.is_file():
            raise AnnotrainError(f"{self._path}: no database to back up (check --data-dir)")
        try:
            with _connected(self._path) as source, _connected(path) as target:
                # pages=-1: the whole file in one step, so writers cannot make it restart.
                source.backup(target, pages=-1)
                # The copy stands alone: no write-ahead log beside it (the store turns
                # WAL back on when it opens the restored file).
                target.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.Error as exc:
            raise AnnotrainError(f"{self._path}: the online backup failed: {exc}") from exc

    def check_copy(self, path: Path) -> None:
        """Raise AnnotrainError naming ``path`` unless it is sound and not too new."""
        known = len(_load_migrations())
        try:
            with _connected(path, read_only=True) as db:
                problems = [row[0] for row in db.execute("PRAGMA integrity_check").fetchall()]
                version: int = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise AnnotrainError(f"{path}: not a usable SQLite database: {exc}") from exc
        if problems != ["ok"]:
            raise AnnotrainError(f"{path}: the database is damaged: {'; '.join(problems[:5])}")
        if version > known:
            raise AnnotrainError(
                f"{path}: its schema is at version {version}, from a newer annotrain (this one "
                f"knows up to {known}); upgrade annotrain before restoring it"
            )

    def count_copy(self, path: Path) -> dict[str, int]:
        """Rows per table of a copy, and ``reviews`` (kept inside completions) one by one."""
        with _connected(path, read_only=True) as db:
            tables = [
                row[0]
                for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name"
                )
            ]
            # Table names come from the file's own catalogue; quoted as identifiers.
            counts = {
                table: int(db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])  # noqa: S608
                for table in tables
            }
            if "completions" in counts:
                reviews = db.execute(
                    "SELECT COALESCE(SUM(json_array_length(reviews)), 0) FROM completions"
                ).fetchone()[0]
                counts["reviews"] = int(reviews)
        return counts


@contextlib.contextmanager
def _connected(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    if read_only:
        if not path.is_file():
            raise AnnotrainError(f"{path}: no such database file")
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=DEFAULT_BUSY_TIMEOUT_S
        )
    else:
        connection = sqlite3.connect(path, timeout=DEFAULT_BUSY_TIMEOUT_S)
    try:
        yield connection
    finally:
        connection.close()
