"""Exporting a project: each format parses back, filters apply, Annotators get their own."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from conftest import TEXT_CONFIG, Lab

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.conll import read_conll
from annotrain.domain.labelstudio import load_tasks
from annotrain.domain.tasks import Completion, CompletionState, ResultItem, Task


def _span(start: int, end: int, label: str) -> ResultItem:
    value = {"start": start, "end": end, "labels": [label]}
    return ResultItem("r1", "labels", "label", "text", value)


@pytest.fixture(autouse=True)
def two_annotated_tasks(lab: Lab) -> None:
    """The lab's task annotated by the annotator (ground truth) and the manager; one bare."""
    lab.store.add_completion(
        lab.project_id,
        lab.task_id,
        Completion(None, (_span(0, 7, "Medication"),), author="annotator", ground_truth=True),
    )
    lab.store.add_completion(
        lab.project_id, lab.task_id, Completion(None, (_span(0, 7, "Condition"),), author="manager")
    )
    lab.store.add_tasks(lab.project_id, [Task(None, {"text": "No fever."}, tags=("Test",))])


def _export(lab: Lab, role: str = "owner", **params: Any) -> Any:
    return lab.client.get(
        f"/api/v1/projects/{lab.project_id}/export", params=params, headers=lab.auth(role)
    )


def test_json_export_imports_back_as_the_same_tasks(lab: Lab) -> None:
    response = _export(lab, format="json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert f'filename="project-{lab.project_id}.json"' in response.headers["content-disposition"]
    tasks = load_tasks(response.content, parse_labeling_config(lab.client.get(
        f"/api/v1/projects/{lab.project_id}/config", headers=lab.auth("owner")
    ).json()["labeling_config"]))  # fmt: skip
    assert [t.data["text"] for t in tasks] == ["Aspirin daily.", "No fever."]
    assert [c.author for c in tasks[0].completions] == ["annotator", "manager"]


def test_json_min_gives_a_row_per_submitted_completion(lab: Lab) -> None:
    rows = _export(lab, format="json_min").json()
    assert [(r["text"], r.get("annotator")) for r in rows] == [
        ("Aspirin daily.", "annotator"),
        ("Aspirin daily.", "manager"),
        ("No fever.", None),
    ]
    assert rows[0]["label"]["labels"] == ["Medication"]


def test_csv_export_reads_back_as_rows(lab: Lab) -> None:
    response = _export(lab, format="csv")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["annotator"] for r in rows] == ["annotator", "manager", ""]
    assert json.loads(rows[1]["label"])["labels"] == ["Condition"]


def test_conll_export_reads_back_with_bio_tags(lab: Lab) -> None:
    response = _export(lab, format="conll")
    assert response.status_code == 200
    assert response.headers["content-disposition"].endswith('.conll"')
    (document,) = read_conll(response.text.splitlines())  # one completion per annotated task
    ((tokens, tags),) = document
    assert tokens == ["Aspirin", "daily", "."]
    assert tags == ["B-Medication", "O", "O"]  # the ground-truth completion wins the tie


def test_filters_pick_tasks_and_completions(lab: Lab) -> None:
    def authors(**params: Any) -> list[list[str]]:
        tasks = _export(lab, format="json", **params).json()
        return [[c["completed_by"] for c in t["annotations"]] for t in tasks]

    assert authors(only_ground_truth=True) == [["annotator"], []]
    assert authors(skip_empty=True) == [["annotator", "manager"]]
    assert authors(annotator=["manager"], skip_empty=True) == [["manager"]]
    assert authors(tags=["Test"]) == [[]]
    assert authors(has_completions=False) == [[]]


def test_an_annotators_export_holds_only_their_own_completions(lab: Lab) -> None:
    tasks = _export(lab, "annotator", format="json").json()
    assert [[c["completed_by"] for c in t["annotations"]] for t in tasks] == [["annotator"], []]
    asked_for_others = _export(lab, "annotator", format="json", annotator=["manager"]).json()
    assert all(t["annotations"] == [] for t in asked_for_others)
    assert len(_export(lab, "reviewer", format="json").json()[0]["annotations"]) == 2


def test_conll_needs_ner_labels_on_text(lab: Lab) -> None:
    created = lab.client.post(
        "/api/v1/projects",
        json={"name": "Choices", "labeling_config": TEXT_CONFIG.replace(
            '<Labels name="label" toName="text"><Label value="Drug"/></Labels>',
            '<Choices name="c" toName="text"><Choice value="Yes"/></Choices>',
        )},
        headers=lab.auth("owner"),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    response = lab.client.get(
        f"/api/v1/projects/{created.json()['id']}/export?format=conll", headers=lab.auth("owner")
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "format"


def test_an_unknown_format_is_refused_naming_it(lab: Lab) -> None:
    response = _export(lab, format="xlsx")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "format"


def test_drafts_are_exported_apart_and_never_as_rows(lab: Lab) -> None:
    lab.store.add_completion(
        lab.project_id,
        lab.task_id,
        Completion(None, (), author="reviewer", state=CompletionState.DRAFT),
    )
    (first, _) = _export(lab, format="json").json()
    assert [d["completed_by"] for d in first["drafts"]] == ["reviewer"]
    assert "reviewer" not in {r.get("annotator") for r in _export(lab, format="json_min").json()}
