"""S3BlobStore beyond the contract: encryption, multipart, aborts, presigned URLs, laziness.

Everything runs under moto; nothing leaves the machine.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from annotrain.adapters.s3 import S3BlobStore
from annotrain.domain.errors import AnnotrainError, InvalidRequestError, NotFoundError
from annotrain.ports import BlobInfo

REGION = "us-east-1"
BUCKET = "annotrain-data"
MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture
def s3(aws: None) -> Any:
    """A moto S3 client with the lab's bucket; fake credentials so nothing reaches AWS."""
    import boto3

    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def calls(s3: Any) -> list[str]:
    """The names of the S3 operations the client makes from now on."""
    made: list[str] = []

    def record(model: Any, **_: Any) -> None:
        made.append(model.name)

    s3.meta.events.register("before-call.s3", record)
    return made


def _fail_on(s3: Any, operation: str, code: str = "InternalError") -> None:
    """Make every call of ``operation`` fail as S3 would."""
    from botocore.exceptions import ClientError

    def fail(**_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)

    s3.meta.events.register(f"before-call.s3.{operation}", fail)


def test_every_object_is_stored_with_sse_s3_by_default(s3: Any) -> None:
    store = S3BlobStore(BUCKET, client=s3)
    store.put("logs/run-1.log", io.BytesIO(b"started"))
    store.put("models/ner/1/model.safetensors", io.BytesIO(b"\0" * (9 * MIB)))
    for key in ["logs/run-1.log", "models/ner/1/model.safetensors"]:
        assert s3.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"


def test_a_kms_key_makes_every_object_sse_kms(s3: Any) -> None:
    import boto3

    key_id = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["KeyId"]
    store = S3BlobStore(BUCKET, client=s3, kms_key_id=key_id)
    store.put("logs/run-1.log", io.BytesIO(b"started"))
    store.put("models/ner/1/model.safetensors", io.BytesIO(b"\0" * (9 * MIB)))
    for key in ["logs/run-1.log", "models/ner/1/model.safetensors"]:
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert key_id in head["SSEKMSKeyId"]


def test_files_below_the_threshold_go_up_in_one_put(s3: Any, calls: list[str]) -> None:
    store = S3BlobStore(BUCKET, client=s3, multipart_threshold=5 * MIB)
    info = store.put("logs/run-1.log", io.BytesIO(b"x" * (5 * MIB - 1)))
    assert info.size == 5 * MIB - 1
    assert calls == ["PutObject"]


