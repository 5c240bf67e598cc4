"""A single-node backup's manifest: every file with its size and SHA-256.

The manifest is written last: a backup without one is partial (it did not finish)
and is never restored. Its paths are checked before anything is read by them, so a
changed manifest cannot make a restore write outside the data folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from annotrain.domain.errors import BackupRefusedError

__all__ = [
    "BACKUP_NAME",
    "MANIFEST",
    "BackupFile",
    "BackupManifest",
    "check_backup_path",
    "is_backup_name",
    "parse_manifest",
]

#: The manifest's path inside a backup.
MANIFEST = "manifest.json"
FORMAT = "annotrain-backup"
VERSION = 1
#: Backup names: the UTC time they started, and a number when two start in one second.
BACKUP_NAME = re.compile(r"^annotrain-\d{8}T\d{6}Z(?:-\d{1,4})?$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_.=~-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_backup_name(name: str) -> bool:
    """Whether ``name`` is a backup's name (``annotrain-20250301T120000Z``)."""
    return BACKUP_NAME.match(name) is not None


def check_backup_path(path: str) -> str:
    """The path, if it is a safe relative path inside a backup; ValueError otherwise."""
    parts = path.split("/")
    if (
        not path
        or len(path) > 1024
        or any(part in ("", ".", "..") or not _PATH_PART.match(part) for part in parts)
    ):
        raise ValueError(
            f"{path!r} is not a relative path of letters, digits and -_.=~ parts without '..'"
        )
    return path


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One file of a backup.

    Attributes:
        path: Where it goes, relative to the data folder (``annotrain.db``,
            ``blobs/projects/1/…``); stored in the backup under ``files/<path>``.
        size: Bytes.
        sha256: Hex digest of its content.
    """

    path: str
    size: int
    sha256: str

    @property
    def stored_at(self) -> str:
        """Its path inside the backup."""
        return f"files/{self.path}"


@dataclass(frozen=True, slots=True)
class BackupManifest:
    """What a complete backup holds.

    Attributes:
        name: The backup's name.
        created_at: When it started (UTC).
        annotrain_version: The version that wrote it.
        files: Every file, the database first.
        counts: Rows per table of the database copy (``reviews`` counted one by one),
            so a restore can be compared with what was backed up.
    """

    name: str
    created_at: datetime
    annotrain_version: str
    files: tuple[BackupFile, ...]
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        """The size of every file together."""
        return sum(f.size for f in self.files)

    def to_json(self) -> bytes:
        """The manifest document."""
        document = {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "annotrain_version": self.annotrain_version,
            "counts": dict(self.counts),
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def parse_manifest(data: bytes, where: str) -> BackupManifest:
    """Read and check a manifest; BackupRefusedError naming ``where`` and the field otherwise."""
    try:
        document = json.loads(data)
        if not isinstance(document, dict):
            raise TypeError("not a JSON object")
        if document.get("format") != FORMAT or document.get("version") != VERSION:
            raise ValueError(f"format/version are not {FORMAT!r}/{VERSION}")
        files = _files(document.get("files"))
        counts = document.get("counts", {})
        if not isinstance(counts, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in counts.items()
        ):
            raise TypeError("'counts' is not an object of whole numbers")
        name = document.get("name")
        if not isinstance(name, str) or not is_backup_name(name):
            raise ValueError(f"'name' {name!r} is not a backup name")
        return BackupManifest(
            name=name,
            created_at=datetime.fromisoformat(str(document.get("created_at"))),
            annotrain_version=str(document.get("annotrain_version", "")),
            files=files,
            counts=counts,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise BackupRefusedError(where, f"not a valid backup manifest ({exc})") from None


def _files(entries: Any) -> tuple[BackupFile, ...]:
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise TypeError("'files' is not a list")
    files = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise TypeError(f"files[{index}] is not an object")
        path, size, digest = entry.get("path"), entry.get("size"), entry.get("sha256")
        if not isinstance(path, str):
            raise TypeError(f"files[{index}].path is not a string")
        check_backup_path(path)
        if path in seen:
            raise ValueError(f"files[{index}].path {path!r} is listed twice")
        seen.add(path)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"files[{index}].size is not a byte count")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ValueError(f"files[{index}].sha256 is not a hex SHA-256")
        files.append(BackupFile(path, size, digest))
    return tuple(files)
