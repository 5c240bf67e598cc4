"""Export filters and the flat JSON_MIN and CSV shapes."""

from __future__ import annotations

import csv
import io
import json

from annotrain.domain.export import ExportFilter, filter_for_export, to_json_min, write_csv
from annotrain.domain.tasks import Completion, CompletionState, ResultItem, Task

SPAN = ResultItem(
    "r1", "labels", "label", "text", {"start": 0, "end": 5, "text": "Fever", "labels": ["Sym"]}
)
CHOICE = ResultItem("r2", "choices", "urgency", "text", {"choices": ["Urgent"]})
TOPICS = ResultItem("r3", "choices", "topics", "text", {"choices": ["A", "B"]})


def task(tid: int, *completions: Completion) -> Task:
    return Task(tid, {"text": "Fever,\tcough\nand more"}, completions)


def test_only_ground_truth_and_annotator_filters_drop_completions() -> None:
    gt = Completion(1, (CHOICE,), author="ana", ground_truth=True)
    other = Completion(2, (CHOICE,), author="ben")
    tasks = [task(1, gt, other)]
    only_gt = list(filter_for_export(tasks, ExportFilter(only_ground_truth=True)))
    assert [c.id for c in only_gt[0].completions] == [1]
    by_ben = list(filter_for_export(tasks, ExportFilter(annotators=frozenset({"ben"}))))
    assert [c.id for c in by_ben[0].completions] == [2]


def test_tasks_without_completions_are_left_out_only_when_asked() -> None:
    tasks = [task(1), task(2, Completion(3, (CHOICE,), state=CompletionState.DRAFT))]
    assert len(list(filter_for_export(tasks, ExportFilter()))) == 2
    skip = ExportFilter(skip_tasks_without_completions=True)
    assert list(filter_for_export(tasks, skip)) == []


def test_json_min_has_one_row_per_submitted_completion_with_flat_values() -> None:
    done = Completion(7, (SPAN, CHOICE, TOPICS), author="ana", lead_time=3.5)
    skipped = Completion(8, (), author="ben", state=CompletionState.CANCELLED)
    rows = list(to_json_min([task(1, done, skipped), task(2)]))
    assert rows[0] == {
        "id": 1,
        "text": "Fever,\tcough\nand more",
        "label": {"start": 0, "end": 5, "text": "Fever", "labels": ["Sym"]},
        "urgency": "Urgent",
        "topics": ["A", "B"],
        "annotator": "ana",
        "annotation_id": 7,
        "created_at": None,
        "updated_at": None,
        "lead_time": 3.5,
    }
    # A task nobody annotated still gives its data.
    assert rows[1] == {"id": 2, "text": "Fever,\tcough\nand more"}
    assert len(rows) == 2


def test_csv_keeps_tabs_newlines_and_nested_values_readable() -> None:
    done = Completion(7, (SPAN, CHOICE), author="ana")
    out = io.StringIO()
    assert write_csv([task(1, done), task(2)], out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["text"] == "Fever,\tcough\nand more"
    assert json.loads(rows[0]["label"])["labels"] == ["Sym"]
    assert rows[0]["urgency"] == "Urgent"
    assert rows[1]["label"] == ""
