"""OCR: ``POST /projects/{id}/tasks/upload`` (images and PDFs, OCR'd by themselves),
``POST /projects/{id}/ocr`` and ``GET /ocr/{id}``.

Uploading and starting OCR take Owner or Manager (or admin); reading a run any
project role. These routes submit jobs, so they belong to the jobs function group
(lambdas/api.py). See docs/visual-ner.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, UploadFile, status

from annotrain.api.deps import AppSettings, Blobs, CurrentUser, Now, ProjectId, Runner, Store
from annotrain.api.errors import error_responses
from annotrain.api.job_schemas import OcrCreate, OcrOut, TaskUploadOut, ocr_out
from annotrain.services import imports, ocr
from annotrain.services.pdf_pages import PdfLimits

router = APIRouter(tags=["ocr"], responses=error_responses(401, 403, 404, 422, 503))

OcrId = Annotated[str, Path(min_length=1, max_length=128, description="the OCR run's id")]


@router.post(
    "/projects/{project_id}/tasks/upload",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(413),
)
def upload_tasks(
    project_id: ProjectId,
    files: Annotated[
        list[UploadFile],
        File(description="PNG, JPEG, TIFF images and PDF documents (a task per page)"),
    ],
    user: CurrentUser,
    store: Store,
    blobs: Blobs,
    runner: Runner,
    clock: Now,
    settings: AppSettings,
) -> TaskUploadOut:
    """Upload images and PDFs as image tasks, all or none, and start their OCR."""
    uploads = [
        imports.UploadedFile(f.filename or f"file {n}", f.content_type, f.file)
        for n, f in enumerate(files, start=1)
    ]
    result = ocr.upload_and_ocr(
        store,
        blobs,
        runner,
        user,
        clock,
        project_id,
        uploads,
        limits=imports.ImportLimits(
            max_text_bytes=settings.max_json_bytes, max_image_bytes=settings.max_image_bytes
        ),
        pdf=PdfLimits(max_pages=settings.max_pdf_pages, dpi=settings.pdf_dpi),
    )
    return TaskUploadOut(
        imported=len(result.tasks),
        task_ids=[int(t.id or 0) for t in result.tasks],
        ocr=ocr_out(result.run),
    )


@router.post("/projects/{project_id}/ocr", status_code=status.HTTP_202_ACCEPTED)
def start_ocr(
    project_id: ProjectId,
    user: CurrentUser,
    store: Store,
    runner: Runner,
    clock: Now,
    body: OcrCreate | None = None,
) -> OcrOut:
    """OCR image tasks (default: every task with an uploaded image not read yet)."""
    body = body or OcrCreate()
    run = ocr.start_ocr(store, runner, user, clock, project_id, task_ids=body.task_ids)
    return ocr_out(run)


@router.get("/ocr/{ocr_id}")
def read_ocr(ocr_id: OcrId, user: CurrentUser, store: Store) -> OcrOut:
    """Read an OCR run: status, progress, pages read, cached and skipped."""
    return ocr_out(ocr.read_ocr(store, user, ocr_id))
