"""The HTTP API on AWS Lambda: one Mangum handler per group of routes.

Each function mounts only its group's routers (``create_app(routers=…)``), so it
needs only that group's IAM rights. Nothing is built at import: the app (and
with it the settings read and, on the first request that needs it, the store)
is made on the first invocation and kept for the container's later ones.

Handlers: ``lambdas.api.projects_handler`` (projects, members, tasks and their
imports and images, export),
``lambdas.api.completions_handler`` (completions and reviews),
``lambdas.api.jobs_handler`` (trainings, models, pre-annotations, OCR and the
uploads that start it, servers) and
``lambdas.api.system_handler`` (system, licenses, backups).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _projects_routers() -> list[APIRouter]:
    from annotrain.api.routers import exports, imports, members, projects, tasks

    return [projects.router, members.router, tasks.router, imports.router, exports.router]


def _completions_routers() -> list[APIRouter]:
    from annotrain.api.routers import completions

    return [completions.router]


def _jobs_routers() -> list[APIRouter]:
    from annotrain.api.routers import models, ocr, preannotations, servers, trainings

    # The uploads that start OCR are here too: only this group may submit jobs.
    return [trainings.router, models.router, preannotations.router, ocr.router, servers.router]


def _system_routers() -> list[APIRouter]:
    from annotrain.api.routers import backups, licenses, system

    return [system.router, licenses.router, backups.router]


# What each function mounts; the CDK app routes these paths to that function alone.
ROUTER_GROUPS: dict[str, Callable[[], list[APIRouter]]] = {
    "projects": _projects_routers,
    "completions": _completions_routers,
    "jobs": _jobs_routers,
    "system": _system_routers,
}


@functools.cache
def _handler(group: str) -> Handler:
    from mangum import Mangum

    from annotrain.api import create_app
    from annotrain.settings import Mode, get_settings

    settings = get_settings()
    if settings.mode != Mode.SERVERLESS:
        # Single-node mode would trust bearer tokens against a SQLite file in /var/task.
        raise RuntimeError("set ANNOTRAIN_MODE=serverless for the API's Lambda functions")

    routers = ROUTER_GROUPS[group]()
    mangum: Handler = Mangum(create_app(routers=routers, settings=settings), lifespan="off")
    return mangum


def projects_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Projects, members, tasks (imports and images included) and export."""
    return _handler("projects")(event, context)


def completions_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Completions and reviews."""
    return _handler("completions")(event, context)


def jobs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Trainings, models, pre-annotations, OCR (and uploads) and the servers page."""
    return _handler("jobs")(event, context)


def system_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The system page, licenses and backups."""
    return _handler("system")(event, context)
