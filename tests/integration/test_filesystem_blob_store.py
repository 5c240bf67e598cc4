"""FilesystemBlobStore beyond the contract: links, leftovers, permissions, layout on disk."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.domain.errors import InvalidRequestError, NotFoundError
from annotrain.ports import BlobInfo


class _FailingStream(io.RawIOBase):
    """Gives ``size`` bytes, then fails: an upload cut off part-way."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise OSError("connection reset")
        n = min(len(buffer), self._left, 64 * 1024)
        buffer[:n] = b"x" * n
        self._left -= n
        return n


class _ReadSpy(io.BytesIO):
    """A stream that records how much each read asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int | None] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.asked.append(size)
        return super().read(size)


def _everything_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"secret")
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def store(root: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(root)


def test_a_folder_link_inside_the_root_is_refused_and_nothing_lands_outside(
    store: FilesystemBlobStore, root: Path, outside: Path
) -> None:
    store.put("projects/1/tasks/1/a.png", io.BytesIO(b"a"))
    (root / "projects" / "2").symlink_to(outside, target_is_directory=True)
    for call in [
        lambda: store.put("projects/2/tasks/1/a.png", io.BytesIO(b"pwned")),
        lambda: store.put("projects/2/secret.txt", io.BytesIO(b"pwned")),
        lambda: store.open("projects/2/secret.txt"),
        lambda: store.head("projects/2/secret.txt"),
        lambda: store.delete("projects/2/secret.txt"),
    ]:
        with pytest.raises(InvalidRequestError, match="symbolic link") as exc:
            call()
        assert exc.value.field == "key"
    assert _everything_under(outside) == {"secret.txt"}
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert [b.key for b in store.list("projects/").items] == ["projects/1/tasks/1/a.png"]
    assert store.list("projects/2/").items == []


def test_a_file_link_inside_the_root_is_neither_followed_nor_replaced(
    store: FilesystemBlobStore, root: Path, outside: Path
) -> None:
    store.put("logs/run-1.log", io.BytesIO(b"log"))
    (root / "logs" / "run-2.log").symlink_to(outside / "secret.txt")
    with pytest.raises(InvalidRequestError, match="symbolic link"):
        store.open("logs/run-2.log")
    with pytest.raises(InvalidRequestError, match="symbolic link"):
        store.put("logs/run-2.log", io.BytesIO(b"pwned"))
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert (root / "logs" / "run-2.log").is_symlink()
    assert [b.key for b in store.list("logs/").items] == ["logs/run-1.log"]


def test_a_root_that_is_itself_a_link_is_the_operators_choice(
    tmp_path: Path, outside: Path
) -> None:
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)
    store = FilesystemBlobStore(tmp_path / "link")
    store.put("logs/run-1.log", io.BytesIO(b"log"))
    assert (outside / "logs" / "run-1.log").read_bytes() == b"log"


def test_a_failed_put_leaves_no_temporary_file_and_the_old_file_whole(
    store: FilesystemBlobStore, root: Path
) -> None:
    store.put("logs/run-1.log", io.BytesIO(b"old"), content_type="text/plain")
    before = _everything_under(root)
    for size in [0, 100, 3 * 1024 * 1024]:
        with pytest.raises(OSError, match="connection reset"):
            store.put("logs/run-1.log", io.BufferedReader(_FailingStream(size)))
        with pytest.raises(OSError, match="connection reset"):
            store.put("logs/run-2.log", io.BufferedReader(_FailingStream(size)))
        with pytest.raises(OSError, match="connection reset"):
            store.put("snapshots/9/train.conll", io.BufferedReader(_FailingStream(size)))
    assert _everything_under(root) == before  # not even the folders it made
    store.put("snapshots", io.BytesIO(b"a file where the folder was"))
    assert store.head("logs/run-1.log") == BlobInfo("logs/run-1.log", 3, "text/plain")


def test_put_reads_in_bounded_chunks(store: FilesystemBlobStore) -> None:
    stream = _ReadSpy(os.urandom(5 * 1024 * 1024 + 1))
    assert store.put("models/ner/1/model.bin", stream).size == 5 * 1024 * 1024 + 1
    assert all(size is not None and 0 < size <= 1024 * 1024 for size in stream.asked)


def test_files_are_private_to_the_lab_user(store: FilesystemBlobStore, root: Path) -> None:
    old = os.umask(0o022)
    try:
        store.put("projects/1/tasks/2/page-1.png", io.BytesIO(b"png"), content_type="image/png")
    finally:
        os.umask(old)
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_content_types_and_temporary_files_are_never_listed(
    store: FilesystemBlobStore, root: Path
) -> None:
    store.put("logs/run-1.log", io.BytesIO(b"log"), content_type="text/plain")
    (root / "logs" / "run-2.log~tmp-0123456789abcdef").write_bytes(b"left by a crash")
    (root / "logs" / "not a key.txt").write_bytes(b"dropped in by hand")
    (root / "logs" / "run-1.log~meta.json").write_text('{"content_type": "text/plain"}')
    assert [b.key for b in store.list("").items] == ["logs/run-1.log"]
    assert sorted(p.name for p in (root / "logs").iterdir()) == [
        "not a key.txt", "run-1.log", "run-1.log~meta.json", "run-2.log~tmp-0123456789abcdef"
    ]  # fmt: skip


def test_a_file_put_in_by_hand_has_the_default_content_type(
    store: FilesystemBlobStore, root: Path
) -> None:
    (root / "backups").mkdir(parents=True)
    (root / "backups" / "2024-01-01.tar").write_bytes(b"tar")
    assert store.head("backups/2024-01-01.tar") == BlobInfo(
        "backups/2024-01-01.tar", 3, "application/octet-stream"
    )


def test_delete_removes_the_content_type_and_empty_folders(
    store: FilesystemBlobStore, root: Path
) -> None:
    store.put("snapshots/run-1/train.conll", io.BytesIO(b"x"), content_type="text/plain")
    store.put("snapshots/run-2/train.conll", io.BytesIO(b"x"))
    store.delete("snapshots/run-1/train.conll")
    assert _everything_under(root) == {
        "snapshots", "snapshots/run-2", "snapshots/run-2/train.conll",
        "snapshots/run-2/train.conll~meta.json",
    }  # fmt: skip
    store.delete("snapshots/run-2/train.conll")
    assert _everything_under(root) == set()


def test_a_key_cannot_be_both_a_file_and_a_folder(store: FilesystemBlobStore) -> None:
    store.put("logs/run-1", io.BytesIO(b"log"))
    with pytest.raises(InvalidRequestError, match="in the way") as exc:
        store.put("logs/run-1/stderr", io.BytesIO(b"x"))
    assert exc.value.field == "key"
    with pytest.raises(NotFoundError):
        store.head("logs/run-1/stderr")
    store.delete("logs/run-1/stderr")
    store.put("logs/run-2/stderr", io.BytesIO(b"x"))
    with pytest.raises(InvalidRequestError, match="in the way"):
        store.put("logs/run-2", io.BytesIO(b"x"))
    with store.open("logs/run-1") as stream:
        assert stream.read() == b"log"


def test_reading_a_store_that_was_never_written_finds_nothing(root: Path) -> None:
    store = FilesystemBlobStore(root)
    assert store.list("").items == []
    with pytest.raises(NotFoundError):
        store.head("logs/run-1.log")
    store.delete("logs/run-1.log")
    assert not root.exists()


def test_a_folder_is_not_a_file(store: FilesystemBlobStore) -> None:
    store.put("models/ner/1/model.bin", io.BytesIO(b"x"))
    with pytest.raises(NotFoundError):
        store.open("models/ner")
    with pytest.raises(NotFoundError):
        store.head("models/ner")
    store.delete("models/ner")
    assert store.head("models/ner/1/model.bin").size == 1
