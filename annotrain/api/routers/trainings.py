"""``/api/v1/projects/{id}/trainings`` and ``/api/v1/trainings/{id}``: start, read, compare,
tail the log, cancel.

Starting and cancelling take Owner or Manager (or admin); reading any project role.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import PlainTextResponse, StreamingResponse

from annotrain.api.deps import (
    AppSettings,
    Blobs,
    CurrentUser,
    GpuCheck,
    LicensingPolicy,
    Now,
    ProjectId,
    Runner,
    Store,
)
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import TrainingCreate, TrainingOut, TrainingPage, training_out
from annotrain.ports import MAX_PAGE_SIZE
from annotrain.services import active_learning, trainings
from annotrain.services.access import MANAGERS, authorize
from annotrain.services.system import GpuProbe
from annotrain.settings import Mode, Settings

router = APIRouter(tags=["trainings"], responses=error_responses(401, 403, 404, 422, 503))

TrainingId = Annotated[str, Path(min_length=1, max_length=128, description="the training's run id")]


def lab_has_gpu(settings: Settings, probe: GpuProbe) -> bool:
    """Whether a run may ask for the GPU: ``useGPU`` on, and the stack named a GPU queue
    (serverless) or this node has a GPU."""
    if not settings.use_gpu:
        return False
    if settings.mode == Mode.SERVERLESS:
        return bool(settings.gpu_queue)
    return probe()


def training_request(body: TrainingCreate) -> trainings.TrainingRequest:
    """The service's request from the HTTP body."""
    return trainings.TrainingRequest(
        types=None if body.types is None else trainings.parse_types(body.types),
        params=body.params.model_dump(exclude_none=True),
        base_model=body.base_model,
        split=trainings.SplitRequest(
            body.split.validation_share, body.split.train_tag, body.split.test_tag
        ),
        tags=tuple(body.tags),
        reviewed_only=body.reviewed_only,
        use_gpu=body.use_gpu,
        deploy=body.deploy,
        classifiers=None if body.classifiers is None else tuple(body.classifiers),
    )


@router.post(
    "/projects/{project_id}/trainings",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(409),
)
def start_training(
    project_id: ProjectId,
    body: TrainingCreate,
    user: CurrentUser,
    store: Store,
    blobs: Blobs,
    runner: Runner,
    clock: Now,
    settings: AppSettings,
    licensing: LicensingPolicy,
    gpu_probe: GpuCheck,
) -> TrainingOut:
    """Start training a project's models; 202 with the run (``id``, ``status``: queued)."""
    request = training_request(body)
    run = trainings.start_training(
        store, blobs, runner, user, clock, project_id, request,
        gpu_available=lab_has_gpu(settings, gpu_probe), licensing=licensing,
        allow_custom_scripts=settings.allow_custom_scripts,
    )  # fmt: skip
    if body.active_learning is not None:
        authorize(store, user, project_id, MANAGERS, "turning active learning on or off")
        active_learning.configure(
            store,
            project_id,
            enabled=body.active_learning.enabled,
            threshold=body.active_learning.threshold,
            request=request,
            by=user.name,
        )
    return training_out(run)


@router.get("/projects/{project_id}/trainings")
def list_trainings(
    project_id: ProjectId,
    user: CurrentUser,
    store: Store,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> TrainingPage:
    """List a project's trainings, newest first: source, data, status, metrics."""
    runs, total = trainings.list_trainings(store, user, project_id, page=page, page_size=page_size)
    return TrainingPage(
        items=[training_out(r) for r in runs], total=total, page=page, page_size=page_size
    )


@router.get("/trainings/compare")
def compare_trainings(
    user: CurrentUser,
    store: Store,
    ids: Annotated[str, Query(min_length=3, max_length=2000, description="a,b[,…]")],
) -> dict[str, Any]:
    """Compare trainings side by side: parameters that differ, data, scores per label."""
    return trainings.compare_trainings(store, user, [i.strip() for i in ids.split(",")])


@router.get("/trainings/{training_id}")
def read_training(training_id: TrainingId, user: CurrentUser, store: Store) -> TrainingOut:
    """Read a training: status, progress, epoch, metrics, history, data, failure reason."""
    return training_out(trainings.read_training(store, user, training_id))


@router.get(
    "/trainings/{training_id}/logs",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "the log (or its tail)"}},
)
def read_training_logs(
    training_id: TrainingId,
    user: CurrentUser,
    store: Store,
    blobs: Blobs,
    tail: Annotated[int | None, Query(ge=1, le=trainings.MAX_TAIL_LINES)] = None,
    download: bool = False,
) -> PlainTextResponse:
    """A training's log as the job wrote it so far; ``tail=N`` its last lines;
    ``download=true`` as an attachment."""
    text = trainings.read_training_log(store, blobs, user, training_id, tail=tail)
    headers = (
        {"Content-Disposition": f'attachment; filename="training-{training_id}.log"'}
        if download
        else None
    )
    return PlainTextResponse(text, headers=headers)


@router.get(
    "/trainings/{training_id}/report",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "the report"}},
)
def download_training_report(
    training_id: TrainingId, user: CurrentUser, store: Store, blobs: Blobs
) -> StreamingResponse:
    """A training's report as a zip: ``training.json`` (this training as ``GET`` shows it),
    ``training.log``, and per model it registered ``annotrain.json`` (labels, parameters,
    metrics, history) and its PNG plots (learning curve, confusion matrices)."""
    body = trainings.training_report(
        store, blobs, user, training_id,
        summarize=lambda run: training_out(run).model_dump_json(indent=2).encode("utf-8"),
    )  # fmt: skip
    return StreamingResponse(
        body,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="training-{training_id}-report.zip"'
        },
    )


@router.post(
    "/trainings/{training_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(409),
)
def cancel_training(
    training_id: TrainingId, user: CurrentUser, store: Store, runner: Runner, clock: Now
) -> TrainingOut:
    """Cancel a training (again: nothing changes); 409 when it had succeeded or failed."""
    return training_out(trainings.cancel_training(store, runner, clock, user, training_id))
