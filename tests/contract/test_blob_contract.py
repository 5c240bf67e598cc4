"""The BlobStore contract: a folder and S3 store, stream and refuse the same way."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest

from annotrain.domain.errors import InvalidRequestError, NotFoundError


class _FailingStream(io.RawIOBase):
    """Gives some bytes, then fails: an upload cut off half-way."""

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


def test_put_then_open_head_and_delete(blobs: Any) -> None:
    info = blobs.put("projects/1/tasks/2/page-1.png", io.BytesIO(b"\x89PNG..."),
                     content_type="image/png")  # fmt: skip
    assert (info.size, info.content_type) == (7, "image/png")
    assert blobs.head("projects/1/tasks/2/page-1.png") == info
    with blobs.open("projects/1/tasks/2/page-1.png") as stream:
        assert stream.read() == b"\x89PNG..."
    blobs.delete("projects/1/tasks/2/page-1.png")
    blobs.delete("projects/1/tasks/2/page-1.png")
    with pytest.raises(NotFoundError):
        blobs.head("projects/1/tasks/2/page-1.png")
    with pytest.raises(NotFoundError):
        blobs.open("projects/1/tasks/2/page-1.png")


def test_a_large_file_streams_in_and_out_unchanged(blobs: Any) -> None:
    payload = os.urandom(1024 * 1024) * 12  # 12 MiB: several S3 multipart parts
    info = blobs.put("models/ner/1/model.safetensors", io.BytesIO(payload))
    assert info.size == len(payload)
    with blobs.open("models/ner/1/model.safetensors") as stream:
        chunks = iter(lambda: stream.read(1 << 20), b"")
        assert b"".join(chunks) == payload


def test_a_failed_upload_leaves_nothing_behind(blobs: Any) -> None:
    blobs.put("logs/run-1.log", io.BytesIO(b"old"))
    with pytest.raises(OSError, match="connection reset"):
        blobs.put("logs/run-1.log", io.BufferedReader(_FailingStream(9 * 1024 * 1024)))
    with blobs.open("logs/run-1.log") as stream:
        assert stream.read() == b"old"
    with pytest.raises(OSError, match="connection reset"):
        blobs.put("logs/run-2.log", io.BufferedReader(_FailingStream(100)))
    assert [b.key for b in blobs.list("logs/").items] == ["logs/run-1.log"]


def test_listing_is_by_prefix_in_key_order_page_by_page(blobs: Any) -> None:
    for name in ["b", "a", "c", "d", "e"]:
        blobs.put(f"snapshots/7/{name}.json", io.BytesIO(b"{}"), content_type="application/json")
    blobs.put("snapshots/70/x.json", io.BytesIO(b"{}"))
    keys, token = [], None
    while True:
        page = blobs.list("snapshots/7/", limit=2, token=token)
        keys += [b.key for b in page.items]
        if (token := page.next_token) is None:
            break
    assert keys == [f"snapshots/7/{n}.json" for n in "abcde"]


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/path", "a/../../b", "", "a//b", "sp ace"])
def test_unsafe_keys_are_refused_naming_the_key(blobs: Any, key: str) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        blobs.put(key, io.BytesIO(b"x"))
    assert exc.value.field == "key"


def test_put_over_a_file_replaces_it_whole_with_its_new_content_type(blobs: Any) -> None:
    blobs.put("snapshots/1/data.json", io.BytesIO(b"[1, 2, 3]"), content_type="application/json")
    info = blobs.put("snapshots/1/data.json", io.BytesIO(b"a,b"), content_type="text/csv")
    assert blobs.head("snapshots/1/data.json") == info
    assert (info.size, info.content_type) == (3, "text/csv")
    with blobs.open("snapshots/1/data.json") as stream:
        assert stream.read() == b"a,b"


def test_an_empty_file_is_a_file(blobs: Any) -> None:
    assert blobs.put("logs/run-1.log", io.BytesIO(b"")).size == 0
    with blobs.open("logs/run-1.log") as stream:
        assert stream.read() == b""
    assert [b.key for b in blobs.list("logs/").items] == ["logs/run-1.log"]


def test_listing_orders_keys_as_strings_even_across_folders(blobs: Any) -> None:
    # "/" sorts after "-", "." and before "0" and "=": a folder's files do not
    # simply come before or after its neighbours' names.
    keys = ["a/b", "a-b", "a.b", "a0", "a/c/d", "a=x", "b", "a/c-e", "A"]
    for key in keys:
        blobs.put(key, io.BytesIO(key.encode()), content_type="text/plain")
    listed = blobs.list("")
    assert [b.key for b in listed.items] == sorted(keys)
    assert listed.items[0] == blobs.head("A")
    paged, token = [], None
    while True:
        page = blobs.list("a", limit=2, token=token)
        paged += [b.key for b in page.items]
        if (token := page.next_token) is None:
            break
    assert paged == sorted(k for k in keys if k.startswith("a"))


def test_a_prefix_may_end_partway_through_a_name(blobs: Any) -> None:
    for key in ["snapshots/7/a.json", "snapshots/70/b.json", "snapshots/7.json", "snapshots/8"]:
        blobs.put(key, io.BytesIO(b"{}"))
    assert [b.key for b in blobs.list("snapshots/7").items] == [
        "snapshots/7.json", "snapshots/7/a.json", "snapshots/70/b.json"
    ]  # fmt: skip
    assert blobs.list("nothing/here/").items == []


def test_the_longest_key_is_1024_bytes(blobs: Any) -> None:
    longest = "/".join(["s" * 200] * 5) + "/" + "k" * 19
    assert len(longest) == 1024
    assert blobs.put(longest, io.BytesIO(b"x")).key == longest
    with pytest.raises(InvalidRequestError) as exc:
        blobs.put(longest + "k", io.BytesIO(b"x"))
    assert exc.value.field == "key"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"token": "not a token!"}, "token"),
        ({"prefix": "../"}, "prefix"),
        ({"prefix": "/logs"}, "prefix"),
    ],
)
def test_listing_refuses_a_bad_limit_token_or_prefix(
    blobs: Any, arguments: dict[str, Any], field: str
) -> None:
    given = {"prefix": "logs/"} | arguments
    with pytest.raises(InvalidRequestError) as exc:
        blobs.list(given.pop("prefix"), **given)
    assert exc.value.field == field


@pytest.mark.parametrize("operation", ["open", "head", "delete"])
def test_every_operation_refuses_unsafe_keys(blobs: Any, operation: str) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        getattr(blobs, operation)("a/../../etc/passwd")
    assert exc.value.field == "key"
    assert "a/../../etc/passwd" in str(exc.value)
