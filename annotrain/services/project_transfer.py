"""Move a project between labs, either mode: export to a file, import from it.

Through the store ports only, so the same code reads and writes a single node's
SQLite store and a serverless lab's DynamoDB table. The file is JSON Lines: a
header (format, the project's name, labeling config, settings, members), then one
task per line in Label Studio JSON (completions with their reviews, predictions,
tags), which keeps offsets and metadata through the round trip.

An import checks the whole file first (format, config, every task against the
config) and writes nothing unless all of it is good; the project gets a new id and
its tasks new ids in the target lab. If the store fails midway, the project it
made is deleted again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.labelstudio import parse_tasks, task_to_json
from annotrain.domain.records import Project
from annotrain.domain.tasks import Member, Role, Task
from annotrain.ports import Clock, ProjectStore, TaskStore

__all__ = ["TransferCounts", "export_project", "import_project"]

FORMAT = "annotrain-project"
VERSION = 1
# Tasks written per add_tasks call (each call is all or none).
_BATCH = 200


class _Stores(ProjectStore, TaskStore, Protocol):
    """What a transfer needs of a store."""


@dataclass(frozen=True, slots=True)
class TransferCounts:
    """What moved.

    Attributes:
        project_id: The project's id (in the lab it was read from, or made in).
        tasks: Tasks.
        completions: Completions.
        reviews: Reviews of those completions.
        predictions: Predictions.
        members: Members.
    """

    project_id: int
    tasks: int = 0
    completions: int = 0
    reviews: int = 0
    predictions: int = 0
    members: int = 0


def export_project(store: _Stores, project_id: int, out: TextIO) -> TransferCounts:
    """Write a project and all its tasks to ``out`` as JSON Lines.

    Raises:
        NotFoundError: No such project.
    """
    project = store.get_project(project_id)
    members = _all_members(store, project_id)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "project": {
            "name": project.name,
            "label_config": project.label_config,
            "settings": dict(project.settings),
            "created_by": project.created_by,
            "created_at": project.created_at.isoformat(),
        },
        "members": [
            {"user": m.user, "role": m.role.value, "priority": m.priority} for m in members
        ],
    }
    out.write(json.dumps(header, ensure_ascii=False) + "\n")
    counts = _Counter(project_id, members=len(members))
    for task in store.iter_tasks(project_id):
        out.write(json.dumps(task_to_json(task), ensure_ascii=False) + "\n")
        counts.add(task)
    return counts.result()


def import_project(
    store: _Stores, lines: Iterable[str], clock: Clock, *, created_by: str, name: str | None = None
) -> TransferCounts:
    """Make a new project from an export, all of it or nothing.

    Args:
        store: The target lab's store.
        lines: The export file's lines.
        clock: Stamps the new project.
        created_by: Who imports it (the project's creator in the target lab).
        name: A new name for it (default: the exported name).

    Raises:
        InvalidRequestError: The file is not an export (naming the line and field).
        LabelingConfigError: Its labeling config is not valid.
        TaskImportError: A task does not fit the config (every problem listed).
    """
    numbered = iter(enumerate(lines, start=1))
    header = _header(numbered)
    project_fields = header["project"]
    schema = parse_labeling_config(project_fields["label_config"])
    payload = [_json_line(number, line) for number, line in numbered if line.strip()]
    tasks = parse_tasks(payload, schema)
    members = _members(header.get("members", []))
    project = store.create_project(
        Project(
            id=0,
            name=name or project_fields["name"],
            label_config=project_fields["label_config"],
            created_by=created_by,
            created_at=clock.now(),
            settings=project_fields.get("settings") or {},
        )
    )
    try:
        for member in members:
            store.put_member(project.id, member)
        counts = _Counter(project.id, members=len(members))
        for start in range(0, len(tasks), _BATCH):
            for task in store.add_tasks(project.id, tasks[start : start + _BATCH]):
                counts.add(task)
    except BaseException:
        store.delete_project(project.id)
        raise
    return counts.result()


def _all_members(store: _Stores, project_id: int) -> list[Member]:
    members: list[Member] = []
    token: str | None = None
    while True:
        page = store.list_members(project_id, limit=1000, token=token)
        members.extend(page.items)
        if page.next_token is None:
            return members
        token = page.next_token


def _header(numbered: Iterator[tuple[int, str]]) -> Mapping[str, Any]:
    try:
        number, line = next(numbered)
    except StopIteration:
        raise InvalidRequestError("file", "is empty: not an annotrain project export") from None
    header = _json_line(number, line)
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise InvalidRequestError(
            "line 1", f"not an annotrain project export (format {FORMAT!r}, version {VERSION})"
        )
    project = header.get("project")
    if not isinstance(project, dict):
        raise InvalidRequestError("line 1: project", "missing")
    for key in ("name", "label_config"):
        if not isinstance(project.get(key), str) or not project[key]:
            raise InvalidRequestError(f"line 1: project.{key}", "missing or not text")
    if not isinstance(project.get("settings", {}), dict):
        raise InvalidRequestError("line 1: project.settings", "not an object")
    return header


def _json_line(number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"line {number}", f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"line {number}", "not a JSON object")
    return value


def _members(entries: Any) -> list[Member]:
    if not isinstance(entries, list):
        raise InvalidRequestError("line 1: members", "not a list")
    members = []
    for index, entry in enumerate(entries):
        where = f"line 1: members[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("user"), str):
            raise InvalidRequestError(where, "needs a user name")
        try:
            role = Role(str(entry.get("role")))
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise InvalidRequestError(f"{where}.role", f"must be one of {roles}") from None
        priority = entry.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise InvalidRequestError(f"{where}.priority", "must be a whole number")
        members.append(Member(entry["user"], role, priority))
    return members


class _Counter:
    def __init__(self, project_id: int, *, members: int) -> None:
        self._project_id = project_id
        self._members = members
        self._tasks = self._completions = self._reviews = self._predictions = 0

    def add(self, task: Task) -> None:
        self._tasks += 1
        self._completions += len(task.completions)
        self._reviews += sum(len(c.reviews) for c in task.completions)
        self._predictions += len(task.predictions)

    def result(self) -> TransferCounts:
        return TransferCounts(
            self._project_id, self._tasks, self._completions, self._reviews,
            self._predictions, self._members,
        )  # fmt: skip
