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

Only the jobs function has a job runner: an AWS Batch runner
(:class:`~annotrain.adapters.batch.BatchJobRunner`) over the queues and job
definitions its environment names (its Batch client made on first use). The
completions function publishes each submitted completion to the lab's EventBridge
bus (``ANNOTRAIN_EVENT_BUS``); a rule on the bus sends it back to the jobs
function, which counts it for active learning and, at the project's threshold,
starts the training. So the function that takes completions never holds the
right to submit a job.

Every handler runs inside Lambda Powertools (:mod:`lambdas.observability`): a
JSON log line per request with API Gateway's request id as correlation id, and
EMF metrics (the function's X-Ray segments come from Lambda's active tracing).
They too are made on the first invocation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

    from annotrain.adapters.batch import BatchJobRunner
    from annotrain.ports import JobRunner, Store
    from annotrain.services.events import EventPublisher
    from annotrain.settings import Settings

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _projects_routers() -> list[APIRouter]:
    from annotrain.api.routers import exports, imports, members, projects, tasks

    return [projects.router, members.router, tasks.router, imports.router, exports.router]


def _completions_routers() -> list[APIRouter]:
    from annotrain.api.routers import completions

    return [completions.router]


def _jobs_routers() -> list[APIRouter]:
    from annotrain.api.routers import (
        models,
        ocr,
        preannotations,
        servers,
        training_scripts,
        trainings,
    )

    # The uploads that start OCR are here too: only this group may submit jobs.
    return [
        trainings.router, training_scripts.router, models.router, preannotations.router,
        ocr.router, servers.router,
    ]  # fmt: skip


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


# Settings only one group reads (the others go without them); every group reads the rest.
GROUP_SETTINGS: dict[str, tuple[str, ...]] = {
    "jobs": ("cpu_queue", "job_definition_train", "job_definition_preannotate",
             "job_definition_ocr"),
    "completions": ("event_bus",),
}  # fmt: skip
# The jobs group's GPU targets: empty when the stack has no GPU queue (no GPU runs then).
GPU_SETTINGS = ("gpu_queue", "gpu_job_definition_train", "gpu_job_definition_preannotate")


@functools.cache
def _app(group: str) -> FastAPI:
    from annotrain.api import create_app
    from annotrain.settings import Mode, get_settings

    settings = get_settings()
    if settings.mode != Mode.SERVERLESS:
        # Single-node mode would trust bearer tokens against a SQLite file in /var/task.
        raise RuntimeError("set ANNOTRAIN_MODE=serverless for the API's Lambda functions")
    missing = [
        f"ANNOTRAIN_{name.upper()}"
        for name in GROUP_SETTINGS.get(group, ())
        if not getattr(settings, name)
    ]
    if missing:
        raise RuntimeError(f"set {', '.join(missing)} for the {group} function")
    routers = ROUTER_GROUPS[group]()
    store: Store | None = None
    runner: JobRunner | None = None
    events: EventPublisher | None = None
    if group == "jobs":
        store = _store(settings)
        runner = batch_job_runner(settings, store)
    elif group == "completions":
        from annotrain.adapters.eventbridge import EventBridgeEvents

        events = EventBridgeEvents(settings.event_bus)
    return create_app(routers=routers, settings=settings, store=store, runner=runner, events=events)


@functools.cache
def _handler(group: str) -> Handler:
    from mangum import Mangum

    mangum: Handler = Mangum(_app(group), lifespan="off")
    return mangum


def _store(settings: Settings) -> Store:
    from annotrain.adapters.dynamodb import DynamoDbStore

    return DynamoDbStore(settings.table, overflow_bucket=settings.overflow_bucket)


def batch_job_runner(settings: Settings, store: Store, *, client: Any = None) -> BatchJobRunner:
    """The jobs function's runner: GPU runs to the GPU queue and job definitions, CPU to the CPU.

    Without a GPU queue the lab has no GPUs (``lab_has_gpu`` is false), so no run
    asks for one; the runner's ``gpu`` queue is then the CPU queue.

    Args:
        settings: Names the queues and job definitions (``ANNOTRAIN_*_QUEUE``,
            ``ANNOTRAIN_[GPU_]JOB_DEFINITION_*``).
        store: Where runs are kept.
        client: A boto3 Batch client; one is made on the first submit when None.
    """
    from annotrain.adapters.batch import BatchJobRunner
    from annotrain.domain.records import JobKind

    gpu_definitions = {
        JobKind.TRAIN: settings.gpu_job_definition_train,
        JobKind.PREANNOTATE: settings.gpu_job_definition_preannotate,
    }
    return BatchJobRunner(
        store,
        queues={"gpu": settings.gpu_queue or settings.cpu_queue, "cpu": settings.cpu_queue},
        job_definitions={
            JobKind.TRAIN: settings.job_definition_train,
            JobKind.PREANNOTATE: settings.job_definition_preannotate,
            JobKind.OCR: settings.job_definition_ocr,
        },
        gpu_job_definitions={k: v for k, v in gpu_definitions.items() if v},
        client=client,
    )


def _on_completion_submitted(event: dict[str, Any]) -> dict[str, Any]:
    """Count a submitted completion for active learning; start the training at the threshold."""
    from annotrain.adapters.eventbridge import completion_submitted_from
    from annotrain.api.app import active_learning_trigger
    from lambdas.observability import logger

    submitted = completion_submitted_from(event)
    run = active_learning_trigger(_app("jobs"))(submitted)
    outcome = {
        "message": "completion submitted",
        "project_id": submitted.project_id,
        "completion_id": submitted.completion_id,
        "training_run_id": run.id if run else None,
    }
    logger().info(outcome["message"], extra={k: v for k, v in outcome.items() if k != "message"})
    return outcome


def _serve(group: str, event: dict[str, Any], context: Any) -> dict[str, Any]:
    if group == "jobs":
        from annotrain.adapters.eventbridge import COMPLETION_SUBMITTED

        if event.get("detail-type") == COMPLETION_SUBMITTED:
            return _on_completion_submitted(event)
    return _handler(group)(event, context)


@functools.cache
def _observed(group: str) -> Handler:
    """The group's entry point inside Powertools' logger and metrics (built on first use).

    Not its Tracer: the X-Ray SDK's import would cost about as much as the rest of
    the cold start (lambdas/observability.py); Lambda's active tracing still records
    each invocation.
    """
    from lambdas.observability import instrument

    def serve(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return _serve(group, event, context)

    return instrument(serve, access_log=True)


def projects_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Projects, members, tasks (imports and images included) and export."""
    return _observed("projects")(event, context)


def completions_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Completions and reviews."""
    return _observed("completions")(event, context)


def jobs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Trainings, models, pre-annotations, OCR (and uploads), servers; and the bus's
    submitted completions."""
    return _observed("jobs")(event, context)


def system_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The system page, licenses and backups."""
    return _observed("system")(event, context)
