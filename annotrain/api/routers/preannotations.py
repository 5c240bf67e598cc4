"""``/api/v1/projects/{id}/preannotations``: 501 until issues 5 and 6.

The role is checked first (Owner or Manager), so the role matrix holds now.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from annotrain.api.deps import CurrentUser, ProjectId, Store
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import not_implemented_until
from annotrain.services import preannotations

router = APIRouter(
    prefix="/projects/{project_id}/preannotations",
    tags=["preannotations"],
    responses=error_responses(401, 403, 404, 422, 503),
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=not_implemented_until("issues 5 and 6"),
)
def start_preannotation(project_id: ProjectId, user: CurrentUser, store: Store) -> None:
    """Pre-annotate a project's tasks with its deployed models (501 until issues 5 and 6)."""
    preannotations.start_preannotation(store, user, project_id)
