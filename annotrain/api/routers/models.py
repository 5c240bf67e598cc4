"""``/api/v1/models`` and ``/api/v1/projects/{id}/models/{name}/deploy``: 501 until issue 5.

Roles are checked first (read: any role in the model's project; deploy: Owner or
Manager of the target project), so the role matrix holds now.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from annotrain.api.deps import CurrentUser, ProjectId, Store
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import not_implemented_until
from annotrain.services import models

router = APIRouter(tags=["models"], responses=error_responses(401, 403, 404, 422, 503))

ModelName = Annotated[str, Path(min_length=1, max_length=200, description="the model's name")]
NOT_IMPLEMENTED = not_implemented_until("issue 5")


@router.get("/models", responses=NOT_IMPLEMENTED)
def list_models(user: CurrentUser, store: Store) -> None:
    """List the models of your projects (501 until issue 5)."""
    models.list_models(store, user)


@router.get("/models/{name}", responses=NOT_IMPLEMENTED)
def read_model(name: ModelName, user: CurrentUser, store: Store) -> None:
    """Read a model with its benchmark: P/R/F1 per label, confusion matrix (501 until issue 5)."""
    models.read_model(store, user, name)


@router.post("/projects/{project_id}/models/{name}/deploy", responses=NOT_IMPLEMENTED)
def deploy_model(project_id: ProjectId, name: ModelName, user: CurrentUser, store: Store) -> None:
    """Deploy a model into a project for pre-annotation (501 until issue 5)."""
    models.deploy_model(store, user, project_id, name)
