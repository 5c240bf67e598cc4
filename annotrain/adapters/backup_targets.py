"""Where single-node backups are kept: a folder (:class:`FolderBackupTarget`) or an S3
prefix (:class:`S3BackupTarget`).

A backup named ``annotrain-20250301T120000Z`` is the folder (or key prefix)
``<target>/annotrain-20250301T120000Z/`` holding ``files/…`` and, once complete,
``manifest.json``. Each file is written whole or not at all: a temporary file
renamed into place, or one S3 upload (S3 shows an object only once complete).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

from annotrain.domain.backup_manifest import check_backup_path, is_backup_name
from annotrain.domain.errors import AnnotrainError, InvalidRequestError, NotFoundError
from annotrain.ports import BackupTarget

__all__ = [
    "FolderBackupTarget",
    "S3BackupTarget",
    "backup_target_for",
    "folders_kept_out",
    "split_backup_location",
]

_CHUNK_BYTES = 1024 * 1024
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def backup_target_for(location: str, *, s3_client: Any | None = None) -> BackupTarget:
    """The target a location names: ``s3://bucket/prefix``, else a folder path."""
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        if not bucket:
            raise InvalidRequestError("to", f"{location!r} names no bucket: s3://BUCKET/PREFIX")
        return S3BackupTarget(bucket, prefix, client=s3_client)
    if not location:
        raise InvalidRequestError("to", "name a folder or s3://bucket/prefix")
    return FolderBackupTarget(Path(location))


def folders_kept_out(target: BackupTarget, data_dir: Path) -> tuple[Path, ...]:
    """What of the data folder is no lab data because backups are kept there.

    Raises:
        InvalidRequestError: The target folder holds the data folder (a backup would
            contain itself, a restore would replace it).
    """
    if not isinstance(target, FolderBackupTarget):
        return ()
    data, root = data_dir.resolve(), target.root.resolve()
    if root == data or data in root.parents:
        if root == data:
            raise InvalidRequestError("to", f"{root} is the data folder; back up elsewhere")
        return (root,)
    if root in data.parents:
        raise InvalidRequestError("to", f"{root} holds the data folder {data}; choose another")
    return ()


def split_backup_location(location: str) -> tuple[str, str]:
    """``(target location, backup name)`` of one backup's location.

    Raises:
        InvalidRequestError: The last part is not a backup name.
    """
    parent, _, name = location.rstrip("/").rpartition("/")
    if not is_backup_name(name) or not parent or parent.endswith(":/"):
        raise InvalidRequestError(
            "from",
            f"{location!r} is not one backup: name its folder, such as "
            "/var/backups/annotrain/annotrain-20250301T120000Z or "
            "s3://bucket/prefix/annotrain-20250301T120000Z",
        )
    return parent, name


def _checked(name: str, path: str | None = None) -> None:
    if not is_backup_name(name):
        raise InvalidRequestError("name", f"{name!r} is not a backup name")
    if path is not None:
        try:
            check_backup_path(path)
        except ValueError as exc:
            raise InvalidRequestError("path", str(exc)) from None


class FolderBackupTarget:
    """BackupTarget on a local folder (another disk, a mounted volume).

    Args:
        root: The folder; created (``0o700``) on the first write.
    """

    def __init__(self, root: Path) -> None:
        self._root = root.absolute()

    def describe(self) -> str:
        """The folder."""
        return str(self._root)

    @property
    def root(self) -> Path:
        """The folder the backups are in."""
        return self._root

    def names(self) -> list[str]:
        """Backup folders present, by name."""
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if p.is_dir() and is_backup_name(p.name))

    def write(self, name: str, path: str, stream: BinaryIO) -> None:
        """Copy ``stream`` into a temporary file, fsync it and rename it into place."""
        _checked(name, path)
        final = self._root / name / path
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, _CHUNK_BYTES)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def open(self, name: str, path: str) -> BinaryIO:
        """The file, opened for reading (NotFoundError if absent)."""
        _checked(name, path)
        try:
            return (self._root / name / path).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError("backup file", f"{self._root / name / path}") from None

    def delete_backup(self, name: str) -> None:
        """Remove the backup's folder."""
        _checked(name)
        shutil.rmtree(self._root / name, ignore_errors=False, onerror=None)


class S3BackupTarget:
    """BackupTarget on an S3 prefix (SSE-S3 encrypted objects).

    Args:
        bucket: The bucket.
        prefix: Where in it (``annotrain/backups``); may be empty.
        client: A boto3 S3 client; built on first use when None (credentials from the
            instance profile on EC2).
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any | None = None) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client
        self._lock = threading.Lock()

    def describe(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self._bucket}/{self._prefix}".rstrip("/")

    def names(self) -> list[str]:
        """Backup prefixes present, by name."""
        found: list[str] = []
        with self._errors("list backups in"):
            paginator = self._s3().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len(self._prefix) :].rstrip("/")
                    if is_backup_name(name):
                        found.append(name)
        return sorted(found)

    def write(self, name: str, path: str, stream: BinaryIO) -> None:
        """Upload one object (multipart above s3transfer's threshold)."""
        _checked(name, path)
        with self._errors(f"write {name}/{path} to"):
            self._s3().upload_fileobj(
                stream,
                self._bucket,
                self._key(name, path),
                ExtraArgs={"ServerSideEncryption": "AES256"},
            )

    def open(self, name: str, path: str) -> BinaryIO:
        """The object's body stream (NotFoundError if absent)."""
        _checked(name, path)
        key = self._key(name, path)
        try:
            answer = self._s3().get_object(Bucket=self._bucket, Key=key)
        except Exception as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise NotFoundError("backup file", f"s3://{self._bucket}/{key}") from None
            raise AnnotrainError(f"cannot read s3://{self._bucket}/{key}: {exc}") from exc
        body: BinaryIO = answer["Body"]
        return body

    def delete_backup(self, name: str) -> None:
        """Delete every object under the backup's prefix, a thousand per request."""
        _checked(name)
        prefix = f"{self._prefix}{name}/"
        with self._errors(f"delete {name} from"):
            paginator = self._s3().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    answer = self._s3().delete_objects(
                        Bucket=self._bucket, Delete={"Objects": keys, "Quiet": True}
                    )
                    if answer.get("Errors"):
                        first = answer["Errors"][0]
                        raise AnnotrainError(
                            f"cannot delete s3://{self._bucket}/{first.get('Key')}: "
                            f"{first.get('Code')} {first.get('Message')}"
                        )

    def _key(self, name: str, path: str) -> str:
        return f"{self._prefix}{name}/{path}"

    def _s3(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3  # type: ignore[import-untyped]

                    self._client = boto3.client("s3")
        return self._client

    @contextlib.contextmanager
    def _errors(self, action: str) -> Any:
        try:
            yield
        except AnnotrainError:
            raise
        except Exception as exc:
            if isinstance(exc, OSError) and _error_code(exc) is None:
                raise  # reading the stream failed: as raised by it
            raise AnnotrainError(f"cannot {action} {self.describe()}: {exc}") from exc


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None
