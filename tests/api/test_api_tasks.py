"""Importing Label Studio JSON into a project and listing its tasks by page."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Lab

from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.tasks import Prediction
from annotrain.ports import TaskCounting, TaskOrder, TaskQuery, UncertaintyOrdering
from annotrain.services.access import Principal
from annotrain.services.tasks import list_tasks


@pytest.fixture(autouse=True)
def no_tasks_yet(lab: Lab) -> None:
    """These tests count tasks: start from none."""
    lab.store.delete_task(lab.project_id, lab.task_id)


def _task(text: str, *, author: str | None = None) -> Any:
    task: dict[str, Any] = {"data": {"text": text}}
    if author is not None:
        task["annotations"] = [
            {
                "completed_by": author,
                "result": [
                    {
                        "id": "r1",
                        "type": "labels",
                        "from_name": "label",
                        "to_name": "text",
                        "value": {"start": 0, "end": 7, "labels": ["Medication"]},
                    }
                ],
            }
        ]
    return task


def _import(lab: Lab, tasks: list[Any], role: str = "owner") -> Any:
    return lab.client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/import", json=tasks, headers=lab.auth(role)
    )


def test_import_answers_201_with_the_count_and_the_new_ids(lab: Lab) -> None:
    response = _import(lab, [_task("Aspirin daily."), _task("No fever.")])
    assert response.status_code == 201
    body = response.json()
    assert body["imported"] == 2
    assert len(body["task_ids"]) == 2
    stored = lab.store.get_task(lab.project_id, body["task_ids"][1])
    assert stored.data == {"text": "No fever."}


def test_an_inconsistent_task_refuses_the_whole_batch(lab: Lab) -> None:
    bad = _task("Aspirin daily.", author="annotator")
    bad["annotations"][0]["result"][0]["value"]["labels"] = ["Unknown"]
    response = _import(lab, [_task("fine"), bad])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_tasks"
    assert error["details"][0]["task_index"] == 1
    assert lab.store.count_tasks(lab.project_id) == 0


def test_import_needs_a_list(lab: Lab) -> None:
    response = lab.client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/import",
        json={"data": {"text": "x"}},
        headers=lab.auth("owner"),
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert _import(lab, []).status_code == 422


def test_listing_gives_numbered_pages_and_the_total(lab: Lab) -> None:
    ids = _import(lab, [_task(f"Note {i}.") for i in range(5)]).json()["task_ids"]
    url = f"/api/v1/projects/{lab.project_id}/tasks?page=2&page_size=2"
    body = lab.client.get(url, headers=lab.auth("reviewer")).json()
    assert body["total"] == 5
    assert [t["id"] for t in body["items"]] == ids[2:4]
    past = lab.client.get(
        f"/api/v1/projects/{lab.project_id}/tasks?page=9&page_size=2", headers=lab.auth("owner")
    ).json()
    assert past == {"items": [], "total": 5}


def test_listing_filters_by_completions(lab: Lab) -> None:
    _import(lab, [_task("Aspirin daily.", author="annotator"), _task("No fever.")])
    url = f"/api/v1/projects/{lab.project_id}/tasks?has_completions=true"
    body = lab.client.get(url, headers=lab.auth("owner")).json()
    assert body["total"] == 1
    assert body["items"][0]["data"]["text"] == "Aspirin daily."


def test_annotators_see_only_their_own_completions(lab: Lab) -> None:
    _import(lab, [_task("Aspirin daily.", author="annotator"), _task("Aspirin.", author="x")])
    url = f"/api/v1/projects/{lab.project_id}/tasks"

    def completions(role: str) -> list[int]:
        items = lab.client.get(url, headers=lab.auth(role)).json()["items"]
        return [len(t["annotations"]) for t in items]

    assert completions("annotator") == [1, 0]
    assert completions("reviewer") == [1, 1]


class _WithoutCounting:
    """A store that offers only the TaskStore port, not TaskCounting."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in ("count_tasks", "list_tasks_at"):
            raise AttributeError(name)
        return getattr(self._store, name)


@pytest.mark.parametrize(("page", "page_size"), [(1, 2), (2, 2), (3, 2), (4, 2), (1, 100)])
def test_a_store_without_counting_gives_the_same_pages(lab: Lab, page: int, page_size: int) -> None:
    _import(lab, [_task(f"Note {i}.", author="annotator" if i % 2 else None) for i in range(5)])
    plain = _WithoutCounting(lab.store)
    assert not isinstance(plain, TaskCounting)
    admin = Principal("admin", is_admin=True)
    for query in (None, TaskQuery(has_completions=True)):
        expected = list_tasks(
            lab.store, admin, lab.project_id, query, page=page, page_size=page_size
        )
        walked = list_tasks(plain, admin, lab.project_id, query, page=page, page_size=page_size)  # type: ignore[arg-type]
        assert walked == expected


