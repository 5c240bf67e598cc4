"""OCR runs: start one for a project's image tasks, read it, and what a task's OCR holds.

Starting OCR takes the project's Owner or a Manager (or an admin); reading a run,
or a task's OCR summary, any project role. An upload of images or PDFs
(:func:`upload_and_ocr`) starts an OCR run for its new tasks by itself.

The run records the tasks and the Tesseract language (from the project's
language); the job (``python -m batch_jobs.ocr``) reads each task's uploaded image
and stores its words beside it (:mod:`annotrain.domain.ocr`). Images already read
in that language by that Tesseract are never read again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from annotrain.domain.config import ProjectSchema, parse_labeling_config
from annotrain.domain.errors import (
    InvalidRequestError,
    JobRunnerUnavailableError,
    JobSubmitError,
    NotFoundError,
)
from annotrain.domain.ocr import ocr_key, page_from_json, tesseract_language
from annotrain.domain.records import JobKind, Project, Run, RunStatus
from annotrain.domain.task_files import image_fields, image_id_of_reference, task_image_ids
from annotrain.domain.tasks import Task
from annotrain.ports import BlobStore, Clock, JobRunner, JobSpec, TaskQuery
from annotrain.services import imports
from annotrain.services.access import ANY_MEMBER, MANAGERS, Principal, authorize
from annotrain.services.pdf_pages import PdfLimits
from annotrain.services.projects import language_of
from annotrain.services.run_lifecycle import mark_finished
from annotrain.services.trainings import (
    TrainingRecords,
    TrainingStores,
    authorize_run,
    log_key,
    new_run_id,
)

#: The most tasks one OCR run names.
MAX_TASK_IDS = 100_000


class OcrStores(TrainingStores, Protocol):
    """What starting an OCR run reads and writes: projects, tasks, runs."""


@dataclass(frozen=True, slots=True)
class UploadResult:
    """The tasks an upload made and the OCR run it started.

    Attributes:
        tasks: The new tasks, in upload order (a PDF's pages in order).
        run: The OCR run for them (``failed`` with its reason when the runner refused it).
    """

    tasks: list[Task]
    run: Run


def upload_and_ocr(
    store: OcrStores,
    blobs: BlobStore,
    runner: JobRunner | None,
    principal: Principal,
    clock: Clock,
    project_id: int,
    files: Sequence[imports.UploadedFile],
    *,
    limits: imports.ImportLimits,
    pdf: PdfLimits,
) -> UploadResult:
    """Images and PDF pages as tasks, then an OCR run over them (Owner, Manager, admin).

    Everything that can refuse the upload is checked before anything is written:
    the role, the runner, the project's language, every file.

    Raises:
        FileImportError: Files refused; nothing stored.
        InvalidRequestError: No file, or a project language OCR does not read.
        JobRunnerUnavailableError: The app has no job runner; nothing stored.
    """
    project = authorize(store, principal, project_id, MANAGERS, "uploading images")
    language = _language(project)
    if runner is None:
        raise JobRunnerUnavailableError("upload images for OCR")
    tasks = imports.upload_pages(store, blobs, principal, project_id, files, limits=limits, pdf=pdf)
    ids = [int(t.id or 0) for t in tasks]
    return UploadResult(tasks, _submit(store, runner, principal, clock, project_id, ids, language))


def start_ocr(
    store: OcrStores,
    runner: JobRunner | None,
    principal: Principal,
    clock: Clock,
    project_id: int,
    *,
    task_ids: Sequence[int] | None = None,
) -> Run:
    """OCR a project's image tasks (Owner, Manager, admin).

    Args:
        task_ids: The tasks; None for every task whose image was uploaded to the
            project (those read before are skipped by the job at no cost).

    Raises:
        InvalidRequestError: ``task_ids`` naming a task the project lacks or one
            without an uploaded image; no such task at all; a language OCR does
            not read. Nothing is written.
        JobRunnerUnavailableError: The app has no job runner; nothing is written.
        JobSubmitError: The runner did not take the job; the run is marked failed.
    """
    project = authorize(store, principal, project_id, MANAGERS, "running OCR")
    language = _language(project)
    schema = parse_labeling_config(project.label_config)
    if not image_fields(schema):
        raise InvalidRequestError(
            "project",
            'the labeling config shows no <Image value="$…">, so its tasks have no image '
            "to OCR; use a config with an Image (Visual NER)",
        )
    ids = (
        _all_image_tasks(store, schema, project_id)
        if task_ids is None
        else _checked_task_ids(store, schema, project_id, task_ids)
    )
    if runner is None:
        raise JobRunnerUnavailableError("start OCR")
    run = _submit(store, runner, principal, clock, project_id, ids, language)
    if run.status is RunStatus.FAILED:
        raise JobSubmitError(run.id, run.failure_reason or "the runner refused the job")
    return run


def read_ocr(store: TrainingRecords, principal: Principal, run_id: str) -> Run:
    """An OCR run's status and progress (any member)."""
    return authorize_run(
        store, principal, run_id, JobKind.OCR, ANY_MEMBER, "reading an OCR run", "OCR run"
    )


def ocr_summary(
    blobs: BlobStore, schema: ProjectSchema, project_id: int, task: Task
) -> dict[str, Any] | None:
    """What the OCR of a task's image holds, in short; None before it is read.

    ``{"words", "language", "engine", "width", "height"}`` of the task's (first)
    uploaded image: enough to tell that OCR is done, without the words themselves.
    """
    for image_id in task_image_ids(task.data, schema, project_id):
        try:
            with blobs.open(ocr_key(project_id, image_id)) as stream:
                page = page_from_json(json.load(stream))
        except NotFoundError:
            continue
        return {
            "words": len(page.words),
            "language": page.language,
            "engine": f"tesseract {page.engine}",
            "width": page.width,
            "height": page.height,
        }
    return None


def _language(project: Project) -> str:
    """The project's language, once OCR is known to read it."""
    language = language_of(project)
    tesseract_language(language)
    return language


def _submit(
    store: OcrStores,
    runner: JobRunner,
    principal: Principal,
    clock: Clock,
    project_id: int,
    task_ids: list[int],
    language: str,
) -> Run:
    """Record the run and submit its job; a refused submit leaves the run failed, with why."""
    run_id = new_run_id(JobKind.OCR)
    store.create_run(
        Run(
            id=run_id,
            project_id=project_id,
            kind=JobKind.OCR,
            status=RunStatus.QUEUED,
            created_by=principal.name,
            created_at=clock.now(),
            params={
                "task_ids": task_ids,
                "language": language,
                "tesseract_language": tesseract_language(language).code,
            },
            logs_key=log_key(run_id),
        )
    )
    try:
        runner.submit(JobSpec(JobKind.OCR, run_id, False))
    except Exception as exc:  # noqa: BLE001 - any refusal is the run's failure reason
        mark_finished(
            store,
            run_id,
            RunStatus.FAILED,
            at=clock.now(),
            reason=f"the job could not be submitted: {exc}",
        )
    return store.get_run(run_id)


def _all_image_tasks(store: OcrStores, schema: ProjectSchema, project_id: int) -> list[int]:
    ids = [
        int(task.id or 0)
        for task in store.iter_tasks(project_id, TaskQuery())
        if task_image_ids(task.data, schema, project_id)
    ]
    if not ids:
        raise InvalidRequestError(
            "task_ids",
            "no task of this project shows an uploaded image; upload images or PDFs "
            f"(POST /api/v1/projects/{project_id}/tasks/upload) first",
        )
    if len(ids) > MAX_TASK_IDS:
        raise InvalidRequestError(
            "task_ids", f"the project has {len(ids)} image tasks; name at most {MAX_TASK_IDS}"
        )
    return ids


def _checked_task_ids(
    store: OcrStores, schema: ProjectSchema, project_id: int, task_ids: Sequence[int]
) -> list[int]:
    ids = list(dict.fromkeys(task_ids))
    if not ids:
        raise InvalidRequestError("task_ids", "name at least one task, or leave task_ids out")
    if len(ids) > MAX_TASK_IDS:
        raise InvalidRequestError("task_ids", f"at most {MAX_TASK_IDS} tasks at once")
    for task_id in ids:
        try:
            task = store.get_task(project_id, task_id)
        except NotFoundError:
            raise InvalidRequestError(
                "task_ids", f"task {task_id} is not in project {project_id}"
            ) from None
        if not task_image_ids(task.data, schema, project_id):
            raise InvalidRequestError("task_ids", _no_image_reason(task, schema, project_id))
    return ids


def _no_image_reason(task: Task, schema: ProjectSchema, project_id: int) -> str:
    for field in image_fields(schema):
        parsed = image_id_of_reference(task.data.get(field))
        if parsed is not None and parsed[0] != project_id:
            return (
                f"task {task.id}'s {field!r} names an image of project {parsed[0]}; a job "
                "reads only this project's images: upload the image to this project "
                f"(POST /api/v1/projects/{project_id}/tasks/upload)"
            )
    return (
        f"task {task.id} shows no image uploaded to this project (its image is a URL or "
        f"missing); upload the image (POST /api/v1/projects/{project_id}/tasks/upload) "
        "and import the task with data.image set to the path the upload gives"
    )
