"""``/api/v1/projects/{id}/preannotations`` and ``/api/v1/preannotations/{id}``.

Starting one takes Owner or Manager (or admin); reading one any project role.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from annotrain.api.deps import CurrentUser, LicensingPolicy, Now, ProjectId, Runner, Store
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import PreannotationCreate, PreannotationOut, preannotation_out
from annotrain.services import preannotations

router = APIRouter(tags=["preannotations"], responses=error_responses(401, 403, 404, 422, 503))

PreannotationId = Annotated[
    str, Path(min_length=1, max_length=128, description="the pre-annotation's run id")
]


@router.post(
    "/projects/{project_id}/preannotations",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(409),
)
def start_preannotation(
    project_id: ProjectId,
    user: CurrentUser,
    store: Store,
    runner: Runner,
    clock: Now,
    licensing: LicensingPolicy,
    body: PreannotationCreate | None = None,
) -> PreannotationOut:
    """Pre-annotate tasks (default: every incomplete one) with the deployed models."""
    body = body or PreannotationCreate()
    run = preannotations.start_preannotation(
        store, runner, user, clock, project_id, task_ids=body.task_ids, model_names=body.models,
        licensing=licensing,
    )  # fmt: skip
    return preannotation_out(run)


@router.get("/preannotations/{preannotation_id}")
def read_preannotation(
    preannotation_id: PreannotationId, user: CurrentUser, store: Store
) -> PreannotationOut:
    """Read a pre-annotation: status, progress, how many tasks have their prediction."""
    return preannotation_out(preannotations.read_preannotation(store, user, preannotation_id))
