"""The HTTP contract of the job routes (servers), kept apart from the domain.

Responses are built from domain values by the explicit ``*_out`` functions below.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from annotrain.domain.records import JobKind, ModelEntry, Run, RunStatus, Server


class ServerOut(BaseModel):
    """A running job: a training, a pre-annotation or an OCR pass."""

    run_id: str
    kind: JobKind
    project_id: int
    started_by: str
    since: datetime
    resource: Literal["GPU", "CPU"] = Field(description="what it runs on")
    host: str = Field(description="host and process id, or the AWS Batch job id")


class CapacityOut(BaseModel):
    """Who holds the servers the license allows, for one class of server."""

    server_class: Literal["training", "preannotation"]
    limit: int | None = Field(description="servers of this class at once; null: no limit")
    total_limit: int | None = Field(description="servers of every class together")
    license_id: str = Field(description='where the limits come from ("default": no license)')
    in_use: int = Field(description="runs queued or running in this class")
    held_by: list[str] = Field(description="the ids of those runs you may see")


class ServerList(BaseModel):
    """The running jobs you may see, oldest first, and the license's server capacity."""

    items: list[ServerOut]
    capacity: list[CapacityOut] = Field(default_factory=list)


class ServerStopOut(BaseModel):
    """A job asked to stop: its run is cancelled, its process is being stopped."""

    run_id: str
    status: RunStatus


def server_out(server: Server) -> ServerOut:
    """A server record as the API shows it."""
    return ServerOut(
        run_id=server.run_id,
        kind=server.kind,
        project_id=server.project_id,
        started_by=server.started_by,
        since=server.since,
        resource="GPU" if server.use_gpu else "CPU",
        host=server.host,
    )


def server_stop_out(run: Run) -> ServerStopOut:
    """A stopped job's run as the API shows it."""
    return ServerStopOut(run_id=run.id, status=run.status)


# --- trainings ---------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainingParamsIn(_Body):
    """Training parameters; each left out takes its default (ranges: docs/api.md)."""

    epochs: int | None = Field(default=None, description="passes over the training part (10)")
    learning_rate: float | None = Field(default=None, description="peak AdamW rate (1e-4)")
    decay: float | None = Field(default=None, description="AdamW weight decay (0.01)")
    dropout: float | None = Field(default=None, description="dropout (0.1)")
    batch_size: int | None = Field(default=None, description="examples per step (8)")
    max_length: int | None = Field(default=None, description="tokens per window (256)")
    seed: int | None = Field(default=None, description="makes a run repeatable (42)")
    early_stopping_patience: int | None = Field(
        default=None, description="evaluations without improvement before stopping; 0: off (3)"
    )
    eval_steps: int | None = Field(
        default=None, description="also evaluate every this many steps; 0: after each epoch (0)"
    )
    max_steps: int | None = Field(
        default=None, description="stop after this many optimisation steps; 0: no limit (0)"
    )


class SplitIn(_Body):
    """``{"validation_share": 0.2}`` or ``{"train_tag": "Train", "test_tag": "Test"}``."""

    validation_share: float | None = None
    train_tag: str | None = Field(default=None, min_length=1, max_length=200)
    test_tag: str | None = Field(default=None, min_length=1, max_length=200)


class ActiveLearningIn(_Body):
    """Retrain every ``threshold`` newly submitted completions."""

    enabled: bool = True
    threshold: Literal[50, 100, 200] = 100


class TrainingCreate(_Body):
    """What to train, on which data, and how."""

    types: list[str] | None = Field(
        default=None,
        description="ner, assertion, classification, visual_ner; default: all the config implies",
    )
    params: TrainingParamsIn = Field(default_factory=TrainingParamsIn)
    base_model: str | None = Field(
        default=None, max_length=200, description="default: the project language's encoder"
    )
    split: SplitIn = Field(default_factory=lambda: SplitIn(validation_share=0.2))
    tags: list[str] = Field(default_factory=list, description="only tasks with one of these")
    reviewed_only: bool = False
    use_gpu: bool = False
    deploy: bool = True
    active_learning: ActiveLearningIn | None = Field(
        default=None, description="turn retraining on (or off) for the project with this request"
    )
    classifiers: list[str] | None = Field(
        default=None, description="Choices names to train classifiers for"
    )


class TrainingOut(BaseModel):
    """A training run: where it stands, what it learnt from, how it scored."""

    id: str
    project_id: int
    status: RunStatus
    progress: float = Field(description="0 to 100")
    epoch: int | None
    metrics: dict[str, Any] = Field(description="per model: per_label P/R/F1, micro, macro…")
    failure_reason: str | None
    history: list[dict[str, Any]]
    params: dict[str, Any] = Field(description="what was asked: request, parameters, models")
    source: Literal["manual", "active_learning"]
    use_gpu: bool
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    data: dict[str, Any] = Field(description="train/test counts, tasks skipped by reason")


class TrainingPage(BaseModel):
    """One page of a project's trainings, newest first."""

    items: list[TrainingOut]
    total: int
    page: int
    page_size: int


