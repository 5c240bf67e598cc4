"""The single-node Store: everything the lab keeps, in one SQLite file.

:class:`SqliteStore` implements every storage port of :mod:`annotrain.ports`
(projects, tasks, runs, models, servers, users, licenses, usage) on the standard
library's ``sqlite3``. The file is opened in WAL mode so readers never wait for
the writer; each thread gets its own connection and every write is one
``BEGIN IMMEDIATE`` transaction, so the API workers and the job supervisor can
share one store. The schema lives in versioned SQL files
(``sqlite_migrations/NNNN_name.sql``) applied in order when the store opens.

See docs/storage-sqlite.md for the schema, the concurrency model and how ids
are assigned.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from annotrain.domain.errors import (
    AlreadyExistsError,
    AnnotrainError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    StoreUnavailableError,
)
from annotrain.domain.records import (
    ApiToken,
    JobKind,
    LicenseRecord,
    MeteringEntry,
    MeteringState,
    ModelEntry,
    Project,
    Run,
    RunStatus,
    Server,
    UsageRecord,
    User,
    UserRole,
)
from annotrain.domain.tasks import (
    Completion,
    CompletionState,
    Member,
    Prediction,
    ResultItem,
    Review,
    ReviewVerdict,
    Role,
    Task,
    check_prediction_models,
)
from annotrain.domain.training_plan import ModelKind
from annotrain.ports import MAX_PAGE_SIZE, Page, TaskQuery

__all__ = ["DEFAULT_BUSY_TIMEOUT_S", "ITER_PAGE_SIZE", "SqliteStore", "UnusableDatabaseError"]

T = TypeVar("T")
Row = tuple[Any, ...]

#: Tasks read per query by :meth:`SqliteStore.iter_tasks`.
ITER_PAGE_SIZE = 500
#: How long a writer waits for another one before giving up (SQLite's busy timeout).
DEFAULT_BUSY_TIMEOUT_S = 30.0
# Well under SQLite's limit on bound parameters (32766 since 3.32), and small enough
# that an ``IN (...)`` list stays a quick index probe per value.
_IDS_PER_QUERY = 900
_MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
_SUBMITTED = CompletionState.SUBMITTED.value


class UnusableDatabaseError(AnnotrainError):
    """The file cannot be used as this version's store: not SQLite, or from a newer annotrain.

    Attributes:
        path: The database file.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")


# --- migrations -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Migration:
    version: int
    name: str
    sql: str


def _load_migrations() -> list[_Migration]:
    """The migrations shipped with the code, in order; versions must run 1, 2, 3…."""
    folder = resources.files("annotrain.adapters").joinpath("sqlite_migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(_Migration(int(match[1]), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        # A gap would leave some databases without a step: refuse to run at all.
        raise RuntimeError(f"sqlite migrations must be numbered 1..n without gaps: {versions}")
    return found


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a script, split where SQLite itself sees them end."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    unfinished = [
        line for line in pending.splitlines() if line.strip() and not line.strip().startswith("--")
    ]
    if unfinished:
        # A last statement without its semicolon would otherwise be left out silently.
        raise ValueError(f"migration ends in an unfinished statement: {unfinished[0]!r}")


def _schema_version(connection: sqlite3.Connection) -> int:
    """The number of the last migration applied (PRAGMA user_version; 0 for a new file)."""
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    return version


def _refuse_newer(path: Path, current: int, known: int) -> None:
    if current > known:
        raise UnusableDatabaseError(
            path,
            f"its schema is at version {current}, written by a newer annotrain; this one "
            f"knows versions up to {known}. Upgrade annotrain to open it.",
        )


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations the database lacks, in order, each in its own transaction."""
    migrations = _load_migrations()
    known = len(migrations)
    current = _schema_version(connection)
    _refuse_newer(path, current, known)
    if current == known:
        return
    for migration in migrations[current:]:
        # BEGIN IMMEDIATE before reading the version again: two processes opening a new
        # file at once queue here, and the second finds the work done.
        connection.execute("BEGIN IMMEDIATE")
        try:
            current = _schema_version(connection)
            _refuse_newer(path, current, known)
            if current < migration.version:
                for statement in _statements(migration.sql):
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _utc_text(datetime.now(UTC), "now")),
                )
                # PRAGMA takes no bound parameters; the version is an int we parsed.
                connection.execute(f"PRAGMA user_version = {migration.version:d}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


# --- values <-> columns ----------------------------------------------------------


def _json_default(value: object) -> object:
    # Mapping fields may hold any Mapping (a MappingProxyType); JSON knows only dicts.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON: {value!r:.80}")


_to_json = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default
).encode
_decode_json_prefix = json.JSONDecoder().raw_decode


def _from_json(text: str) -> Any:
    # Reads only what _to_json wrote, which has no surrounding whitespace: raw_decode
    # skips the whitespace checks decode() makes around it, a tenth of a listing's time.
    return _decode_json_prefix(text)[0]


# Most extras, reviews and tag lists are empty: skipping the codec for them is a good
# part of the bulk import's and the listings' time.
def _object_json(value: Mapping[str, Any]) -> str:
    return _to_json(value) if value else "{}"


def _object_from_json(text: str) -> dict[str, Any]:
    return {} if text == "{}" else _from_json(text)


def _array_json(values: Sequence[object]) -> str:
    return _to_json(list(values)) if values else "[]"


@functools.lru_cache(maxsize=4096)
def _tags_json(tags: tuple[str, ...]) -> str:
    # A project uses a handful of tag sets (Train, Test…) over and over.
    return _array_json(tags)


def _tuple_from_json(text: str) -> tuple[Any, ...]:
    return () if text == "[]" else tuple(_from_json(text))


def _json_column(value: object, field: str) -> str:
    """JSON text of a value, or InvalidRequestError naming the field."""
    try:
        return _to_json(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(field, f"cannot be stored: {exc}") from exc


def _check_finite(value: float | None, name: str) -> float | None:
    # SQLite stores NaN as NULL: refuse it rather than give back something else.
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value}")
    return value


def _finite(value: float | None, field: str) -> float | None:
    try:
        return _check_finite(value, "it")
    except ValueError as exc:
        raise InvalidRequestError(field, str(exc)) from exc


def _utc_text(value: datetime, field: str) -> str:
    """Fixed-width ISO 8601 UTC text: its text order is its time order."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequestError(field, "must be a timezone-aware datetime (UTC)")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _optional_utc_text(value: datetime | None, field: str) -> str | None:
    return None if value is None else _utc_text(value, field)


