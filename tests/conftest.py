"""Fixtures for every test; helpers to import live in modules beside this one."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time (pytest swaps it per test)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def lambda_output(
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the Lambda handlers print (Powertools' JSON log lines and EMF blobs), parsed.

    The functions' Powertools logger keeps the stream it was made with (the first
    test's): during this test it writes to the current stdout, which capsys reads.
    """
    from lambdas.observability import logger

    handler = logger().registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous, handler.stream = handler.stream, _CurrentStdout()

    def lines() -> list[dict[str, Any]]:
        out = capsys.readouterr().out
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    try:
        yield lines
    finally:
        handler.stream = previous


@pytest.fixture(autouse=True)
def _lab_loggers_restored() -> Iterator[None]:
    """Keep a test's Lambda invocation from leaving the lab's loggers on Powertools' handler.

    In a function, ``lambdas.observability`` routes the ``annotrain`` loggers through
    its JSON handler (not propagating to the root); in this process other tests read
    those loggers from the root (``caplog``).
    """
    lab = logging.getLogger("annotrain")
    handlers, propagate, level = list(lab.handlers), lab.propagate, lab.level
    yield
    lab.handlers[:] = handlers
    lab.propagate = propagate
    lab.setLevel(level)  # through setLevel: it clears logging's per-logger level caches
