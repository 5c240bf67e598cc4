"""The single node's blob store: files in a folder.

A key is a path under the folder (``projects/3/tasks/17/page-1.png``). Beside each
file, ``<name>~meta.json`` keeps its content type; ``~`` cannot occur in a key, so
no key ever names one of these files or a temporary file, and listings skip them.

Guarantees:

- A put streams into a temporary file in the destination folder, fsyncs it and
  renames it over the key: readers see the old file or the new one, whole, never a
  part; an upload that fails leaves the previous file as it was and no temporary
  file behind.
- Nothing is read or written outside the folder. Keys are checked first, and every
  path is then walked one folder at a time from the root, refusing symbolic links
  (``O_NOFOLLOW``), so a link planted inside the folder, or swapped in while a put
  runs, cannot lead anywhere else.
- Files are created ``0o600`` and folders ``0o700``: blobs hold annotated documents
  and models, and only the lab's own user (the API server and its local jobs)
  needs them.

POSIX only: it relies on ``dir_fd`` support (Linux, macOS).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Generator, Iterator, Sequence
from typing import BinaryIO

from annotrain.adapters.blob_keys import (
    check_content_type,
    check_key,
    check_limit,
    check_prefix,
    is_valid_key,
    key_after,
    page_token,
)
from annotrain.domain.errors import InvalidRequestError, NotFoundError
from annotrain.ports import BlobInfo, Page

DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CHUNK_BYTES = 1024 * 1024
_FILE_MODE = 0o600
_DIR_MODE = 0o700
_META_SUFFIX = "~meta.json"
_TEMP_MARK = "~tmp-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CHILD_DIR_FLAGS = _DIR_FLAGS | os.O_NOFOLLOW
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# A delete may remove a folder that a concurrent put has just opened; the put then
# starts over (a few times) rather than fail.
_PUT_ATTEMPTS = 3
# Aliases: inside the class, `list` is the method.
_Descriptors = list[int]
_BlobInfos = list[BlobInfo]


class FilesystemBlobStore:
    """BlobStore on a local folder, for the single node.

    Args:
        root: The folder; created (``0o700``) on the first put if absent. It may
            itself be a symbolic link: that is the operator's choice. Links inside
            it are refused.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = os.path.abspath(root)

    def put(
        self, key: str, stream: BinaryIO, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> BlobInfo:
        """Store a file read from ``stream`` in chunks; it appears whole or not at all.

        Raises:
            InvalidRequestError: The key or content type is invalid, the key passes
                through a symbolic link, or a folder of the store is in the way (a
                file ``a`` and a file ``a/b`` cannot both be kept in a folder).
            OSError: Reading ``stream`` failed (as raised by it), or the disk did.
        """
        check_key(key)
        check_content_type(content_type)
        *folders, name = key.split("/")
        for attempt in range(_PUT_ATTEMPTS):
            with self._folders(folders, key, create=True) as fds:
                assert fds is not None  # create=True makes what is missing
                parent = fds[-1]
                try:
                    self._make_room(parent, name, key)
                    try:
                        temp, fd = _create_temp(parent, name)
                    except FileNotFoundError:
                        if attempt + 1 == _PUT_ATTEMPTS:
                            raise
                        continue  # the folder was pruned by a delete: walk it again
                    return self._write_and_commit(parent, name, key, temp, fd, stream, content_type)
                except BaseException:
                    _prune(folders, fds)  # the folders this put made, if it made any
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def open(self, key: str) -> BinaryIO:
        """A buffered binary stream of the file; the caller closes it.

        Raises:
            NotFoundError: No file has this key.
            InvalidRequestError: The key is invalid or passes through a symbolic link.
        """
        check_key(key)
        *folders, name = key.split("/")
        with self._folders(folders, key, create=False) as fds:
            if fds is None:
                raise NotFoundError("blob", key)
            self._stat_file(fds[-1], name, key)
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fds[-1])
            except FileNotFoundError:
                raise NotFoundError("blob", key) from None
            except OSError as err:
                if err.errno == errno.ELOOP:  # made a link since the stat
                    raise _link_refused(key, key) from err
                raise
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise NotFoundError("blob", key)
                return os.fdopen(fd, "rb")
            except BaseException:
                os.close(fd)
                raise

    def head(self, key: str) -> BlobInfo:
        """Size and content type.

        Raises:
            NotFoundError: No file has this key.
            InvalidRequestError: The key is invalid or passes through a symbolic link.
        """
        check_key(key)
        *folders, name = key.split("/")
        with self._folders(folders, key, create=False) as fds:
            if fds is None:
                raise NotFoundError("blob", key)
            size = self._stat_file(fds[-1], name, key).st_size
            return BlobInfo(key, size, _read_content_type(fds[-1], name))

    def delete(self, key: str) -> None:
        """Delete a file and its content type; then folders it leaves empty.

        Deleting a file that does not exist does nothing.

        Raises:
            InvalidRequestError: The key is invalid or passes through a symbolic link.
        """
        check_key(key)
        *folders, name = key.split("/")
        with self._folders(folders, key, create=False) as fds:
            if fds is None:
                return
            parent = fds[-1]
            try:
                mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None and stat.S_ISLNK(mode):
                raise _link_refused(key, key)
            if mode is not None and stat.S_ISREG(mode):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=parent)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name + _META_SUFFIX, dir_fd=parent)
            _prune(folders, fds)

    def list(self, prefix: str, *, limit: int = 100, token: str | None = None) -> Page[BlobInfo]:
        """Files whose key starts with ``prefix``, by key, ``limit`` at a time.

        Walks only the folders that can hold such keys, in key order, skipping
        those wholly before the token's key.

        Raises:
            InvalidRequestError: The prefix, limit or token is invalid.
        """
        check_prefix(prefix)
        check_limit(limit)
        after = key_after(token)
        folder, _, start = prefix.rpartition("/")
        folders = folder.split("/") if folder else []
        with self._folders(folders, prefix, create=False, listing=True) as fds:
            if fds is None:
                return Page([])
            base = folder + "/" if folder else ""
            items: _BlobInfos = []
            with contextlib.closing(_walk(fds[-1], base, start, after)) as found:
                for info in found:
                    if len(items) == limit:
                        return Page(items, page_token(items[-1].key))
                    items.append(info)
            return Page(items)

    @contextlib.contextmanager
    def _folders(
        self, folders: Sequence[str], key: str, *, create: bool, listing: bool = False
    ) -> Iterator[_Descriptors | None]:
        """Open the root and each folder on the way to a key, refusing links.

        Args:
            folders: The folders, outermost first.
            key: The key (or prefix) they lead to, for errors.
            create: Make missing folders, and refuse a file in the way of one.
            listing: Treat a link like a missing folder instead of refusing it.

        Yields:
            Descriptors of the root and each folder in turn (closed on exit); None
            when one is missing or is a file, and nothing is to be created.

        Raises:
            InvalidRequestError: A folder is a symbolic link, or (when creating) a
                file is in the way of one.
        """
        with contextlib.ExitStack() as stack:
            try:
                root = os.open(self._root, _DIR_FLAGS)
            except FileNotFoundError:
                if not create:
                    yield None
                    return
                os.makedirs(self._root, mode=_DIR_MODE, exist_ok=True)
                root = os.open(self._root, _DIR_FLAGS)
            stack.callback(os.close, root)
            fds: _Descriptors = [root]
            for depth, folder in enumerate(folders):
                fd = _open_folder(fds[-1], folder, create=create)
                if fd is None:
                    yield None
                    return
                if (fd == _FILE and not create) or (fd == _LINK and listing):
                    yield None  # nothing can be stored below a file; listings skip links
                    return
                if fd < 0:
                    path = "/".join(folders[: depth + 1])
                    raise _link_refused(key, path) if fd == _LINK else _in_the_way(key, path)
                stack.callback(os.close, fd)
                fds.append(fd)
            yield fds

    def _stat_file(self, parent: int, name: str, key: str) -> os.stat_result:
        """The status of the file ``name`` in ``parent``: NotFoundError unless a file."""
        try:
            status = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise NotFoundError("blob", key) from None
        if stat.S_ISLNK(status.st_mode):
            raise _link_refused(key, key)
        if not stat.S_ISREG(status.st_mode):
            raise NotFoundError("blob", key)
        return status

    def _make_room(self, parent: int, name: str, key: str) -> None:
        """Refuse to put over a link or a folder with files in it; remove an empty folder."""
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise _link_refused(key, key)
        if stat.S_ISDIR(mode):
            try:
                os.rmdir(name, dir_fd=parent)
            except OSError as err:
                raise _in_the_way(key, key) from err

    def _write_and_commit(
        self,
        parent: int,
        name: str,
        key: str,
        temp: str,
        fd: int,
        stream: BinaryIO,
        content_type: str,
    ) -> BlobInfo:
        """Copy ``stream`` into the open temporary file, then rename it over ``name``."""
        meta_temp: str | None = None
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK_BYTES):
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            meta_temp = _write_temp(parent, name + _META_SUFFIX, _meta_json(content_type))
            # The file first: once it is renamed the put has happened. A crash before
            # the content type follows leaves the new bytes with the old type.
            try:
                os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except IsADirectoryError as err:
                raise _in_the_way(key, key) from err
            os.replace(meta_temp, name + _META_SUFFIX, src_dir_fd=parent, dst_dir_fd=parent)
            os.fsync(parent)
        except BaseException:
            for leftover in (temp, meta_temp):
                if leftover is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(leftover, dir_fd=parent)
            raise
        return BlobInfo(key, size, content_type)


