"""The serverless lab's blob store: objects in an S3 bucket, and presigned URLs to them.

Guarantees:

- Every object is encrypted at rest: SSE-KMS with the given key, else SSE-S3
  (AES256). Presigned uploads carry the same encryption, enforced by their policy.
- A put streams: up to the multipart threshold it is one ``PutObject``; above it a
  multipart upload of threshold-sized parts, a few in memory at a time. S3 shows an
  object only once it is complete, so readers see the old object or the new one,
  whole; an upload that fails is aborted, leaving no parts (nothing to pay for) and
  the previous object as it was.
- Errors from S3 become the domain's: a missing object :class:`NotFoundError`,
  anything else an :class:`AnnotrainError` saying what failed and where.

boto3 is imported, and the client built, on first use, never at import.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO

from annotrain.adapters.blob_keys import (
    check_content_type,
    check_key,
    check_limit,
    check_prefix,
    is_valid_key,
    key_after,
    page_token,
)
from annotrain.domain.errors import AnnotrainError, InvalidRequestError, NotFoundError
from annotrain.ports import BlobInfo, Page

if TYPE_CHECKING:
    from types import TracebackType

    from _typeshed import WriteableBuffer

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MIB = 1024 * 1024
MIN_PART_BYTES = 5 * MIB  # S3's smallest part (but the last)
MAX_POST_BYTES = 5 * 1024 * MIB  # S3's largest single upload, which a POST is
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's longest validity
_READ_BUFFER_BYTES = MIB
# Listings fetch each object's content type with HeadObject; this many at once,
# botocore's default connection pool size.
_HEAD_CONCURRENCY = 10
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_ACCESS_DENIED_CODES = frozenset({"403", "AccessDenied", "Forbidden", "KMS.AccessDeniedException"})
# Inside the class, `list` is the method.
_BlobInfos = list[BlobInfo]


class S3BlobStore:
    """BlobStore and PresignedUrls on an S3 bucket, for the serverless lab.

    Args:
        bucket: The bucket's name.
        client: A boto3 S3 client (typed Any: boto3 ships no type stubs, and we add
            no dependency for them); built on first use when None. Build one given
            here with ``Config(signature_version="s3v4")``: unless told, botocore
            presigns with SigV2 in us-east-1, and S3 refuses SigV2 for SSE-KMS objects.
        prefix: Where in the bucket the store's keys live (``"lab/"``); keys are
            returned without it.
        kms_key_id: A KMS key id or ARN: encrypt with SSE-KMS under it; None for
            SSE-S3 (AES256).
        multipart_threshold: Files of this size or more go up as multipart uploads
            of parts this size (at least 5 MiB, S3's smallest part).
        max_concurrency: Parts uploaded at once; also how many parts a put holds in
            memory at most.

    Raises:
        ValueError: The prefix, threshold or concurrency cannot be used.
    """

    def __init__(
        self,
        bucket: str,
        *,
        client: Any | None = None,
        prefix: str = "",
        kms_key_id: str | None = None,
        multipart_threshold: int = 8 * MIB,
        max_concurrency: int = 4,
    ) -> None:
        if prefix and not is_valid_key(prefix.removesuffix("/")):
            raise ValueError(f"prefix {prefix!r} must be empty or a valid key, such as 'lab/'")
        if multipart_threshold < MIN_PART_BYTES:
            raise ValueError(f"multipart_threshold must be at least {MIN_PART_BYTES} bytes")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._bucket = bucket
        self._client = client
        self._client_lock = threading.Lock()
        self._prefix = prefix.removesuffix("/") + "/" if prefix else ""
        self._kms_key_id = kms_key_id
        self._multipart_threshold = multipart_threshold
        self._max_concurrency = max_concurrency
        self._transfer_config: Any = None

    def put(
        self, key: str, stream: BinaryIO, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> BlobInfo:
        """Store a file read from ``stream``; it appears whole or not at all.

        ``stream`` is read in order, in parts, by s3transfer's worker thread.

        Raises:
            InvalidRequestError: The key or content type is invalid.
            OSError: Reading ``stream`` failed (as raised by it); the upload was aborted.
            AnnotrainError: S3 refused or failed the upload.
        """
        check_key(key)
        check_content_type(content_type)
        source = _CountingReader(stream)
        with self._s3_errors("store", key):
            self._s3.upload_fileobj(
                source,
                self._bucket,
                self._object_key(key),
                ExtraArgs={"ContentType": content_type, **self._encryption_args()},
                Config=self._transfer(),
            )
        return BlobInfo(key, source.bytes_read, content_type)

    def open(self, key: str) -> BinaryIO:
        """A buffered binary stream of the object, read as it is consumed; the caller closes it.

        Raises:
            NotFoundError: No object has this key.
            InvalidRequestError: The key is invalid.
            AnnotrainError: S3 refused or failed (also while reading).
        """
        check_key(key)
        with self._s3_errors("read", key):
            response = self._s3.get_object(Bucket=self._bucket, Key=self._object_key(key))
        raw = _BodyReader(response["Body"], lambda: self._s3_errors("read", key))
        return io.BufferedReader(raw, buffer_size=_READ_BUFFER_BYTES)

    def head(self, key: str) -> BlobInfo:
        """Size and content type.

        Raises:
            NotFoundError: No object has this key.
            InvalidRequestError: The key is invalid.
            AnnotrainError: S3 refused or failed.
        """
        check_key(key)
        with self._s3_errors("look up", key):
            response = self._s3.head_object(Bucket=self._bucket, Key=self._object_key(key))
        return BlobInfo(
            key, int(response["ContentLength"]), response.get("ContentType", DEFAULT_CONTENT_TYPE)
        )

    def delete(self, key: str) -> None:
        """Delete an object; deleting one that does not exist does nothing.

        Raises:
            InvalidRequestError: The key is invalid.
            AnnotrainError: S3 refused or failed.
        """
        check_key(key)
        with self._s3_errors("delete", key):
            self._s3.delete_object(Bucket=self._bucket, Key=self._object_key(key))

    def list(self, prefix: str, *, limit: int = 100, token: str | None = None) -> Page[BlobInfo]:
        """Objects whose key starts with ``prefix``, by key, ``limit`` at a time.

        S3 lists keys and sizes only, so each object's content type costs a
        ``HeadObject`` (several at once). Objects whose keys are not valid keys
        (written by other tools) are skipped; so a page may hold fewer than
        ``limit`` items, even none, and still have a next token.

        Raises:
            InvalidRequestError: The prefix, limit or token is invalid.
            AnnotrainError: S3 refused or failed.
        """
        check_prefix(prefix)
        check_limit(limit)
        after = key_after(token)
        request: dict[str, Any] = {
            "Bucket": self._bucket,
            "Prefix": self._prefix + prefix,
            "MaxKeys": limit,
        }
        if after is not None:
            request["StartAfter"] = self._object_key(after)
        with self._s3_errors("list", prefix):
            response = self._s3.list_objects_v2(**request)
        keys = [item["Key"][len(self._prefix) :] for item in response.get("Contents", [])]
        infos = self._head_each([key for key in keys if is_valid_key(key)])
        more = bool(response.get("IsTruncated")) and bool(keys)
        return Page(infos, page_token(keys[-1]) if more else None)

    def download_url(self, key: str, *, expires_in: int = 900) -> str:
        """A URL that downloads the object as an attachment, for ``expires_in`` seconds.

        Signing makes no request: the URL is made whether or not the object exists.
        It stops working sooner if the credentials that signed it expire first.

        Raises:
            InvalidRequestError: The key or expiry is invalid.
        """
        check_key(key)
        _check_expiry(expires_in)
        filename = key.rpartition("/")[2]  # key characters need no quoting
        with self._s3_errors("sign a download of", key):
            url: str = self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": self._object_key(key),
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=expires_in,
            )
        return url

    def upload_url(
        self, key: str, *, content_type: str, max_bytes: int, expires_in: int = 900
    ) -> tuple[str, dict[str, str]]:
        """A URL and form fields for a browser to POST one file of 1 to ``max_bytes`` bytes.

        The policy pins the key, the content type and the encryption, and bounds the
        size; S3 refuses any upload that strays from them.

        Raises:
            InvalidRequestError: The key, content type, size or expiry is invalid.
        """
        check_key(key)
        check_content_type(content_type)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
            raise InvalidRequestError("max_bytes", f"{max_bytes!r} is not a whole number")
        if not 1 <= max_bytes <= MAX_POST_BYTES:
            raise InvalidRequestError(
                "max_bytes", f"{max_bytes} is out of range: give 1 to {MAX_POST_BYTES} bytes"
            )
        _check_expiry(expires_in)
        fields = {"Content-Type": content_type, **self._encryption_fields()}
        conditions: list[Any] = [["content-length-range", 1, max_bytes]]
        conditions += [{name: value} for name, value in fields.items()]
        with self._s3_errors("sign an upload of", key):
            post = self._s3.generate_presigned_post(
                Bucket=self._bucket,
                Key=self._object_key(key),
                Fields=fields,
                Conditions=conditions,
                ExpiresIn=expires_in,
            )
        return str(post["url"]), {name: str(value) for name, value in post["fields"].items()}

    @property
    def _s3(self) -> Any:
        """The S3 client, built on first use (boto3 imported then, not before)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    # boto3 ships no type stubs and we add no dependency for them.
                    import boto3  # type: ignore[import-untyped]
                    from botocore.config import Config  # type: ignore[import-untyped]

                    # SigV4 everywhere: objects under SSE-KMS can only be fetched
                    # through SigV4-presigned URLs.
                    self._client = boto3.client("s3", config=Config(signature_version="s3v4"))
        return self._client

    def _transfer(self) -> Any:
        """The s3transfer settings for uploads (boto3's TransferConfig), made once."""
        if self._transfer_config is None:
            from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

            config = TransferConfig(
                multipart_threshold=self._multipart_threshold,
                multipart_chunksize=self._multipart_threshold,
                max_concurrency=self._max_concurrency,
                # The classic manager: the CRT one, where installed, ignores these.
                preferred_transfer_client="classic",
            )
            # Non-seekable sources (ours) are read a part at a time into memory: bound it.
            config.max_in_memory_upload_chunks = self._max_concurrency
            self._transfer_config = config
        return self._transfer_config

    def _object_key(self, key: str) -> str:
        full = self._prefix + key
        if len(full.encode()) > 1024:
            raise InvalidRequestError(
                "key", f"{key!r} is too long for this store: with its prefix it passes 1024 bytes"
            )
        return full

    def _encryption_args(self) -> dict[str, str]:
        if self._kms_key_id is None:
            return {"ServerSideEncryption": "AES256"}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self._kms_key_id}

    def _encryption_fields(self) -> dict[str, str]:
        if self._kms_key_id is None:
            return {"x-amz-server-side-encryption": "AES256"}
        return {
            "x-amz-server-side-encryption": "aws:kms",
            "x-amz-server-side-encryption-aws-kms-key-id": self._kms_key_id,
        }

    def _head_each(self, keys: Sequence[str]) -> _BlobInfos:
        """Each key's info, in order, leaving out those deleted since they were listed."""

        def head_or_none(key: str) -> BlobInfo | None:
            try:
                return self.head(key)
            except NotFoundError:
                return None

        if len(keys) <= 1:
            found = [head_or_none(key) for key in keys]
        else:
            workers = min(_HEAD_CONCURRENCY, len(keys))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                found = [*pool.map(head_or_none, keys)]
        return [info for info in found if info is not None]

    def _s3_errors(self, action: str, key: str) -> _S3Errors:
        return _S3Errors(self._bucket, action, key)


