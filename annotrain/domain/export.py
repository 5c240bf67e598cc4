"""Exports: which completions go out, and the flat JSON_MIN and CSV shapes.

The full JSON export is :func:`annotrain.domain.labelstudio.tasks_to_json`, the
CoNLL export :mod:`annotrain.domain.conll`; this module filters tasks for any of
them and flattens them for spreadsheets.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TextIO

from annotrain.domain.labelstudio import task_to_json
from annotrain.domain.tasks import Completion, CompletionState, ResultItem, Task


class ExportFormat(StrEnum):
    """What an export is written as."""

    JSON = "json"
    JSON_MIN = "json_min"
    CSV = "csv"
    CONLL = "conll"


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """What an export leaves out.

    Attributes:
        only_ground_truth: Keep only completions marked as ground truth.
        skip_tasks_without_completions: Leave out tasks with no completion left
            after the other filters.
        annotators: Keep only completions by these authors; empty keeps all.
    """

    only_ground_truth: bool = False
    skip_tasks_without_completions: bool = False
    annotators: frozenset[str] = frozenset()


def filter_for_export(tasks: Iterable[Task], rules: ExportFilter) -> Iterator[Task]:
    """Apply an export filter: drop completions and, if asked, tasks left without any."""
    for task in tasks:
        kept = tuple(c for c in task.completions if _keeps(c, rules))
        if rules.skip_tasks_without_completions and not any(
            c.state is CompletionState.SUBMITTED for c in kept
        ):
            continue
        yield task if len(kept) == len(task.completions) else replace(task, completions=kept)


def _keeps(completion: Completion, rules: ExportFilter) -> bool:
    if rules.only_ground_truth and not completion.ground_truth:
        return False
    return not rules.annotators or completion.author in rules.annotators


def to_json_min(tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
    """Label Studio's JSON_MIN: one flat row per submitted completion.

    A row holds the task id and data fields, one key per control with the
    values it produced (a single choice as its value, spans as
    ``{start, end, text, labels}``), and who made it when. A task with no
    submitted completion gives one row of its data.
    """
    for task in tasks:
        base: dict[str, Any] = {"id": task.id, **task.data}
        submitted = [c for c in task.completions if c.state is CompletionState.SUBMITTED]
        if not submitted:
            yield base
        for completion in submitted:
            row = dict(base)
            by_control: dict[str, list[ResultItem]] = {}
            for item in completion.result:
                if item.from_name is not None:
                    by_control.setdefault(item.from_name, []).append(item)
            row.update({name: _flatten(items) for name, items in by_control.items()})
            row.update(
                annotator=completion.author,
                annotation_id=completion.id,
                created_at=completion.created_at,
                updated_at=completion.updated_at,
                lead_time=completion.lead_time,
            )
            yield row


def _flatten(items: Sequence[ResultItem]) -> Any:
    values: list[Any] = []
    for item in items:
        value: Any = dict(item.value)
        if len(value) == 1:
            # {"choices": ["Positive"]} reads better as "Positive".
            (value,) = value.values()
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
        values.append(value)
    return values[0] if len(values) == 1 else values


def write_csv(tasks: Iterable[Task], out: TextIO) -> int:
    """Write the JSON_MIN rows as CSV; nested values are JSON. Returns the row count.

    Columns are every key any row has, in the order first seen; the rows are
    gathered first to know them.
    """
    rows = list(to_json_min(tasks))
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return len(rows)


def _cell(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    return json.dumps(value, ensure_ascii=False)


def render_tasks(tasks: Iterable[Task], export_format: ExportFormat) -> Iterator[str]:
    """The text of a JSON, JSON_MIN or CSV export, piece by piece, as ``tasks`` is read.

    JSON and JSON_MIN are arrays with one task (or row) per line, so a long
    export streams; CSV needs every row to know its columns, so it comes whole.
    CoNLL is not rendered here: it needs the training selection and the labeling
    config (:mod:`annotrain.domain.conll`).

    Raises:
        ValueError: For CoNLL.
    """
    if export_format is ExportFormat.JSON:
        return _json_array(task_to_json(task) for task in tasks)
    if export_format is ExportFormat.JSON_MIN:
        return _json_array(to_json_min(tasks))
    if export_format is ExportFormat.CSV:
        return _csv(tasks)
    raise ValueError(f"{export_format} is rendered by annotrain.domain.conll")


def _json_array(items: Iterable[Any]) -> Iterator[str]:
    yield "["
    separator = "\n"
    for item in items:
        yield separator + json.dumps(item, ensure_ascii=False)
        separator = ",\n"
    yield "\n]\n"


def _csv(tasks: Iterable[Task]) -> Iterator[str]:
    out = io.StringIO()
    write_csv(tasks, out)
    yield out.getvalue()
