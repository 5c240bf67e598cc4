"""``/api/v1/projects/{id}/export``: a project's tasks as a file, streamed.

Any project role (or admin) may export; an Annotator's export holds only their
own completions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from annotrain.api.deps import CurrentUser, ProjectId, Store
from annotrain.api.errors import error_responses
from annotrain.domain.export import ExportFilter, ExportFormat
from annotrain.ports import TaskQuery
from annotrain.services import exports

router = APIRouter(
    prefix="/projects/{project_id}",
    tags=["export"],
    responses=error_responses(401, 403, 404, 422, 503),
)

_FILE = {
    "description": "the file, as an attachment",
    "content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "text/csv": {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string", "description": "CoNLL-2003"}},
    },
}


@router.get("/export", response_class=StreamingResponse, responses={200: _FILE})
def export_tasks(
    project_id: ProjectId,
    user: CurrentUser,
    store: Store,
    export_format: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.JSON,
    tags: Annotated[list[str] | None, Query(description="only tasks with one of these")] = None,
    has_completions: bool | None = None,
    has_predictions: bool | None = None,
    only_ground_truth: bool = False,
    skip_empty: Annotated[
        bool, Query(description="leave out tasks without a submitted completion")
    ] = False,
    annotator: Annotated[
        list[str] | None, Query(description="only completions by these authors")
    ] = None,
) -> StreamingResponse:
    """Export a project's tasks as Label Studio JSON, JSON_MIN, CSV or CoNLL-2003."""
    query = TaskQuery(
        tags=frozenset(tags or ()),
        has_completions=has_completions,
        has_predictions=has_predictions,
    )
    rules = ExportFilter(
        only_ground_truth=only_ground_truth,
        skip_tasks_without_completions=skip_empty,
        annotators=frozenset(annotator or ()),
    )
    export = exports.export_tasks(store, user, project_id, export_format, query, rules)
    return StreamingResponse(
        export.chunks,
        media_type=export.media_type,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )
