"""Zip archives of blobs, streamed as they are made (model downloads, training reports)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator

from annotrain.ports import MAX_PAGE_SIZE, BlobInfo, BlobStore

_CHUNK = 1024 * 1024


def blob_files(blobs: BlobStore, prefix: str) -> Iterator[BlobInfo]:
    """Every blob under ``prefix`` (a folder: a trailing ``/`` is implied), page after page."""
    token: str | None = None
    while True:
        page = blobs.list(prefix.rstrip("/") + "/", limit=MAX_PAGE_SIZE, token=token)
        yield from page.items
        if page.next_token is None:
            return
        token = page.next_token


class _Sink(io.RawIOBase):
    """A write-only stream whose bytes are taken out as the archive grows."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def zip_stream(
    blobs: BlobStore,
    members: Iterable[tuple[str, str]],
    texts: Iterable[tuple[str, bytes]] = (),
) -> Iterator[bytes]:
    """A zip archive's bytes, a piece at a time: never the whole archive in memory.

    Args:
        blobs: Where the blobs are read from.
        members: ``(name in the archive, blob key)`` pairs, copied in a chunk at a time.
        texts: ``(name in the archive, bytes)`` pairs written first (small files).
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in texts:
            archive.writestr(name, data)
            if chunk := sink.take():
                yield chunk
        for name, key in members:
            with blobs.open(key) as source, archive.open(name, "w") as target:
                while piece := source.read(_CHUNK):
                    target.write(piece)
                    if chunk := sink.take():
                        yield chunk
    if chunk := sink.take():
        yield chunk
