"""Every error the API answers, in one shape and mapped in one place.

Each error body is ``{"error": {"code", "message", "field"?, "details"?}}``:
``code`` is for machines, ``message`` for people, ``field`` names the input at
fault when there is one, ``details`` lists every problem when there are several
(config issues, refused tasks, validation errors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from annotrain.domain.errors import (
    AlreadyExistsError,
    BackupInProgressError,
    ConflictError,
    FileImportError,
    ImageCheckUnavailableError,
    InvalidRequestError,
    JobRunnerUnavailableError,
    JobSubmitError,
    LabelingConfigError,
    NotFoundError,
    NotImplementedYetError,
    PermissionDeniedError,
    PresignUnavailableError,
    RunStateError,
    SingleNodeOnlyError,
    StoreUnavailableError,
    TaskImportError,
)

__all__ = [
    "NotAuthenticatedError",
    "PayloadTooLargeError",
    "error_body",
    "error_response",
    "install_error_handlers",
]


class NotAuthenticatedError(Exception):
    """The request carries no identity, or one that is not valid (HTTP 401)."""


class PayloadTooLargeError(StarletteHTTPException):
    """A request body over the configured limit (HTTP 413).

    An HTTPException so that FastAPI passes it on unchanged when it is raised
    while the body is being read.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(413, f"the request body is larger than {limit} bytes")


def error_body(
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The JSON of one error."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    if details is not None:
        error["details"] = list(details)
    return {"error": error}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: Sequence[Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error answered as JSON."""
    body = error_body(code, message, field=field, details=details)
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _loc_to_field(loc: Sequence[Any]) -> str:
    # ("body", "labeling_config") → "labeling_config"; ("query", "page") → "page".
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": _loc_to_field(err.get("loc", ())), "message": err.get("msg", ""),
         "type": err.get("type", "")}
        for err in exc.errors()
    ]  # fmt: skip
    first = details[0] if details else {"field": None, "message": "the request is not valid"}
    return error_response(
        422,
        "validation_error",
        f"{first['field']}: {first['message']}" if first["field"] else str(first["message"]),
        field=first["field"] or None,
        details=details,
    )


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _not_authenticated(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        401, "not_authenticated", str(exc), headers={"WWW-Authenticate": "Bearer"}
    )


async def _permission_denied(request: Request, exc: Exception) -> JSONResponse:
    return error_response(403, "forbidden", str(exc))


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "not_found", str(exc))


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "conflict", str(exc))


async def _already_exists(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "already_exists", str(exc))


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidRequestError)
    return error_response(422, "invalid_request", str(exc), field=exc.field)


async def _labeling_config(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LabelingConfigError)
    return error_response(
        422,
        "invalid_labeling_config",
        str(exc),
        field="labeling_config",
        details=[{**asdict(issue), "text": str(issue)} for issue in exc.issues],
    )


async def _task_import(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TaskImportError)
    return error_response(
        422,
        "invalid_tasks",
        str(exc),
        details=[{**asdict(problem), "text": str(problem)} for problem in exc.problems],
    )


async def _file_import(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FileImportError)
    return error_response(
        422,
        "invalid_files",
        str(exc),
        field="files",
        details=[{**asdict(problem), "text": str(problem)} for problem in exc.problems],
    )


async def _presign_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(501, "presigned_urls_unavailable", str(exc))


async def _image_check_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, "image_check_unavailable", str(exc))


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        503, "store_unavailable", str(exc) or "storage is busy", headers={"Retry-After": "1"}
    )


async def _not_implemented(request: Request, exc: Exception) -> JSONResponse:
    return error_response(501, "not_implemented", str(exc))


async def _single_node_only(request: Request, exc: Exception) -> JSONResponse:
    return error_response(501, "single_node_only", str(exc))


async def _backup_in_progress(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "backup_in_progress", str(exc))


async def _job_submit(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, "job_submit_failed", str(exc), headers={"Retry-After": "30"})


async def _runner_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, "job_runner_unavailable", str(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Map every domain and framework error to its HTTP answer."""
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(NotAuthenticatedError, _not_authenticated)
    app.add_exception_handler(PermissionDeniedError, _permission_denied)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(AlreadyExistsError, _already_exists)
    app.add_exception_handler(InvalidRequestError, _invalid_request)
    app.add_exception_handler(LabelingConfigError, _labeling_config)
    app.add_exception_handler(TaskImportError, _task_import)
    app.add_exception_handler(FileImportError, _file_import)
    app.add_exception_handler(PresignUnavailableError, _presign_unavailable)
    app.add_exception_handler(ImageCheckUnavailableError, _image_check_unavailable)
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)
    app.add_exception_handler(NotImplementedYetError, _not_implemented)
    app.add_exception_handler(JobRunnerUnavailableError, _runner_unavailable)
    app.add_exception_handler(JobSubmitError, _job_submit)
    app.add_exception_handler(RunStateError, _conflict)
    app.add_exception_handler(SingleNodeOnlyError, _single_node_only)
    app.add_exception_handler(BackupInProgressError, _backup_in_progress)
