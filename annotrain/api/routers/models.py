"""``/api/v1/models`` and ``/api/v1/projects/{id}/models/{name}/deploy``: the registry,
benchmarks, downloads, deploying.

Listing: any user (their projects' models; admins all). Reading a model: any role
in the project it was trained on; downloading: Owner or Manager there. Deploying:
Owner or Manager of the target project, who can read the model.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from annotrain.api.deps import Blobs, CurrentUser, ProjectId, Store
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import (
    DeployIn,
    DeployOut,
    ModelDetail,
    ModelList,
    model_detail,
    model_summary,
)
from annotrain.services import models

router = APIRouter(tags=["models"], responses=error_responses(401, 403, 404, 422, 503))

ModelName = Annotated[str, Path(min_length=1, max_length=200, description="the model's name")]


@router.get("/models")
def list_models(
    user: CurrentUser,
    store: Store,
    project_id: Annotated[int | None, Query(ge=1, description="only this project's")] = None,
) -> ModelList:
    """List the models of your projects: latest version, scores, where deployed."""
    return ModelList(items=[model_summary(v) for v in models.list_models(store, user, project_id)])


@router.get("/models/{name}")
def read_model(name: ModelName, user: CurrentUser, store: Store) -> ModelDetail:
    """Read a model's versions with their benchmark: P/R/F1 per label, confusion matrix."""
    return model_detail(models.read_model(store, user, name))


@router.get(
    "/models/{name}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "the model folder"}},
)
def download_model(
    name: ModelName,
    user: CurrentUser,
    store: Store,
    blobs: Blobs,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """Download a model version (latest by default) as a zip of its folder, streamed."""
    entry, chunks = models.model_archive(store, blobs, user, name, version)
    filename = f"{entry.name}-v{entry.version}.zip"
    return StreamingResponse(
        chunks,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/projects/{project_id}/models/{name}/deploy", responses=error_responses(409))
def deploy_model(
    project_id: ProjectId,
    name: ModelName,
    user: CurrentUser,
    store: Store,
    body: DeployIn | None = None,
) -> DeployOut:
    """Deploy a model into a project: its labels name the model, pre-annotation uses it."""
    version = None if body is None else body.version
    entry, deployment = models.deploy_model(store, user, project_id, name, version)
    return DeployOut(
        project_id=project_id,
        model=entry.name,
        version=entry.version,
        labels=list(deployment.labels),
        labeling_config=deployment.labeling_config,
    )
