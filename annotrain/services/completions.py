"""Completion use cases: what a member says about a task, and what reviewers say of it.

Annotators and Reviewers change or delete only their own completions; Owners,
Managers and admins any. Annotators are not shown others' completions, so to
them another's completion does not exist (NotFoundError); a Reviewer, who sees
it, is refused (PermissionDeniedError).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from annotrain.domain.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from annotrain.domain.labelstudio import parse_tasks
from annotrain.domain.records import Project
from annotrain.domain.tasks import (
    Completion,
    CompletionState,
    ResultItem,
    Review,
    ReviewVerdict,
    Role,
    Task,
)
from annotrain.ports import Clock, ProjectStore, TaskStore
from annotrain.services.access import (
    ANY_MEMBER,
    MANAGERS,
    REVIEWERS,
    Principal,
    authorize,
    find_member,
)
from annotrain.services.events import CompletionSubmitted, EventPublisher
from annotrain.services.projects import parsed_config


class _Stores(ProjectStore, TaskStore, Protocol):
    """What these use cases need: a project store that keeps tasks too."""


def create_completion(
    store: _Stores,
    principal: Principal,
    clock: Clock,
    project_id: int,
    task_id: int,
    result: Sequence[Any],
    *,
    draft: bool = False,
    lead_time: float | None = None,
    events: EventPublisher | None = None,
) -> Completion:
    """Store the caller's completion of a task, submitted or as a draft (any member, admin).

    The result is checked against the project's labeling config and the task's
    data exactly as an import checks it; its author is always the caller. A
    submitted one is published to ``events`` (active learning counts them).

    Raises:
        TaskImportError: The result does not fit the config or the task (every problem).
    """
    project = authorize(store, principal, project_id, ANY_MEMBER, "annotating")
    task = store.get_task(project_id, task_id)
    now = clock.now().isoformat()
    raw: dict[str, Any] = {
        "result": list(result),
        "completed_by": principal.name,
        "draft": draft,
        "created_at": now,
        "updated_at": now,
    }
    if lead_time is not None:
        raw["lead_time"] = lead_time
    completion = _checked(project, task, raw)
    stored = store.add_completion(project_id, task_id, completion)
    if not draft:
        _published(events, project_id, task_id, stored)
    return stored


def update_completion(
    store: _Stores,
    principal: Principal,
    clock: Clock,
    project_id: int,
    task_id: int,
    completion_id: int,
    *,
    revision: int,
    result: Sequence[Any] | None = None,
    lead_time: float | None = None,
) -> Completion:
    """Change a completion's result or lead time (its author; Owner, Manager, admin any).

    The new result is checked against the config and the task as an import is.
    A change names something to change: a bare revision would only advance it and
    make every other reader's copy stale for nothing.

    Raises:
        ConflictError: The completion changed since ``revision``.
        InvalidRequestError: Neither ``result`` nor ``lead_time`` is given.
        TaskImportError: The result does not fit the config or the task.
    """
    project, task, completion = _own_or_managed(
        store, principal, project_id, task_id, completion_id, "changing the completion"
    )
    if result is None and lead_time is None:
        raise InvalidRequestError("result", "send result or lead_time (or both) to change")
    changed = replace(completion, revision=revision, updated_at=clock.now().isoformat())
    if result is not None:
        changed = replace(changed, result=_checked_result(project, task, result))
    if lead_time is not None:
        changed = replace(changed, lead_time=lead_time)
    return store.update_completion(project_id, task_id, changed)


def submit_completion(
    store: _Stores,
    principal: Principal,
    clock: Clock,
    project_id: int,
    task_id: int,
    completion_id: int,
    *,
    revision: int,
    events: EventPublisher | None = None,
) -> Completion:
    """Submit a draft (its author; Owner, Manager, admin any); published to ``events``.

    Raises:
        ConflictError: The completion changed since ``revision``.
        InvalidRequestError: It is not a draft.
    """
    _, _, completion = _own_or_managed(
        store, principal, project_id, task_id, completion_id, "submitting the completion"
    )
    if completion.state is not CompletionState.DRAFT:
        raise InvalidRequestError("completion", f"is {completion.state.value}, not a draft")
    submitted = replace(
        completion,
        state=CompletionState.SUBMITTED,
        revision=revision,
        updated_at=clock.now().isoformat(),
    )
    stored = store.update_completion(project_id, task_id, submitted)
    _published(events, project_id, task_id, stored)
    return stored


def _published(
    events: EventPublisher | None, project_id: int, task_id: int, completion: Completion
) -> None:
    if events is not None and isinstance(completion.id, int):
        events.publish(CompletionSubmitted(project_id, task_id, completion.id))


def delete_completion(
    store: _Stores, principal: Principal, project_id: int, task_id: int, completion_id: int
) -> None:
    """Delete a completion (its author; Owner, Manager, admin any); absent ones are no error."""
    try:
        _own_or_managed(
            store, principal, project_id, task_id, completion_id, "deleting the completion"
        )
    except NotFoundError as exc:
        if exc.what != "completion":
            raise
        return
    store.delete_completion(project_id, task_id, completion_id)


def review_completion(
    store: _Stores,
    principal: Principal,
    clock: Clock,
    project_id: int,
    task_id: int,
    completion_id: int,
    *,
    accepted: bool,
    comment: str = "",
) -> Completion:
    """Accept or reject a submitted completion (Reviewer, Manager, Owner, admin).

    The reviewer is the caller; the last review of a completion is the one that stands.

    Raises:
        InvalidRequestError: The completion is a draft or was skipped.
    """
    authorize(store, principal, project_id, REVIEWERS, "reviewing")
    completion = _find(store.get_task(project_id, task_id), completion_id)
    if completion.state is not CompletionState.SUBMITTED:
        raise InvalidRequestError(
            "completion", f"is {completion.state.value}: only submitted completions are reviewed"
        )
    review = Review(
        ReviewVerdict.ACCEPTED if accepted else ReviewVerdict.REJECTED,
        principal.name,
        comment,
        clock.now().isoformat(),
    )
    return store.add_review(project_id, task_id, completion_id, review)


def _own_or_managed(
    store: _Stores,
    principal: Principal,
    project_id: int,
    task_id: int,
    completion_id: int,
    action: str,
) -> tuple[Project, Task, Completion]:
    project = authorize(store, principal, project_id, ANY_MEMBER, action)
    task = store.get_task(project_id, task_id)
    completion = _find(task, completion_id)
    if principal.is_admin or completion.author == principal.name:
        return project, task, completion
    member = find_member(store, project_id, principal.name)
    role = None if member is None else member.role
    if role in MANAGERS:
        return project, task, completion
    if role is Role.ANNOTATOR:
        # Annotators are never shown others' completions: to them it does not exist.
        raise NotFoundError("completion", completion_id)
    raise PermissionDeniedError(
        f"{action} of another member", "its author, Owners, Managers, admins"
    )


def _find(task: Task, completion_id: int) -> Completion:
    for completion in task.completions:
        if completion.id == completion_id:
            return completion
    raise NotFoundError("completion", completion_id)


def _checked(project: Project, task: Task, raw: dict[str, Any]) -> Completion:
    (checked,) = parse_tasks(
        [{"data": dict(task.data), "annotations": [raw]}],
        parsed_config(project.label_config),
    )
    (completion,) = checked.completions
    return completion


def _checked_result(project: Project, task: Task, result: Sequence[Any]) -> tuple[ResultItem, ...]:
    return _checked(project, task, {"result": list(result)}).result
