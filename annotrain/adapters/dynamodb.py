"""DynamoDB, with S3 for oversized items: the Store of the serverless lab.

One table holds every record (single-table design). Keys are strings built from
the record's identity (``PROJECT#17`` / ``TASK#000000000042``), two overloaded
global secondary indexes serve the listings that cross partitions, and an item's
payload is kept as one JSON string attribute (``body``) rather than as native
DynamoDB maps: JSON keeps ints and floats apart and exact (DynamoDB numbers do
not: ``3.0`` comes back as ``3``), has no nesting-depth or empty-set limits, and
the same text moves to S3 unchanged when an item outgrows DynamoDB's 400 KB.

Every read is a GetItem, Query or BatchGetItem: never a Scan. docs/dynamodb.md
lists each operation with its key, index, call and condition.

boto3 is imported only when a client is first needed, so importing this module
costs nothing and tests can start moto before any client exists.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Final, TypeVar

from annotrain.domain.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    StoreUnavailableError,
)
from annotrain.domain.records import (
    ApiToken,
    JobKind,
    LicenseRecord,
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

T = TypeVar("T")

# boto3 ships no type hints and the project adds no stub packages, so clients are
# typed Any and DynamoDB's wire format ({"S": "…"}, {"N": "…"}) is a plain dict.
Item = dict[str, Any]

_log = logging.getLogger(__name__)

ID_DIGITS: Final = 12
"""Ids are zero-padded to this width in sort keys, so text order is numeric order."""

OVERFLOW_BYTES: Final = 350_000
"""A body larger than this (UTF-8) goes to S3; DynamoDB refuses items over 400 KB."""

_TRANSACTION_MAX_ITEMS: Final = 100
_TRANSACTION_MAX_BYTES: Final = 3_500_000  # DynamoDB allows 4 MB; keys and overhead need room
_BATCH_WRITE_MAX: Final = 25
_BATCH_GET_MAX: Final = 100
_S3_DELETE_MAX: Final = 1000
_ATTEMPTS: Final = 8  # retries of throttled batches, transaction conflicts and lost races
_BACKOFF_BASE_S: Final = 0.05
_BACKOFF_CAP_S: Final = 2.0
# Cancellation reasons that mean "try again", as opposed to a condition that failed.
_RETRYABLE_CANCELLATIONS: Final = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)


class DynamoDbBusyError(StoreUnavailableError):
    """DynamoDB or S3 kept refusing or racing a request after every retry.

    Not a domain error: nothing is wrong with the request, the table is short of
    capacity (or a record is being rewritten continuously). Retry later.
    """


# --- the table ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexDesign:
    """A global secondary index of the table: string keys, every attribute projected.

    Attributes:
        name: The index name queries give as ``IndexName``.
        partition_key: Its partition key attribute.
        sort_key: Its sort key attribute.
        projection: ``ALL``: listings read whole records from the index, no second
            read of the table.
    """

    name: str
    partition_key: str
    sort_key: str
    projection: str = "ALL"


@dataclass(frozen=True, slots=True)
class TableDesign:
    """The table the adapter needs: what tests create and the CDK stack builds.

    Attributes:
        partition_key: The table's partition key attribute (a string).
        sort_key: The table's sort key attribute (a string).
        indexes: Its global secondary indexes.
        billing_mode: ``PAY_PER_REQUEST``: no capacity to plan or throttle on.
    """

    partition_key: str
    sort_key: str
    indexes: tuple[IndexDesign, ...]
    billing_mode: str = "PAY_PER_REQUEST"

    def create_table_request(self, table_name: str) -> dict[str, Any]:
        """The keyword arguments of DynamoDB's ``CreateTable`` for this design.

        Args:
            table_name: The table's name.

        Returns:
            Arguments for ``client.create_table(**…)``.
        """
        key_attributes = [self.partition_key, self.sort_key]
        for index in self.indexes:
            key_attributes += [index.partition_key, index.sort_key]
        return {
            "TableName": table_name,
            "BillingMode": self.billing_mode,
            "KeySchema": [
                {"AttributeName": self.partition_key, "KeyType": "HASH"},
                {"AttributeName": self.sort_key, "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": name, "AttributeType": "S"}
                for name in dict.fromkeys(key_attributes)
            ],
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": index.name,
                    "KeySchema": [
                        {"AttributeName": index.partition_key, "KeyType": "HASH"},
                        {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": index.projection},
                }
                for index in self.indexes
            ],
        }


GSI1: Final = IndexDesign("GSI1", "GSI1PK", "GSI1SK")
GSI2: Final = IndexDesign("GSI2", "GSI2PK", "GSI2SK")
TABLE: Final = TableDesign(partition_key="PK", sort_key="SK", indexes=(GSI1, GSI2))
"""The one table: ``PK``/``SK`` plus GSI1 and GSI2, overloaded (docs/dynamodb.md)."""


def create_table(client: Any, table_name: str) -> None:
    """Create the table of :data:`TABLE` and wait until it is active.

    For tests and local set-ups; the CDK stack builds the same table from
    :data:`TABLE`.

    Args:
        client: A boto3 DynamoDB client.
        table_name: The table's name.
    """
    client.create_table(**TABLE.create_table_request(table_name))
    client.get_waiter("table_exists").wait(TableName=table_name)


# --- keys -----------------------------------------------------------------------

_META: Final = "META"
_PROJECT_COUNTER_PK: Final = "COUNTER#PROJECTS"
_TASKS_FROM: Final = "TASK#"
_TASKS_TO: Final = "TASK#~"  # "~" sorts after every digit: the end of the task range
_TASK_COUNTER: Final = "next_task_id"
_COMPLETION_COUNTER: Final = "next_completion_id"
_PREDICTION_COUNTER: Final = "next_prediction_id"
_MONTH: Final = re.compile(r"\d{4}-\d{2}")
_ISSUED_COUNT: Final = "tokens_issued"  # bumped by add_token; delete_user checks it


def _padded(number: int) -> str:
    return f"{number:0{ID_DIGITS}d}"


def _project_pk(project_id: int) -> str:
    return f"PROJECT#{project_id}"


def _member_sk(user: str) -> str:
    return f"MEMBER#{user}"


def _task_sk(task_id: int) -> str:
    return f"TASK#{_padded(task_id)}"


def _completion_sk(task_id: int, completion_id: int) -> str:
    return f"{_task_sk(task_id)}#C#{_padded(completion_id)}"


def _prediction_sk(task_id: int, prediction_id: int) -> str:
    return f"{_task_sk(task_id)}#P#{_padded(prediction_id)}"


def _parse_task_sk(sort_key: str) -> tuple[int, str, int]:
    """(task id, ``T``/``C``/``P``, child id) of a task, completion or prediction key."""
    parts = sort_key.split("#")
    if len(parts) == 2:
        return int(parts[1]), "T", 0
    return int(parts[1]), parts[2], int(parts[3])


def _run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def _model_pk(name: str) -> str:
    return f"MODEL#{name}"


def _model_sk(version: int) -> str:
    return f"V#{_padded(version)}"


def _model_listing_sk(name: str, version: int) -> str:
    # Hex of the UTF-8 name keeps byte (= code point) order and never holds "#",
    # which sorts below every hex digit: "a" lists before "a!b", as Python sorts.
    return f"{name.encode().hex()}#{_padded(version)}"


def _server_pk(run_id: str) -> str:
    return f"SERVER#{run_id}"


def _user_pk(name: str) -> str:
    return f"USER#{name}"


def _token_pk(token_hash: str) -> str:
    return f"TOKEN#{token_hash}"


def _token_ref_sk(token_hash: str) -> str:
    return f"TOKEN#{token_hash}"


def _license_pk(license_id: str) -> str:
    return f"LICENSE#{license_id}"


def _usage_pk(month: str) -> str:
    return f"USAGE#{month}"


def _usage_sk(record: UsageRecord) -> str:
    # JSON keeps (run, dimension) unambiguous whatever characters they hold.
    who = json.dumps([record.run_id, record.dimension], ensure_ascii=False)
    return f"{_sortable_time(record.start)}#{who}"


def _sortable_time(value: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order in a sort key."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _month(value: datetime) -> str:
    return _sortable_time(value)[:7]


def _months(first: str, last: str) -> Iterator[str]:
    year, month = int(first[:4]), int(first[5:7])
    while f"{year:04d}-{month:02d}" <= last:
        yield f"{year:04d}-{month:02d}"
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


# --- attribute values -------------------------------------------------------------


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _key(pk: str, sk: str) -> Item:
    return {"PK": _s(pk), "SK": _s(sk)}


def _key_of(item: Item) -> Item:
    return {"PK": item["PK"], "SK": item["SK"]}


def _revision(item: Item) -> int:
    return int(item["revision"]["N"])


def _overflow_keys(items: Iterable[Item]) -> list[str]:
    return [item["body_s3"]["S"] for item in items if "body_s3" in item]


def _approximate_size(item: Item) -> int:
    return len(json.dumps(item, ensure_ascii=False).encode(errors="surrogatepass"))


def _chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _to_json(body: Mapping[str, Any]) -> str:
    """A record's body as compact JSON; floats and ints come back as they went in."""
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError("record", f"holds a value JSON cannot keep: {exc}") from exc
    try:
        text.encode()
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8; escaped as \udXXX it still round-trips.
        text = json.dumps(body, separators=(",", ":"), default=_json_default)
    return text


