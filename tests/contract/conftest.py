"""Adapters under contract: every test here runs against each adapter of its port.

The AWS adapters run under moto (``mock_aws``); nothing leaves the machine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

AWS_REGION = "us-east-1"


def _one_request_at_a_time(client: Any) -> Any:
    """Make moto apply each DynamoDB request atomically, as DynamoDB does.

    DynamoDB evaluates a condition and writes the item as one step. moto's
    in-memory table has no lock: two threads' conditional writes can interleave
    inside it and both pass their condition, which real DynamoDB never allows.
    Serialising the requests gives moto that atomicity back, so the concurrency
    tests exercise the adapter's conditions rather than moto's missing lock.
    """
    lock = threading.Lock()
    send = client._make_api_call

    def atomically(operation: str, params: Any) -> Any:
        with lock:
            return send(operation, params)

    client._make_api_call = atomically
    return client


def _dynamodb_store(tmp_path: Path) -> Any:
    import boto3

    from annotrain.adapters.dynamodb import DynamoDbStore, create_table

    dynamodb = _one_request_at_a_time(boto3.client("dynamodb", region_name=AWS_REGION))
    s3 = boto3.client("s3", region_name=AWS_REGION)
    s3.create_bucket(Bucket="annotrain-items")
    create_table(dynamodb, "annotrain")
    return DynamoDbStore(
        "annotrain", client=dynamodb, s3_client=s3, overflow_bucket="annotrain-items"
    )


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A Store: SQLite in a temporary folder, or DynamoDB (+ S3 for big items) under moto."""
    if request.param == "sqlite":
        from annotrain.adapters.sqlite import SqliteStore

        sqlite_store = SqliteStore(tmp_path / "lab.db")
        yield sqlite_store
        sqlite_store.close()
    else:
        request.getfixturevalue("aws")
        yield _dynamodb_store(tmp_path)


@pytest.fixture(params=["filesystem", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A BlobStore: a folder, or an S3 bucket under moto."""
    if request.param == "filesystem":
        from annotrain.adapters.filesystem import FilesystemBlobStore

        yield FilesystemBlobStore(tmp_path / "blobs")
    else:
        request.getfixturevalue("aws")
        import boto3

        from annotrain.adapters.s3 import S3BlobStore

        s3 = boto3.client("s3", region_name=AWS_REGION)
        s3.create_bucket(Bucket="annotrain-data")
        yield S3BlobStore("annotrain-data", client=s3)
