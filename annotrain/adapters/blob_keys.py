"""What every blob store accepts: keys, prefixes, content types, page sizes and tokens.

Both blob store adapters check their arguments here first, so a folder and a bucket
refuse the same things with the same words. The rules are the ones
:class:`~annotrain.ports.BlobStore` states, made exact:

- A key is a relative path of ASCII letters, digits and ``-_.=/``: segments joined by
  ``/``, none empty, none ``.`` or ``..``, so no leading, trailing or doubled ``/``.
- A key is at most :data:`MAX_KEY_BYTES` bytes (S3's limit) and each segment at most
  :data:`MAX_SEGMENT_BYTES` (file systems cap a name at 255 bytes, and the folder
  store adds suffixes to the names of its temporary and content-type files).

Listings page by key: a token is the last key of the page before, encoded, so a page
never skips or repeats a file however the files around it change.
"""

from __future__ import annotations

import base64
import binascii
import re

from annotrain.domain.errors import InvalidRequestError
from annotrain.ports import MAX_PAGE_SIZE

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 200
MAX_CONTENT_TYPE_LENGTH = 255

_ALLOWED = "ASCII letters, digits and -_.=/"
_DISALLOWED_CHARACTER = re.compile(r"[^A-Za-z0-9._=/-]")
# type/subtype with optional parameters; printable ASCII only, so it is safe as an
# HTTP header and in a JSON file alike.
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(?: *;[ -~]*)?")
_RULE = (
    f"a key is a relative path of {_ALLOWED}, with no empty, '.' or '..' segment, "
    f"at most {MAX_KEY_BYTES} bytes in all and {MAX_SEGMENT_BYTES} bytes a segment"
)


def check_key(key: object) -> str:
    """Return ``key`` if it is a valid blob key.

    Args:
        key: What a caller gave as a key.

    Returns:
        The key, unchanged.

    Raises:
        InvalidRequestError: On field ``key``, naming the key, what is wrong with it and
            what a key may be.
    """
    if not isinstance(key, str):
        raise InvalidRequestError("key", f"{key!r} is not a string; {_RULE}")
    reason = _key_problem(key)
    if reason is not None:
        raise InvalidRequestError("key", f"{key!r} {reason}; {_RULE}")
    return key


def is_valid_key(key: str) -> bool:
    """Whether ``key`` is a valid blob key: for listings, which skip anything else."""
    return _key_problem(key) is None


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if it can start a valid key.

    A prefix is empty (everything), a run of whole segments ending in ``/``
    (``snapshots/7/``), or such a run followed by the start of a segment
    (``snapshots/7`` also matches ``snapshots/70/…``).

    Args:
        prefix: What a caller gave as a listing prefix.

    Returns:
        The prefix, unchanged.

    Raises:
        InvalidRequestError: On field ``prefix``, naming it and saying what is allowed.
    """
    if not isinstance(prefix, str):
        raise InvalidRequestError("prefix", f"{prefix!r} is not a string")
    rule = f"a prefix is the start of a key ({_RULE}), or empty for every key"
    if prefix == "":
        return prefix
    if prefix.startswith("/"):
        raise InvalidRequestError("prefix", f"{prefix!r} starts with '/'; {rule}")
    head, _, last = prefix.rpartition("/")
    if head:
        reason = _key_problem(head)
        if reason is not None:
            raise InvalidRequestError("prefix", f"{prefix!r} {reason}; {rule}")
    bad = _DISALLOWED_CHARACTER.search(last)
    if bad is not None:
        raise InvalidRequestError("prefix", f"{prefix!r} contains {bad.group()!r}; {rule}")
    if len(prefix.encode()) > MAX_KEY_BYTES:
        raise InvalidRequestError("prefix", f"{prefix!r} is longer than any key; {rule}")
    return prefix


def check_content_type(content_type: object) -> str:
    """Return ``content_type`` if it is a media type (``type/subtype``, parameters allowed).

    Raises:
        InvalidRequestError: On field ``content_type``, naming it and saying what is allowed.
    """
    if (
        not isinstance(content_type, str)
        or len(content_type) > MAX_CONTENT_TYPE_LENGTH
        or _CONTENT_TYPE.fullmatch(content_type) is None
    ):
        raise InvalidRequestError(
            "content_type",
            f"{content_type!r} is not a media type: write type/subtype in printable ASCII "
            f"(such as image/png or application/json; charset=utf-8), at most "
            f"{MAX_CONTENT_TYPE_LENGTH} characters",
        )
    return content_type


def check_limit(limit: object) -> int:
    """Return ``limit`` if it is a page size from 1 to :data:`~annotrain.ports.MAX_PAGE_SIZE`.

    Raises:
        InvalidRequestError: On field ``limit``.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequestError(
            "limit", f"{limit!r} is not a page size: give a whole number from 1 to {MAX_PAGE_SIZE}"
        )
    return limit


def page_token(last_key: str) -> str:
    """The token that continues a listing after ``last_key``."""
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def key_after(token: str | None) -> str | None:
    """The key a listing continues after, from a token :func:`page_token` made.

    Args:
        token: A ``next_token`` a listing returned, or None for the first page.

    Returns:
        The last key of the page before, or None for the first page.

    Raises:
        InvalidRequestError: On field ``token``, when it is not a token a listing gave.
    """
    if token is None:
        return None
    invalid = InvalidRequestError(
        "token", f"{token!r} is not a token a listing gave: pass back next_token unchanged"
    )
    if not isinstance(token, str) or not token.isascii():
        raise invalid
    try:
        key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    # Any key a listing returned comes back, even one it skipped as invalid (S3 may
    # hold keys written by other tools): it only says where to continue.
    if len(key.encode()) > MAX_KEY_BYTES or page_token(key) != token:
        raise invalid
    return key


def _key_problem(key: str) -> str | None:
    """What makes ``key`` invalid, in words, or None when it is valid."""
    if key == "":
        return "is empty"
    bad = _DISALLOWED_CHARACTER.search(key)
    if bad is not None:
        return f"contains {bad.group()!r}"
    if len(key) > MAX_KEY_BYTES:  # ASCII by now: one byte a character
        return f"is {len(key)} bytes long"
    if key.startswith("/"):
        return "starts with '/'"
    for segment in key.split("/"):
        if segment == "":
            return "has an empty segment"
        if segment in (".", ".."):
            return f"has a {segment!r} segment"
        if len(segment) > MAX_SEGMENT_BYTES:
            return f"has a segment of {len(segment)} bytes"
    return None