def training_out(run: Run) -> TrainingOut:
    """A training run as the API shows it."""
    source = run.params.get("source", "manual")
    return TrainingOut(
        id=run.id,
        project_id=run.project_id,
        status=run.status,
        progress=run.progress,
        epoch=run.epoch,
        metrics=dict(run.metrics),
        failure_reason=run.failure_reason,
        history=[dict(h) for h in run.history],
        params={k: v for k, v in run.params.items() if k != "data"},
        source="active_learning" if source == "active_learning" else "manual",
        use_gpu=run.use_gpu,
        created_by=run.created_by,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        data=dict(run.params.get("data") or {}),
    )


# --- models --------------------------------------------------------------------------


class ModelVersionOut(BaseModel):
    """One version of a model, with its benchmark."""

    version: int
    run_id: str
    base_model: str
    created_at: datetime
    metrics: dict[str, Any] = Field(
        description="per_label P/R/F1/support, micro, macro, confusion_matrix {labels, matrix}"
    )
    deployed_in: list[int]


class ModelSummary(BaseModel):
    """A model: its latest version and where its versions are deployed."""

    name: str
    kind: str
    labels: list[str]
    project_id: int
    latest_version: int
    versions: int
    micro_f1: float | None
    deployed_in: list[int] = Field(description="projects a version of it is deployed in")


class ModelList(BaseModel):
    """The models you may see, by name."""

    items: list[ModelSummary]


class ModelDetail(ModelSummary):
    """A model with every version's benchmark, oldest first."""

    history: list[ModelVersionOut]


class DeployIn(_Body):
    """Which version to deploy (the latest when left out)."""

    version: int | None = Field(default=None, ge=1)


class DeployOut(BaseModel):
    """A deployed model and the labeling config that now names it."""

    project_id: int
    model: str
    version: int
    labels: list[str] = Field(description="the labels that now name the model")
    labeling_config: str


def _micro_f1(metrics: Mapping[str, Any]) -> float | None:
    micro = metrics.get("micro")
    value = micro.get("f1") if isinstance(micro, Mapping) else micro
    return float(value) if isinstance(value, int | float) else None


def model_summary(versions: list[ModelEntry]) -> ModelSummary:
    """A model's versions (oldest first) as the listing shows them."""
    latest = versions[-1]
    return ModelSummary(
        name=latest.name,
        kind=latest.kind.value,
        labels=list(latest.labels),
        project_id=latest.project_id,
        latest_version=latest.version,
        versions=len(versions),
        micro_f1=_micro_f1(latest.metrics),
        deployed_in=sorted({p for v in versions for p in v.deployed_in}),
    )


def model_detail(versions: list[ModelEntry]) -> ModelDetail:
    """A model with every version's benchmark."""
    summary = model_summary(versions)
    return ModelDetail(
        **summary.model_dump(),
        history=[
            ModelVersionOut(
                version=v.version,
                run_id=v.run_id,
                base_model=v.base_model,
                created_at=v.created_at,
                metrics=dict(v.metrics),
                deployed_in=list(v.deployed_in),
            )
            for v in versions
        ],
    )


# --- pre-annotations -----------------------------------------------------------------


class PreannotationCreate(_Body):
    """Which tasks, with which models."""

    task_ids: list[int] | None = Field(
        default=None, description="default: every task without a submitted completion"
    )
    models: list[str] | None = Field(
        default=None, description="model names; default: those deployed in the project"
    )


class PreannotationOut(BaseModel):
    """A pre-annotation run."""

    id: str
    project_id: int
    status: RunStatus
    progress: float
    failure_reason: str | None
    models: list[dict[str, Any]] = Field(description="name and version of each model used")
    tasks: int | None = Field(description="tasks asked for (None: every incomplete task)")
    predicted: int = Field(description="tasks that have their prediction stored so far")
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def preannotation_out(run: Run) -> PreannotationOut:
    """A pre-annotation run as the API shows it."""
    task_ids = run.params.get("task_ids")
    return PreannotationOut(
        id=run.id,
        project_id=run.project_id,
        status=run.status,
        progress=run.progress,
        failure_reason=run.failure_reason,
        models=[dict(m) for m in run.params.get("models") or ()],
        tasks=None if task_ids is None else len(task_ids),
        predicted=int(run.metrics.get("predicted", 0)),
        created_by=run.created_by,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


class OcrCreate(_Body):
    """Which tasks to OCR."""

    task_ids: list[int] | None = Field(
        default=None, description="default: every task showing an image uploaded to the project"
    )


class OcrOut(BaseModel):
    """An OCR run."""

    id: str
    project_id: int
    status: RunStatus
    progress: float
    failure_reason: str | None
    language: str = Field(description="the Tesseract language pages are read in (eng, deu…)")
    tasks: int = Field(description="tasks asked for")
    metrics: dict[str, Any] = Field(
        description="once done: pages, done_before, cached, read, words, skipped, failed"
    )
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def ocr_out(run: Run) -> OcrOut:
    """An OCR run as the API shows it."""
    return OcrOut(
        id=run.id,
        project_id=run.project_id,
        status=run.status,
        progress=run.progress,
        failure_reason=run.failure_reason,
        language=str(run.params.get("tesseract_language", "")),
        tasks=len(run.params.get("task_ids") or ()),
        metrics=dict(run.metrics),
        created_by=run.created_by,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


class TaskUploadOut(BaseModel):
    """Tasks made from uploaded images and PDF pages, and the OCR run started for them."""

    imported: int
    task_ids: list[int]
    ocr: OcrOut