_LINK = -1
_FILE = -2


def _open_folder(parent: int, name: str, *, create: bool) -> int | None:
    """Open (or make) the folder ``name`` in ``parent`` without following a link.

    Returns:
        Its descriptor; None if it is missing and not to be made; ``_LINK`` if it
        is a symbolic link; ``_FILE`` if something else (a file) is in its place.
    """
    for _ in range(2):
        try:
            return os.open(name, _CHILD_DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
        except OSError:
            try:
                mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue  # gone meanwhile: try again
            return _LINK if stat.S_ISLNK(mode) else _FILE
        with contextlib.suppress(FileExistsError):  # made meanwhile by another put
            os.mkdir(name, _DIR_MODE, dir_fd=parent)
    return os.open(name, _CHILD_DIR_FLAGS, dir_fd=parent)


def _prune(folders: Sequence[str], fds: Sequence[int]) -> None:
    """Remove the folders on the way to a key that are empty, deepest first.

    rmdir only ever removes an empty folder, so one a concurrent put is filling
    stays; an empty folder left standing would only stop a put of a file in its place.
    """
    for depth in range(len(folders), 0, -1):
        try:
            os.rmdir(folders[depth - 1], dir_fd=fds[depth - 1])
        except OSError:
            return


def _create_temp(parent: int, name: str) -> tuple[str, int]:
    """Create an empty temporary file beside ``name``; returns its name and descriptor."""
    temp = f"{name}{_TEMP_MARK}{secrets.token_hex(8)}"
    return temp, os.open(temp, _NEW_FILE_FLAGS, _FILE_MODE, dir_fd=parent)


def _write_temp(parent: int, name: str, data: bytes) -> str:
    """Write ``data`` to a new fsynced temporary file beside ``name``; returns its name."""
    temp, fd = _create_temp(parent, name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=parent)
        raise
    return temp


def _meta_json(content_type: str) -> bytes:
    return json.dumps({"content_type": content_type}).encode()


def _read_content_type(parent: int, name: str) -> str:
    """The content type kept beside ``name``; the default when none was kept."""
    try:
        fd = os.open(name + _META_SUFFIX, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return DEFAULT_CONTENT_TYPE
    with os.fdopen(fd, "rb") as meta:
        try:
            value = json.loads(meta.read(64 * 1024)).get("content_type")
        except (ValueError, AttributeError):
            return DEFAULT_CONTENT_TYPE
    return value if isinstance(value, str) else DEFAULT_CONTENT_TYPE


def _walk(folder: int, base: str, start: str, after: str | None) -> Generator[BlobInfo, None, None]:
    """Files under ``folder`` (whose keys begin with ``base``), in key order.

    Keys sort as strings, and ``/`` sorts after ``-`` and ``.``: so a folder ``a``
    sorts as ``a/``, after a file ``a-b`` and ``a.txt``, which makes a depth-first
    walk in that order yield keys in key order.

    Args:
        folder: Descriptor of the folder to walk.
        base: The key prefix of the files directly in it (``""`` or ending in ``/``).
        start: Only entries whose name starts with this (the rest of the prefix).
        after: Only keys after this one.
    """
    entries: list[tuple[str, str, bool]] = []
    with os.scandir(folder) as scan:
        for entry in scan:
            if not entry.name.startswith(start) or entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if is_valid_key(entry.name):
                    entries.append((entry.name + "/", entry.name, True))
            elif entry.is_file(follow_symlinks=False) and is_valid_key(base + entry.name):
                entries.append((entry.name, entry.name, False))
    entries.sort()
    for sort_name, name, is_folder in entries:
        path = base + sort_name
        if is_folder:
            # Every key under path is before `after` unless `after` is under it too.
            if after is not None and path < after and not after.startswith(path):
                continue
            try:
                child = os.open(name, _CHILD_DIR_FLAGS, dir_fd=folder)
            except OSError:
                continue  # removed or replaced since the scan
            try:
                yield from _walk(child, path, "", after)
            finally:
                os.close(child)
        elif after is None or path > after:
            try:
                size = os.stat(name, dir_fd=folder, follow_symlinks=False).st_size
            except FileNotFoundError:
                continue  # deleted since the scan
            yield BlobInfo(path, size, _read_content_type(folder, name))


def _link_refused(key: str, where: str) -> InvalidRequestError:
    return InvalidRequestError(
        "key",
        f"{key!r} passes through {where!r}, a symbolic link in the store's folder; the "
        "store follows no links, so that nothing outside its folder is read or written",
    )


def _in_the_way(key: str, where: str) -> InvalidRequestError:
    return InvalidRequestError(
        "key",
        f"{key!r} cannot be stored: {where!r} is in the way (a folder store cannot keep "
        "a file both as a file and as a folder, such as 'a' and 'a/b'); delete it or "
        "choose another key",
    )
