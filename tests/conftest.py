"""Fixtures for every test; helpers to import live in modules beside this one."""

from __future__ import annotations

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