def _json_default(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


# --- records <-> bodies -------------------------------------------------------------


def _time_from(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _time_text(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _result_body(item: ResultItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "type": item.type,
        "from_name": item.from_name,
        "to_name": item.to_name,
        "value": item.value,
        "score": item.score,
        "extra": item.extra,
    }


def _result_from(body: Mapping[str, Any]) -> ResultItem:
    return ResultItem(
        id=body["id"],
        type=body["type"],
        from_name=body["from_name"],
        to_name=body["to_name"],
        value=body["value"],
        score=body["score"],
        extra=body["extra"],
    )


def _completion_body(completion: Completion) -> dict[str, Any]:
    return {
        "result": [_result_body(item) for item in completion.result],
        "author": completion.author,
        "state": completion.state.value,
        "ground_truth": completion.ground_truth,
        "lead_time": completion.lead_time,
        "created_at": completion.created_at,
        "updated_at": completion.updated_at,
        "reviews": [
            {
                "verdict": review.verdict.value,
                "reviewer": review.reviewer,
                "comment": review.comment,
                "created_at": review.created_at,
            }
            for review in completion.reviews
        ],
        "extra": completion.extra,
    }


def _completion_from(body: Mapping[str, Any], *, completion_id: int, revision: int) -> Completion:
    return Completion(
        id=completion_id,
        result=tuple(_result_from(item) for item in body["result"]),
        author=body["author"],
        state=CompletionState(body["state"]),
        ground_truth=body["ground_truth"],
        lead_time=body["lead_time"],
        created_at=body["created_at"],
        updated_at=body["updated_at"],
        reviews=tuple(
            Review(
                verdict=ReviewVerdict(review["verdict"]),
                reviewer=review["reviewer"],
                comment=review["comment"],
                created_at=review["created_at"],
            )
            for review in body["reviews"]
        ),
        extra=body["extra"],
        revision=revision,
    )


def _prediction_body(prediction: Prediction) -> dict[str, Any]:
    return {
        "result": [_result_body(item) for item in prediction.result],
        "model_version": prediction.model_version,
        "score": prediction.score,
        "extra": prediction.extra,
    }


def _prediction_from(body: Mapping[str, Any], *, prediction_id: int) -> Prediction:
    return Prediction(
        id=prediction_id,
        result=tuple(_result_from(item) for item in body["result"]),
        model_version=body["model_version"],
        score=body["score"],
        extra=body["extra"],
    )


def _task_body(task: Task) -> dict[str, Any]:
    return {"data": task.data, "tags": list(task.tags), "extra": task.extra}


def _project_body(project: Project) -> dict[str, Any]:
    return {
        "name": project.name,
        "label_config": project.label_config,
        "created_by": project.created_by,
        "created_at": project.created_at.isoformat(),
        "settings": project.settings,
    }


def _project_from(body: Mapping[str, Any], *, project_id: int, revision: int) -> Project:
    return Project(
        id=project_id,
        name=body["name"],
        label_config=body["label_config"],
        created_by=body["created_by"],
        created_at=datetime.fromisoformat(body["created_at"]),
        settings=body["settings"],
        revision=revision,
    )


def _run_body(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "project_id": run.project_id,
        "kind": run.kind.value,
        "status": run.status.value,
        "created_by": run.created_by,
        "created_at": run.created_at.isoformat(),
        "use_gpu": run.use_gpu,
        "params": run.params,
        "progress": run.progress,
        "epoch": run.epoch,
        "metrics": run.metrics,
        "history": list(run.history),
        "logs_key": run.logs_key,
        "dataset_key": run.dataset_key,
        "failure_reason": run.failure_reason,
        "started_at": _time_text(run.started_at),
        "finished_at": _time_text(run.finished_at),
        "heartbeat_at": _time_text(run.heartbeat_at),
        "job_ref": run.job_ref,
    }


def _run_from(body: Mapping[str, Any], *, revision: int) -> Run:
    return Run(
        id=body["id"],
        project_id=body["project_id"],
        kind=JobKind(body["kind"]),
        status=RunStatus(body["status"]),
        created_by=body["created_by"],
        created_at=datetime.fromisoformat(body["created_at"]),
        use_gpu=body["use_gpu"],
        params=body["params"],
        progress=body["progress"],
        epoch=body["epoch"],
        metrics=body["metrics"],
        history=tuple(body["history"]),
        logs_key=body["logs_key"],
        dataset_key=body["dataset_key"],
        failure_reason=body["failure_reason"],
        started_at=_time_from(body["started_at"]),
        finished_at=_time_from(body["finished_at"]),
        heartbeat_at=_time_from(body["heartbeat_at"]),
        job_ref=body["job_ref"],
        revision=revision,
    )


def _model_body(entry: ModelEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "version": entry.version,
        "kind": entry.kind.value,
        "labels": list(entry.labels),
        "project_id": entry.project_id,
        "run_id": entry.run_id,
        "artifact_key": entry.artifact_key,
        "base_model": entry.base_model,
        "created_at": entry.created_at.isoformat(),
        "metrics": entry.metrics,
        "deployed_in": list(entry.deployed_in),
    }


def _model_from(body: Mapping[str, Any], *, revision: int) -> ModelEntry:
    return ModelEntry(
        name=body["name"],
        version=body["version"],
        kind=ModelKind(body["kind"]),
        labels=tuple(body["labels"]),
        project_id=body["project_id"],
        run_id=body["run_id"],
        artifact_key=body["artifact_key"],
        base_model=body["base_model"],
        created_at=datetime.fromisoformat(body["created_at"]),
        metrics=body["metrics"],
        deployed_in=tuple(body["deployed_in"]),
        revision=revision,
    )


def _server_body(server: Server) -> dict[str, Any]:
    return {
        "run_id": server.run_id,
        "kind": server.kind.value,
        "project_id": server.project_id,
        "started_by": server.started_by,
        "since": server.since.isoformat(),
        "use_gpu": server.use_gpu,
        "host": server.host,
    }


def _server_from(body: Mapping[str, Any]) -> Server:
    return Server(
        run_id=body["run_id"],
        kind=JobKind(body["kind"]),
        project_id=body["project_id"],
        started_by=body["started_by"],
        since=datetime.fromisoformat(body["since"]),
        use_gpu=body["use_gpu"],
        host=body["host"],
    )


def _user_body(user: User) -> dict[str, Any]:
    return {"name": user.name, "role": user.role.value, "created_at": user.created_at.isoformat()}


def _user_from(body: Mapping[str, Any], *, revision: int) -> User:
    return User(
        name=body["name"],
        role=UserRole(body["role"]),
        created_at=datetime.fromisoformat(body["created_at"]),
        revision=revision,
    )


def _token_body(token: ApiToken) -> dict[str, Any]:
    return {
        "token_hash": token.token_hash,
        "user": token.user,
        "created_at": token.created_at.isoformat(),
        "label": token.label,
    }


def _token_from(body: Mapping[str, Any]) -> ApiToken:
    return ApiToken(
        token_hash=body["token_hash"],
        user=body["user"],
        created_at=datetime.fromisoformat(body["created_at"]),
        label=body["label"],
    )


def _license_body(record: LicenseRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "document": record.document,
        "imported_at": record.imported_at.isoformat(),
    }


def _license_from(body: Mapping[str, Any]) -> LicenseRecord:
    return LicenseRecord(
        id=body["id"],
        document=body["document"],
        imported_at=datetime.fromisoformat(body["imported_at"]),
    )


def _usage_body(record: UsageRecord) -> dict[str, Any]:
    return {
        "dimension": record.dimension,
        "quantity": record.quantity,
        "start": record.start.isoformat(),
        "end": record.end.isoformat(),
        "run_id": record.run_id,
    }


def _usage_from(body: Mapping[str, Any]) -> UsageRecord:
    return UsageRecord(
        dimension=body["dimension"],
        quantity=body["quantity"],
        start=datetime.fromisoformat(body["start"]),
        end=datetime.fromisoformat(body["end"]),
        run_id=body["run_id"],
    )


def _matches(task: Task, query: TaskQuery) -> bool:
    if query.tags and query.tags.isdisjoint(task.tags):
        return False
    if query.has_completions is not None:
        submitted = any(c.state is CompletionState.SUBMITTED for c in task.completions)
        if submitted != query.has_completions:
            return False
    return query.has_predictions is None or bool(task.predictions) == query.has_predictions


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidRequestError("limit", f"must be from 1 to {MAX_PAGE_SIZE}, not {limit}")


def _stored_id(value: object, what: str) -> int:
    """The id of a stored task or completion, which the store assigned as an int."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError("id", f"a stored {what} has a whole-number id, not {value!r}")
    return value


# --- pagination tokens ----------------------------------------------------------------


def _encode_token(listing: str, position: Mapping[str, str]) -> str:
    payload = json.dumps({"l": listing, "p": dict(position)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_token(listing: str, token: str) -> dict[str, str]:
    """The position a token of ``listing`` holds; InvalidRequestError for any other text."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError("token", "is not a token this listing gave") from exc
    if not isinstance(payload, dict) or payload.get("l") != listing:
        raise InvalidRequestError("token", "is not a token this listing gave")
    position = payload.get("p")
    if not isinstance(position, dict) or not all(
        isinstance(value, str) for value in position.values()
    ):
        raise InvalidRequestError("token", "is not a token this listing gave")
    return {str(name): str(value) for name, value in position.items()}


# --- the store ----------------------------------------------------------------------


class DynamoDbStore:
    """Every Store port on one DynamoDB table, with S3 for items over ~350 KB.

    Implements ProjectStore, TaskStore, RunStore, ModelStore, ServerStore,
    UserStore, LicenseStore and UsageMeter (:class:`annotrain.ports.Store`).
    Updates are conditional writes on ``revision``; ids come from atomic counters
    (``UpdateItem … ADD``); what must change together is one TransactWriteItems.
    docs/dynamodb.md has the item layouts and every access pattern.

    Clients are created on first use (``boto3.client("dynamodb")`` /
    ``("s3")``) unless given; the instance is safe to share between threads.

    Args:
        table_name: The table, created from :data:`TABLE`.
        client: A boto3 DynamoDB client; made on first use when None.
        s3_client: A boto3 S3 client; made on first use when None.
        overflow_bucket: Where bodies over :data:`OVERFLOW_BYTES` are kept.
        overflow_kms_key_id: Encrypt those objects with this KMS key; SSE-S3
            (AES256) when None.
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: Any = None,
        s3_client: Any = None,
        overflow_bucket: str,
        overflow_kms_key_id: str | None = None,
    ) -> None:
        self._table = table_name
        self._bucket = overflow_bucket
        self._dynamodb_client = client
        self._s3_client = s3_client
        self._clients_lock = threading.Lock()
        self._encryption: dict[str, str] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": overflow_kms_key_id}
            if overflow_kms_key_id
            else {"ServerSideEncryption": "AES256"}
        )

    # --- clients and calls ---------------------------------------------------------

    @property
    def _db(self) -> Any:
        if self._dynamodb_client is None:
            with self._clients_lock:
                if self._dynamodb_client is None:
                    self._dynamodb_client = _new_client("dynamodb")
        return self._dynamodb_client

    @property
    def _s3(self) -> Any:
        if self._s3_client is None:
            with self._clients_lock:
                if self._s3_client is None:
                    self._s3_client = _new_client("s3")
        return self._s3_client

    @staticmethod
    def _backoff(attempt: int) -> None:
        delay = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)
        # Jitter spreads writers that collided apart; it has nothing to do with security.
        time.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311

    def _request(self, operation: str, **params: Any) -> Item:
        """Call DynamoDB on the table, retrying a collision with a transaction in flight.

        botocore retries throttling but not TransactionConflictException; the
        request was refused whole, so a retry is safe.
        """
        for attempt in range(_ATTEMPTS):
            try:
                response: Item = getattr(self._db, operation)(TableName=self._table, **params)
            except self._db.exceptions.TransactionConflictException:
                if attempt == _ATTEMPTS - 1:
                    raise
            else:
                return response
            self._backoff(attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _transact(self, operations: Sequence[Item]) -> list[str]:
        """Run one TransactWriteItems, retrying a cancellation for conflict or throttling.

        Returns:
            Empty when it committed; else one cancellation code per operation
            (``ConditionalCheckFailed`` where a condition failed, ``None`` elsewhere).
        """
        items = [
            {kind: {"TableName": self._table, **spec} for kind, spec in operation.items()}
            for operation in operations
        ]
        for attempt in range(_ATTEMPTS):
            try:
                self._db.transact_write_items(TransactItems=items)
            except self._db.exceptions.TransactionCanceledException as exc:
                codes = _cancellation_codes(exc)
                if "ConditionalCheckFailed" in codes:
                    return codes
                if not {code for code in codes if code != "None"} <= _RETRYABLE_CANCELLATIONS:
                    raise
            else:
                return []
            self._backoff(attempt)
        raise DynamoDbBusyError("a transaction kept conflicting with other writes")

    def _query_pages(self, **params: Any) -> Iterator[list[Item]]:
        """The pages of a Query, following LastEvaluatedKey to the end."""
        while True:
            response = self._request("query", **params)
            yield response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            params = {**params, "ExclusiveStartKey": last}

    def _query_items(self, **params: Any) -> Iterator[Item]:
        for page in self._query_pages(**params):
            yield from page

    def _query_at_most(self, count: int, params: Mapping[str, Any]) -> list[Item]:
        """Up to ``count`` items of a Query, following LastEvaluatedKey as needed."""
        params = {**params, "Limit": count}
        found: list[Item] = []
        while True:
            response = self._request("query", **params)
            found += response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if len(found) >= count or not last:
                return found
            params = {**params, "ExclusiveStartKey": last, "Limit": count - len(found)}

    def _get_item(self, pk: str, sk: str) -> Item | None:
        response = self._request("get_item", Key=_key(pk, sk), ConsistentRead=True)
        item: Item | None = response.get("Item")
        return item

    def _batch_write(self, requests: Sequence[Item]) -> None:
        """BatchWriteItem in chunks of 25, retrying UnprocessedItems with backoff."""
        for chunk in _chunks(requests, _BATCH_WRITE_MAX):
            pending: Item = {self._table: list(chunk)}
            for attempt in range(_ATTEMPTS):
                response = self._db.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                self._backoff(attempt)
            else:
                raise DynamoDbBusyError("DynamoDB kept writes unprocessed after every retry")

    def _batch_get(self, keys: Sequence[Item], projection: str) -> list[Item]:
        """BatchGetItem (consistent) in chunks of 100, retrying UnprocessedKeys."""
        found: list[Item] = []
        for chunk in _chunks(keys, _BATCH_GET_MAX):
            pending: Item = {
                self._table: {
                    "Keys": list(chunk),
                    "ConsistentRead": True,
                    "ProjectionExpression": projection,
                }
            }
            for attempt in range(_ATTEMPTS):
                response = self._db.batch_get_item(RequestItems=pending)
                found += response.get("Responses", {}).get(self._table, [])
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                self._backoff(attempt)
            else:
                raise DynamoDbBusyError("DynamoDB kept reads unprocessed after every retry")
        return found

    def _delete_keys_quietly(self, keys: Sequence[Item]) -> None:
        """Best-effort clean-up after a failed write: the caller re-raises the failure."""
        try:
            self._batch_write([{"DeleteRequest": {"Key": key}} for key in keys])
        except (self._db.exceptions.ClientError, DynamoDbBusyError):
            _log.exception("could not remove %d items of a failed write", len(keys))

    # --- bodies, and the overflow to S3 -----------------------------------------

    def _body_attributes(
        self, pk: str, sk: str, body: Mapping[str, Any], written: list[str]
    ) -> Item:
        """``body`` for an item; or, over :data:`OVERFLOW_BYTES`, ``body_s3`` naming an S3 copy.

        The S3 key is unique per write (not per item): two writers racing for one
        revision each write their own object, and the loser deletes only its own.
        Keys written are appended to ``written`` so that a failed write can remove them.
        """
        text = _to_json(body)
        encoded = text.encode()
        if len(encoded) <= OVERFLOW_BYTES:
            return {"body": _s(text)}
        key = f"items/{pk}/{sk}/{uuid.uuid4().hex}.json"
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=encoded,
            ContentType="application/json",
            **self._encryption,
        )
        written.append(key)
        return {"body_s3": _s(key)}

    def _read_body(self, item: Item) -> dict[str, Any] | None:
        """The item's body; None when its S3 copy was replaced since the item was read."""
        if "body" in item:
            body: dict[str, Any] = json.loads(item["body"]["S"])
            return body
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=item["body_s3"]["S"])
        except self._s3.exceptions.NoSuchKey:
            return None
        with closing(response["Body"]) as stream:
            overflowed: dict[str, Any] = json.loads(stream.read())
        return overflowed

    def _load(self, pk: str, sk: str) -> tuple[Item, dict[str, Any]] | None:
        """An item and its body, read consistently; None when there is no such item."""
        for _ in range(_ATTEMPTS):
            item = self._get_item(pk, sk)
            if item is None:
                return None
            body = self._read_body(item)
            if body is not None:
                return item, body
        raise DynamoDbBusyError(f"{pk} {sk} kept changing while it was read")

    def _resolve(self, item: Item) -> tuple[Item, dict[str, Any]] | None:
        """A queried item with its body, re-read if an update replaced its S3 copy meanwhile."""
        body = self._read_body(item)
        if body is not None:
            return item, body
        return self._load(item["PK"]["S"], item["SK"]["S"])

    def _delete_objects(self, keys: Iterable[str]) -> None:
        """Delete S3 copies of bodies no item points to any more.

        Failures are logged, not raised: the items are already written or gone, and
        an object nothing points to costs storage, not correctness.
        """
        unique = list(dict.fromkeys(keys))
        for chunk in _chunks(unique, _S3_DELETE_MAX):
            try:
                response = self._s3.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
                )
            except self._s3.exceptions.ClientError:
                _log.exception("could not delete %d overflow objects", len(chunk))
                continue
            for error in response.get("Errors", []):
                _log.warning("could not delete overflow object %s: %s", error.get("Key"), error)

    # --- generic writes ---------------------------------------------------------------

    def _put_new(self, item: Item, *, what: str, key: object, written: list[str]) -> None:
        """PutItem if no item has this key, else AlreadyExistsError."""
        try:
            self._request(
                "put_item",
                Item=item,
                ConditionExpression="attribute_not_exists(PK)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            self._delete_objects(written)
            raise AlreadyExistsError(what, key) from None
        except Exception:
            self._delete_objects(written)
            raise

    def _put_replacing(self, item: Item, written: list[str]) -> None:
        """PutItem whatever is there; removes the replaced item's S3 copy, if any."""
        try:
            response = self._request("put_item", Item=item, ReturnValues="ALL_OLD")
        except Exception:
            self._delete_objects(written)
            raise
        self._delete_objects(_overflow_keys([response.get("Attributes", {})]))

    def _delete(self, pk: str, sk: str) -> Item | None:
        """DeleteItem (idempotent) and its S3 copy; returns what was deleted."""
        response = self._request("delete_item", Key=_key(pk, sk), ReturnValues="ALL_OLD")
        old: Item | None = response.get("Attributes")
        if old:
            self._delete_objects(_overflow_keys([old]))
        return old

    def _update_body(
        self,
        pk: str,
        sk: str,
        body: Mapping[str, Any],
        *,
        expected_revision: int,
        what: str,
        key: object,
        attributes: Mapping[str, Item] | None = None,
    ) -> int:
        """Replace an item's body (and some attributes) if it is at ``expected_revision``.

        One UpdateItem with ``ConditionExpression revision = :expected``; what else
        the item holds (counters) is untouched.

        Returns:
            The new revision.

        Raises:
            ConflictError: The item is at another revision.
            NotFoundError: There is no such item.
        """
        written: list[str] = []
        body_attributes = self._body_attributes(pk, sk, body, written)
        stale = "body_s3" if "body" in body_attributes else "body"
        values_to_set = {
            **body_attributes,
            **(attributes or {}),
            "revision": _n(expected_revision + 1),
        }
        names = {f"#a{i}": name for i, name in enumerate(values_to_set)}
        values = {f":a{i}": value for i, value in enumerate(values_to_set.values())}
        assignments = ", ".join(f"#a{i} = :a{i}" for i in range(len(values_to_set)))
        try:
            response = self._request(
                "update_item",
                Key=_key(pk, sk),
                UpdateExpression=f"SET {assignments} REMOVE #stale",
                ConditionExpression="#revision = :expected",
                ExpressionAttributeNames={**names, "#stale": stale, "#revision": "revision"},
                ExpressionAttributeValues={**values, ":expected": _n(expected_revision)},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._db.exceptions.ConditionalCheckFailedException as exc:
            self._delete_objects(written)
            current = exc.response.get("Item") or self._get_item(pk, sk)
            if current is None:
                raise NotFoundError(what, key) from None
            raise ConflictError(what, key, expected_revision, _revision(current)) from None
        except Exception:
            self._delete_objects(written)
            raise
        self._delete_objects(_overflow_keys([response.get("Attributes", {})]))
        return expected_revision + 1

    def _put_all_or_none(
        self, items: Sequence[Item], guards: Sequence[tuple[Item, Exception]]
    ) -> None:
        """Write new items so that either all of them stay or none does.

        Up to 100 operations and ~3.5 MB, one TransactWriteItems with ``guards``
        (ConditionChecks, each with the error its failure means): atomic, nothing
        is ever visible half-written. Bigger, BatchWriteItem in chunks of 25 with
        retries; if a chunk fails for good, every item is deleted again (best
        effort) and the failure re-raised. Readers may see part of a big write
        while it is under way, and the guards are not re-checked: callers check
        them before.
        """
        size = sum(_approximate_size(item) for item in items)
        if len(items) + len(guards) <= _TRANSACTION_MAX_ITEMS and size <= _TRANSACTION_MAX_BYTES:
            operations = [{"ConditionCheck": guard} for guard, _ in guards]
            operations += [{"Put": {"Item": item}} for item in items]
            codes = self._transact(operations)
            for code, (_, error) in zip(codes, guards, strict=False):
                if code == "ConditionalCheckFailed":
                    raise error
            if codes:
                raise AssertionError(f"a new item's key was taken: {codes}")
            return
        try:
            self._batch_write([{"PutRequest": {"Item": item}} for item in items])
        except Exception:
            self._delete_keys_quietly([_key_of(item) for item in items])
            raise

    def _purge(self, pk: str, sk_prefix: str | None = None) -> None:
        """Delete a partition's items (those whose sort key starts with a prefix).

        Reads the first page again after every deletion until none is left, so
        that children added while it runs (before their parent was deleted) are
        found too.
        """
        names = {"#pk": "PK", "#sk": "SK", "#s3": "body_s3"}
        values = {":pk": _s(pk)}
        condition = "#pk = :pk"
        if sk_prefix is not None:
            condition += " AND begins_with(#sk, :prefix)"
            values[":prefix"] = _s(sk_prefix)
        while True:
            response = self._request(
                "query",
                KeyConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ProjectionExpression="#pk, #sk, #s3",
                ConsistentRead=True,
            )
            items = response.get("Items", [])
            if not items:
                return
            self._batch_write([{"DeleteRequest": {"Key": _key_of(item)}} for item in items])
            self._delete_objects(_overflow_keys(items))

    def _list(
        self,
        *,
        listing: str,
        partition: str,
        limit: int,
        token: str | None,
        decode: Callable[[Item, dict[str, Any]], T],
        index: IndexDesign | None = None,
        sort_prefix: str | None = None,
        newest_first: bool = False,
    ) -> Page[T]:
        """One page of a partition of the table (or of an index), in sort key order.

        Queries for ``limit + 1`` items so that the token is None exactly when
        nothing follows; the token holds the last item's keys (ExclusiveStartKey).
        """
        _check_limit(limit)
        pk_name, sk_name = (index.partition_key, index.sort_key) if index else ("PK", "SK")
        key_names = ["PK", "SK"] + ([pk_name, sk_name] if index else [])
        params: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": pk_name},
            "ExpressionAttributeValues": {":pk": _s(partition)},
            "ScanIndexForward": not newest_first,
            "Limit": limit + 1,
        }
        if sort_prefix is not None:
            params["KeyConditionExpression"] += " AND begins_with(#sk, :prefix)"
            params["ExpressionAttributeNames"]["#sk"] = sk_name
            params["ExpressionAttributeValues"][":prefix"] = _s(sort_prefix)
        if index:
            params["IndexName"] = index.name
        else:
            params["ConsistentRead"] = True
        if token is not None:
            position = _decode_token(listing, token)
            if (
                set(position) != set(key_names)
                or position[pk_name] != partition
                or not position[sk_name].startswith(sort_prefix or "")
            ):
                raise InvalidRequestError("token", "is not a token this listing gave")
            params["ExclusiveStartKey"] = {name: _s(value) for name, value in position.items()}
        found = self._query_at_most(limit + 1, params)
        shown = found[:limit]
        next_token = None
        if len(found) > limit:
            next_token = _encode_token(listing, {name: shown[-1][name]["S"] for name in key_names})
        records = []
        for item in shown:
            resolved = self._resolve(item)
            if resolved is not None:
                records.append(decode(*resolved))
        return Page(records, next_token)

    # --- ProjectStore --------------------------------------------------------------------

    def create_project(self, project: Project) -> Project:
        """Store a new project under the next id of a global counter; revision 1."""
        response = self._request(
            "update_item",
            Key=_key(_PROJECT_COUNTER_PK, _META),
            UpdateExpression="ADD #value :one",
            ExpressionAttributeNames={"#value": "value"},
            ExpressionAttributeValues={":one": _n(1)},
            ReturnValues="UPDATED_NEW",
        )
        project_id = int(response["Attributes"]["value"]["N"])
        stored = replace(project, id=project_id, revision=1)
        pk = _project_pk(project_id)
        written: list[str] = []
        item = {
            **_key(pk, _META),
            **self._body_attributes(pk, _META, _project_body(stored), written),
            "revision": _n(1),
            "GSI1PK": _s("PROJECTS"),
            "GSI1SK": _s(_padded(project_id)),
        }
        self._put_new(item, what="project", key=project_id, written=written)
        return stored

    def get_project(self, project_id: int) -> Project:
        """The project, or NotFoundError."""
        loaded = self._load(_project_pk(project_id), _META)
        if loaded is None:
            raise NotFoundError("project", project_id)
        item, body = loaded
        return _project_from(body, project_id=project_id, revision=_revision(item))

    def update_project(self, project: Project) -> Project:
        """Store a changed project (revision-checked); its id counters are untouched."""
        revision = self._update_body(
            _project_pk(project.id),
            _META,
            _project_body(project),
            expected_revision=project.revision,
            what="project",
            key=project.id,
        )
        return replace(project, revision=revision)

    def delete_project(self, project_id: int) -> None:
        """Delete the project, then everything in its partition.

        The project item goes first, so that no task or member can be added
        afterwards (their writes are conditional on it); the partition is then
        emptied page by page until a read finds nothing. A completion or
        prediction can only be added while its task exists, so one added meanwhile
        is found by a later read. Not atomic: a reader may see some of the tasks
        while they are being deleted.
        """
        pk = _project_pk(project_id)
        self._delete(pk, _META)
        self._purge(pk)

    def list_projects(self, *, limit: int = 100, token: str | None = None) -> Page[Project]:
        """Projects, oldest first (GSI1, ``PROJECTS``; eventually consistent)."""
        return self._list(
            listing="projects",
            partition="PROJECTS",
            index=GSI1,
            limit=limit,
            token=token,
            decode=lambda item, body: _project_from(
                body, project_id=int(item["GSI1SK"]["S"]), revision=_revision(item)
            ),
        )

    def put_member(self, project_id: int, member: Member) -> None:
        """Add a member or change their role and priority; NotFoundError without the project."""
        pk = _project_pk(project_id)
        item = {
            **_key(pk, _member_sk(member.user)),
            "body": _s(_to_json({"role": member.role.value, "priority": member.priority})),
        }
        codes = self._transact(
            [
                {"ConditionCheck": self._exists(pk, _META)},
                {"Put": {"Item": item}},
            ]
        )
        if codes:
            raise NotFoundError("project", project_id)

    def remove_member(self, project_id: int, user: str) -> None:
        """Remove a member (idempotent)."""
        self._delete(_project_pk(project_id), _member_sk(user))

    def list_members(
        self, project_id: int, *, limit: int = 100, token: str | None = None
    ) -> Page[Member]:
        """Members by user name (a consistent Query of ``MEMBER#`` in the project)."""
        prefix = _member_sk("")
        page: Page[Member] = self._list(
            listing=f"members/{project_id}",
            partition=_project_pk(project_id),
            sort_prefix=prefix,
            limit=limit,
            token=token,
            decode=lambda item, body: Member(
                user=item["SK"]["S"].removeprefix(prefix),
                role=Role(body["role"]),
                priority=body["priority"],
            ),
        )
        if not page.items and token is None:
            self._require_project(project_id)
        return page

    def get_memberships(self, user: str, project_ids: Collection[int]) -> dict[int, Member]:
        """The user's membership of each of these projects they are in, by project id.

        One consistent BatchGetItem of ``PROJECT#<id>``/``MEMBER#<user>`` per 100
        projects: a member item sits in its project's partition and in no index, so
        its key is known without a query. Projects the user is not in, or that do not
        exist, have no such item and are left out.
        """
        by_pk = {_project_pk(p): p for p in sorted(set(project_ids))}
        keys = [_key(pk, _member_sk(user)) for pk in by_pk]
        found: dict[int, Member] = {}
        for item in self._batch_get(keys, "PK, SK, body, body_s3"):
            resolved = self._resolve(item)
            if resolved is None:  # removed while it was read
                continue
            _, body = resolved
            found[by_pk[item["PK"]["S"]]] = Member(user, Role(body["role"]), body["priority"])
        return found

    def _require_project(self, project_id: int) -> None:
        """NotFoundError unless the project exists: an empty listing must say which it is."""
        if self._get_item(_project_pk(project_id), _META) is None:
            raise NotFoundError("project", project_id)

    # --- TaskStore ---------------------------------------------------------------------------

    @staticmethod
    def _exists(pk: str, sk: str) -> Item:
        """A ConditionCheck that the item exists."""
        return {"Key": _key(pk, sk), "ConditionExpression": "attribute_exists(PK)"}

    def _reserve_ids(
        self, project_id: int, *, tasks: int = 0, completions: int = 0, predictions: int = 0
    ) -> tuple[int, int, int]:
        """Reserve blocks of ids on the project's counters in one UpdateItem (``ADD``).

        Returns:
            The first task, completion and prediction id of the blocks (0 for a
            kind none was asked of).
        """
        wanted = {
            counter: count
            for counter, count in (
                (_TASK_COUNTER, tasks),
                (_COMPLETION_COUNTER, completions),
                (_PREDICTION_COUNTER, predictions),
            )
            if count > 0
        }
        names = {f"#c{i}": counter for i, counter in enumerate(wanted)}
        values = {f":c{i}": _n(count) for i, count in enumerate(wanted.values())}
        try:
            response = self._request(
                "update_item",
                Key=_key(_project_pk(project_id), _META),
                UpdateExpression="ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(wanted))),
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            raise NotFoundError("project", project_id) from None
        counters = response["Attributes"]
        first = {
            counter: int(counters[counter]["N"]) - count + 1 for counter, count in wanted.items()
        }
        return (
            first.get(_TASK_COUNTER, 0),
            first.get(_COMPLETION_COUNTER, 0),
            first.get(_PREDICTION_COUNTER, 0),
        )

    def add_tasks(self, project_id: int, tasks: Sequence[Task]) -> list[Task]:
        """Store tasks with their completions and predictions, all or none.

        Ids come in one UpdateItem that reserves a block of each kind. Up to 100
        items in all (tasks + completions + predictions), the write is one
        transaction, conditional on the project: atomic. Beyond that it is
        BatchWriteItem in chunks of 25 with retries; if a chunk fails for good,
        what was written is deleted again (best effort) and the error re-raised:
        nothing half-written stays, but readers may glimpse some of the tasks
        while the import runs, and a delete of the project racing the import may
        leave some of its tasks behind. Bodies over ~350 KB go to S3 first.

        Returns:
            The tasks as stored: ids assigned, revision 1, in the order given.
        """
        if not tasks:
            return []
        pk = _project_pk(project_id)
        completion_count = sum(len(task.completions) for task in tasks)
        prediction_count = sum(len(task.predictions) for task in tasks)
        task_id, completion_id, prediction_id = self._reserve_ids(
            project_id,
            tasks=len(tasks),
            completions=completion_count,
            predictions=prediction_count,
        )
        stored_tasks: list[Task] = []
        items: list[Item] = []
        written: list[str] = []
        try:
            for task in tasks:
                completions = []
                for completion in task.completions:
                    completions.append(replace(completion, id=completion_id, revision=1))
                    completion_id += 1
                predictions = []
                for prediction in task.predictions:
                    predictions.append(replace(prediction, id=prediction_id))
                    prediction_id += 1
                stored = replace(
                    task,
                    id=task_id,
                    revision=1,
                    completions=tuple(completions),
                    predictions=tuple(predictions),
                )
                items += self._task_items(pk, stored, written)
                stored_tasks.append(stored)
                task_id += 1
            self._put_all_or_none(
                items, [(self._exists(pk, _META), NotFoundError("project", project_id))]
            )
        except Exception:
            self._delete_objects(written)
            raise
        return stored_tasks

    def _task_items(self, pk: str, task: Task, written: list[str]) -> list[Item]:
        """The items of a task as stored: its own, then one per completion and prediction."""
        task_id = _stored_id(task.id, "task")
        sk = _task_sk(task_id)
        items = [
            {
                **_key(pk, sk),
                **self._body_attributes(pk, sk, _task_body(task), written),
                "revision": _n(1),
            }
        ]
        for completion in task.completions:
            sk = _completion_sk(task_id, _stored_id(completion.id, "completion"))
            body = self._body_attributes(pk, sk, _completion_body(completion), written)
            items.append({**_key(pk, sk), **body, "revision": _n(1)})
        for prediction in task.predictions:
            sk = _prediction_sk(task_id, _stored_id(prediction.id, "prediction"))
            items.append(
                {
                    **_key(pk, sk),
                    **self._body_attributes(pk, sk, _prediction_body(prediction), written),
                }
            )
        return items

    def _assemble_tasks(self, items: Iterable[Item]) -> Iterator[Task]:
        """Tasks from their items in key order: each task item, then its children."""
        header: Item | None = None
        children: list[Item] = []
        for item in items:
            task_id, kind, _ = _parse_task_sk(item["SK"]["S"])
            if kind == "T":
                if header is not None and (task := self._task_from_items(header, children)):
                    yield task
                header, children = item, []
            elif header is not None and _parse_task_sk(header["SK"]["S"])[0] == task_id:
                children.append(item)
            # Otherwise a child whose task is gone (its deletion is under way): not shown.
        if header is not None and (task := self._task_from_items(header, children)):
            yield task

    def _task_from_items(self, header: Item, children: Sequence[Item]) -> Task | None:
        resolved = self._resolve(header)
        if resolved is None:
            return None
        item, body = resolved
        task_id = _parse_task_sk(item["SK"]["S"])[0]
        completions, predictions = self._children(children)
        return Task(
            id=task_id,
            data=body["data"],
            completions=completions,
            predictions=predictions,
            tags=tuple(body["tags"]),
            extra=body["extra"],
            revision=_revision(item),
        )

    def _children(
        self, children: Iterable[Item]
    ) -> tuple[tuple[Completion, ...], tuple[Prediction, ...]]:
        completions: list[Completion] = []
        predictions: list[Prediction] = []
        for child in children:
            resolved = self._resolve(child)
            if resolved is None:
                continue
            item, body = resolved
            _, kind, child_id = _parse_task_sk(item["SK"]["S"])
            if kind == "C":
                completions.append(
                    _completion_from(body, completion_id=child_id, revision=_revision(item))
                )
            elif kind == "P":
                predictions.append(_prediction_from(body, prediction_id=child_id))
        return tuple(completions), tuple(predictions)

    def _task_range(
        self, project_id: int, first_sk: str, *, page_items: int | None
    ) -> Iterator[Item]:
        params: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :from AND :to",
            "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
            "ExpressionAttributeValues": {
                ":pk": _s(_project_pk(project_id)),
                ":from": _s(first_sk),
                ":to": _s(_TASKS_TO),
            },
            "ConsistentRead": True,
        }
        if page_items is not None:
            params["Limit"] = page_items
        return self._query_items(**params)

    def get_task(self, project_id: int, task_id: int) -> Task:
        """The task with its completions and predictions: one Query of ``TASK#<id>``."""
        items = self._query_items(
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :task)",
            ExpressionAttributeNames={"#pk": "PK", "#sk": "SK"},
            ExpressionAttributeValues={
                ":pk": _s(_project_pk(project_id)),
                ":task": _s(_task_sk(task_id)),
            },
            ConsistentRead=True,
        )
        for task in self._assemble_tasks(items):
            return task
        raise NotFoundError("task", task_id)

    def list_tasks(
        self,
        project_id: int,
        query: TaskQuery | None = None,
        *,
        limit: int = 100,
        token: str | None = None,
    ) -> Page[Task]:
        """Tasks in id order, each with its completions and predictions.

        One Query streams task items with their children; pages hold whole tasks
        and the token resumes at the task after the last one shown. Filters are
        applied here, to assembled tasks: a filtered page reads (and pays for) the
        tasks it skips, completions and predictions included.
        """
        _check_limit(limit)
        query = query or TaskQuery()
        listing = f"tasks/{project_id}"
        first_sk = _TASKS_FROM
        if token is not None:
            after = _decode_token(listing, token).get("after", "")
            if not after.isdigit():
                raise InvalidRequestError("token", "is not a token this listing gave")
            first_sk = _task_sk(int(after) + 1)
        # A guess of items per page (a task and a few children each) that keeps small
        # pages from reading a whole megabyte.
        page_items = min(MAX_PAGE_SIZE, 4 * (limit + 1))
        stream = self._task_range(project_id, first_sk, page_items=page_items)
        matching = (task for task in self._assemble_tasks(stream) if _matches(task, query))
        found = list(islice(matching, limit + 1))
        shown = found[:limit]
        if not shown and token is None:
            self._require_project(project_id)
        next_token = None
        if len(found) > limit:
            next_token = _encode_token(listing, {"after": str(shown[-1].id)})
        return Page(shown, next_token)

    def iter_tasks(self, project_id: int, query: TaskQuery | None = None) -> Iterator[Task]:
        """Every matching task, streamed from one Query followed page after page."""
        query = query or TaskQuery()
        self._require_project(project_id)
        stream = self._task_range(project_id, _TASKS_FROM, page_items=None)
        return (task for task in self._assemble_tasks(stream) if _matches(task, query))

    def update_task(self, project_id: int, task: Task) -> Task:
        """Store a task's data, tags and extra (revision-checked); completions untouched.

        Returns:
            The task at its new revision, with its completions and predictions as
            stored now.
        """
        task_id = _stored_id(task.id, "task")
        pk = _project_pk(project_id)
        revision = self._update_body(
            pk,
            _task_sk(task_id),
            _task_body(task),
            expected_revision=task.revision,
            what="task",
            key=task_id,
        )
        children = self._query_items(
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :children)",
            ExpressionAttributeNames={"#pk": "PK", "#sk": "SK"},
            ExpressionAttributeValues={":pk": _s(pk), ":children": _s(f"{_task_sk(task_id)}#")},
            ConsistentRead=True,
        )
        completions, predictions = self._children(children)
        return replace(task, revision=revision, completions=completions, predictions=predictions)

    def delete_task(self, project_id: int, task_id: int) -> None:
        """Delete the task item first (no child can be added after), then its children."""
        pk = _project_pk(project_id)
        self._delete(pk, _task_sk(task_id))
        self._purge(pk, f"{_task_sk(task_id)}#")

    def add_completion(self, project_id: int, task_id: int, completion: Completion) -> Completion:
        """Store a new completion of a task; returns it with its id and revision 1.

        The id comes from the project's counter; the put is one transaction with a
        ConditionCheck on the task (NotFoundError if it is gone).
        """
        _, completion_id, _ = self._reserve_ids(project_id, completions=1)
        stored = replace(completion, id=completion_id, revision=1)
        pk = _project_pk(project_id)
        sk = _completion_sk(task_id, completion_id)
        written: list[str] = []
        try:
            item = {
                **_key(pk, sk),
                **self._body_attributes(pk, sk, _completion_body(stored), written),
                "revision": _n(1),
            }
            self._put_all_or_none(
                [item], [(self._exists(pk, _task_sk(task_id)), NotFoundError("task", task_id))]
            )
        except Exception:
            self._delete_objects(written)
            raise
        return stored

    def update_completion(
        self, project_id: int, task_id: int, completion: Completion
    ) -> Completion:
        """Store a changed completion (revision-checked); its reviews stay as stored.

        Reviews change only through :meth:`add_review`. The stored reviews are read
        first; the write is conditional on the revision, so a review added in
        between makes this a conflict rather than losing the review.
        """
        completion_id = _stored_id(completion.id, "completion")
        loaded = self._load(_project_pk(project_id), _completion_sk(task_id, completion_id))
        if loaded is None:
            raise NotFoundError("completion", completion_id)
        item, body = loaded
        if _revision(item) != completion.revision:
            raise ConflictError("completion", completion_id, completion.revision, _revision(item))
        stored = _completion_from(body, completion_id=completion_id, revision=_revision(item))
        return self._write_completion(
            project_id, task_id, replace(completion, reviews=stored.reviews)
        )

    def _write_completion(
        self, project_id: int, task_id: int, completion: Completion
    ) -> Completion:
        """Write a completion whole, reviews included, if its revision is still the stored one."""
        completion_id = _stored_id(completion.id, "completion")
        revision = self._update_body(
            _project_pk(project_id),
            _completion_sk(task_id, completion_id),
            _completion_body(completion),
            expected_revision=completion.revision,
            what="completion",
            key=completion_id,
        )
        return replace(completion, revision=revision)

    def delete_completion(self, project_id: int, task_id: int, completion_id: int) -> None:
        """Delete a completion (idempotent)."""
        self._delete(_project_pk(project_id), _completion_sk(task_id, completion_id))

    def add_review(
        self, project_id: int, task_id: int, completion_id: int, review: Review
    ) -> Completion:
        """Append a review: read, append, write back revision-checked; retried on a race."""
        pk = _project_pk(project_id)
        sk = _completion_sk(task_id, completion_id)
        for attempt in range(_ATTEMPTS):
            loaded = self._load(pk, sk)
            if loaded is None:
                raise NotFoundError("completion", completion_id)
            item, body = loaded
            current = _completion_from(body, completion_id=completion_id, revision=_revision(item))
            try:
                return self._write_completion(
                    project_id, task_id, replace(current, reviews=(*current.reviews, review))
                )
            except ConflictError:
                if attempt == _ATTEMPTS - 1:
                    raise
            self._backoff(attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def add_predictions(
        self, project_id: int, predictions: Sequence[tuple[int, Prediction]]
    ) -> None:
        """Store predictions for their tasks, all or none.

        Every task is checked first (BatchGetItem: NotFoundError before anything is
        written); ids come from the project's counter; the write is then the same
        as :meth:`add_tasks`: one transaction (conditional on each task) when it
        fits, batches with clean-up on failure otherwise.
        """
        if not predictions:
            return
        pk = _project_pk(project_id)
        task_ids = list(dict.fromkeys(task_id for task_id, _ in predictions))
        present = {
            item["SK"]["S"]
            for item in self._batch_get([_key(pk, _task_sk(t)) for t in task_ids], "SK")
        }
        for task_id in task_ids:
            if _task_sk(task_id) not in present:
                raise NotFoundError("task", task_id)
        _, _, prediction_id = self._reserve_ids(project_id, predictions=len(predictions))
        items: list[Item] = []
        written: list[str] = []
        try:
            for offset, (task_id, prediction) in enumerate(predictions):
                sk = _prediction_sk(task_id, prediction_id + offset)
                stored = replace(prediction, id=prediction_id + offset)
                body = self._body_attributes(pk, sk, _prediction_body(stored), written)
                items.append({**_key(pk, sk), **body})
            guards = [
                (self._exists(pk, _task_sk(task_id)), NotFoundError("task", task_id))
                for task_id in task_ids
            ]
            self._put_all_or_none(items, guards)
        except Exception:
            self._delete_objects(written)
            raise

    def replace_predictions(
        self,
        project_id: int,
        predictions: Sequence[tuple[int, Prediction]],
        *,
        models: Collection[str],
    ) -> None:
        """Store each task's prediction by ``models`` in place of those models' earlier ones.

        Prediction items carry the model names in a ``models`` attribute (outside the
        body, so no overflow object is read to find them). Per task: one Query of its
        predictions' keys, then one TransactWriteItems with the check that the task
        exists, the deletes of the predictions sharing a model and the put of the new
        one: a reader sees the old prediction or the new one, never both or neither.
        Tasks are packed into transactions of up to 100 operations; a batch needing
        more than one is not all-or-none across transactions (each task still is),
        and a failure leaves the tasks of committed transactions replaced.

        Raises:
            InvalidRequestError: No model named, a comma in a name, a task named twice.
            NotFoundError: A task is not in the project (checked before any write).
        """
        names = check_prediction_models(models, predictions)
        if not predictions:
            self._require_project(project_id)
            return
        pk = _project_pk(project_id)
        task_ids = [task_id for task_id, _ in predictions]
        present = {
            item["SK"]["S"]
            for item in self._batch_get([_key(pk, _task_sk(t)) for t in task_ids], "SK")
        }
        for task_id in task_ids:
            if _task_sk(task_id) not in present:
                raise NotFoundError("task", task_id)
        _, _, prediction_id = self._reserve_ids(project_id, predictions=len(predictions))
        models_attribute = {"SS": sorted(names)}
        pending: list[tuple[int, list[Item], list[Item]]] = []
        written: list[str] = []
        try:
            for offset, (task_id, prediction) in enumerate(predictions):
                sk = _prediction_sk(task_id, prediction_id + offset)
                stored = replace(prediction, id=prediction_id + offset)
                body = self._body_attributes(pk, sk, _prediction_body(stored), written)
                item = {**_key(pk, sk), **body, "models": models_attribute}
                stale = [
                    old
                    for old in self._task_predictions(pk, task_id)
                    if names & set(old.get("models", {}).get("SS", ()))
                ]
                pending.append((task_id, [item], stale))
            self._replace_in_transactions(pk, pending)
        except Exception:
            self._delete_objects(written)
            raise

    def _task_predictions(self, pk: str, task_id: int) -> list[Item]:
        """The keys, model names and overflow keys of a task's predictions."""
        return list(
            self._query_items(
                KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
                ExpressionAttributeNames={"#pk": "PK", "#sk": "SK", "#m": "models",
                                          "#s3": "body_s3"},
                ExpressionAttributeValues={":pk": _s(pk),
                                           ":prefix": _s(f"{_task_sk(task_id)}#P#")},
                ProjectionExpression="#pk, #sk, #m, #s3",
                ConsistentRead=True,
            )
        )  # fmt: skip

    def _replace_in_transactions(
        self, pk: str, pending: Sequence[tuple[int, list[Item], list[Item]]]
    ) -> None:
        """Write each task's (new items, stale items) whole, packing tasks into transactions."""
        operations: list[Item] = []
        size = 0
        removed: list[Item] = []

        def commit() -> None:
            codes = self._transact(operations)
            for code, operation in zip(codes, operations, strict=False):
                if code == "ConditionalCheckFailed" and "ConditionCheck" in operation:
                    task_sk = operation["ConditionCheck"]["Key"]["SK"]["S"]
                    raise NotFoundError("task", _parse_task_sk(task_sk)[0])
            if codes:
                raise AssertionError(f"a new prediction's key was taken: {codes}")

        for task_id, items, stale in pending:
            task_ops = [{"ConditionCheck": self._exists(pk, _task_sk(task_id))}]
            task_ops += [{"Delete": {"Key": _key_of(old)}} for old in stale]
            task_ops += [{"Put": {"Item": item}} for item in items]
            task_size = sum(_approximate_size(item) for item in items)
            too_many = len(operations) + len(task_ops) > _TRANSACTION_MAX_ITEMS
            if operations and (too_many or size + task_size > _TRANSACTION_MAX_BYTES):
                commit()
                operations, size = [], 0
            operations += task_ops
            size += task_size
            removed += stale
        if operations:
            commit()
        self._delete_objects(_overflow_keys(removed))

    # --- RunStore ---------------------------------------------------------------------------

    @staticmethod
    def _run_index_keys(run: Run) -> Item:
        when = f"{_sortable_time(run.created_at)}#{run.id}"
        return {
            "GSI1PK": _s(f"{_project_pk(run.project_id)}#RUNS"),
            "GSI1SK": _s(when),
            "GSI2PK": _s(f"RUNS#{run.status.value}"),
            "GSI2SK": _s(when),
        }

    def create_run(self, run: Run) -> Run:
        """Store a new run under its id (AlreadyExistsError if taken); revision 1."""
        stored = replace(run, revision=1)
        pk = _run_pk(run.id)
        written: list[str] = []
        item = {
            **_key(pk, _META),
            **self._body_attributes(pk, _META, _run_body(stored), written),
            **self._run_index_keys(stored),
            "revision": _n(1),
        }
        self._put_new(item, what="run", key=run.id, written=written)
        return stored

    def get_run(self, run_id: str) -> Run:
        """The run, or NotFoundError."""
        loaded = self._load(_run_pk(run_id), _META)
        if loaded is None:
            raise NotFoundError("run", run_id)
        item, body = loaded
        return _run_from(body, revision=_revision(item))

    def update_run(self, run: Run) -> Run:
        """Store a changed run (revision-checked), moving it between status listings."""
        revision = self._update_body(
            _run_pk(run.id),
            _META,
            _run_body(run),
            expected_revision=run.revision,
            what="run",
            key=run.id,
            attributes=self._run_index_keys(run),
        )
        return replace(run, revision=revision)

    def list_runs(
        self, project_id: int, *, limit: int = 100, token: str | None = None
    ) -> Page[Run]:
        """A project's runs, newest first (GSI1, ``PROJECT#<id>#RUNS``, descending)."""
        return self._list(
            listing=f"runs/{project_id}",
            partition=f"{_project_pk(project_id)}#RUNS",
            index=GSI1,
            newest_first=True,
            limit=limit,
            token=token,
            decode=lambda item, body: _run_from(body, revision=_revision(item)),
        )

    def list_runs_by_status(
        self, status: RunStatus, *, limit: int = 100, token: str | None = None
    ) -> Page[Run]:
        """Runs in a status, oldest first (GSI2, ``RUNS#<status>``)."""
        return self._list(
            listing=f"runs-by-status/{status.value}",
            partition=f"RUNS#{status.value}",
            index=GSI2,
            limit=limit,
            token=token,
            decode=lambda item, body: _run_from(body, revision=_revision(item)),
        )

    # --- ModelStore --------------------------------------------------------------------------

    @staticmethod
    def _model_index_keys(entry: ModelEntry) -> Item:
        order = _model_listing_sk(entry.name, entry.version)
        return {
            "GSI1PK": _s("MODELS"),
            "GSI1SK": _s(order),
            "GSI2PK": _s(f"{_project_pk(entry.project_id)}#MODELS"),
            "GSI2SK": _s(order),
        }

    def _latest_model_item(self, name: str, projection: str | None = None) -> Item | None:
        params: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :versions)",
            "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
            "ExpressionAttributeValues": {":pk": _s(_model_pk(name)), ":versions": _s("V#")},
            "ScanIndexForward": False,
            "Limit": 1,
            "ConsistentRead": True,
        }
        if projection is not None:
            params["ProjectionExpression"] = projection
        items = self._request("query", **params).get("Items", [])
        return items[0] if items else None

    def register_model(self, entry: ModelEntry) -> ModelEntry:
        """Store a model as the next version of its name.

        Reads the latest version, then puts version + 1 on condition that it does
        not exist; a concurrent registration that took it makes this one read again.
        Versions have no gaps.
        """
        pk = _model_pk(entry.name)
        for attempt in range(_ATTEMPTS):
            latest = self._latest_model_item(entry.name, projection="#sk")
            version = int(latest["SK"]["S"].removeprefix("V#")) + 1 if latest else 1
            stored = replace(entry, version=version, revision=1)
            sk = _model_sk(version)
            written: list[str] = []
            item = {
                **_key(pk, sk),
                **self._body_attributes(pk, sk, _model_body(stored), written),
                **self._model_index_keys(stored),
                "revision": _n(1),
            }
            try:
                self._put_new(item, what="model", key=(entry.name, version), written=written)
            except AlreadyExistsError:
                self._backoff(attempt)
                continue
            return stored
        raise DynamoDbBusyError(f"model {entry.name!r}: registrations kept colliding")

    def get_model(self, name: str, version: int | None = None) -> ModelEntry:
        """A version of a model (GetItem), the latest when none is given (Query, descending)."""
        if version is None:
            latest = self._latest_model_item(name)
            loaded = self._resolve(latest) if latest else None
        else:
            loaded = self._load(_model_pk(name), _model_sk(version))
        if loaded is None:
            raise NotFoundError("model", name if version is None else (name, version))
        item, body = loaded
        return _model_from(body, revision=_revision(item))

    def update_model(self, entry: ModelEntry) -> ModelEntry:
        """Store a changed entry (revision-checked): where deployed, metrics."""
        revision = self._update_body(
            _model_pk(entry.name),
            _model_sk(entry.version),
            _model_body(entry),
            expected_revision=entry.revision,
            what="model",
            key=(entry.name, entry.version),
            attributes=self._model_index_keys(entry),
        )
        return replace(entry, revision=revision)

    def list_models(
        self, *, project_id: int | None = None, limit: int = 100, token: str | None = None
    ) -> Page[ModelEntry]:
        """Models by name then version: GSI1 (``MODELS``) or, for a project, GSI2."""
        if project_id is None:
            listing, partition, index = "models", "MODELS", GSI1
        else:
            listing = f"models/{project_id}"
            partition, index = f"{_project_pk(project_id)}#MODELS", GSI2
        return self._list(
            listing=listing,
            partition=partition,
            index=index,
            limit=limit,
            token=token,
            decode=lambda item, body: _model_from(body, revision=_revision(item)),
        )

    # --- ServerStore ---------------------------------------------------------------------------

    def put_server(self, server: Server) -> None:
        """Record a running job, replacing the record of the same run (PutItem)."""
        pk = _server_pk(server.run_id)
        written: list[str] = []
        item = {
            **_key(pk, _META),
            **self._body_attributes(pk, _META, _server_body(server), written),
            "GSI1PK": _s("SERVERS"),
            "GSI1SK": _s(f"{_sortable_time(server.since)}#{server.run_id}"),
        }
        self._put_replacing(item, written)

    def remove_server(self, run_id: str) -> None:
        """Forget a job that stopped (idempotent)."""
        self._delete(_server_pk(run_id), _META)

    def list_servers(self, *, limit: int = 100, token: str | None = None) -> Page[Server]:
        """Running jobs, oldest first (GSI1, ``SERVERS``)."""
        return self._list(
            listing="servers",
            partition="SERVERS",
            index=GSI1,
            limit=limit,
            token=token,
            decode=lambda _, body: _server_from(body),
        )

    # --- UserStore ------------------------------------------------------------------------------

    def create_user(self, user: User) -> User:
        """Store a new user (AlreadyExistsError if the name is taken); revision 1."""
        stored = replace(user, revision=1)
        pk = _user_pk(user.name)
        written: list[str] = []
        item = {
            **_key(pk, _META),
            **self._body_attributes(pk, _META, _user_body(stored), written),
            "revision": _n(1),
            "GSI1PK": _s("USERS"),
            "GSI1SK": _s(user.name),
        }
        self._put_new(item, what="user", key=user.name, written=written)
        return stored

    def get_user(self, name: str) -> User:
        """The user, or NotFoundError."""
        loaded = self._load(_user_pk(name), _META)
        if loaded is None:
            raise NotFoundError("user", name)
        item, body = loaded
        return _user_from(body, revision=_revision(item))

    def list_users(self, *, limit: int = 100, token: str | None = None) -> Page[User]:
        """Users by name (GSI1, ``USERS``)."""
        return self._list(
            listing="users",
            partition="USERS",
            index=GSI1,
            limit=limit,
            token=token,
            decode=lambda item, body: _user_from(body, revision=_revision(item)),
        )

    def delete_user(self, name: str) -> None:
        """Delete a user and their tokens.

        The user's partition lists their tokens (``TOKEN#<hash>`` items); tokens go
        first, then the user item on condition that no token was added meanwhile
        (``add_token`` bumps a generation counter on it), else it starts over.
        """
        pk = _user_pk(name)
        for attempt in range(_ATTEMPTS):
            items = list(
                self._query_items(
                    KeyConditionExpression="#pk = :pk",
                    ExpressionAttributeNames={"#pk": "PK"},
                    ExpressionAttributeValues={":pk": _s(pk)},
                    ConsistentRead=True,
                )
            )
            user = next((item for item in items if item["SK"]["S"] == _META), None)
            token_refs = [item for item in items if item["SK"]["S"] != _META]
            deletions = []
            for ref in token_refs:
                token_hash = ref["SK"]["S"].removeprefix("TOKEN#")
                deletions += [_key(_token_pk(token_hash), _META), _key_of(ref)]
            self._batch_write([{"DeleteRequest": {"Key": key}} for key in deletions])
            if user is None:
                return
            condition: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(#issued)",
                "ExpressionAttributeNames": {"#issued": _ISSUED_COUNT},
            }
            if _ISSUED_COUNT in user:
                condition["ConditionExpression"] = "#issued = :issued"
                condition["ExpressionAttributeValues"] = {":issued": user[_ISSUED_COUNT]}
            try:
                response = self._request(
                    "delete_item", Key=_key(pk, _META), ReturnValues="ALL_OLD", **condition
                )
            except self._db.exceptions.ConditionalCheckFailedException:
                self._backoff(attempt)
                continue
            self._delete_objects(_overflow_keys([response.get("Attributes", {})]))
            return
        raise DynamoDbBusyError(f"user {name!r}: tokens kept being added during the delete")

    def add_token(self, token: ApiToken) -> None:
        """Store a token hash for an existing user.

        One transaction: the token item (``TOKEN#<hash>``, on condition that the
        hash is free, else AlreadyExistsError), its reference in the user's
        partition, and ``ADD tokens_issued 1`` on the user item (on condition that
        it exists, else NotFoundError), which :meth:`delete_user` checks.
        """
        user_pk = _user_pk(token.user)
        codes = self._transact(
            [
                {
                    "Update": {
                        "Key": _key(user_pk, _META),
                        "UpdateExpression": "ADD #issued :one",
                        "ConditionExpression": "attribute_exists(PK)",
                        "ExpressionAttributeNames": {"#issued": _ISSUED_COUNT},
                        "ExpressionAttributeValues": {":one": _n(1)},
                    }
                },
                {
                    "Put": {
                        "Item": {
                            **_key(_token_pk(token.token_hash), _META),
                            "body": _s(_to_json(_token_body(token))),
                        },
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {"Put": {"Item": _key(user_pk, _token_ref_sk(token.token_hash))}},
            ]
        )
        if codes and codes[0] == "ConditionalCheckFailed":
            raise NotFoundError("user", token.user)
        if codes:
            raise AlreadyExistsError("token", token.token_hash)

    def find_token(self, token_hash: str) -> ApiToken | None:
        """The token with this hash (GetItem), or None."""
        item = self._get_item(_token_pk(token_hash), _META)
        return None if item is None else _token_from(json.loads(item["body"]["S"]))

    def delete_token(self, token_hash: str) -> None:
        """Revoke a token: it and its reference go in one transaction (idempotent)."""
        found = self.find_token(token_hash)
        if found is None:
            return
        self._transact(
            [
                {"Delete": {"Key": _key(_token_pk(token_hash), _META)}},
                {"Delete": {"Key": _key(_user_pk(found.user), _token_ref_sk(token_hash))}},
            ]
        )

    # --- LicenseStore -----------------------------------------------------------------------

    def put_license(self, record: LicenseRecord) -> None:
        """Store a license, replacing one with the same id (PutItem)."""
        pk = _license_pk(record.id)
        written: list[str] = []
        item = {
            **_key(pk, _META),
            **self._body_attributes(pk, _META, _license_body(record), written),
            "GSI1PK": _s("LICENSES"),
            "GSI1SK": _s(record.id),
        }
        self._put_replacing(item, written)

    def get_license(self, license_id: str) -> LicenseRecord:
        """The license, or NotFoundError."""
        loaded = self._load(_license_pk(license_id), _META)
        if loaded is None:
            raise NotFoundError("license", license_id)
        return _license_from(loaded[1])

    def list_licenses(self, *, limit: int = 100, token: str | None = None) -> Page[LicenseRecord]:
        """Licenses by id (GSI1, ``LICENSES``)."""
        return self._list(
            listing="licenses",
            partition="LICENSES",
            index=GSI1,
            limit=limit,
            token=token,
            decode=lambda _, body: _license_from(body),
        )

    def delete_license(self, license_id: str) -> None:
        """Delete a license (idempotent)."""
        self._delete(_license_pk(license_id), _META)

    # --- UsageMeter -----------------------------------------------------------------------------

    def record_usage(self, record: UsageRecord) -> None:
        """Record one use; the same (run, dimension, start) reported twice counts once.

        The key is ``USAGE#<month>`` / ``<start>#["<run>","<dimension>"]`` and the
        put is conditional on it being new: a repeated report changes nothing.
        """
        pk = _usage_pk(_month(record.start))
        sk = _usage_sk(record)
        written: list[str] = []
        item = {**_key(pk, sk), **self._body_attributes(pk, sk, _usage_body(record), written)}
        try:
            self._put_new(item, what="usage", key=sk, written=written)
        except AlreadyExistsError:
            return

    def list_usage(
        self, *, since: datetime, until: datetime, limit: int = 100, token: str | None = None
    ) -> Page[UsageRecord]:
        """Uses that started in [since, until), oldest first.

        One Query per month partition in the range (``SK BETWEEN since AND until``:
        a use starting exactly at ``until`` sorts after it, so the range is
        half-open); the token holds the month and the last key shown.
        """
        _check_limit(limit)
        lowest, highest = _sortable_time(since), _sortable_time(until)
        listing = f"usage/{lowest}/{highest}"
        first_month: str = _month(since)
        after: str | None = None
        if token is not None:
            position = _decode_token(listing, token)
            first_month, after = position.get("month", ""), position.get("after", "")
            if not (_MONTH.fullmatch(first_month) and lowest <= after <= highest):
                raise InvalidRequestError("token", "is not a token this listing gave")
        if lowest >= highest:
            return Page([], None)
        found: list[Item] = []
        for month in _months(first_month, _month(until)):
            params: dict[str, Any] = {
                "KeyConditionExpression": "#pk = :pk AND #sk BETWEEN :lowest AND :highest",
                "ExpressionAttributeNames": {"#pk": "PK", "#sk": "SK"},
                "ExpressionAttributeValues": {
                    ":pk": _s(_usage_pk(month)),
                    ":lowest": _s(lowest),
                    ":highest": _s(highest),
                },
                "ConsistentRead": True,
            }
            if after is not None and month == first_month:
                params["ExclusiveStartKey"] = _key(_usage_pk(month), after)
            found += self._query_at_most(limit + 1 - len(found), params)
            if len(found) > limit:
                break
        shown = found[:limit]
        next_token = None
        if len(found) > limit:
            last = shown[-1]
            next_token = _encode_token(
                listing, {"month": last["PK"]["S"].removeprefix("USAGE#"), "after": last["SK"]["S"]}
            )
        records = []
        for item in shown:
            resolved = self._resolve(item)
            if resolved is not None:
                records.append(_usage_from(resolved[1]))
        return Page(records, next_token)


def _new_client(service: str) -> Any:
    """A boto3 client from the environment's region and credentials, made on first use."""
    # boto3 has no type hints and no stubs are installed; the import stays here so
    # that importing this module never loads boto3.
    import boto3  # type: ignore[import-untyped]

    return boto3.client(service)


def _cancellation_codes(exc: Exception) -> list[str]:
    """The per-operation reason codes of a cancelled transaction."""
    response = getattr(exc, "response", {})
    return [str(reason.get("Code", "None")) for reason in response.get("CancellationReasons", [])]
