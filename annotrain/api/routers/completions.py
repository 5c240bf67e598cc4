"""``/api/v1/projects/{id}/tasks/{tid}/completions``: members annotate tasks.

Any project role (or admin) may add a completion; its author is always the caller.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from annotrain.api.deps import CurrentUser, Now, ProjectId, Store, TaskId
from annotrain.api.schemas import CompletionCreate
from annotrain.domain.labelstudio import completion_to_json
from annotrain.domain.tasks import CompletionState
from annotrain.services import completions

router = APIRouter(
    prefix="/projects/{project_id}/tasks/{task_id}/completions", tags=["completions"]
)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_completion(
    project_id: ProjectId,
    task_id: TaskId,
    body: CompletionCreate,
    user: CurrentUser,
    store: Store,
    clock: Now,
) -> dict[str, Any]:
    """Add your completion of a task: submitted, or a draft with ``"draft": true``."""
    completion = completions.create_completion(
        store,
        user,
        clock,
        project_id,
        task_id,
        body.result,
        draft=body.draft,
        lead_time=body.lead_time,
    )
    # Label Studio lists drafts apart from annotations; one completion says which it is.
    return {**completion_to_json(completion), "draft": completion.state is CompletionState.DRAFT}
