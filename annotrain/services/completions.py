"""Completion use cases: what a member says about a task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.labelstudio import parse_tasks
from annotrain.domain.tasks import Completion
from annotrain.ports import Clock, ProjectStore, TaskStore
from annotrain.services.access import ANY_MEMBER, Principal, authorize


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
) -> Completion:
    """Store the caller's completion of a task, submitted or as a draft (any member, admin).

    The result is checked against the project's labeling config and the task's
    data exactly as an import checks it; its author is always the caller.

    Raises:
        TaskImportError: The result does not fit the config or the task (every problem).
    """
    project = authorize(store, principal, project_id, ANY_MEMBER, "annotating")
    task = store.get_task(project_id, task_id)
    raw: dict[str, Any] = {
        "result": list(result),
        "completed_by": principal.name,
        "draft": draft,
        "created_at": clock.now().isoformat(),
    }
    if lead_time is not None:
        raw["lead_time"] = lead_time
    (checked,) = parse_tasks(
        [{"data": dict(task.data), "annotations": [raw]}],
        parse_labeling_config(project.label_config),
    )
    (completion,) = checked.completions
    return store.add_completion(project_id, task_id, completion)