class _S3Errors:
    """Turns botocore's errors inside it into the domain's; lets anything else through.

    Args:
        bucket: The bucket, for messages.
        action: What was being done, as a verb (``"read"``), for messages.
        key: The key (or prefix) it was done to.
    """

    def __init__(self, bucket: str, action: str, key: str) -> None:
        self._bucket = bucket
        self._action = action
        self._key = key

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            return
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )

        where = f"{self._key!r} in S3 bucket {self._bucket!r}"
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            message = str(error.response.get("Error", {}).get("Message", "")).strip()
            if code in _NOT_FOUND_CODES:
                raise NotFoundError("blob", self._key) from error
            if code == "NoSuchBucket":
                raise AnnotrainError(
                    f"could not {self._action} {where}: the bucket does not exist"
                ) from error
            if code in _ACCESS_DENIED_CODES:
                raise AnnotrainError(
                    f"could not {self._action} {where}: access denied; the lab's role needs "
                    "permission on the bucket (and its KMS key, if any)"
                ) from error
            if code == "EntityTooLarge":
                raise InvalidRequestError(
                    "stream", f"too large to {self._action} {where}: {message}"
                ) from error
            raise AnnotrainError(
                f"could not {self._action} {where}: S3 said {code or 'error'}: {message}"
            ) from error
        if isinstance(error, BotoCoreError):
            raise AnnotrainError(f"could not {self._action} {where}: {error}") from error


