"""The SQLite store's optional TaskCounting: counts and numbered pages in one query each."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.errors import InvalidRequestError, NotFoundError
from annotrain.domain.records import Project
from annotrain.domain.tasks import Completion, ResultItem, Task
from annotrain.ports import TaskCounting, TaskQuery

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "a.db") as opened:
        yield opened


def _tasks(count: int) -> list[Task]:
    span = ResultItem("r1", "labels", "label", "text", {"start": 0, "end": 1, "labels": ["X"]})
    return [
        Task(
            None,
            {"text": f"t{i}"},
            (Completion(None, (span,), author="ana"),) if i % 2 else (),
            tags=("Train",) if i % 3 == 0 else ("Test",),
        )
        for i in range(count)
    ]


def test_counting_and_numbered_pages_agree_with_the_token_listing(store: SqliteStore) -> None:
    assert isinstance(store, TaskCounting)
    project = store.create_project(Project(0, "p", "<View/>", "ana", NOW))
    store.add_tasks(project.id, _tasks(10))
    other = store.create_project(Project(0, "q", "<View/>", "ana", NOW))
    store.add_tasks(other.id, _tasks(3))
    for query in (None, TaskQuery(tags=frozenset({"Train"})), TaskQuery(has_completions=True)):
        every = list(store.iter_tasks(project.id, query))
        assert store.count_tasks(project.id, query) == len(every)
        for offset in range(0, 11, 3):
            page = store.list_tasks_at(project.id, query, offset=offset, limit=3)
            assert page == every[offset : offset + 3]


def test_counting_a_missing_project_is_not_found(store: SqliteStore) -> None:
    with pytest.raises(NotFoundError):
        store.count_tasks(99)
    with pytest.raises(NotFoundError):
        store.list_tasks_at(99, offset=0)


def test_a_negative_offset_is_refused(store: SqliteStore) -> None:
    project = store.create_project(Project(0, "p", "<View/>", "ana", NOW))
    with pytest.raises(InvalidRequestError):
        store.list_tasks_at(project.id, offset=-1)
