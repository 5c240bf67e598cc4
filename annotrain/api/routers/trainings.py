"""``/api/v1/projects/{id}/trainings`` and ``/api/v1/trainings/{id}``: 501 until issue 5.

Roles are checked first (start and cancel: Owner or Manager; read: any project
role), so the role matrix holds now and stays when the trainings land.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from annotrain.api.deps import CurrentUser, ProjectId, Store
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import not_implemented_until
from annotrain.services import trainings

router = APIRouter(tags=["trainings"], responses=error_responses(401, 403, 404, 422, 503))

TrainingId = Annotated[str, Path(min_length=1, max_length=128, description="the training's run id")]
NOT_IMPLEMENTED = not_implemented_until("issue 5")


@router.post(
    "/projects/{project_id}/trainings",
    status_code=status.HTTP_202_ACCEPTED,
    responses=NOT_IMPLEMENTED,
)
def start_training(project_id: ProjectId, user: CurrentUser, store: Store) -> None:
    """Start training a project's models (501 until issue 5)."""
    trainings.start_training(store, user, project_id)


@router.get("/projects/{project_id}/trainings", responses=NOT_IMPLEMENTED)
def list_trainings(project_id: ProjectId, user: CurrentUser, store: Store) -> None:
    """List a project's trainings (501 until issue 5)."""
    trainings.list_trainings(store, user, project_id)


@router.get("/trainings/{training_id}", responses=NOT_IMPLEMENTED)
def read_training(training_id: TrainingId, user: CurrentUser, store: Store) -> None:
    """Read a training: status, progress, epoch, metrics (501 until issue 5)."""
    trainings.read_training(store, user, training_id)


@router.get("/trainings/{training_id}/logs", responses=NOT_IMPLEMENTED)
def read_training_logs(training_id: TrainingId, user: CurrentUser, store: Store) -> None:
    """Tail or download a training's log (501 until issue 5)."""
    trainings.read_training_logs(store, user, training_id)


@router.post(
    "/trainings/{training_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses=NOT_IMPLEMENTED,
)
def cancel_training(training_id: TrainingId, user: CurrentUser, store: Store) -> None:
    """Cancel a training (501 until issue 5; POST /servers/{run_id}/stop works now)."""
    trainings.cancel_training(store, user, training_id)
