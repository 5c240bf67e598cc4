"""Every error the API answers, in one shape and mapped in one place.

Each error body is ``{"error": {"code", "message", "field"?, "details"?}}``:
``code`` is for machines, ``message`` for people, ``field`` names the input at
fault when there is one, ``details`` lists every problem when there are several
(config issues, refused tasks, validation errors).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from annotrain.domain.errors import (
    AlreadyExistsError,
    BackupInProgressError,
    ConflictError,
    CustomScriptsDisabledError,
    FileImportError,
    ImageCheckUnavailableError,
    InvalidRequestError,
    JobRunnerUnavailableError,
    JobSubmitError,
    LabelingConfigError,
    NotFoundError,
    PermissionDeniedError,
    PresignUnavailableError,
    RunStateError,
    SingleNodeOnlyError,
    StoreUnavailableError,
    TaskImportError,
)
from annotrain.domain.licenses import LicenseError, LicenseScopeError, ServerLimitError
from annotrain.services.licenses import AmiModeError

__all__ = [
    "ErrorOut",
    "NotAuthenticatedError",
    "PayloadTooLargeError",
    "error_body",
    "error_response",
    "error_responses",
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


class ErrorDetail(BaseModel):
    """What went wrong, for machines (``code``) and people (``message``)."""

    code: str = Field(description="for machines: not_found, validation_error, conflict…")
    message: str = Field(description="for people: what is wrong and how to fix it")
    field: str | None = Field(default=None, description="the input at fault, when there is one")
    details: list[Any] | None = Field(
        default=None, description="every problem, when there are several"
    )


class ErrorOut(BaseModel):
    """Every error the API answers has this one shape."""

    error: ErrorDetail


#: What each error status means, as the OpenAPI document says it.
_ERROR_DESCRIPTIONS = {
    401: "not_authenticated: no identity, or one that is not valid",
    403: "forbidden: your role does not allow this; license_scope_missing: no license "
    "in force grants the scope this needs; custom_scripts_disabled: the lab does not run "
    "custom training scripts",
    404: "not_found: no such resource, or a project you are not a member of",
    409: "conflict: it changed since you read it (read it again, retry); "
    "already_exists: the name is taken; server_limit_reached: the license's parallel "
    "servers are busy; ami_mode: licenses are managed by the Marketplace instance",
    413: "payload_too_large: the body is over the limit",
    422: "validation_error: the request does not fit the schema (details per field); "
    "invalid_request, invalid_labeling_config, invalid_tasks: values the lab refuses",
    501: "single_node_only: a serverless lab does not do this (the message says what it "
    "offers instead); presigned_urls_unavailable: this lab keeps its files in a folder",
    503: "store_unavailable: storage stayed busy (retry after Retry-After); "
    "job_runner_unavailable: this app has no job runner",
}


#: The error shape's place in the OpenAPI document (added by :func:`document_error_shape`).
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of the errors a route may answer, in the one error shape.

    A reference to the schema, not a ``model``: FastAPI builds a validator for each
    response model of each route as the route is declared, which a Lambda function
    pays for on every cold start; a reference costs nothing until the document is asked
    for.
    """
    return {
        status: {"description": _ERROR_DESCRIPTIONS[status], "content": ERROR_CONTENT}
        for status in statuses
    }


def document_error_shape(document: dict[str, Any]) -> dict[str, Any]:
    """Add ``ErrorOut`` (and what it uses) to an OpenAPI document's schemas; idempotent."""
    shape = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(shape.pop("$defs", {}))
    schemas["ErrorOut"] = shape
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return document


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
    if exc.status_code == 400:
        # FastAPI's one 400: a body it cannot decode (not UTF-8). A body that is not
        # JSON is a 422 validation_error already; one that is not text is too.
        return error_response(
            422,
            "validation_error",
            f"body: cannot be read as JSON ({exc.detail}); send UTF-8 JSON",
            field="body",
            details=[{"field": "body", "message": str(exc.detail), "type": "body_unreadable"}],
        )
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _not_authenticated(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        401, "not_authenticated", str(exc), headers={"WWW-Authenticate": "Bearer"}
    )


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


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        503, "store_unavailable", str(exc) or "storage is busy", headers={"Retry-After": "1"}
    )


async def _job_submit(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, "job_submit_failed", str(exc), headers={"Retry-After": "30"})


async def _invalid_license(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LicenseError)
    return error_response(422, "invalid_license", str(exc), field=exc.field)


async def _license_scope(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LicenseScopeError)
    return error_response(403, "license_scope_missing", str(exc), field=exc.scope.value)


#: Errors whose answer is their status, their code and their own message.
_PLAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    PermissionDeniedError: (403, "forbidden"),
    CustomScriptsDisabledError: (403, "custom_scripts_disabled"),
    NotFoundError: (404, "not_found"),
    ConflictError: (409, "conflict"),
    RunStateError: (409, "conflict"),
    AlreadyExistsError: (409, "already_exists"),
    ServerLimitError: (409, "server_limit_reached"),
    AmiModeError: (409, "ami_mode"),
    BackupInProgressError: (409, "backup_in_progress"),
    PresignUnavailableError: (501, "presigned_urls_unavailable"),
    SingleNodeOnlyError: (501, "single_node_only"),
    ImageCheckUnavailableError: (503, "image_check_unavailable"),
    JobRunnerUnavailableError: (503, "job_runner_unavailable"),
}


def _plain(status: int, code: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return error_response(status, code, str(exc))

    return handler


def install_error_handlers(app: FastAPI) -> None:
    """Map every domain and framework error to its HTTP answer."""
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(NotAuthenticatedError, _not_authenticated)
    app.add_exception_handler(InvalidRequestError, _invalid_request)
    app.add_exception_handler(LabelingConfigError, _labeling_config)
    app.add_exception_handler(TaskImportError, _task_import)
    app.add_exception_handler(FileImportError, _file_import)
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)
    app.add_exception_handler(JobSubmitError, _job_submit)
    app.add_exception_handler(LicenseError, _invalid_license)
    app.add_exception_handler(LicenseScopeError, _license_scope)
    for error, (status, code) in _PLAIN_ERRORS.items():
        app.add_exception_handler(error, _plain(status, code))
