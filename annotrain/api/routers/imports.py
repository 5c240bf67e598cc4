"""Task imports from files and images, and the images tasks show.

``POST /projects/{id}/tasks/import/files`` takes CSV, TSV, plain text, Label Studio
JSON files and PNG/JPEG/TIFF images in one form; ``…/import/presigned`` and
``…/import/presigned/confirm`` let a client upload images straight to the bucket
(serverless) and then turn them into tasks. Importing is for Owners, Managers and
admins, as the JSON import is; ``GET /projects/{id}/images/{image_id}`` is for any
member. See docs/api.md, "Imports".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, File, Path, Query, UploadFile, status
from fastapi.responses import StreamingResponse

from annotrain.api.deps import AppSettings, Blobs, CurrentUser, ProjectId, Store
from annotrain.api.errors import error_responses
from annotrain.api.import_schemas import ConfirmRequest, PresignOut, PresignRequest, presign_out
from annotrain.api.schemas import TaskImportOut
from annotrain.domain.task_files import IMAGE_ID_PATTERN, TextSplit
from annotrain.domain.tasks import Task
from annotrain.services import imports
from annotrain.settings import Settings

router = APIRouter(
    prefix="/projects/{project_id}",
    tags=["tasks"],
    responses=error_responses(401, 403, 404, 413, 422, 503),
)

_CHUNK = 64 * 1024
ImageId = Annotated[str, Path(pattern=IMAGE_ID_PATTERN, description="the image's id")]


def _limits(settings: Settings) -> imports.ImportLimits:
    return imports.ImportLimits(
        max_text_bytes=settings.max_json_bytes, max_image_bytes=settings.max_image_bytes
    )


def _imported(stored: list[Task]) -> TaskImportOut:
    return TaskImportOut(imported=len(stored), task_ids=[int(t.id or 0) for t in stored])


@router.post("/tasks/import/files", status_code=status.HTTP_201_CREATED)
def import_files(
    project_id: ProjectId,
    files: Annotated[
        list[UploadFile],
        File(description="CSV, TSV, .txt, Label Studio .json files; PNG, JPEG, TIFF images"),
    ],
    user: CurrentUser,
    store: Store,
    blobs: Blobs,
    settings: AppSettings,
    text_split: Annotated[
        TextSplit, Query(description="plain text: a task per line, or a task per file")
    ] = TextSplit.LINE,
    tags_column: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="CSV/TSV: the column of tags"),
    ] = None,
) -> TaskImportOut:
    """Import tasks from uploaded files and images, all or none."""
    uploads = [
        imports.UploadedFile(f.filename or f"file {n}", f.content_type, f.file)
        for n, f in enumerate(files, start=1)
    ]
    stored = imports.import_files(
        store,
        blobs,
        user,
        project_id,
        uploads,
        limits=_limits(settings),
        text_split=text_split,
        tags_column=tags_column,
    )
    return _imported(stored)


@router.post(
    "/tasks/import/presigned", status_code=status.HTTP_201_CREATED, responses=error_responses(501)
)
def presign_image_upload(
    project_id: ProjectId,
    body: PresignRequest,
    user: CurrentUser,
    store: Store,
    blobs: Blobs,
    settings: AppSettings,
) -> PresignOut:
    """Presign a direct upload of one image to the bucket (serverless only)."""
    upload = imports.presign_image_upload(
        store,
        blobs,
        user,
        project_id,
        body.content_type,
        limits=_limits(settings),
        expires_in=body.expires_in,
    )
    return presign_out(upload)


@router.post(
    "/tasks/import/presigned/confirm",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(501),
)
def confirm_image_uploads(
    project_id: ProjectId,
    body: ConfirmRequest,
    user: CurrentUser,
    store: Store,
    blobs: Blobs,
    settings: AppSettings,
) -> TaskImportOut:
    """Check presigned uploads and make a task of each, all or none."""
    stored = imports.confirm_image_uploads(
        store, blobs, user, project_id, body.upload_ids, limits=_limits(settings)
    )
    return _imported(stored)


@router.get(
    "/images/{image_id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/tiff": {}}}},
)
def read_image(
    project_id: ProjectId, image_id: ImageId, user: CurrentUser, store: Store, blobs: Blobs
) -> StreamingResponse:
    """Read an imported image."""
    stream, info = imports.open_image(store, blobs, user, project_id, image_id)
    return StreamingResponse(
        _chunks(stream),
        media_type=info.content_type,
        headers={
            "Content-Length": str(info.size),
            "Content-Disposition": f'inline; filename="{image_id}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
        },
    )


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        yield from iter(lambda: stream.read(_CHUNK), b"")
