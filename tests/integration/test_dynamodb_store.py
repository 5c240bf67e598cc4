"""What the Store contract cannot see of the DynamoDB adapter: no Scan, the overflow
to S3, lazy clients, all-or-none imports, exact pages and tokens. Under moto."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from annotrain.domain.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
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
    Member,
    Prediction,
    ResultItem,
    Review,
    ReviewVerdict,
    Role,
    Task,
)
from annotrain.domain.training_plan import ModelKind
from annotrain.ports import MAX_PAGE_SIZE, TaskQuery

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
TABLE_NAME = "annotrain"
BUCKET = "annotrain-items"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BIG_TEXT = "word " * 100_000  # 500 KB: over the overflow threshold
# What the adapter may call; Scan above all is not among them.
ALLOWED_OPERATIONS = {
    "GetItem",
    "Query",
    "BatchGetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
}


@dataclass
class Lab:
    """A store under moto, with its raw clients and the DynamoDB operations it called."""

    store: Any
    dynamodb: Any
    s3: Any
    operations: list[str]

    def overflow_objects(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix="items/")
        return [entry["Key"] for entry in listed.get("Contents", [])]

    def raw_item(self, pk: str, sk: str) -> dict[str, Any]:
        item: dict[str, Any] = self.dynamodb.get_item(
            TableName=TABLE_NAME, Key={"PK": {"S": pk}, "SK": {"S": sk}}
        )["Item"]
        return item


def make_lab(wrap: Callable[[Any], Any] = lambda client: client) -> Lab:
    import boto3

    from annotrain.adapters.dynamodb import DynamoDbStore, create_table

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    create_table(dynamodb, TABLE_NAME)
    operations: list[str] = []

    def record(model: Any, **_: Any) -> None:
        operations.append(model.name)

    dynamodb.meta.events.register("before-call.dynamodb.*", record)
    store = DynamoDbStore(TABLE_NAME, client=wrap(dynamodb), s3_client=s3, overflow_bucket=BUCKET)
    return Lab(store, dynamodb, s3, operations)


@pytest.fixture
def lab(aws: None) -> Lab:
    return make_lab()


class MisbehavingBatchWrites:
    """The real client, except that BatchWriteItem calls go through ``misbehave`` first.

    ``misbehave(call_number, request_items)`` returns a response to give instead of
    writing (e.g. everything unprocessed), raises, or returns None to write for real.
    """

    def __init__(self, client: Any, misbehave: Callable[[int, dict[str, Any]], Any]) -> None:
        self._client = client
        self._misbehave = misbehave
        self.batch_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, **kwargs: Any) -> Any:
        self.batch_calls += 1
        response = self._misbehave(self.batch_calls, kwargs["RequestItems"])
        if response is not None:
            return response
        return self._client.batch_write_item(**kwargs)


def new_project(store: Any, name: str = "notes") -> Project:
    return store.create_project(Project(0, name, "<View/>", "ana", NOW))


def span(text: str) -> ResultItem:
    return ResultItem("r1", "labels", "label", "text", {"start": 0, "end": 4, "text": text[:4]})


def task(text: str = "Fever and cough", *, tags: tuple[str, ...] = ("Train",)) -> Task:
    return Task(
        None,
        {"text": text},
        completions=(Completion(None, (span(text),), author="ana"),),
        predictions=(Prediction(None, (span(text),), model_version="ner@1", score=0.5),),
        tags=tags,
    )


def collect_pages(list_page: Callable[[str | None], Any]) -> list[list[Any]]:
    pages, token = [], None
    while True:
        page = list_page(token)
        pages.append(page.items)
        if (token := page.next_token) is None:
            return pages


# --- no Scan, ever ------------------------------------------------------------------


def workout(store: Any) -> None:
    """Every operation of every Store port, big and small writes included."""
    project = new_project(store)
    store.update_project(replace(project, name="renamed"))
    store.list_projects(limit=1)
    store.put_member(project.id, Member("ben", Role.ANNOTATOR))
    store.list_members(project.id)
    store.remove_member(project.id, "ben")
    small = store.add_tasks(project.id, [task("small")])
    many = store.add_tasks(project.id, [task(f"t{i}") for i in range(40)])  # 120 items
    big = store.add_tasks(project.id, [task(BIG_TEXT)])
    store.get_task(project.id, big[0].id)
    store.list_tasks(project.id, TaskQuery(tags=frozenset({"Train"})), limit=5)
    assert len(list(store.iter_tasks(project.id))) == 42
    store.update_task(project.id, replace(small[0], tags=("Test",)))
    added = store.add_completion(project.id, small[0].id, Completion(None, (), author="ben"))
    store.update_completion(project.id, small[0].id, replace(added, ground_truth=True))
    store.add_review(project.id, small[0].id, added.id, Review(ReviewVerdict.ACCEPTED, "rita"))
    store.delete_completion(project.id, small[0].id, added.id)
    store.add_predictions(project.id, [(many[0].id, Prediction(None, ()))])
    store.delete_task(project.id, many[1].id)

    run = store.create_run(Run("run-1", project.id, JobKind.TRAIN, RunStatus.QUEUED, "ana", NOW))
    store.update_run(replace(run, status=RunStatus.RUNNING))
    store.get_run("run-1")
    store.list_runs(project.id)
    store.list_runs_by_status(RunStatus.RUNNING)
    entry = ModelEntry("ner", 0, ModelKind.NER, ("Sym",), project.id, "run-1", "m", "b", NOW)
    registered = store.register_model(entry)
    store.update_model(replace(registered, deployed_in=(project.id,)))
    store.get_model("ner")
    store.get_model("ner", 1)
    store.list_models()
    store.list_models(project_id=project.id)
    store.put_server(Server("run-1", JobKind.TRAIN, project.id, "ana", NOW, True))
    store.list_servers()
    store.remove_server("run-1")

    store.create_user(User("ana", UserRole.ADMIN, NOW))
    store.get_user("ana")
    store.list_users()
    store.add_token(ApiToken("sha256:1", "ana", NOW))
    store.add_token(ApiToken("sha256:2", "ana", NOW))
    store.find_token("sha256:1")
    store.delete_token("sha256:1")
    store.delete_user("ana")
    store.put_license(LicenseRecord("L1", "doc", NOW))
    store.get_license("L1")
    store.list_licenses()
    store.delete_license("L1")
    store.record_usage(UsageRecord("training_gpu_hours", 0.5, NOW, NOW, "run-1"))
    store.list_usage(since=NOW - timedelta(days=40), until=NOW + timedelta(days=1))

    store.delete_project(project.id)


def test_no_operation_of_any_port_scans_the_table(lab: Lab) -> None:
    workout(lab.store)
    assert "Scan" not in lab.operations
    assert set(lab.operations) == ALLOWED_OPERATIONS


# --- items over DynamoDB's limit go to S3 -----------------------------------------------


def test_a_body_over_the_limit_is_kept_in_s3_and_read_back_through_the_pointer(
    lab: Lab,
) -> None:
    project = new_project(lab.store)
    (stored,) = lab.store.add_tasks(project.id, [task(BIG_TEXT)])
    item = lab.raw_item(f"PROJECT#{project.id}", f"TASK#{stored.id:012d}")
    assert "body" not in item
    (key,) = lab.overflow_objects()
    assert item["body_s3"]["S"] == key
    assert key.startswith(f"items/PROJECT#{project.id}/TASK#{stored.id:012d}/")
    assert lab.s3.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"
    assert lab.store.get_task(project.id, stored.id) == stored


def test_deleting_an_overflowed_task_deletes_its_s3_object(lab: Lab) -> None:
    project = new_project(lab.store)
    (stored,) = lab.store.add_tasks(project.id, [task(BIG_TEXT)])
    assert len(lab.overflow_objects()) == 1
    lab.store.delete_task(project.id, stored.id)
    assert lab.overflow_objects() == []


def test_deleting_a_project_deletes_the_s3_objects_of_its_items(lab: Lab) -> None:
    project = new_project(lab.store)
    (stored,) = lab.store.add_tasks(project.id, [task(BIG_TEXT), task("small")])[:1]
    big_completion = Completion(None, (), author="ana", extra={"notes": BIG_TEXT})
    lab.store.add_completion(project.id, stored.id, big_completion)
    assert len(lab.overflow_objects()) == 2
    lab.store.delete_project(project.id)
    assert lab.overflow_objects() == []


def test_an_update_that_shrinks_a_body_brings_it_back_and_drops_the_object(lab: Lab) -> None:
    project = new_project(lab.store)
    (stored,) = lab.store.add_tasks(project.id, [task(BIG_TEXT)])
    (old_key,) = lab.overflow_objects()
    grown = lab.store.update_task(project.id, replace(stored, data={"text": BIG_TEXT + "!"}))
    (new_key,) = lab.overflow_objects()
    assert new_key != old_key
    shrunk = lab.store.update_task(project.id, replace(grown, data={"text": "short"}))
    assert lab.overflow_objects() == []
    item = lab.raw_item(f"PROJECT#{project.id}", f"TASK#{stored.id:012d}")
    assert "body_s3" not in item
    assert lab.store.get_task(project.id, stored.id) == shrunk


def test_a_refused_update_of_a_big_body_leaves_no_stray_object(lab: Lab) -> None:
    project = new_project(lab.store)
    (stored,) = lab.store.add_tasks(project.id, [task(BIG_TEXT)])
    lab.store.update_task(project.id, replace(stored, tags=("Test",)))
    objects = lab.overflow_objects()
    with pytest.raises(ConflictError):
        lab.store.update_task(project.id, replace(stored, data={"text": BIG_TEXT + "?"}))
    assert lab.overflow_objects() == objects


def test_the_overflow_objects_use_the_kms_key_when_one_is_given(aws: None) -> None:
    import boto3

    from annotrain.adapters.dynamodb import DynamoDbStore

    lab = make_lab()
    kms = boto3.client("kms", region_name=REGION)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    store = DynamoDbStore(
        TABLE_NAME,
        client=lab.dynamodb,
        s3_client=lab.s3,
        overflow_bucket=BUCKET,
        overflow_kms_key_id=key_id,
    )
    project = new_project(store)
    store.add_tasks(project.id, [task(BIG_TEXT)])
    (key,) = lab.overflow_objects()
    head = lab.s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"


# --- clients are made lazily, boto3 is imported lazily --------------------------------------


def test_importing_the_adapter_does_not_import_boto3() -> None:
    code = "import sys, annotrain.adapters.dynamodb; print('boto3' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"


def test_clients_are_created_on_first_use_not_when_the_store_is_made(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from annotrain.adapters.dynamodb import DynamoDbStore, create_table

    create_table(boto3.client("dynamodb", region_name=REGION), TABLE_NAME)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    made: list[str] = []
    real_client = boto3.client

    def recording_client(service: str, *args: Any, **kwargs: Any) -> Any:
        made.append(service)
        return real_client(service, *args, **kwargs)

    monkeypatch.setattr(boto3, "client", recording_client)
    store = DynamoDbStore(TABLE_NAME, overflow_bucket=BUCKET)
    assert made == []
    project = new_project(store)
    store.get_project(project.id)
    assert made == ["dynamodb"]
    store.add_tasks(project.id, [task(BIG_TEXT)])
    assert made == ["dynamodb", "s3"]


# --- all or none ----------------------------------------------------------------------------


def test_a_small_import_is_one_transaction(lab: Lab) -> None:
    project = new_project(lab.store)
    lab.operations.clear()
    lab.store.add_tasks(project.id, [task("a"), task("b")])
    assert lab.operations == ["UpdateItem", "TransactWriteItems"]


def test_a_big_import_failing_midway_leaves_nothing_behind(aws: None) -> None:
    from botocore.exceptions import ClientError

    def fail_second_put_batch(call: int, request_items: dict[str, Any]) -> None:
        (requests,) = request_items.values()
        if call == 2 and "PutRequest" in requests[0]:
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected"}},
                "BatchWriteItem",
            )

    lab = make_lab(lambda client: MisbehavingBatchWrites(client, fail_second_put_batch))
    project = new_project(lab.store)
    tasks = [task(BIG_TEXT)] + [task(f"t{i}") for i in range(40)]
    with pytest.raises(ClientError, match="injected"):
        lab.store.add_tasks(project.id, tasks)
    assert lab.store.list_tasks(project.id).items == []
    assert lab.overflow_objects() == []
    # The ids reserved for the failed import are skipped, never reused.
    (after,) = lab.store.add_tasks(project.id, [task("after")])
    assert after.id == len(tasks) + 1


def test_unprocessed_writes_are_retried_until_every_item_is_written(aws: None) -> None:
    def first_two_calls_unprocessed(call: int, request_items: dict[str, Any]) -> Any:
        if call <= 2:
            return {"UnprocessedItems": request_items}
        return None

    wrapper: list[MisbehavingBatchWrites] = []

    def wrap(client: Any) -> Any:
        wrapper.append(MisbehavingBatchWrites(client, first_two_calls_unprocessed))
        return wrapper[0]

    lab = make_lab(wrap)
    project = new_project(lab.store)
    stored = lab.store.add_tasks(project.id, [task(f"t{i}") for i in range(40)])
    assert list(lab.store.iter_tasks(project.id)) == stored
    assert wrapper[0].batch_calls == 2 + 5  # 120 items: 5 batches of 25, the first tried thrice


def test_predictions_for_a_missing_task_write_nothing(lab: Lab) -> None:
    project = new_project(lab.store)
    (stored,) = lab.store.add_tasks(project.id, [task()])
    prediction = Prediction(None, (), model_version="cls@1")
    with pytest.raises(NotFoundError):
        lab.store.add_predictions(
            project.id, [(stored.id, prediction), (stored.id + 99, prediction)]
        )
    assert lab.store.get_task(project.id, stored.id).predictions == stored.predictions


def test_a_completion_of_a_missing_task_is_not_found(lab: Lab) -> None:
    project = new_project(lab.store)
    with pytest.raises(NotFoundError):
        lab.store.add_completion(project.id, 404, Completion(None, ()))
    with pytest.raises(NotFoundError):
        lab.store.add_completion(project.id + 1, 1, Completion(None, ()))
    assert lab.store.list_tasks(project.id).items == []


def test_tasks_and_members_of_a_missing_project_are_not_found(lab: Lab) -> None:
    with pytest.raises(NotFoundError):
        lab.store.add_tasks(404, [task()])
    with pytest.raises(NotFoundError):
        lab.store.put_member(404, Member("ana", Role.OWNER))


# --- values come back exactly ------------------------------------------------------------


def test_ints_and_floats_keep_their_type_and_value(lab: Lab) -> None:
    data = {"int": 3, "float": 3.0, "tenth": 0.1, "tiny": 1e-300, "huge": 2**70, "neg": -0.5}
    project = new_project(lab.store)
    (stored,) = lab.store.add_tasks(project.id, [Task(None, data)])
    read = lab.store.get_task(project.id, stored.id).data
    assert read == data
    assert {name: type(value) for name, value in read.items()} == {
        name: type(value) for name, value in data.items()
    }


def test_run_fields_survive_with_their_times_and_nested_metrics(lab: Lab) -> None:
    run = Run(
        "run-x", 1, JobKind.OCR, RunStatus.QUEUED, "ana", NOW, use_gpu=True,
        params={"task_ids": [1, 2]}, progress=12.5, epoch=2,
        metrics={"ner": {"f1": 0.8125, "confusion": [[1, 0], [0, 1]]}},
        history=({"epoch": 1, "loss": 0.5},), logs_key="logs/x", dataset_key="d/x",
        failure_reason=None, started_at=NOW, heartbeat_at=NOW + timedelta(seconds=1),
        job_ref="job-1",
    )  # fmt: skip
    assert lab.store.get_run(lab.store.create_run(run).id) == replace(run, revision=1)


# --- pages and tokens ----------------------------------------------------------------------


def test_filtered_task_pages_hold_whole_tasks_and_the_last_has_no_token(lab: Lab) -> None:
    project = new_project(lab.store)
    stored = lab.store.add_tasks(
        project.id, [task(f"t{i}", tags=("hard",) if i % 3 == 0 else ()) for i in range(9)]
    )
    query = TaskQuery(tags=frozenset({"hard"}))
    pages = collect_pages(
        lambda token: lab.store.list_tasks(project.id, query, limit=2, token=token)
    )
    assert [[t.id for t in page] for page in pages] == [
        [stored[0].id, stored[3].id],
        [stored[6].id],
    ]
    pages = collect_pages(lambda token: lab.store.list_tasks(project.id, limit=3, token=token))
    assert [len(page) for page in pages] == [3, 3, 3]
    assert [t for page in pages for t in page] == stored


def test_a_listing_that_ends_on_a_page_boundary_gives_no_token(lab: Lab) -> None:
    for name in ("a", "b", "c", "d"):
        new_project(lab.store, name)
    pages = collect_pages(lambda token: lab.store.list_projects(limit=2, token=token))
    assert [[p.name for p in page] for page in pages] == [["a", "b"], ["c", "d"]]


def test_a_token_from_another_listing_or_no_listing_is_refused(lab: Lab) -> None:
    for name in ("a", "b"):
        new_project(lab.store, name)
    token = lab.store.list_projects(limit=1).next_token
    assert token is not None
    with pytest.raises(InvalidRequestError):
        lab.store.list_users(token=token)
    with pytest.raises(InvalidRequestError):
        lab.store.list_tasks(1, token=token)
    with pytest.raises(InvalidRequestError):
        lab.store.list_projects(token="not a token")


@pytest.mark.parametrize("limit", [0, MAX_PAGE_SIZE + 1])
def test_a_limit_out_of_range_is_refused(lab: Lab, limit: int) -> None:
    with pytest.raises(InvalidRequestError):
        lab.store.list_projects(limit=limit)


def test_model_names_list_in_code_point_order_whatever_they_hold(lab: Lab) -> None:
    names = ["b", "a!b", "a", "a b", "é"]
    for name in names:
        lab.store.register_model(
            ModelEntry(name, 0, ModelKind.NER, (), 1, "run", "key", "base", NOW)
        )
    assert [m.name for m in lab.store.list_models().items] == sorted(names)


def test_usage_pages_run_across_months_oldest_first(lab: Lab) -> None:
    starts = [NOW + timedelta(days=31 * month, minutes=month) for month in range(4)]
    for start in reversed(starts):
        lab.store.record_usage(UsageRecord("training_gpu_hours", 1.0, start, start, "run"))
    pages = collect_pages(
        lambda token: lab.store.list_usage(since=NOW, until=starts[-1], limit=1, token=token)
    )
    assert [[u.start for u in page] for page in pages] == [[s] for s in starts[:-1]]


# --- errors say what happened ------------------------------------------------------------


def test_a_stale_update_reports_the_revision_it_found_and_a_gone_one_is_not_found(
    lab: Lab,
) -> None:
    project = new_project(lab.store)
    (stored,) = lab.store.add_tasks(project.id, [task()])
    lab.store.update_task(project.id, replace(stored, tags=()))
    with pytest.raises(ConflictError) as conflict:
        lab.store.update_task(project.id, replace(stored, tags=("x",)))
    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    lab.store.delete_task(project.id, stored.id)
    with pytest.raises(NotFoundError):
        lab.store.update_task(project.id, stored)


def test_tokens_need_an_existing_user_and_a_free_hash(lab: Lab) -> None:
    with pytest.raises(NotFoundError):
        lab.store.add_token(ApiToken("sha256:x", "nobody", NOW))
    lab.store.create_user(User("ana", UserRole.USER, NOW))
    lab.store.add_token(ApiToken("sha256:x", "ana", NOW))
    with pytest.raises(AlreadyExistsError):
        lab.store.add_token(ApiToken("sha256:x", "ana", NOW))


def test_the_table_is_built_from_the_published_design(lab: Lab) -> None:
    from annotrain.adapters.dynamodb import TABLE

    table = lab.dynamodb.describe_table(TableName=TABLE_NAME)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == TABLE.billing_mode
    assert sorted(index["IndexName"] for index in table["GlobalSecondaryIndexes"]) == [
        index.name for index in TABLE.indexes
    ]
