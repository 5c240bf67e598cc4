"""What is SQLite's own in the single-node store: the file, its schema, its transactions.

The behaviour every Store shares is pinned by tests/contract/test_store_contract.py;
these tests pin what only a SQLite file has: migrations, reopening, WAL, atomic
bulk writes, many threads on one file.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from annotrain.adapters.sqlite import SqliteStore, UnusableDatabaseError
from annotrain.domain.errors import InvalidRequestError, NotFoundError, StoreUnavailableError
from annotrain.domain.records import Project, User, UserRole
from annotrain.domain.tasks import Completion, Prediction, ResultItem, Task
from annotrain.ports import TaskQuery

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
CONFIG = '<View><Text name="text" value="$text"/></View>'


def shipped_migrations() -> list[str]:
    folder = resources.files("annotrain.adapters").joinpath("sqlite_migrations")
    return sorted(
        entry.name for entry in folder.iterdir() if re.match(r"\d{4}_.*\.sql$", entry.name)
    )


def task(text: str, author: str = "ana") -> Task:
    span = ResultItem("r1", "labels", "label", "text", {"start": 0, "end": 2, "labels": ["X"]})
    return Task(None, {"text": text}, (Completion(None, (span,), author=author),), tags=("Train",))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "lab.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(db_path) as opened:
        yield opened


def project_in(store: SqliteStore) -> int:
    return store.create_project(Project(0, "notes", CONFIG, "ana", NOW)).id


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to the file, to look at it the way an operator would."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


# --- the file and its schema ---------------------------------------------------


def test_a_new_file_gets_every_migration_once_and_records_it(db_path: Path) -> None:
    SqliteStore(db_path).close()
    with raw(db_path) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        recorded = db.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
    migrations = shipped_migrations()
    assert version == len(migrations)
    assert [(v, name) for v, name, _ in recorded] == list(enumerate(migrations, start=1))

    SqliteStore(db_path).close()  # opening again applies nothing
    with raw(db_path) as db:
        assert db.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall() == (
            recorded
        )


def test_reopening_a_file_keeps_what_was_stored(db_path: Path) -> None:
    with SqliteStore(db_path) as first:
        project_id = project_in(first)
        stored = first.add_tasks(project_id, [task("one"), task("two")])
        first.create_user(User("ana", UserRole.ADMIN, NOW))
    with SqliteStore(db_path) as again:
        assert list(again.iter_tasks(project_id)) == stored
        assert again.get_user("ana") == User("ana", UserRole.ADMIN, NOW, 1)
        (third,) = again.add_tasks(project_id, [task("three")])
    assert isinstance(third.id, int)
    assert third.id > max(t.id for t in stored if isinstance(t.id, int))


def test_a_database_from_a_newer_annotrain_is_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    newer = len(shipped_migrations()) + 1
    with raw(db_path) as db:
        db.execute(f"PRAGMA user_version = {newer}")
    with pytest.raises(UnusableDatabaseError, match=f"version {newer}.*newer annotrain"):
        SqliteStore(db_path)


def test_a_file_that_is_not_a_database_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"this is a CSV file, not a database\n" * 100)
    with pytest.raises(UnusableDatabaseError, match=str(db_path.name)):
        SqliteStore(db_path)


def test_the_file_is_in_write_ahead_log_mode(store: SqliteStore, db_path: Path) -> None:
    project_in(store)
    with raw(db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db_path.with_name(db_path.name + "-wal").exists()


def test_a_closed_store_cannot_be_used(db_path: Path) -> None:
    store = SqliteStore(db_path)
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        store.list_projects()


# --- all or nothing ------------------------------------------------------------


def test_a_task_that_is_not_json_is_refused_before_anything_is_written(
    store: SqliteStore,
) -> None:
    project_id = project_in(store)
    (before,) = store.add_tasks(project_id, [task("before")])
    bad = Task(None, {"text": "x", "when": datetime(2026, 1, 1)})
    with pytest.raises(InvalidRequestError) as refused:
        store.add_tasks(project_id, [task("a"), task("b"), bad])
    assert refused.value.field == "tasks[2].data"
    assert list(store.iter_tasks(project_id)) == [before]
    (after,) = store.add_tasks(project_id, [task("after")])
    assert isinstance(before.id, int)
    assert after.id == before.id + 1  # the refused batch took no ids


def test_a_failure_in_the_middle_of_add_tasks_leaves_nothing_half_written(
    store: SqliteStore, db_path: Path
) -> None:
    project_id = project_in(store)
    with raw(db_path) as db:
        # Stands in for anything that fails once tasks are written: disk full, a bug.
        db.execute(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON completions "
            "WHEN NEW.author = 'boom' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    batch = [task(f"t{i}") for i in range(50)] + [task("last", author="boom")]
    with pytest.raises(sqlite3.DatabaseError, match="injected failure"):
        store.add_tasks(project_id, batch)
    assert list(store.iter_tasks(project_id)) == []
    with raw(db_path) as db:
        counts = [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("tasks", "task_tags", "completions", "predictions")]  # fmt: skip
    assert counts == [0, 0, 0, 0]


def test_predictions_for_a_missing_task_store_none_of_the_batch(store: SqliteStore) -> None:
    project_id = project_in(store)
    (existing,) = store.add_tasks(project_id, [task("a")])
    assert isinstance(existing.id, int)
    prediction = Prediction(None, (), model_version="ner@1")
    with pytest.raises(NotFoundError):
        store.add_predictions(
            project_id, [(existing.id, prediction), (existing.id + 99, prediction)]
        )
    assert store.get_task(project_id, existing.id).predictions == ()
    assert store.list_tasks(project_id, TaskQuery(has_predictions=True)).items == []


def test_ids_of_deleted_tasks_are_never_given_again(store: SqliteStore) -> None:
    project_id = project_in(store)
    (first,) = store.add_tasks(project_id, [task("a")])
    assert isinstance(first.id, int)
    store.delete_task(project_id, first.id)
    (second,) = store.add_tasks(project_id, [task("b")])
    assert isinstance(second.id, int)
    assert second.id > first.id
    assert second.completions[0].id != first.completions[0].id


# --- listings --------------------------------------------------------------------


def test_listing_a_missing_project_is_not_found_but_an_empty_one_is_empty(
    store: SqliteStore,
) -> None:
    project_id = project_in(store)
    assert store.list_tasks(project_id).items == []
    assert list(store.iter_tasks(project_id)) == []
    with pytest.raises(NotFoundError):
        store.list_tasks(project_id + 1)
    with pytest.raises(NotFoundError):
        list(store.iter_tasks(project_id + 1))


def test_a_page_reads_completions_and_predictions_with_one_query_each(
    store: SqliteStore,
) -> None:
    project_id = project_in(store)
    store.add_tasks(project_id, [task(f"t{i}") for i in range(50)])
    statements: list[str] = []
    # The store's connection for this thread: the only way to watch what it runs.
    store._connection().set_trace_callback(statements.append)
    page = store.list_tasks(project_id, limit=40)
    store._connection().set_trace_callback(None)
    assert len(page.items) == 40
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3


def test_a_token_from_another_listing_or_a_bad_limit_is_refused(store: SqliteStore) -> None:
    for name in ("a", "b", "c"):
        store.create_user(User(name, UserRole.USER, NOW))
    token = store.list_users(limit=1).next_token
    assert token is not None
    with pytest.raises(InvalidRequestError, match="token"):
        store.list_licenses(token=token)
    with pytest.raises(InvalidRequestError, match="token"):
        store.list_users(token="not-a-token")
    with pytest.raises(InvalidRequestError, match="limit"):
        store.list_users(limit=0)
    with pytest.raises(InvalidRequestError, match="limit"):
        store.list_users(limit=1001)


def test_a_time_without_a_timezone_is_refused(store: SqliteStore) -> None:
    with pytest.raises(InvalidRequestError, match="created_at"):
        store.create_user(User("ana", UserRole.USER, datetime(2026, 1, 1)))


# --- many threads ------------------------------------------------------------------


def test_many_threads_write_to_one_file_without_losing_a_write(store: SqliteStore) -> None:
    project_id = project_in(store)
    (shared,) = store.add_tasks(project_id, [task("shared")])
    assert isinstance(shared.id, int)
    task_id = shared.id
    failures: list[BaseException] = []

    def annotate(author: str) -> None:
        try:
            for _ in range(15):
                store.add_completion(project_id, task_id, Completion(None, (), author=author))
                store.list_tasks(project_id)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=annotate, args=(f"user{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    completions = store.get_task(project_id, task_id).completions
    assert len(completions) == 1 + 6 * 15
    assert len({c.id for c in completions}) == len(completions)


def test_two_stores_on_one_file_see_each_others_writes(db_path: Path) -> None:
    # As the API server and a job process each open the lab's file.
    with SqliteStore(db_path) as api, SqliteStore(db_path) as job:
        project_id = project_in(api)
        (stored,) = job.add_tasks(project_id, [task("from the job")])
        assert isinstance(stored.id, int)
        assert api.get_task(project_id, stored.id) == stored
        api.delete_project(project_id)
        with pytest.raises(NotFoundError):
            job.get_project(project_id)


def test_a_lock_held_past_the_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    patient = SqliteStore(path, busy_timeout_s=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailableError, match="locked"):
            patient.create_user(User("ana", UserRole.USER, NOW))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        patient.close()
