"""The HTTP contract of file and image imports: request and response bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from annotrain.api.schemas import RequestBody
from annotrain.domain.task_files import IMAGE_ID_PATTERN
from annotrain.services.imports import PresignedUpload

ImageType = Literal["image/png", "image/jpeg", "image/tiff"]
UploadId = Annotated[str, StringConstraints(pattern=IMAGE_ID_PATTERN)]


class PresignRequest(RequestBody):
    """Ask for a presigned upload of one image."""

    content_type: ImageType = Field(description="the image's type; the upload must declare it")
    expires_in: int = Field(default=900, ge=60, le=3600, description="seconds the URL works")


class PresignOut(BaseModel):
    """A presigned upload: POST ``fields`` then the file (as ``file``) to ``url``."""

    upload_id: str
    url: str
    method: Literal["POST"] = "POST"
    fields: dict[str, str]
    content_type: str
    max_bytes: int
    expires_in: int


class ConfirmRequest(RequestBody):
    """Presigned uploads to check and turn into tasks."""

    upload_ids: list[UploadId] = Field(
        min_length=1, max_length=1000, description="ids from the presign answers"
    )


def presign_out(upload: PresignedUpload) -> PresignOut:
    """The answer to a presign request."""
    return PresignOut(
        upload_id=upload.upload_id,
        url=upload.url,
        fields=upload.fields,
        content_type=upload.content_type,
        max_bytes=upload.max_bytes,
        expires_in=upload.expires_in,
    )
