"""Task use cases: import Label Studio JSON into a project, list its tasks by page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.labelstudio import parse_tasks
from annotrain.domain.tasks import Role, Task
from annotrain.ports import (
    MAX_PAGE_SIZE,
    BlobStore,
    ProjectStore,
    TaskCounting,
    TaskOrder,
    TaskQuery,
    TaskStore,
    UncertaintyOrdering,
)
from annotrain.services.access import ANY_MEMBER, MANAGERS, Principal, authorize, find_member
from annotrain.services.ocr import ocr_summary
from annotrain.services.projects import parsed_config


class _Stores(ProjectStore, TaskStore, Protocol):
    """What these use cases need: a project store that keeps tasks too."""


def import_tasks(
    store: _Stores, principal: Principal, project_id: int, payload: Sequence[Any]
) -> list[Task]:
    """Import Label Studio JSON tasks, all or none (Owner, Manager, admin).

    Every task is checked against the project's labeling config before anything
    is stored.

    Raises:
        TaskImportError: Some tasks are inconsistent; lists every problem, stores nothing.
    """
    project = authorize(store, principal, project_id, MANAGERS, "importing tasks")
    tasks = parse_tasks(list(payload), parsed_config(project.label_config))
    if not tasks:
        raise InvalidRequestError("body", "a list of at least one task is needed")
    return store.add_tasks(project_id, tasks)


def list_tasks(
    store: _Stores,
    principal: Principal,
    project_id: int,
    query: TaskQuery | None = None,
    *,
    page: int = 1,
    page_size: int = 100,
    order: TaskOrder = TaskOrder.ID,
) -> tuple[list[Task], int]:
    """One numbered page of a project's tasks and their total (any member, admin).

    ``order`` is task id, or most uncertain first (:class:`~annotrain.ports.TaskOrder`).
    Annotators see only their own completions in what is listed.
    """
    if page < 1:
        raise InvalidRequestError("page", "must be 1 or more")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidRequestError("page_size", f"must be 1 to {MAX_PAGE_SIZE}")
    authorize(store, principal, project_id, ANY_MEMBER, "listing tasks")
    offset = (page - 1) * page_size
    if order is TaskOrder.UNCERTAINTY:
        items, total = _by_uncertainty(store, project_id, query, offset, page_size)
    elif isinstance(store, TaskCounting):
        total = store.count_tasks(project_id, query)
        items = (
            store.list_tasks_at(project_id, query, offset=offset, limit=page_size)
            if offset < total
            else []
        )
    else:
        # Stores without counting: walk every matching task (correct, not fast).
        items, total = [], 0
        for task in store.iter_tasks(project_id, query):
            if offset <= total < offset + page_size:
                items.append(task)
            total += 1
    if not principal.is_admin:
        member = find_member(store, project_id, principal.name)
        if member is not None and member.role == Role.ANNOTATOR:
            items = [only_completions_by(task, principal.name) for task in items]
    return items, total


def uncertainty_key(task: Task) -> tuple[bool, float, int]:
    """Where a task sorts most-uncertain-first: by its latest prediction's score, unscored last."""
    latest = max(task.predictions, key=lambda p: int(p.id or 0), default=None)
    score = None if latest is None else latest.score
    return (score is None, 0.0 if score is None else score, int(task.id or 0))


def _by_uncertainty(
    store: _Stores, project_id: int, query: TaskQuery | None, offset: int, page_size: int
) -> tuple[list[Task], int]:
    if isinstance(store, UncertaintyOrdering) and isinstance(store, TaskCounting):
        total = store.count_tasks(project_id, query)
        if offset >= total:
            return [], total
        page = store.list_tasks_by_uncertainty(project_id, query, offset=offset, limit=page_size)
        return page, total
    # Stores without the index (DynamoDB): one walk keeping each task's key, then the
    # page's tasks read again by id (correct, not fast: a scan of the project).
    keys = sorted(uncertainty_key(task) for task in store.iter_tasks(project_id, query))
    chosen = keys[offset : offset + page_size]
    return [store.get_task(project_id, key[2]) for key in chosen], len(keys)


def only_completions_by(task: Task, author: str) -> Task:
    """The task with only ``author``'s completions: what an Annotator is shown."""
    return replace(task, completions=tuple(c for c in task.completions if c.author == author))


def get_task(store: _Stores, principal: Principal, project_id: int, task_id: int) -> Task:
    """A task with its completions and predictions (any member, admin).

    Annotators see only their own completions.
    """
    authorize(store, principal, project_id, ANY_MEMBER, "reading tasks")
    task = store.get_task(project_id, task_id)
    if not principal.is_admin:
        member = find_member(store, project_id, principal.name)
        if member is not None and member.role == Role.ANNOTATOR:
            task = only_completions_by(task, principal.name)
    return task


def get_task_with_ocr(
    store: _Stores, blobs: BlobStore, principal: Principal, project_id: int, task_id: int
) -> tuple[Task, dict[str, Any] | None]:
    """A task as :func:`get_task` gives it, and the summary of its image's OCR (or None)."""
    task = get_task(store, principal, project_id, task_id)
    schema = parsed_config(store.get_project(project_id).label_config)
    return task, ocr_summary(blobs, schema, project_id, task)


def delete_task(store: _Stores, principal: Principal, project_id: int, task_id: int) -> None:
    """Delete a task with its completions and predictions (Owner, Manager, admin)."""
    authorize(store, principal, project_id, MANAGERS, "deleting tasks")
    store.delete_task(project_id, task_id)