def _utc_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _optional_utc_datetime(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _result_json(items: Sequence[ResultItem]) -> str:
    """Result items as a JSON array of arrays: ``[id, type, from_name, to_name, value]``,
    then ``score`` and ``extra`` only when they hold something.

    Arrays, not objects: a bulk import spends most of its time here, and arrays
    encode in half the time of objects and make a third less text.
    """
    if not items:
        return "[]"
    encoded = []
    for item in items:
        if item.extra:
            encoded.append(
                [item.id, item.type, item.from_name, item.to_name, item.value, item.score,
                 item.extra]
            )  # fmt: skip
        elif item.score is not None:
            encoded.append(
                [item.id, item.type, item.from_name, item.to_name, item.value, item.score]
            )
        else:
            encoded.append([item.id, item.type, item.from_name, item.to_name, item.value])
    return _to_json(encoded)


def _result_from_json(text: str) -> tuple[ResultItem, ...]:
    if text == "[]":
        return ()
    return tuple(
        [
            ResultItem(
                fields[0],
                fields[1],
                fields[2],
                fields[3],
                fields[4],
                fields[5] if len(fields) > 5 else None,
                fields[6] if len(fields) > 6 else {},
            )
            for fields in _from_json(text)
        ]
    )


def _reviews_json(reviews: Sequence[Review]) -> str:
    if not reviews:
        return "[]"
    return _to_json(
        [
            {
                "verdict": ReviewVerdict(review.verdict).value,
                "reviewer": review.reviewer,
                "comment": review.comment,
                "created_at": review.created_at,
            }
            for review in reviews
        ]
    )


def _reviews_from_json(text: str) -> tuple[Review, ...]:
    if text == "[]":
        return ()
    return tuple(
        Review(
            ReviewVerdict(review["verdict"]),
            review["reviewer"],
            review["comment"],
            review["created_at"],
        )
        for review in _from_json(text)
    )


def _completion_columns(completion: Completion) -> Row:
    """The columns of a completion after (id, task_id), in _INSERT_COMPLETION's order.

    Raises:
        TypeError, ValueError: Something in it cannot be stored.
    """
    return (
        _result_json(completion.result),
        completion.author,
        CompletionState(completion.state).value,
        int(completion.ground_truth),
        _check_finite(completion.lead_time, "lead_time"),
        completion.created_at,
        completion.updated_at,
        _reviews_json(completion.reviews),
        _object_json(completion.extra),
    )


def _prediction_columns(prediction: Prediction) -> Row:
    """The columns of a prediction after (id, task_id), in _INSERT_PREDICTION's order.

    Raises:
        TypeError, ValueError: Something in it cannot be stored.
    """
    return (
        _result_json(prediction.result),
        prediction.model_version,
        _check_finite(prediction.score, "score"),
        _object_json(prediction.extra),
    )


def _first_unstorable(parts: Sequence[tuple[str, Callable[[], object]]]) -> str:
    """The name of the first part whose encoding fails: where to point the person at."""
    for name, encode in parts:
        try:
            encode()
        except (TypeError, ValueError):
            return name
    return ""


# Every statement is a literal, or a literal SELECT followed by conditions made of
# column names and "?" marks: no value is ever formatted into SQL.
_SELECT_TASKS = "SELECT id, data, tags, extra, revision FROM tasks"
_SELECT_COMPLETIONS = (
    "SELECT id, task_id, result, author, state, ground_truth, lead_time, created_at, "
    "updated_at, reviews, extra, revision FROM completions"
)
_INSERT_COMPLETION = (
    "INSERT INTO completions (id, task_id, result, author, state, ground_truth, lead_time, "
    "created_at, updated_at, reviews, extra, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
)
_SELECT_PREDICTIONS = "SELECT id, task_id, result, model_version, score, extra FROM predictions"
_INSERT_PREDICTION = (
    "INSERT INTO predictions (id, task_id, result, model_version, score, extra) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_MODEL_PREDICTION = (
    "INSERT INTO predictions (task_id, result, model_version, score, extra, models) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
#: Where the task score sits in :func:`_prediction_columns`.
_SCORE_COLUMN = 2
#: A task's ``latest_score``: the score of its prediction with the highest id.
_REFRESH_PREDICTED = (
    "UPDATE tasks SET has_predictions = 1, latest_score = (SELECT score FROM predictions "
    "WHERE predictions.task_id = tasks.id ORDER BY id DESC LIMIT 1) WHERE id = ?"
)


def _completion_from_row(row: Row) -> Completion:
    return Completion(
        row[0],
        _result_from_json(row[2]),
        row[3],
        CompletionState(row[4]),
        bool(row[5]),
        row[6],
        row[7],
        row[8],
        _reviews_from_json(row[9]),
        _object_from_json(row[10]),
        row[11],
    )


def _prediction_from_row(row: Row) -> Prediction:
    return Prediction(row[0], _result_from_json(row[2]), row[3], row[4], _object_from_json(row[5]))


def _task_from_row(
    row: Row, completions: Sequence[Completion], predictions: Sequence[Prediction]
) -> Task:
    return Task(
        row[0],
        _from_json(row[1]),
        tuple(completions),
        tuple(predictions),
        _tuple_from_json(row[2]),
        _object_from_json(row[3]),
        row[4],
    )


_SELECT_PROJECTS = (
    "SELECT id, name, label_config, created_by, created_at, settings, revision FROM projects"
)


def _project_from_row(row: Row) -> Project:
    return Project(
        row[0], row[1], row[2], row[3], _utc_datetime(row[4]), _from_json(row[5]), row[6]
    )


_SELECT_RUNS = (
    "SELECT id, project_id, kind, status, created_by, created_at, use_gpu, params, progress, "
    "epoch, metrics, history, logs_key, dataset_key, failure_reason, started_at, finished_at, "
    "heartbeat_at, job_ref, revision FROM runs"
)
_INSERT_RUN = (
    "INSERT INTO runs (project_id, kind, status, created_by, created_at, use_gpu, params, "
    "progress, epoch, metrics, history, logs_key, dataset_key, failure_reason, started_at, "
    "finished_at, heartbeat_at, job_ref, id, revision) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
)
_UPDATE_RUN = (
    "UPDATE runs SET project_id = ?, kind = ?, status = ?, created_by = ?, created_at = ?, "
    "use_gpu = ?, params = ?, progress = ?, epoch = ?, metrics = ?, history = ?, logs_key = ?, "
    "dataset_key = ?, failure_reason = ?, started_at = ?, finished_at = ?, heartbeat_at = ?, "
    "job_ref = ?, revision = revision + 1 WHERE id = ? AND revision = ?"
)


def _run_columns(run: Run) -> Row:
    """Every column of a run but its id and revision, in _INSERT_RUN's order."""
    return (
        run.project_id,
        JobKind(run.kind).value,
        RunStatus(run.status).value,
        run.created_by,
        _utc_text(run.created_at, "created_at"),
        int(run.use_gpu),
        _json_column(run.params, "params"),
        _finite(run.progress, "progress"),
        run.epoch,
        _json_column(run.metrics, "metrics"),
        _json_column(list(run.history), "history"),
        run.logs_key,
        run.dataset_key,
        run.failure_reason,
        _optional_utc_text(run.started_at, "started_at"),
        _optional_utc_text(run.finished_at, "finished_at"),
        _optional_utc_text(run.heartbeat_at, "heartbeat_at"),
        run.job_ref,
    )


def _run_from_row(row: Row) -> Run:
    return Run(
        id=row[0],
        project_id=row[1],
        kind=JobKind(row[2]),
        status=RunStatus(row[3]),
        created_by=row[4],
        created_at=_utc_datetime(row[5]),
        use_gpu=bool(row[6]),
        params=_from_json(row[7]),
        progress=row[8],
        epoch=row[9],
        metrics=_from_json(row[10]),
        history=tuple(_from_json(row[11])),
        logs_key=row[12],
        dataset_key=row[13],
        failure_reason=row[14],
        started_at=_optional_utc_datetime(row[15]),
        finished_at=_optional_utc_datetime(row[16]),
        heartbeat_at=_optional_utc_datetime(row[17]),
        job_ref=row[18],
        revision=row[19],
    )


_SELECT_MODELS = (
    "SELECT name, version, kind, labels, project_id, run_id, artifact_key, base_model, "
    "created_at, metrics, deployed_in, revision FROM models"
)
_INSERT_MODEL = (
    "INSERT INTO models (kind, labels, project_id, run_id, artifact_key, base_model, created_at, "
    "metrics, deployed_in, name, version, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
)
_UPDATE_MODEL = (
    "UPDATE models SET kind = ?, labels = ?, project_id = ?, run_id = ?, artifact_key = ?, "
    "base_model = ?, created_at = ?, metrics = ?, deployed_in = ?, revision = revision + 1 "
    "WHERE name = ? AND version = ? AND revision = ?"
)


def _model_from_row(row: Row) -> ModelEntry:
    return ModelEntry(
        name=row[0],
        version=row[1],
        kind=ModelKind(row[2]),
        labels=tuple(_from_json(row[3])),
        project_id=row[4],
        run_id=row[5],
        artifact_key=row[6],
        base_model=row[7],
        created_at=_utc_datetime(row[8]),
        metrics=_from_json(row[9]),
        deployed_in=tuple(_from_json(row[10])),
        revision=row[11],
    )


_SELECT_SERVERS = "SELECT run_id, kind, project_id, started_by, since, use_gpu, host FROM servers"


def _server_from_row(row: Row) -> Server:
    return Server(
        row[0], JobKind(row[1]), row[2], row[3], _utc_datetime(row[4]), bool(row[5]), row[6]
    )


def _user_from_row(row: Row) -> User:
    return User(row[0], UserRole(row[1]), _utc_datetime(row[2]), row[3])


def _token_from_row(row: Row) -> ApiToken:
    return ApiToken(row[0], row[1], _utc_datetime(row[2]), row[3])


def _license_from_row(row: Row) -> LicenseRecord:
    return LicenseRecord(row[0], row[1], _utc_datetime(row[2]))


def _usage_from_row(row: Row) -> UsageRecord:
    # (id, run_id, dimension, start_time, end_time, quantity): the id only breaks ties
    # between uses that started at the same time, for pagination.
    return UsageRecord(row[2], row[5], _utc_datetime(row[3]), _utc_datetime(row[4]), row[1])


_INSERT_METERING = (
    "INSERT INTO metering (hour, dimension, quantity, state, attempts, record_id, last_error, "
    "updated_at, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) "
    "ON CONFLICT (hour, dimension) DO NOTHING"
)
_SELECT_METERING = (
    "SELECT hour, dimension, quantity, state, attempts, record_id, last_error, updated_at, "
    "revision FROM metering"
)
_GET_METERING = _SELECT_METERING + " WHERE hour = ? AND dimension = ?"
_LIST_METERING = (
    "SELECT hour, dimension, quantity, state, attempts, record_id, last_error, updated_at, "
    "revision FROM metering WHERE hour >= ? AND hour < ? "
    "AND state IN (SELECT value FROM json_each(?)) AND (hour, dimension) > (?, ?) "
    "ORDER BY hour, dimension LIMIT ?"
)


def _metering_from_row(row: Row) -> MeteringEntry:
    return MeteringEntry(
        hour=_utc_datetime(row[0]), dimension=row[1], quantity=row[2],
        state=MeteringState(row[3]), attempts=row[4], record_id=row[5], last_error=row[6],
        updated_at=_utc_datetime(row[7]), revision=row[8],
    )  # fmt: skip


def _is_duplicate(exc: sqlite3.IntegrityError) -> bool:
    return exc.sqlite_errorcode in (
        sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
        sqlite3.SQLITE_CONSTRAINT_UNIQUE,
    )


# --- pagination -------------------------------------------------------------------


def _page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequestError("limit", f"must be from 1 to {MAX_PAGE_SIZE}, got {limit}")
    return limit


def _encode_token(listing: str, after: Sequence[object]) -> str:
    raw = _to_json([listing, *after]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_token(listing: str, token: str | None, width: int) -> list[Any] | None:
    """The sort key a token resumes after, or None for the first page.

    The token names its listing, so one from another listing (or another project's)
    is refused instead of silently skipping rows.
    """
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = _from_json(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("token", "is not a token this listing gave") from exc
    if not isinstance(decoded, list) or len(decoded) != width + 1 or decoded[0] != listing:
        raise InvalidRequestError("token", "is not a token this listing gave")
    return decoded[1:]


def _page(
    listing: str,
    rows: list[Row],
    limit: int,
    decode: Callable[[Row], T],
    sort_key: Callable[[Row], Sequence[object]],
) -> Page[T]:
    """A page of ``limit`` items from ``limit + 1`` rows: the extra one says there is more."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_token = _encode_token(listing, sort_key(rows[-1])) if more else None
    return Page([decode(row) for row in rows], next_token)


def _stored_id(value: object, what: str) -> int:
    """An id this store assigned (a whole number), or NotFoundError: nothing else was stored."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise NotFoundError(what, value)


def _chunks(values: Sequence[T], size: int = _IDS_PER_QUERY) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _marks(count: int) -> str:
    return ",".join("?" * count)


# --- the store --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FirstIds:
    """The ids an ``add_tasks`` call gives first; the rest follow one by one, in order."""

    task: int
    completion: int
    prediction: int


def _numbered_rows(first_task: int, first_id: int, per_task: Iterable[list[Row]]) -> Iterator[Row]:
    """Rows of completions (or predictions) with their ids and their tasks' ids in front."""
    next_id = first_id
    for offset, rows in enumerate(per_task):
        for columns in rows:
            yield (next_id, first_task + offset, *columns)
            next_id += 1


def _stored_tasks(encoded: Sequence[_EncodedTask], first: _FirstIds) -> list[Task]:
    """The tasks of an ``add_tasks`` call as stored: the values given, with the ids given out."""
    completion_id, prediction_id = first.completion, first.prediction
    stored = []
    for offset, item in enumerate(encoded):
        task = item.task
        completions = []
        for completion in task.completions:
            completions.append(
                Completion(completion_id, tuple(completion.result), completion.author,
                           completion.state, completion.ground_truth, completion.lead_time,
                           completion.created_at, completion.updated_at,
                           tuple(completion.reviews), completion.extra, 1)
            )  # fmt: skip
            completion_id += 1
        predictions = []
        for prediction in task.predictions:
            predictions.append(
                Prediction(prediction_id, tuple(prediction.result), prediction.model_version,
                           prediction.score, prediction.extra)
            )  # fmt: skip
            prediction_id += 1
        stored.append(
            Task(first.task + offset, task.data, tuple(completions), tuple(predictions),
                 tuple(task.tags), task.extra, 1)
        )  # fmt: skip
    return stored


@dataclass(slots=True)
class _EncodedTask:
    """A task turned into column values before the write lock is taken."""

    task: Task
    data: str
    tags: str
    extra: str
    completions: list[Row]
    predictions: list[Row]
    has_completions: int


class SqliteStore:
    """The lab's Store in one SQLite file: every storage port of :mod:`annotrain.ports`.

    ProjectStore, TaskStore, RunStore, ModelStore, ServerStore, UserStore,
    LicenseStore and UsageMeter, on the standard library's ``sqlite3``.
    Safe to share between threads: each thread gets its own connection, readers
    see a consistent snapshot (WAL), and writers queue on SQLite's write lock for
    up to ``busy_timeout_s``. Opening applies the schema migrations the file
    lacks and refuses a file written by a newer annotrain.

    Args:
        path: The database file; created when absent (its folder must exist).
        busy_timeout_s: How long a write waits for another writer to finish.

    Raises:
        UnusableDatabaseError: The file is not a SQLite database, cannot be opened,
            or was written by a newer annotrain.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
    ) -> None:
        self._path = Path(path)
        if str(path) == ":memory:":
            # Each thread's connection would see its own empty database.
            raise InvalidRequestError("path", "must be a file: threads share the store by it")
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._registry_lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._closed = False
        try:
            _migrate(self._connection(), self._path)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise UnusableDatabaseError(self._path, f"cannot be used as a store: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> SqliteStore:
        """The store itself, closed on leaving the ``with`` block."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store."""
        self.close()

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards.

        Closing is idempotent. The last connection to close checkpoints the WAL
        into the database file.
        """
        with self._registry_lock:
            if self._closed:
                return
            self._closed = True
            connections = [connection for _, connection in self._connections]
            self._connections.clear()
        for connection in connections:
            connection.close()

    # --- connections and transactions ---------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        self._refuse_if_closed()
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        connection = self._open_connection()
        with self._registry_lock:
            if self._closed:  # close() ran while this one was opening
                connection.close()
                self._refuse_if_closed()
            # Threads come and go (a thread pool resizing): close what dead ones left.
            alive = []
            for thread, other in self._connections:
                if thread.is_alive():
                    alive.append((thread, other))
                else:
                    other.close()
            alive.append((threading.current_thread(), connection))
            self._connections = alive
        self._local.connection = connection
        return connection

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise RuntimeError(f"SqliteStore({self._path}) is closed")

    def _open_connection(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: no implicit transactions; each method says BEGIN
            # itself. check_same_thread=False only so close() may close every thread's.
            connection = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise UnusableDatabaseError(self._path, f"cannot be opened: {exc}") from exc
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                # WAL needs shared memory beside the file (no network file systems).
                raise UnusableDatabaseError(
                    self._path, f"cannot use write-ahead logging here (journal mode {mode})"
                )
            # NORMAL is durable against a crash of the process, and skips an fsync per
            # commit; a power cut may lose the last commits, never corrupt the file.
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            # Keep the WAL from staying at the size of the biggest import.
            connection.execute("PRAGMA journal_size_limit = 67108864")
            connection.execute("PRAGMA cache_size = -32768")
        except BaseException:
            connection.close()
            raise
        return connection

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it or nothing, one writer at a time.

        IMMEDIATE takes the write lock up front: a deferred transaction that reads
        first and then writes could find the snapshot it read outdated and fail with
        SQLITE_BUSY at once instead of waiting its turn.
        """
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # The busy timeout ran out: another writer held the lock all along.
            raise StoreUnavailableError(f"the database stayed locked: {exc}") from exc
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several queries see one snapshot (a task and its completions)."""
        connection = self._connection()
        connection.execute("BEGIN")
        try:
            yield connection
        finally:
            connection.execute("COMMIT")

    def _list_by_name(
        self,
        table: str,
        columns: str,
        key: str,
        decode: Callable[[Row], T],
        *,
        limit: int,
        token: str | None,
    ) -> Page[T]:
        """A keyset page of a table whose rows are known by one text key (its first column).

        ``table``, ``columns`` and ``key`` are this module's own constants, never input.
        """
        limit = _page_size(limit)
        after = _decode_token(table, token, 1)
        rows = (
            self._connection()
            .execute(
                f"SELECT {columns} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?",  # noqa: S608
                (after[0] if after else "", limit + 1),
            )
            .fetchall()
        )
        return _page(table, rows, limit, decode, lambda row: (row[0],))

    # --- projects and members -----------------------------------------------------

    def create_project(self, project: Project) -> Project:
        """Store a new project; returns it with its id assigned and revision 1.

        Ids are never reused, even after the project is deleted.
        """
        columns = (
            project.name,
            project.label_config,
            project.created_by,
            _utc_text(project.created_at, "created_at"),
            _json_column(project.settings, "settings"),
        )
        with self._writing() as db:
            cursor = db.execute(
                "INSERT INTO projects (name, label_config, created_by, created_at, settings, "
                "revision) VALUES (?, ?, ?, ?, ?, 1)",
                columns,
            )
            assert cursor.lastrowid is not None
            return self._read_project(db, cursor.lastrowid)

    def get_project(self, project_id: int) -> Project:
        """The project, or NotFoundError."""
        return self._read_project(self._connection(), project_id)

    def update_project(self, project: Project) -> Project:
        """Store a changed project (revision-checked); returns it at its new revision."""
        columns = (
            project.name,
            project.label_config,
            project.created_by,
            _utc_text(project.created_at, "created_at"),
            _json_column(project.settings, "settings"),
        )
        with self._writing() as db:
            cursor = db.execute(
                "UPDATE projects SET name = ?, label_config = ?, created_by = ?, "
                "created_at = ?, settings = ?, revision = revision + 1 "
                "WHERE id = ? AND revision = ?",
                (*columns, project.id, project.revision),
            )
            if cursor.rowcount == 0:
                self._raise_stale(
                    db,
                    "SELECT revision FROM projects WHERE id = ?",
                    "project",
                    project.id,
                    project.revision,
                )
            return self._read_project(db, project.id)

    def delete_project(self, project_id: int) -> None:
        """Delete the project with its members, tasks, completions and predictions.

        Its runs, models and usage stay: they are training history and billing.
        """
        with self._writing() as db:
            db.execute("DELETE FROM projects WHERE id = ?", (project_id,))

    def list_projects(self, *, limit: int = 100, token: str | None = None) -> Page[Project]:
        """Projects, oldest first."""
        limit = _page_size(limit)
        after = _decode_token("projects", token, 1)
        rows = (
            self._connection()
            .execute(
                _SELECT_PROJECTS + " WHERE id > ? ORDER BY id LIMIT ?",
                (after[0] if after else 0, limit + 1),
            )
            .fetchall()
        )
        return _page("projects", rows, limit, _project_from_row, lambda row: (row[0],))

    def put_member(self, project_id: int, member: Member) -> None:
        """Add a member, or change an existing member's role and priority."""
        with self._writing() as db:
            self._require_project(db, project_id)
            db.execute(
                "INSERT INTO members (project_id, user, role, priority) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (project_id, user) DO UPDATE SET "
                "role = excluded.role, priority = excluded.priority",
                (project_id, member.user, Role(member.role).value, member.priority),
            )

    def remove_member(self, project_id: int, user: str) -> None:
        """Remove a member; removing one who is not a member does nothing."""
        with self._writing() as db:
            db.execute("DELETE FROM members WHERE project_id = ? AND user = ?", (project_id, user))

    def list_members(
        self, project_id: int, *, limit: int = 100, token: str | None = None
    ) -> Page[Member]:
        """Members by user name; NotFoundError if the project does not exist."""
        limit = _page_size(limit)
        listing = f"members:{project_id}"
        after = _decode_token(listing, token, 1)
        with self._reading() as db:
            rows = db.execute(
                "SELECT user, role, priority FROM members WHERE project_id = ? AND user > ? "
                "ORDER BY user LIMIT ?",
                (project_id, after[0] if after else "", limit + 1),
            ).fetchall()
            if not rows:
                self._require_project(db, project_id)
        return _page(
            listing, rows, limit, lambda row: Member(row[0], Role(row[1]), row[2]), lambda r: r[:1]
        )

    def get_memberships(self, user: str, project_ids: Collection[int]) -> dict[int, Member]:
        """The user's membership of each of these projects they are in, by project id.

        One primary-key probe per project, ``_IDS_PER_QUERY`` projects per query, all
        in one read transaction; projects the user is not in, or that do not exist,
        are left out.
        """
        wanted = sorted(set(project_ids))
        found: dict[int, Member] = {}
        with self._reading() as db:
            for chunk in _chunks(wanted):
                rows = db.execute(
                    "SELECT project_id, role, priority FROM members WHERE user = ? "  # noqa: S608 - "?" marks only
                    f"AND project_id IN ({_marks(len(chunk))})",
                    (user, *chunk),
                )
                for project_id, role, priority in rows:
                    found[project_id] = Member(user, Role(role), priority)
        return found

    def _read_project(self, db: sqlite3.Connection, project_id: int) -> Project:
        row = db.execute(_SELECT_PROJECTS + " WHERE id = ?", (project_id,)).fetchone()
        if row is None:
            raise NotFoundError("project", project_id)
        return _project_from_row(row)

    @staticmethod
    def _require_project(db: sqlite3.Connection, project_id: int) -> None:
        if db.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is None:
            raise NotFoundError("project", project_id)

    @staticmethod
    def _raise_stale(
        db: sqlite3.Connection, revision_query: str, what: str, key: object, read_at: int
    ) -> None:
        """After an update matched no row: ConflictError if the row is there, else NotFound."""
        row = db.execute(revision_query, (key,)).fetchone()
        if row is None:
            raise NotFoundError(what, key)
        raise ConflictError(what, key, read_at, row[0])

    # --- tasks --------------------------------------------------------------------

    def add_tasks(self, project_id: int, tasks: Sequence[Task]) -> list[Task]:
        """Store tasks with their completions and predictions, all or none.

        One transaction and one ``executemany`` per table, whatever the number of
        tasks. Everything is turned into column values before the write lock is
        taken, so a task that cannot be stored (data that is not JSON) is refused
        before anything is written.

        Args:
            project_id: The project they belong to.
            tasks: The tasks; their ids and those of their completions and
                predictions are ignored.

        Returns:
            The tasks as stored: ids assigned, revision 1, in the order given. Their
            values are those given, not read back: equal to what ``get_task`` gives
            as long as they are JSON values (lists, not tuples, inside ``data``).

        Raises:
            NotFoundError: The project does not exist.
            InvalidRequestError: A task holds something JSON cannot (names the task).
        """
        encoded = [self._encode_task(index, task) for index, task in enumerate(tasks)]
        with self._writing() as db:
            self._require_project(db, project_id)
            # Under the write lock nobody else can take ids: assign them here, explicitly,
            # so completions can name their task without reading the tasks back.
            first = _FirstIds(
                self._last_id(db, "tasks") + 1,
                self._last_id(db, "completions") + 1,
                self._last_id(db, "predictions") + 1,
            )
            # Rows are generated as SQLite takes them: no second copy of the import.
            db.executemany(
                "INSERT INTO tasks (id, project_id, data, tags, extra, has_completions, "
                "has_predictions, latest_score, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (
                    (first.task + offset, project_id, item.data, item.tags, item.extra,
                     item.has_completions, int(bool(item.predictions)),
                     item.predictions[-1][_SCORE_COLUMN] if item.predictions else None)
                    for offset, item in enumerate(encoded)
                ),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO task_tags (task_id, tag) VALUES (?, ?)",
                (
                    (first.task + offset, tag)
                    for offset, item in enumerate(encoded)
                    for tag in set(item.task.tags)
                ),
            )
            db.executemany(
                _INSERT_COMPLETION,
                _numbered_rows(first.task, first.completion, (i.completions for i in encoded)),
            )
            db.executemany(
                _INSERT_PREDICTION,
                _numbered_rows(first.task, first.prediction, (i.predictions for i in encoded)),
            )
        # Built after the commit, so the write lock is not held for it.
        return _stored_tasks(encoded, first)

    @staticmethod
    def _encode_task(index: int | None, task: Task) -> _EncodedTask:
        """A task's column values, or InvalidRequestError naming what cannot be stored.

        Args:
            index: Its place in the batch being added, for the error; None for one task.
            task: The task.
        """
        try:
            completions = [_completion_columns(completion) for completion in task.completions]
            return _EncodedTask(
                task,
                _to_json(task.data),
                _tags_json(tuple(task.tags)),
                _object_json(task.extra),
                completions,
                [_prediction_columns(prediction) for prediction in task.predictions],
                int(any(columns[2] == _SUBMITTED for columns in completions)),
            )
        except (TypeError, ValueError) as exc:
            # Only now, on the way out, find which part it was: naming fields up front
            # would cost the bulk import a string per completion.
            parts: list[tuple[str, Callable[[], object]]] = [
                ("data", lambda: _to_json(task.data)),
                ("tags", lambda: _tags_json(tuple(task.tags))),
                ("extra", lambda: _object_json(task.extra)),
            ]
            parts += [
                (f"completions[{n}]", functools.partial(_completion_columns, completion))
                for n, completion in enumerate(task.completions)
            ]
            parts += [
                (f"predictions[{n}]", functools.partial(_prediction_columns, prediction))
                for n, prediction in enumerate(task.predictions)
            ]
            name = "task" if index is None else f"tasks[{index}]"
            where = _first_unstorable(parts)
            field = f"{name}.{where}" if where else name
            raise InvalidRequestError(field, f"cannot be stored: {exc}") from exc

    @staticmethod
    def _last_id(db: sqlite3.Connection, table: str) -> int:
        """The highest id AUTOINCREMENT ever gave in a table (deleted ones included)."""
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
        return 0 if row is None else int(row[0])

    def get_task(self, project_id: int, task_id: int) -> Task:
        """The task with its completions (reviews included) and predictions."""
        with self._reading() as db:
            return self._read_task(db, project_id, task_id)

    def list_tasks(
        self,
        project_id: int,
        query: TaskQuery | None = None,
        *,
        limit: int = 100,
        token: str | None = None,
    ) -> Page[Task]:
        """Tasks in id order, each with its completions and predictions.

        Three queries per page whatever its size: the tasks, then their completions
        and their predictions each with one ``task_id IN (...)``.

        Raises:
            NotFoundError: The project does not exist.
            InvalidRequestError: ``limit`` out of range, or a token from elsewhere.
        """
        limit = _page_size(limit)
        listing = f"tasks:{project_id}"
        after = _decode_token(listing, token, 1)
        with self._reading() as db:
            tasks = self._read_tasks(db, project_id, query, after[0] if after else 0, limit + 1)
            if not tasks:
                self._require_project(db, project_id)
        more = len(tasks) > limit
        tasks = tasks[:limit]
        next_token = _encode_token(listing, (tasks[-1].id,)) if more else None
        return Page(tasks, next_token)

    def iter_tasks(self, project_id: int, query: TaskQuery | None = None) -> Iterator[Task]:
        """Every matching task, page after page: for selection and export.

        Reads :data:`ITER_PAGE_SIZE` tasks per read transaction and holds none while
        the caller works on them, so a long export never blocks the writer or keeps
        the WAL from being checkpointed.

        Raises:
            NotFoundError: The project does not exist.
        """
        after = 0
        while True:
            with self._reading() as db:
                tasks = self._read_tasks(db, project_id, query, after, ITER_PAGE_SIZE)
                if not tasks and after == 0:
                    self._require_project(db, project_id)
            yield from tasks
            if len(tasks) < ITER_PAGE_SIZE:
                return
            last = tasks[-1].id
            assert isinstance(last, int)
            after = last

    def _read_tasks(
        self,
        db: sqlite3.Connection,
        project_id: int,
        query: TaskQuery | None,
        after_id: int,
        count: int,
    ) -> list[Task]:
        """Up to ``count`` tasks of a project with ids above ``after_id``, whole."""
        where, params = self._task_filter(project_id, query)
        sql = _SELECT_TASKS + " WHERE " + where + " AND id > ? ORDER BY id LIMIT ?"
        rows = db.execute(sql, (*params, after_id, count)).fetchall()
        return self._assemble_tasks(db, rows)

    @staticmethod
    def _task_filter(project_id: int, query: TaskQuery | None) -> tuple[str, list[object]]:
        """The WHERE clause (with its parameters) of a project's tasks matching ``query``."""
        conditions = ["project_id = ?"]
        params: list[object] = [project_id]
        if query is not None:
            if query.tags:
                tags = sorted(query.tags)
                conditions.append(
                    "EXISTS (SELECT 1 FROM task_tags WHERE task_tags.task_id = tasks.id "  # noqa: S608 - "?" marks only
                    f"AND task_tags.tag IN ({_marks(len(tags))}))"
                )
                params.extend(tags)
            if query.has_completions is not None:
                conditions.append("has_completions = ?")
                params.append(int(query.has_completions))
            if query.has_predictions is not None:
                conditions.append("has_predictions = ?")
                params.append(int(query.has_predictions))
        return " AND ".join(conditions), params

    def count_tasks(self, project_id: int, query: TaskQuery | None = None) -> int:
        """How many of a project's tasks match (NotFoundError if no project)."""
        where, params = self._task_filter(project_id, query)
        with self._reading() as db:
            self._require_project(db, project_id)
            row = db.execute("SELECT COUNT(*) FROM tasks WHERE " + where, params).fetchone()  # noqa: S608 - "?" marks only
        return int(row[0])

    def list_tasks_at(
        self,
        project_id: int,
        query: TaskQuery | None = None,
        *,
        offset: int,
        limit: int = 100,
    ) -> list[Task]:
        """Matching tasks in id order from the ``offset``-th, whole (NotFoundError if no
        project): page N of a numbered listing."""
        limit = _page_size(limit)
        if offset < 0:
            raise InvalidRequestError("offset", "must be 0 or more")
        where, params = self._task_filter(project_id, query)
        sql = _SELECT_TASKS + " WHERE " + where + " ORDER BY id LIMIT ? OFFSET ?"
        with self._reading() as db:
            self._require_project(db, project_id)
            rows = db.execute(sql, (*params, limit, offset)).fetchall()
            return self._assemble_tasks(db, rows)

    def list_tasks_by_uncertainty(
        self,
        project_id: int,
        query: TaskQuery | None = None,
        *,
        offset: int,
        limit: int = 100,
    ) -> list[Task]:
        """Matching tasks, lowest latest score first (unscored last, ties by id), whole.

        Walks the ``tasks_by_uncertainty`` index in order: no sort of the project's
        tasks, whatever their number (NotFoundError if no project).
        """
        limit = _page_size(limit)
        if offset < 0:
            raise InvalidRequestError("offset", "must be 0 or more")
        where, params = self._task_filter(project_id, query)
        sql = (
            _SELECT_TASKS + " INDEXED BY tasks_by_uncertainty WHERE " + where
            + " ORDER BY latest_score IS NULL, latest_score, id LIMIT ? OFFSET ?"
        )  # fmt: skip
        with self._reading() as db:
            self._require_project(db, project_id)
            rows = db.execute(sql, (*params, limit, offset)).fetchall()
            return self._assemble_tasks(db, rows)

    @staticmethod
    def _assemble_tasks(db: sqlite3.Connection, rows: list[Row]) -> list[Task]:
        """Tasks from their rows, with completions and predictions read in one query each."""
        if not rows:
            return []
        ids = [row[0] for row in rows]
        completions: dict[int, list[Completion]] = {task_id: [] for task_id in ids}
        predictions: dict[int, list[Prediction]] = {task_id: [] for task_id in ids}
        marks = _marks(len(ids))
        for row in db.execute(
            _SELECT_COMPLETIONS + " WHERE task_id IN (" + marks + ") ORDER BY id", ids
        ):
            completions[row[1]].append(_completion_from_row(row))
        for row in db.execute(
            _SELECT_PREDICTIONS + " WHERE task_id IN (" + marks + ") ORDER BY id", ids
        ):
            predictions[row[1]].append(_prediction_from_row(row))
        return [_task_from_row(row, completions[row[0]], predictions[row[0]]) for row in rows]

    def _read_task(self, db: sqlite3.Connection, project_id: int, task_id: int) -> Task:
        row = db.execute(
            _SELECT_TASKS + " WHERE id = ? AND project_id = ?",
            (task_id, project_id),
        ).fetchone()
        if row is None:
            raise NotFoundError("task", task_id)
        return self._assemble_tasks(db, [row])[0]

    @staticmethod
    def _require_task(db: sqlite3.Connection, project_id: int, task_id: int) -> None:
        found = db.execute(
            "SELECT 1 FROM tasks WHERE id = ? AND project_id = ?", (task_id, project_id)
        ).fetchone()
        if found is None:
            raise NotFoundError("task", task_id)

    def update_task(self, project_id: int, task: Task) -> Task:
        """Store a task's changed data, tags and extra (revision-checked).

        Its completions and predictions are left as they are (they have their own
        methods); the task returned carries them as stored.
        """
        task_id = _stored_id(task.id, "task")
        encoded = self._encode_task(None, replace(task, completions=(), predictions=()))
        with self._writing() as db:
            cursor = db.execute(
                "UPDATE tasks SET data = ?, tags = ?, extra = ?, revision = revision + 1 "
                "WHERE id = ? AND project_id = ? AND revision = ?",
                (encoded.data, encoded.tags, encoded.extra, task_id, project_id, task.revision),
            )
            if cursor.rowcount == 0:
                self._require_task(db, project_id, task_id)
                self._raise_stale(
                    db, "SELECT revision FROM tasks WHERE id = ?", "task", task_id, task.revision
                )
            db.execute("DELETE FROM task_tags WHERE task_id = ?", (task_id,))
            db.executemany(
                "INSERT INTO task_tags (task_id, tag) VALUES (?, ?)",
                [(task_id, tag) for tag in set(task.tags)],
            )
            return self._read_task(db, project_id, task_id)

    def delete_task(self, project_id: int, task_id: int) -> None:
        """Delete a task with its completions and predictions."""
        with self._writing() as db:
            db.execute("DELETE FROM tasks WHERE id = ? AND project_id = ?", (task_id, project_id))

    # --- completions, reviews, predictions ----------------------------------------

    def add_completion(self, project_id: int, task_id: int, completion: Completion) -> Completion:
        """Store a new completion of a task; returns it with its id and revision 1."""
        columns = self._encode_completion(completion)
        with self._writing() as db:
            self._require_task(db, project_id, task_id)
            cursor = db.execute(_INSERT_COMPLETION, (None, task_id, *columns))
            self._refresh_has_completions(db, task_id)
            assert cursor.lastrowid is not None
            return self._read_completion(db, task_id, cursor.lastrowid)

    def update_completion(
        self, project_id: int, task_id: int, completion: Completion
    ) -> Completion:
        """Store a changed completion (revision-checked).

        Everything but its reviews is stored as given: reviews only ever grow, by
        :meth:`add_review`.

        Raises:
            NotFoundError: The task or the completion does not exist.
            ConflictError: The completion changed since ``completion.revision``.
        """
        completion_id = _stored_id(completion.id, "completion")
        (result, author, state, ground_truth, lead_time, created_at, updated_at, _, extra) = (
            self._encode_completion(completion)
        )
        with self._writing() as db:
            self._require_task(db, project_id, task_id)
            cursor = db.execute(
                "UPDATE completions SET result = ?, author = ?, state = ?, ground_truth = ?, "
                "lead_time = ?, created_at = ?, updated_at = ?, extra = ?, "
                "revision = revision + 1 WHERE id = ? AND task_id = ? AND revision = ?",
                (result, author, state, ground_truth, lead_time, created_at, updated_at, extra,
                 completion_id, task_id, completion.revision),
            )  # fmt: skip
            if cursor.rowcount == 0:
                self._raise_stale_completion(db, task_id, completion_id, completion.revision)
            self._refresh_has_completions(db, task_id)
            return self._read_completion(db, task_id, completion_id)

    def delete_completion(self, project_id: int, task_id: int, completion_id: int) -> None:
        """Delete a completion; deleting one that does not exist does nothing."""
        with self._writing() as db:
            cursor = db.execute(
                "DELETE FROM completions WHERE id = ? AND task_id = "
                "(SELECT id FROM tasks WHERE id = ? AND project_id = ?)",
                (completion_id, task_id, project_id),
            )
            if cursor.rowcount:
                self._refresh_has_completions(db, task_id)

    def add_review(
        self, project_id: int, task_id: int, completion_id: int, review: Review
    ) -> Completion:
        """Append a review to a completion; returns the completion at its new revision.

        Not revision-checked: reviews are appended under the write lock, so two
        reviewers never lose one another's review.
        """
        try:
            _reviews_json([review])
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError("review", f"cannot be stored: {exc}") from exc
        with self._writing() as db:
            self._require_task(db, project_id, task_id)
            row = db.execute(
                "SELECT reviews FROM completions WHERE id = ? AND task_id = ?",
                (completion_id, task_id),
            ).fetchone()
            if row is None:
                raise NotFoundError("completion", completion_id)
            reviews = (*_reviews_from_json(row[0]), review)
            db.execute(
                "UPDATE completions SET reviews = ?, revision = revision + 1 WHERE id = ?",
                (_reviews_json(reviews), completion_id),
            )
            return self._read_completion(db, task_id, completion_id)

    def add_predictions(
        self, project_id: int, predictions: Sequence[tuple[int, Prediction]]
    ) -> None:
        """Store predictions, each for the task whose id it comes with, all or none.

        Raises:
            NotFoundError: One of the tasks is not in the project (nothing is stored).
            InvalidRequestError: A prediction holds something JSON cannot.
        """
        rows = []
        for index, (task_id, prediction) in enumerate(predictions):
            try:
                rows.append((None, task_id, *_prediction_columns(prediction)))
            except (TypeError, ValueError) as exc:
                raise InvalidRequestError(
                    f"predictions[{index}]", f"cannot be stored: {exc}"
                ) from exc
        task_ids = sorted({task_id for task_id, _ in predictions})
        with self._writing() as db:
            self._require_project(db, project_id)
            for chunk in _chunks(task_ids):
                found = {
                    row[0]
                    for row in db.execute(
                        "SELECT id FROM tasks WHERE project_id = ? "  # noqa: S608 - "?" marks only
                        f"AND id IN ({_marks(len(chunk))})",
                        (project_id, *chunk),
                    )
                }
                missing = [task_id for task_id in chunk if task_id not in found]
                if missing:
                    raise NotFoundError("task", missing[0])
            db.executemany(_INSERT_PREDICTION, rows)
            db.executemany(_REFRESH_PREDICTED, [(task_id,) for task_id in task_ids])

    def replace_predictions(
        self,
        project_id: int,
        predictions: Sequence[tuple[int, Prediction]],
        *,
        models: Collection[str],
    ) -> None:
        """Store each task's prediction by ``models`` in place of those models' earlier ones.

        One transaction for the whole batch: every task named loses the predictions
        an earlier call stored for any of ``models`` and gains the one given, or
        nothing changes. Predictions stored without models (imported, added) stay.

        Raises:
            InvalidRequestError: No model named, a model name with a comma, a task
                named twice, or a prediction JSON cannot hold.
            NotFoundError: One of the tasks is not in the project (nothing is changed).
        """
        names = check_prediction_models(models, predictions)
        models_json = _array_json(sorted(names))
        rows = []
        for index, (task_id, prediction) in enumerate(predictions):
            try:
                rows.append((task_id, *_prediction_columns(prediction), models_json))
            except (TypeError, ValueError) as exc:
                raise InvalidRequestError(
                    f"predictions[{index}]", f"cannot be stored: {exc}"
                ) from exc
        task_ids = [task_id for task_id, _ in predictions]
        with self._writing() as db:
            self._require_project(db, project_id)
            stale: list[tuple[int]] = []
            for chunk in _chunks(task_ids):
                found = {
                    row[0]
                    for row in db.execute(
                        "SELECT id FROM tasks WHERE project_id = ? "  # noqa: S608 - "?" marks only
                        f"AND id IN ({_marks(len(chunk))})",
                        (project_id, *chunk),
                    )
                }
                missing = [task_id for task_id in chunk if task_id not in found]
                if missing:
                    raise NotFoundError("task", missing[0])
                stale += [
                    (row[0],)
                    for row in db.execute(
                        "SELECT id, models FROM predictions WHERE models IS NOT NULL "  # noqa: S608 - "?" marks only
                        f"AND task_id IN ({_marks(len(chunk))})",
                        chunk,
                    )
                    if names & set(_from_json(row[1]))
                ]
            db.executemany("DELETE FROM predictions WHERE id = ?", stale)
            db.executemany(_INSERT_MODEL_PREDICTION, rows)
            db.executemany(_REFRESH_PREDICTED, [(task_id,) for task_id in task_ids])

    @staticmethod
    def _encode_completion(completion: Completion) -> Row:
        try:
            return _completion_columns(completion)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError("completion", f"cannot be stored: {exc}") from exc

    @staticmethod
    def _read_completion(db: sqlite3.Connection, task_id: int, completion_id: int) -> Completion:
        row = db.execute(
            _SELECT_COMPLETIONS + " WHERE id = ? AND task_id = ?",
            (completion_id, task_id),
        ).fetchone()
        if row is None:
            raise NotFoundError("completion", completion_id)
        return _completion_from_row(row)

    @staticmethod
    def _raise_stale_completion(
        db: sqlite3.Connection, task_id: int, completion_id: int, read_at: int
    ) -> None:
        row = db.execute(
            "SELECT revision FROM completions WHERE id = ? AND task_id = ?",
            (completion_id, task_id),
        ).fetchone()
        if row is None:
            raise NotFoundError("completion", completion_id)
        raise ConflictError("completion", completion_id, read_at, row[0])

    @staticmethod
    def _refresh_has_completions(db: sqlite3.Connection, task_id: int) -> None:
        db.execute(
            "UPDATE tasks SET has_completions = EXISTS (SELECT 1 FROM completions "
            "WHERE task_id = ?1 AND state = ?2) WHERE id = ?1",
            (task_id, _SUBMITTED),
        )

    # --- runs ---------------------------------------------------------------------

    def create_run(self, run: Run) -> Run:
        """Store a new run under its id (AlreadyExistsError if taken); revision 1."""
        columns = _run_columns(run)
        with self._writing() as db:
            try:
                db.execute(_INSERT_RUN, (*columns, run.id))
            except sqlite3.IntegrityError as exc:
                if _is_duplicate(exc):
                    raise AlreadyExistsError("run", run.id) from exc
                raise
            return self._read_run(db, run.id)

    def get_run(self, run_id: str) -> Run:
        """The run, or NotFoundError."""
        return self._read_run(self._connection(), run_id)

    def update_run(self, run: Run) -> Run:
        """Store a changed run (revision-checked); returns it at its new revision."""
        columns = _run_columns(run)
        with self._writing() as db:
            cursor = db.execute(_UPDATE_RUN, (*columns, run.id, run.revision))
            if cursor.rowcount == 0:
                self._raise_stale(
                    db, "SELECT revision FROM runs WHERE id = ?", "run", run.id, run.revision
                )
            return self._read_run(db, run.id)

    def list_runs(
        self, project_id: int, *, limit: int = 100, token: str | None = None
    ) -> Page[Run]:
        """A project's runs, newest first: its training history."""
        limit = _page_size(limit)
        listing = f"runs:{project_id}"
        after = _decode_token(listing, token, 2)
        sql, params = _SELECT_RUNS + " WHERE project_id = ?", [project_id]
        if after is not None:
            sql += " AND (created_at, id) < (?, ?)"
            params += after
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        rows = self._connection().execute(sql, (*params, limit + 1)).fetchall()
        return _page(listing, rows, limit, _run_from_row, lambda row: (row[5], row[0]))

    def list_runs_by_status(
        self, status: RunStatus, *, limit: int = 100, token: str | None = None
    ) -> Page[Run]:
        """Runs in a status, oldest first: what is queued, what claims to be running."""
        limit = _page_size(limit)
        listing = f"runs-by-status:{RunStatus(status).value}"
        after = _decode_token(listing, token, 2)
        sql, params = _SELECT_RUNS + " WHERE status = ?", [RunStatus(status).value]
        if after is not None:
            sql += " AND (created_at, id) > (?, ?)"
            params += after
        sql += " ORDER BY created_at, id LIMIT ?"
        rows = self._connection().execute(sql, (*params, limit + 1)).fetchall()
        return _page(listing, rows, limit, _run_from_row, lambda row: (row[5], row[0]))

    @staticmethod
    def _read_run(db: sqlite3.Connection, run_id: str) -> Run:
        row = db.execute(_SELECT_RUNS + " WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return _run_from_row(row)

    # --- models -------------------------------------------------------------------

    def register_model(self, entry: ModelEntry) -> ModelEntry:
        """Store a model as the next version of its name (the given version is ignored)."""
        columns = self._model_columns(entry)
        with self._writing() as db:
            # Under the write lock, so two registrations of one name get two versions.
            (version,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name = ?", (entry.name,)
            ).fetchone()
            db.execute(_INSERT_MODEL, (*columns, entry.name, version))
            return self._read_model(db, entry.name, version)

    def get_model(self, name: str, version: int | None = None) -> ModelEntry:
        """A version of a model, the latest when none is given; NotFoundError if absent."""
        db = self._connection()
        if version is None:
            row = db.execute(
                _SELECT_MODELS + " WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
            if row is None:
                raise NotFoundError("model", name)
            return _model_from_row(row)
        return self._read_model(db, name, version)

    def update_model(self, entry: ModelEntry) -> ModelEntry:
        """Store a changed entry (revision-checked): where deployed, metrics."""
        columns = self._model_columns(entry)
        with self._writing() as db:
            cursor = db.execute(
                _UPDATE_MODEL, (*columns, entry.name, entry.version, entry.revision)
            )
            if cursor.rowcount == 0:
                row = db.execute(
                    "SELECT revision FROM models WHERE name = ? AND version = ?",
                    (entry.name, entry.version),
                ).fetchone()
                key = f"{entry.name}@{entry.version}"
                if row is None:
                    raise NotFoundError("model", key)
                raise ConflictError("model", key, entry.revision, row[0])
            return self._read_model(db, entry.name, entry.version)

    def list_models(
        self, *, project_id: int | None = None, limit: int = 100, token: str | None = None
    ) -> Page[ModelEntry]:
        """Models by name then version, optionally only those trained on a project."""
        limit = _page_size(limit)
        listing = "models" if project_id is None else f"models:{project_id}"
        after = _decode_token(listing, token, 2)
        conditions, params = ["(name, version) > (?, ?)"], list(after or ("", 0))
        if project_id is not None:
            conditions.append("project_id = ?")
            params.append(project_id)
        sql = (
            _SELECT_MODELS
            + " WHERE "
            + " AND ".join(conditions)
            + " ORDER BY name, version LIMIT ?"
        )
        rows = self._connection().execute(sql, (*params, limit + 1)).fetchall()
        return _page(listing, rows, limit, _model_from_row, lambda row: (row[0], row[1]))

    @staticmethod
    def _model_columns(entry: ModelEntry) -> Row:
        """Every column of a model entry but name, version and revision."""
        return (
            ModelKind(entry.kind).value,
            _json_column(list(entry.labels), "labels"),
            entry.project_id,
            entry.run_id,
            entry.artifact_key,
            entry.base_model,
            _utc_text(entry.created_at, "created_at"),
            _json_column(entry.metrics, "metrics"),
            _json_column(list(entry.deployed_in), "deployed_in"),
        )

    @staticmethod
    def _read_model(db: sqlite3.Connection, name: str, version: int) -> ModelEntry:
        row = db.execute(
            _SELECT_MODELS + " WHERE name = ? AND version = ?",
            (name, version),
        ).fetchone()
        if row is None:
            raise NotFoundError("model", f"{name}@{version}")
        return _model_from_row(row)

    # --- servers ------------------------------------------------------------------

    def put_server(self, server: Server) -> None:
        """Record a running job (replacing the record of the same run)."""
        with self._writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO servers (run_id, kind, project_id, started_by, since, "
                "use_gpu, host) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (server.run_id, JobKind(server.kind).value, server.project_id,
                 server.started_by, _utc_text(server.since, "since"), int(server.use_gpu),
                 server.host),
            )  # fmt: skip

    def remove_server(self, run_id: str) -> None:
        """Forget a job that stopped; forgetting an unknown one does nothing."""
        with self._writing() as db:
            db.execute("DELETE FROM servers WHERE run_id = ?", (run_id,))

    def list_servers(self, *, limit: int = 100, token: str | None = None) -> Page[Server]:
        """Running jobs, oldest first."""
        limit = _page_size(limit)
        after = _decode_token("servers", token, 2)
        rows = (
            self._connection()
            .execute(
                _SELECT_SERVERS + " WHERE (since, run_id) > (?, ?) ORDER BY since, run_id LIMIT ?",
                (*(after or ("", "")), limit + 1),
            )
            .fetchall()
        )
        return _page("servers", rows, limit, _server_from_row, lambda row: (row[4], row[0]))

    # --- users and tokens ---------------------------------------------------------

    def create_user(self, user: User) -> User:
        """Store a new user (AlreadyExistsError if the name is taken); revision 1."""
        with self._writing() as db:
            try:
                db.execute(
                    "INSERT INTO users (name, role, created_at, revision) VALUES (?, ?, ?, 1)",
                    (
                        user.name,
                        UserRole(user.role).value,
                        _utc_text(user.created_at, "created_at"),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                if _is_duplicate(exc):
                    raise AlreadyExistsError("user", user.name) from exc
                raise
            return self._read_user(db, user.name)

    def get_user(self, name: str) -> User:
        """The user, or NotFoundError."""
        return self._read_user(self._connection(), name)

    def list_users(self, *, limit: int = 100, token: str | None = None) -> Page[User]:
        """Users by name."""
        return self._list_by_name("users", "name, role, created_at, revision", "name",
                                   _user_from_row, limit=limit, token=token)  # fmt: skip

    def delete_user(self, name: str) -> None:
        """Delete a user and their tokens; deleting an unknown user does nothing."""
        with self._writing() as db:
            db.execute("DELETE FROM users WHERE name = ?", (name,))

    def add_token(self, token: ApiToken) -> None:
        """Store a token hash for an existing user.

        Raises:
            NotFoundError: The user does not exist.
            AlreadyExistsError: A token with this hash is stored already.
        """
        with self._writing() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (token.user,)).fetchone() is None:
                raise NotFoundError("user", token.user)
            try:
                db.execute(
                    "INSERT INTO tokens (token_hash, user, created_at, label) VALUES (?, ?, ?, ?)",
                    (token.token_hash, token.user, _utc_text(token.created_at, "created_at"),
                     token.label),
                )  # fmt: skip
            except sqlite3.IntegrityError as exc:
                if _is_duplicate(exc):
                    raise AlreadyExistsError("token", token.token_hash) from exc
                raise

    def find_token(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, or None: how a request is authenticated."""
        row = (
            self._connection()
            .execute(
                "SELECT token_hash, user, created_at, label FROM tokens WHERE token_hash = ?",
                (token_hash,),
            )
            .fetchone()
        )
        return None if row is None else _token_from_row(row)

    def delete_token(self, token_hash: str) -> None:
        """Revoke a token; revoking an unknown one does nothing."""
        with self._writing() as db:
            db.execute("DELETE FROM tokens WHERE token_hash = ?", (token_hash,))

    @staticmethod
    def _read_user(db: sqlite3.Connection, name: str) -> User:
        row = db.execute(
            "SELECT name, role, created_at, revision FROM users WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise NotFoundError("user", name)
        return _user_from_row(row)

    # --- licenses -----------------------------------------------------------------

    def put_license(self, record: LicenseRecord) -> None:
        """Store a license (replacing one with the same id)."""
        with self._writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO licenses (id, document, imported_at) VALUES (?, ?, ?)",
                (record.id, record.document, _utc_text(record.imported_at, "imported_at")),
            )

    def get_license(self, license_id: str) -> LicenseRecord:
        """The license, or NotFoundError."""
        row = (
            self._connection()
            .execute("SELECT id, document, imported_at FROM licenses WHERE id = ?", (license_id,))
            .fetchone()
        )
        if row is None:
            raise NotFoundError("license", license_id)
        return _license_from_row(row)

    def list_licenses(self, *, limit: int = 100, token: str | None = None) -> Page[LicenseRecord]:
        """Licenses by id."""
        return self._list_by_name("licenses", "id, document, imported_at", "id",
                                   _license_from_row, limit=limit, token=token)  # fmt: skip

    def delete_license(self, license_id: str) -> None:
        """Delete a license; deleting an unknown one does nothing."""
        with self._writing() as db:
            db.execute("DELETE FROM licenses WHERE id = ?", (license_id,))

    # --- usage --------------------------------------------------------------------

    def record_usage(self, record: UsageRecord) -> None:
        """Record one use; recording the same (run, dimension, start) twice counts once."""
        with self._writing() as db:
            db.execute(
                "INSERT INTO usage (run_id, dimension, start_time, end_time, quantity) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, dimension, start_time) DO NOTHING",
                (record.run_id, record.dimension, _utc_text(record.start, "start"),
                 _utc_text(record.end, "end"), _finite(record.quantity, "quantity")),
            )  # fmt: skip

    def list_usage(
        self, *, since: datetime, until: datetime, limit: int = 100, token: str | None = None
    ) -> Page[UsageRecord]:
        """Uses that started in [since, until), oldest first."""
        limit = _page_size(limit)
        low, high = _utc_text(since, "since"), _utc_text(until, "until")
        listing = f"usage:{low}:{high}"
        after = _decode_token(listing, token, 2)
        rows = (
            self._connection()
            .execute(
                "SELECT id, run_id, dimension, start_time, end_time, quantity FROM usage "
                "WHERE start_time >= ? AND start_time < ? AND (start_time, id) > (?, ?) "
                "ORDER BY start_time, id LIMIT ?",
                (low, high, *(after or ("", 0)), limit + 1),
            )
            .fetchall()
        )
        return _page(listing, rows, limit, _usage_from_row, lambda row: (row[3], row[0]))

    # --- metering ledger ------------------------------------------------------------

    def add_metering(self, entry: MeteringEntry) -> MeteringEntry:
        """Store a new (hour, dimension) entry, or return the stored one unchanged."""
        if entry.quantity < 0:
            raise InvalidRequestError("quantity", "must not be negative")
        hour = _utc_text(entry.hour, "hour")
        with self._writing() as db:
            db.execute(
                _INSERT_METERING,
                (hour, entry.dimension, entry.quantity, MeteringState(entry.state).value,
                 entry.attempts, entry.record_id, entry.last_error,
                 _utc_text(entry.updated_at, "updated_at")),
            )  # fmt: skip
            return self._read_metering(db, hour, entry.dimension)

    def update_metering(self, entry: MeteringEntry) -> MeteringEntry:
        """Store a changed state, attempts, record id or error (revision-checked)."""
        hour = _utc_text(entry.hour, "hour")
        with self._writing() as db:
            stored = self._read_metering(db, hour, entry.dimension)
            if stored.revision != entry.revision:
                raise ConflictError(
                    "metering entry", (hour, entry.dimension), entry.revision, stored.revision
                )
            if stored.quantity != entry.quantity:
                raise InvalidRequestError(
                    "quantity", "a metering entry's quantity is fixed once it is written"
                )
            db.execute(
                "UPDATE metering SET state = ?, attempts = ?, record_id = ?, last_error = ?, "
                "updated_at = ?, revision = revision + 1 WHERE hour = ? AND dimension = ?",
                (MeteringState(entry.state).value, entry.attempts, entry.record_id,
                 entry.last_error, _utc_text(entry.updated_at, "updated_at"), hour,
                 entry.dimension),
            )  # fmt: skip
            return self._read_metering(db, hour, entry.dimension)

    def list_metering(
        self,
        *,
        since: datetime,
        until: datetime,
        states: frozenset[MeteringState] | None = None,
        limit: int = 100,
        token: str | None = None,
    ) -> Page[MeteringEntry]:
        """Entries whose hour is in [since, until), in the given states, by hour then dimension."""
        limit = _page_size(limit)
        low, high = _utc_text(since, "since"), _utc_text(until, "until")
        wanted = sorted(MeteringState(s).value for s in (states or MeteringState))
        listing = f"metering:{low}:{high}:{','.join(wanted)}"
        after = _decode_token(listing, token, 2)
        rows = (
            self._connection()
            .execute(
                _LIST_METERING,
                (low, high, _to_json(wanted), *(after or ("", "")), limit + 1),
            )
            .fetchall()
        )
        return _page(listing, rows, limit, _metering_from_row, lambda row: (row[0], row[1]))

    @staticmethod
    def _read_metering(db: sqlite3.Connection, hour: str, dimension: str) -> MeteringEntry:
        row = db.execute(
            _GET_METERING,
            (hour, dimension),
        ).fetchone()
        if row is None:
            raise NotFoundError("metering entry", (hour, dimension))
        return _metering_from_row(row)
