"""``/api/v1/projects/{id}/training-script``: a project's custom NER training script.

Off unless the lab allows custom scripts (``ANNOTRAIN_ALLOW_CUSTOM_SCRIPTS``):
uploads answer 403 ``custom_scripts_disabled`` then. Uploading and deleting take
the project's Owner (or an admin); reading Owners and Managers. The interface a
script implements is in docs/jobs.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile, status
from pydantic import BaseModel, Field

from annotrain.api.deps import AppSettings, Blobs, CurrentUser, ProjectId, Store
from annotrain.api.errors import error_responses
from annotrain.services import training_scripts
from annotrain.services.training_scripts import TrainingScript

router = APIRouter(
    prefix="/projects/{project_id}/training-script",
    tags=["trainings"],
    responses=error_responses(401, 403, 404, 503),
)


class TrainingScriptOut(BaseModel):
    """A project's training script."""

    script: str = Field(description="the Python source")
    sha256: str = Field(description="digest of its bytes: runs record the script by it")
    size: int = Field(description="bytes")


def _out(script: TrainingScript) -> TrainingScriptOut:
    return TrainingScriptOut(script=script.source, sha256=script.sha256, size=script.size)


@router.put("", responses=error_responses(413, 422))
def put_training_script(
    project_id: ProjectId,
    file: Annotated[UploadFile, File(description="the Python script (UTF-8)")],
    user: CurrentUser,
    store: Store,
    blobs: Blobs,
    settings: AppSettings,
) -> TrainingScriptOut:
    """Upload the project's NER training script, replacing any earlier one (Owner)."""
    # One byte over the limit is enough to refuse; the rest is never read.
    content = file.file.read(settings.max_training_script_bytes + 1)
    script = training_scripts.put_training_script(
        store, blobs, user, project_id, content,
        allowed=settings.allow_custom_scripts, max_bytes=settings.max_training_script_bytes,
    )  # fmt: skip
    return _out(script)


@router.get("")
def read_training_script(
    project_id: ProjectId, user: CurrentUser, store: Store, blobs: Blobs
) -> TrainingScriptOut:
    """Read the project's training script back (Owner, Manager); 404 when it has none."""
    return _out(training_scripts.read_training_script(store, blobs, user, project_id))


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
def delete_training_script(
    project_id: ProjectId, user: CurrentUser, store: Store, blobs: Blobs
) -> Response:
    """Delete the project's training script: trainings use the default trainer again (Owner)."""
    training_scripts.delete_training_script(store, blobs, user, project_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
