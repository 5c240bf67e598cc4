"""The rules every blob store applies to keys, prefixes, content types and page tokens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotrain.adapters.blob_keys import (
    check_content_type,
    check_key,
    check_limit,
    check_prefix,
    key_after,
    page_token,
)
from annotrain.domain.errors import InvalidRequestError

SEGMENT = st.text("abcXYZ019-_.=", min_size=1, max_size=20).filter(lambda s: s not in {".", ".."})
KEYS = st.lists(SEGMENT, min_size=1, max_size=6).map("/".join)


@pytest.mark.parametrize(
    "key",
    [
        "projects/3/tasks/17/page-1.png",
        "models/ner/2/model.safetensors",
        "snapshots/run=7/train.conll",
        "logs/run_1.log",
        ".hidden/...",
        "a" * 200,
    ],
)
def test_keys_of_the_layout_are_accepted(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "is empty"),
        ("sp ace", "contains ' '"),
        ("caf\u00e9.png", "contains '\u00e9'"),
        ("a\\b", "contains '\\\\'"),
        ("page~meta.json", "contains '~'"),
        ("/abs/path", "starts with '/'"),
        ("a//b", "has an empty segment"),
        ("logs/", "has an empty segment"),
        ("a/./b", "has a '.' segment"),
        ("a/../../b", "has a '..' segment"),
        ("a" * 201, "has a segment of 201 bytes"),
        ("a/" * 512 + "b", "is 1025 bytes long"),
    ],
)
def test_a_refused_key_is_named_with_what_is_wrong_and_what_is_allowed(
    key: str, reason: str
) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        check_key(key)
    assert exc.value.field == "key"
    assert f"{key!r} {reason}" in str(exc.value)
    assert "letters, digits and -_.=/" in str(exc.value)


def test_a_key_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="not a string"):
        check_key(b"logs/run-1.log")


@pytest.mark.parametrize("prefix", ["", "logs/", "snapshots/7", "a/.", "a/..", "a/b/"])
def test_a_prefix_is_the_start_of_a_key(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/logs", "../", "a/../b", "a//", "sp ace/", "a/b c"])
def test_a_prefix_that_no_key_starts_with_is_refused(prefix: str) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        check_prefix(prefix)
    assert exc.value.field == "prefix"


@pytest.mark.parametrize(
    "content_type",
    ["application/octet-stream", "image/png", "application/json; charset=utf-8", "text/x-conll"],
)
def test_media_types_are_accepted(content_type: str) -> None:
    assert check_content_type(content_type) == content_type


@pytest.mark.parametrize(
    "content_type",
    ["", "png", "image/png\r\nX-Injected: 1", "text/plain; \u00e9", "a/" + "b" * 300],
)
def test_what_is_not_a_media_type_is_refused(content_type: str) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        check_content_type(content_type)
    assert exc.value.field == "content_type"


@pytest.mark.parametrize("limit", [0, -1, 1001, True, 2.5])
def test_a_page_size_is_1_to_1000(limit: object) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        check_limit(limit)
    assert exc.value.field == "limit"


@given(KEYS)
def test_a_token_gives_back_the_key_it_was_made_from(key: str) -> None:
    assert key_after(page_token(key)) == key
    assert key_after(None) is None


@pytest.mark.parametrize("token", ["not a token!", "\u00e9", "bG9ncy8===", "bG9ncy8"[:-1]])
def test_a_token_no_listing_gave_is_refused(token: str) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        key_after(token)
    assert exc.value.field == "token"