def test_files_above_the_threshold_go_up_in_parts_of_threshold_size(
    s3: Any, calls: list[str]
) -> None:
    store = S3BlobStore(BUCKET, client=s3, multipart_threshold=5 * MIB)
    payload = bytes(range(256)) * (12 * MIB // 256)
    info = store.put("models/ner/1/model.safetensors", io.BytesIO(payload))
    assert info.size == len(payload)
    assert sorted(calls) == sorted(
        ["CreateMultipartUpload", "UploadPart", "UploadPart", "UploadPart",
         "CompleteMultipartUpload"]
    )  # fmt: skip
    head = s3.head_object(Bucket=BUCKET, Key="models/ner/1/model.safetensors", PartNumber=1)
    assert (head["PartsCount"], head["ContentLength"]) == (3, 5 * MIB)
    with store.open("models/ner/1/model.safetensors") as stream:
        assert stream.read() == payload


def test_a_short_reading_stream_still_fills_whole_parts(s3: Any) -> None:
    # A raw stream returns at most 64 KiB a read; parts must still be 5 MiB (S3
    # refuses smaller ones but the last), and the size decided on the whole file.
    store = S3BlobStore(BUCKET, client=s3, multipart_threshold=5 * MIB)

    class Trickle(_FailingStream):
        def readinto(self, buffer: Any) -> int:
            return 0 if self._left <= 0 else super().readinto(buffer)

    info = store.put("snapshots/1/data.json", Trickle(11 * MIB))  # type: ignore[arg-type]
    assert info.size == 11 * MIB
    assert store.head("snapshots/1/data.json").size == 11 * MIB


def test_a_stream_failing_mid_multipart_aborts_the_upload(s3: Any, calls: list[str]) -> None:
    store = S3BlobStore(BUCKET, client=s3, multipart_threshold=5 * MIB)
    store.put("logs/run-1.log", io.BytesIO(b"old"))
    with pytest.raises(OSError, match="connection reset"):
        store.put("logs/run-1.log", io.BufferedReader(_FailingStream(17 * MIB)))
    assert "AbortMultipartUpload" in calls
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    with store.open("logs/run-1.log") as stream:
        assert stream.read() == b"old"


def test_an_s3_failure_mid_multipart_aborts_and_becomes_a_domain_error(s3: Any) -> None:
    store = S3BlobStore(BUCKET, client=s3, multipart_threshold=5 * MIB)
    store.put("models/ner/1/model.safetensors", io.BytesIO(b"old"))
    _fail_on(s3, "CompleteMultipartUpload")
    with pytest.raises(AnnotrainError, match="InternalError") as exc:
        store.put("models/ner/1/model.safetensors", io.BytesIO(b"\0" * (11 * MIB)))
    assert not isinstance(exc.value, NotFoundError)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert store.head("models/ner/1/model.safetensors").size == 3


def test_access_denied_names_the_key_and_the_bucket(s3: Any) -> None:
    store = S3BlobStore(BUCKET, client=s3)
    _fail_on(s3, "HeadObject", code="AccessDenied")
    with pytest.raises(AnnotrainError, match=r"'logs/run-1.log' in S3 bucket 'annotrain-data'"):
        store.head("logs/run-1.log")


def test_a_missing_bucket_is_a_domain_error(s3: Any) -> None:
    store = S3BlobStore("no-such-bucket", client=s3)
    with pytest.raises(AnnotrainError, match="bucket does not exist"):
        store.put("logs/run-1.log", io.BytesIO(b"x"))


def test_keys_live_under_the_store_prefix_and_come_back_without_it(s3: Any) -> None:
    store = S3BlobStore(BUCKET, client=s3, prefix="lab-1")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/logs/run-0.log", Body=b"not ours")
    store.put("logs/run-1.log", io.BytesIO(b"ours"), content_type="text/plain")
    assert s3.get_object(Bucket=BUCKET, Key="lab-1/logs/run-1.log")["Body"].read() == b"ours"
    page = store.list("")
    assert [(b.key, b.content_type) for b in page.items] == [("logs/run-1.log", "text/plain")]
    with pytest.raises(NotFoundError):
        store.head("elsewhere/logs/run-0.log")


def test_objects_with_keys_outside_the_rules_are_skipped_but_paging_goes_on(s3: Any) -> None:
    store = S3BlobStore(BUCKET, client=s3)
    s3.put_object(Bucket=BUCKET, Key="logs/a.log", Body=b"a")
    s3.put_object(Bucket=BUCKET, Key="logs/b c.log", Body=b"written by another tool")
    s3.put_object(Bucket=BUCKET, Key="logs/d.log", Body=b"d")
    keys, token = [], None
    while True:
        page = store.list("logs/", limit=2, token=token)
        keys += [b.key for b in page.items]
        if (token := page.next_token) is None:
            break
    assert keys == ["logs/a.log", "logs/d.log"]


def test_open_streams_the_body_and_closing_closes_it(s3: Any) -> None:
    store = S3BlobStore(BUCKET, client=s3)
    store.put("logs/run-1.log", io.BytesIO(b"line 1\nline 2\n"))
    stream = store.open("logs/run-1.log")
    assert stream.readline() == b"line 1\n"
    assert stream.read(3) == b"lin"
    stream.close()
    assert stream.closed


@pytest.fixture
def sigv4_s3(s3: Any) -> Any:
    """An S3 client that presigns with SigV4, as the lab builds it (see S3BlobStore)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", region_name=REGION, config=Config(signature_version="s3v4"))


@pytest.mark.parametrize("injected", [True, False])
def test_download_url_is_sigv4_signed_expires_and_downloads_as_an_attachment(
    sigv4_s3: Any, injected: bool
) -> None:
    # Unless told, botocore presigns in us-east-1 with SigV2, which SSE-KMS objects
    # refuse: the client the store builds for itself is told.
    store = S3BlobStore(BUCKET, client=sigv4_s3 if injected else None, prefix="lab-1/")
    url = store.download_url("projects/1/tasks/2/page-1.png", expires_in=300)
    parsed = urlparse(url)
    query = {name: values[0] for name, values in parse_qs(parsed.query).items()}
    assert parsed.path.endswith("lab-1/projects/1/tasks/2/page-1.png")
    assert query["X-Amz-Expires"] == "300"
    assert "X-Amz-Signature" in query
    assert query["response-content-disposition"] == 'attachment; filename="page-1.png"'


def test_download_url_fetches_the_file(sigv4_s3: Any) -> None:
    import requests

    store = S3BlobStore(BUCKET, client=sigv4_s3)
    store.put("projects/1/tasks/2/page-1.png", io.BytesIO(b"\x89PNG"), content_type="image/png")
    response = requests.get(store.download_url("projects/1/tasks/2/page-1.png"), timeout=10)
    assert response.status_code == 200
    assert response.content == b"\x89PNG"


def _policy(fields: dict[str, str]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(fields["policy"]))
    return decoded


def test_upload_url_pins_key_type_size_and_encryption(s3: Any) -> None:
    store = S3BlobStore(BUCKET, client=s3, prefix="lab-1")
    url, fields = store.upload_url(
        "projects/1/tasks/2/page-1.png", content_type="image/png", max_bytes=10 * MIB
    )
    assert BUCKET in url
    assert fields["key"] == "lab-1/projects/1/tasks/2/page-1.png"
    assert fields["Content-Type"] == "image/png"
    assert fields["x-amz-server-side-encryption"] == "AES256"
    conditions = _policy(fields)["conditions"]
    assert ["content-length-range", 1, 10 * MIB] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert {"x-amz-server-side-encryption": "AES256"} in conditions
    assert {"key": "lab-1/projects/1/tasks/2/page-1.png"} in conditions
    assert {"bucket": BUCKET} in conditions
    assert all(isinstance(value, str) for value in fields.values())


def test_upload_url_with_a_kms_key_requires_that_key(s3: Any) -> None:
    store = S3BlobStore(BUCKET, client=s3, kms_key_id="alias/annotrain")
    _, fields = store.upload_url("backups/1.tar", content_type="application/x-tar", max_bytes=1)
    conditions = _policy(fields)["conditions"]
    assert {"x-amz-server-side-encryption": "aws:kms"} in conditions
    assert {"x-amz-server-side-encryption-aws-kms-key-id": "alias/annotrain"} in conditions
    assert fields["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/annotrain"


def test_an_upload_through_the_presigned_post_lands(s3: Any) -> None:
    # moto neither checks the policy nor applies the encryption field of a POST; the
    # two tests above pin what S3 enforces. This one pins that the form is whole.
    import requests

    store = S3BlobStore(BUCKET, client=s3)
    url, fields = store.upload_url("projects/1/tasks/2/p.png", content_type="image/png",
                                   max_bytes=100)  # fmt: skip
    response = requests.post(url, data=fields, files={"file": ("p.png", b"\x89PNG")}, timeout=10)
    assert response.status_code in (200, 204)
    assert store.head("projects/1/tasks/2/p.png") == BlobInfo("projects/1/tasks/2/p.png", 4,
                                                             "image/png")  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": 6 * 1024 * MIB}, "max_bytes"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": 8 * 24 * 3600}, "expires_in"),
        ({"content_type": "image/png\r\nX-Evil: 1"}, "content_type"),
        ({"key": "../up"}, "key"),
    ],
)
def test_upload_url_refuses_what_it_cannot_sign(
    s3: Any, arguments: dict[str, Any], field: str
) -> None:
    store = S3BlobStore(BUCKET, client=s3)
    given = {"key": "a.png", "content_type": "image/png", "max_bytes": 10} | arguments
    with pytest.raises(InvalidRequestError) as exc:
        store.upload_url(given.pop("key"), **given)
    assert exc.value.field == field


def test_the_client_is_built_on_first_use_not_before(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    built: list[tuple[Any, ...]] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return s3

    monkeypatch.setattr(boto3, "client", spy)
    store = S3BlobStore(BUCKET)
    assert built == []
    store.put("logs/run-1.log", io.BytesIO(b"x"))
    store.head("logs/run-1.log")
    assert built == [("s3",)]


def test_importing_the_adapter_loads_no_aws_package() -> None:
    code = (
        "import sys, annotrain.adapters.s3, annotrain.adapters.filesystem; "
        "print(','.join(m for m in ('boto3', 'botocore', 's3transfer') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    "arguments",
    [{"prefix": "../x"}, {"prefix": "/abs"}, {"multipart_threshold": MIB}, {"max_concurrency": 0}],
)
def test_a_store_that_cannot_work_is_refused_when_made(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(arguments))):
        S3BlobStore(BUCKET, **arguments)
