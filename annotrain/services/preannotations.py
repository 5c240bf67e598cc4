"""Pre-annotation: run a project's deployed models (or named ones) over its tasks.

Starting one takes the project's Owner or a Manager (or an admin); reading one
any project role. The run records the models (name, version, files) it will use
and the tasks asked for; the job (``python -m batch_jobs.preannotate``) predicts
and stores one prediction per task and model set, in Label Studio's result shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from annotrain.domain.errors import (
    InvalidRequestError,
    JobRunnerUnavailableError,
    NotFoundError,
)
from annotrain.domain.records import JobKind, ModelEntry, Run, RunStatus
from annotrain.ports import Clock, JobRunner, JobSpec, ModelStore
from annotrain.services.access import ANY_MEMBER, MANAGERS, Principal, authorize
from annotrain.services.licenses import Licensing, admit_run, confirm_admission
from annotrain.services.models import deployed_models
from annotrain.services.run_lifecycle import submit_job
from annotrain.services.trainings import (
    TrainingRecords,
    TrainingStores,
    authorize_run,
    log_key,
    new_run_id,
)

#: The most tasks one pre-annotation names.
MAX_TASK_IDS = 100_000


class PreannotationStores(TrainingStores, ModelStore, Protocol):
    """What starting a pre-annotation reads and writes."""


def start_preannotation(
    store: PreannotationStores,
    runner: JobRunner | None,
    principal: Principal,
    clock: Clock,
    project_id: int,
    *,
    task_ids: Sequence[int] | None = None,
    model_names: Sequence[str] | None = None,
    use_gpu: bool = False,
    licensing: Licensing,
) -> Run:
    """Pre-annotate a project's tasks (Owner, Manager, admin).

    Args:
        task_ids: The tasks; None for every task without a submitted completion.
        model_names: Models by name (their latest versions, readable by the
            caller); None for those deployed in the project.
        use_gpu: Predict on the GPU.
        licensing: Admits the run: the ``inference`` scope (``ocr:inference`` with a
            Visual NER model) and a free pre-annotation server.

    Raises:
        InvalidRequestError: ``models`` when none is deployed (or named), ``task_ids``
            naming a task the project lacks; nothing is written.
        JobRunnerUnavailableError: The app has no job runner; nothing is written.
        LicenseScopeError: No license grants the scope; nothing is written.
        ServerLimitError: The license's pre-annotation servers are all taken.
        JobSubmitError: The runner did not take the job; the run is marked failed.
    """
    authorize(store, principal, project_id, MANAGERS, "pre-annotating tasks")
    chosen = _models(store, principal, project_id, model_names)
    ids = None if task_ids is None else _task_ids(store, project_id, task_ids)
    if runner is None:
        raise JobRunnerUnavailableError("start a pre-annotation")
    admission = admit_run(
        store, licensing, clock, JobKind.PREANNOTATE,
        model_kinds=[e.kind for e in chosen], action="pre-annotation",
    )  # fmt: skip
    run_id = new_run_id(JobKind.PREANNOTATE)
    run = Run(
        id=run_id,
        project_id=project_id,
        kind=JobKind.PREANNOTATE,
        status=RunStatus.QUEUED,
        created_by=principal.name,
        created_at=clock.now(),
        use_gpu=use_gpu,
        params={
            "task_ids": ids,
            "models": [_model_json(e) for e in chosen],
        },
        logs_key=log_key(run_id),
    )
    store.create_run(run)
    confirm_admission(store, admission, run, clock)
    submit_job(store, runner, clock, JobSpec(JobKind.PREANNOTATE, run_id, use_gpu))
    return store.get_run(run_id)


def _model_json(entry: ModelEntry) -> dict[str, object]:
    return {
        "name": entry.name,
        "version": entry.version,
        "kind": entry.kind.value,
        "artifact_key": entry.artifact_key,
    }


def read_preannotation(store: TrainingRecords, principal: Principal, run_id: str) -> Run:
    """A pre-annotation's status and progress (any member)."""
    return authorize_run(
        store, principal, run_id, JobKind.PREANNOTATE, ANY_MEMBER,
        "reading a pre-annotation", "pre-annotation",
    )  # fmt: skip


def _models(
    store: PreannotationStores,
    principal: Principal,
    project_id: int,
    names: Sequence[str] | None,
) -> list[ModelEntry]:
    if names is None:
        deployed = deployed_models(store, project_id)
        if not deployed:
            raise InvalidRequestError(
                "models",
                "no model is deployed in this project: train one with deploy true, deploy "
                "one (POST …/models/{name}/deploy), or name models here",
            )
        return deployed
    if not names:
        raise InvalidRequestError("models", "name at least one model, or leave models out")
    chosen: list[ModelEntry] = []
    for name in dict.fromkeys(names):
        try:
            entry = store.get_model(name)
            authorize(store, principal, entry.project_id, ANY_MEMBER, "using a model")
        except NotFoundError:
            raise InvalidRequestError("models", f"there is no model {name!r}") from None
        chosen.append(entry)
    return chosen


def _task_ids(store: PreannotationStores, project_id: int, task_ids: Sequence[int]) -> list[int]:
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        raise InvalidRequestError("task_ids", "name at least one task, or leave task_ids out")
    if len(ids) > MAX_TASK_IDS:
        raise InvalidRequestError("task_ids", f"at most {MAX_TASK_IDS} tasks at once")
    for task_id in ids:
        try:
            store.get_task(project_id, task_id)
        except NotFoundError:
            raise InvalidRequestError(
                "task_ids", f"task {task_id} is not in project {project_id}"
            ) from None
    return ids