class _CountingReader:
    """The source s3transfer reads a put from: whole reads of the caller's stream, counted.

    It offers no ``seek``, on purpose: s3transfer then reads parts in order into
    memory, ``max_in_memory_upload_chunks`` at most, and never needs the size up
    front. Each read returns the bytes asked for unless the stream ends, as
    s3transfer expects: a short read would pass for the end of the file.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        chunks: list[bytes] = []
        wanted = -1 if size is None or size < 0 else size
        got = 0
        while wanted < 0 or got < wanted:
            chunk = self._stream.read(_READ_BUFFER_BYTES if wanted < 0 else wanted - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        self.bytes_read += got
        return b"".join(chunks)


class _BodyReader(io.RawIOBase):
    """An S3 response body as a raw stream, so ``io.BufferedReader`` can serve it.

    Args:
        body: botocore's ``StreamingBody``.
        errors: Makes the context that turns botocore's errors into the domain's.
    """

    def __init__(self, body: Any, errors: Callable[[], _S3Errors]) -> None:
        super().__init__()
        self._body = body
        self._errors = errors

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with self._errors():
            data: bytes = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _check_expiry(expires_in: int) -> None:
    if isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise InvalidRequestError("expires_in", f"{expires_in!r} is not a whole number of seconds")
    if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
        raise InvalidRequestError(
            "expires_in", f"{expires_in} is out of range: give 1 to {MAX_PRESIGN_SECONDS} seconds"
        )
