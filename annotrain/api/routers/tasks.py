"""``/api/v1/projects/{id}/tasks``: import Label Studio JSON, list by page, read, delete.

Importing and deleting take Owner or Manager (or admin); reading any project
role. Annotators see only their own completions. A task read alone carries
``ocr``: a summary of its image's OCR (``null`` before it is read); listings do
not.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status

from annotrain.api.deps import Blobs, CurrentUser, ProjectId, Store, TaskId
from annotrain.api.errors import error_responses
from annotrain.api.schemas import TaskImportOut, TaskPage, task_out
from annotrain.ports import MAX_PAGE_SIZE, TaskOrder, TaskQuery
from annotrain.services import tasks

router = APIRouter(
    prefix="/projects/{project_id}/tasks",
    tags=["tasks"],
    responses=error_responses(401, 403, 404, 422, 503),
)


@router.post("/import", status_code=status.HTTP_201_CREATED, responses=error_responses(413))
def import_tasks(
    project_id: ProjectId,
    payload: Annotated[list[Any], Body(description="Label Studio JSON: a list of tasks")],
    user: CurrentUser,
    store: Store,
) -> TaskImportOut:
    """Import Label Studio JSON tasks, all or none."""
    stored = tasks.import_tasks(store, user, project_id, payload)
    return TaskImportOut(imported=len(stored), task_ids=[int(t.id or 0) for t in stored])


@router.get("")
def list_tasks(
    project_id: ProjectId,
    user: CurrentUser,
    store: Store,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    tags: Annotated[list[str] | None, Query(description="only tasks with one of these")] = None,
    has_completions: bool | None = None,
    has_predictions: bool | None = None,
    order: Annotated[
        TaskOrder,
        Query(
            description="id (default), or uncertainty: lowest task score of the latest "
            "prediction first, tasks without a scored prediction last (active learning)"
        ),
    ] = TaskOrder.ID,
) -> TaskPage:
    """List a project's tasks by page, as Label Studio JSON with completion revisions."""
    query = TaskQuery(
        tags=frozenset(tags or ()),
        has_completions=has_completions,
        has_predictions=has_predictions,
    )
    items, total = tasks.list_tasks(
        store, user, project_id, query, page=page, page_size=page_size, order=order
    )
    return TaskPage(items=[task_out(t) for t in items], total=total)


@router.get("/{task_id}")
def read_task(
    project_id: ProjectId, task_id: TaskId, user: CurrentUser, store: Store, blobs: Blobs
) -> dict[str, Any]:
    """Read a task as Label Studio JSON: each completion carries the revision to change it
    at, and the task a summary of its image's OCR."""
    task, summary = tasks.get_task_with_ocr(store, blobs, user, project_id, task_id)
    return {**task_out(task), "ocr": summary}


@router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_task(
    project_id: ProjectId, task_id: TaskId, user: CurrentUser, store: Store
) -> Response:
    """Delete a task with its completions and predictions."""
    tasks.delete_task(store, user, project_id, task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
