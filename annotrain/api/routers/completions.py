"""``/api/v1/projects/{id}/tasks/{tid}/completions``: members annotate, reviewers judge.

Any project role (or admin) may add a completion; its author is always the
caller. Its author may change, submit or delete it, as may Owners, Managers and
admins. Reviewers, Managers, Owners and admins review.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from annotrain.api.deps import CompletionId, CurrentUser, Events, Now, ProjectId, Store, TaskId
from annotrain.api.errors import error_responses
from annotrain.api.schemas import (
    CompletionCreate,
    CompletionSubmit,
    CompletionUpdate,
    ReviewCreate,
    completion_out,
)
from annotrain.services import completions

router = APIRouter(
    prefix="/projects/{project_id}/tasks/{task_id}/completions",
    tags=["completions"],
    responses=error_responses(401, 403, 404, 422, 503),
)
#: A change at a revision: a stale one is a 409.
REVISION_CHECKED = error_responses(409, 413)


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(413))
def create_completion(
    project_id: ProjectId,
    task_id: TaskId,
    body: CompletionCreate,
    user: CurrentUser,
    store: Store,
    clock: Now,
    events: Events,
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
        events=events,
    )
    return completion_out(completion)


@router.patch("/{completion_id}", responses=REVISION_CHECKED)
def update_completion(
    project_id: ProjectId,
    task_id: TaskId,
    completion_id: CompletionId,
    body: CompletionUpdate,
    user: CurrentUser,
    store: Store,
    clock: Now,
) -> dict[str, Any]:
    """Change a completion at the revision you read (409 if it changed since)."""
    completion = completions.update_completion(
        store,
        user,
        clock,
        project_id,
        task_id,
        completion_id,
        revision=body.revision,
        result=body.result,
        lead_time=body.lead_time,
    )
    return completion_out(completion)


@router.post("/{completion_id}/submit", responses=REVISION_CHECKED)
def submit_completion(
    project_id: ProjectId,
    task_id: TaskId,
    completion_id: CompletionId,
    body: CompletionSubmit,
    user: CurrentUser,
    store: Store,
    clock: Now,
    events: Events,
) -> dict[str, Any]:
    """Submit a draft at the revision you read (409 if it changed since)."""
    completion = completions.submit_completion(
        store,
        user,
        clock,
        project_id,
        task_id,
        completion_id,
        revision=body.revision,
        events=events,
    )
    return completion_out(completion)


@router.delete("/{completion_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_completion(
    project_id: ProjectId,
    task_id: TaskId,
    completion_id: CompletionId,
    user: CurrentUser,
    store: Store,
) -> Response:
    """Delete a completion (204, also when absent)."""
    completions.delete_completion(store, user, project_id, task_id, completion_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{completion_id}/review", responses=error_responses(413))
def review_completion(
    project_id: ProjectId,
    task_id: TaskId,
    completion_id: CompletionId,
    body: ReviewCreate,
    user: CurrentUser,
    store: Store,
    clock: Now,
) -> dict[str, Any]:
    """Accept or reject a submitted completion, with a comment; the last review stands."""
    completion = completions.review_completion(
        store,
        user,
        clock,
        project_id,
        task_id,
        completion_id,
        accepted=body.accepted,
        comment=body.comment,
    )
    return completion_out(completion)
