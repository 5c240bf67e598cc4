"""Fixtures for every test; helpers to import live in modules beside this one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shared_data import SHARED_DATA, shared_data_dir


@pytest.fixture
def shared_data() -> Path:
    """The real data folder; skips the test where it is absent."""
    root = shared_data_dir()
    if root is None:
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return root


AWS_REGION = "us-east-1"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials and a region: whatever a test does, it cannot reach real AWS."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": AWS_REGION,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    """A moto AWS account (``mock_aws``) with fake credentials."""
    from moto import mock_aws

    with mock_aws():
        yield
