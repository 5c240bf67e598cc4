"""Fixtures for the adapter tests: the store the runners record into.

The runner tests take the store through ``run_store``: the in-memory fake
(tests/fakes.py), and SQLite, so the runners are checked against the real
single-node store too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import InMemoryStore


@pytest.fixture(params=["memory", "sqlite"])
def run_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Runs, server records and usage: in memory, or SQLite in a temporary folder."""
    if request.param == "memory":
        yield InMemoryStore()
        return
    from annotrain.adapters.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "lab.db")
    yield store
    store.close()