def test_a_task_reads_as_label_studio_json_with_only_an_annotators_own_completions(
    lab: Lab,
) -> None:
    ids = _import(lab, [_task("Aspirin daily.", author="x")]).json()["task_ids"]
    url = f"/api/v1/projects/{lab.project_id}/tasks/{ids[0]}"
    owner_view = lab.client.get(url, headers=lab.auth("owner")).json()
    assert owner_view["data"] == {"text": "Aspirin daily."}
    assert len(owner_view["annotations"]) == 1
    assert lab.client.get(url, headers=lab.auth("annotator")).json()["annotations"] == []


def test_a_deleted_task_is_gone(lab: Lab) -> None:
    ids = _import(lab, [_task("Aspirin daily.")]).json()["task_ids"]
    url = f"/api/v1/projects/{lab.project_id}/tasks/{ids[0]}"
    assert lab.client.delete(url, headers=lab.auth("manager")).status_code == 204
    missing = lab.client.get(url, headers=lab.auth("owner"))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def _scored_tasks(lab: Lab) -> dict[str, int]:
    """Tasks whose latest predictions score 0.9, 0.2, none, 0.5 (older ones differ); by text."""
    tasks = [
        {"data": {"text": "A."}, "predictions": [{"result": [], "score": 0.1},
                                                 {"result": [], "score": 0.9}]},
        {"data": {"text": "B."}, "predictions": [{"result": [], "score": 0.2}]},
        {"data": {"text": "C."}},
        {"data": {"text": "D."}, "predictions": [{"result": [], "score": 0.5}]},
    ]  # fmt: skip
    ids = _import(lab, tasks).json()["task_ids"]
    return dict(zip("ABCD", ids, strict=True))


def test_tasks_list_most_uncertain_first_and_unpredicted_last(lab: Lab) -> None:
    ids = _scored_tasks(lab)
    url = f"/api/v1/projects/{lab.project_id}/tasks?order=uncertainty"
    response = lab.client.get(url, headers=lab.auth("annotator"))
    assert response.status_code == 200
    assert [t["id"] for t in response.json()["items"]] == [ids[k] for k in "BDAC"]
    second = lab.client.get(url + "&page=2&page_size=2", headers=lab.auth("reviewer")).json()
    assert ([t["id"] for t in second["items"]], second["total"]) == ([ids["A"], ids["C"]], 4)
    only = lab.client.get(url + "&has_predictions=true", headers=lab.auth("owner")).json()
    assert [t["id"] for t in only["items"]] == [ids[k] for k in "BDA"]
    # A new prediction becomes the latest: A is now the most uncertain.
    lab.store.replace_predictions(
        lab.project_id, [(ids["A"], Prediction(None, (), "m-v2", 0.05))], models=["m"]
    )
    again = lab.client.get(url, headers=lab.auth("owner")).json()
    assert [t["id"] for t in again["items"]] == [ids[k] for k in "ABDC"]


def test_an_unknown_order_is_refused_naming_it(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}/tasks?order=newest"
    response = lab.client.get(url, headers=lab.auth("owner"))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "order"


class _WithoutIndexes(_WithoutCounting):
    """A store with neither TaskCounting nor UncertaintyOrdering (as DynamoDB)."""

    def __getattr__(self, name: str) -> Any:
        if name == "list_tasks_by_uncertainty":
            raise AttributeError(name)
        return super().__getattr__(name)


@pytest.mark.parametrize(("page", "page_size"), [(1, 3), (2, 3), (1, 100)])
def test_a_store_without_the_index_orders_by_uncertainty_the_same(
    lab: Lab, page: int, page_size: int
) -> None:
    _scored_tasks(lab)
    plain = _WithoutIndexes(lab.store)
    assert not isinstance(plain, UncertaintyOrdering)
    admin = Principal("admin", is_admin=True)
    for query in (None, TaskQuery(has_predictions=True)):
        expected = list_tasks(lab.store, admin, lab.project_id, query, page=page,
                              page_size=page_size, order=TaskOrder.UNCERTAINTY)  # fmt: skip
        walked = list_tasks(plain, admin, lab.project_id, query, page=page,  # type: ignore[arg-type]
                            page_size=page_size, order=TaskOrder.UNCERTAINTY)  # fmt: skip
        assert walked == expected
        assert expected[1] > 0
