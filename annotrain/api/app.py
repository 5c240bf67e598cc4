"""``create_app``: the one FastAPI app, whole or as a subset of its routers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

from annotrain import __version__
from annotrain.api.deps import BlobSource, StoreSource
from annotrain.api.errors import document_error_shape, install_error_handlers
from annotrain.api.limits import BodySizeLimit
from annotrain.ports import BlobStore, Clock, JobRunner, Store
from annotrain.services.events import CompletionSubmitted, EventPublisher, InProcessEvents
from annotrain.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def all_routers() -> tuple[APIRouter, ...]:
    """Every resource's router, in the order the OpenAPI document lists them."""
    # Imported here, not at the top: a Lambda function that mounts a few routers
    # (lambdas/api.py) does not pay for importing the others on a cold start.
    from annotrain.api.routers import (
        backups,
        completions,
        exports,
        imports,
        licenses,
        members,
        models,
        preannotations,
        projects,
        servers,
        system,
        tasks,
        training_scripts,
        trainings,
    )

    return (
        system.router, projects.router, members.router, tasks.router, imports.router,
        exports.router,
        completions.router,
        trainings.router, training_scripts.router, models.router, preannotations.router,
        servers.router,
        licenses.router, backups.router,
    )  # fmt: skip


def create_app(
    *,
    routers: Sequence[APIRouter] | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
    clock: Clock | None = None,
    runner: JobRunner | None = None,
    blobs: BlobStore | None = None,
    events: EventPublisher | None = None,
) -> FastAPI:
    """Build the HTTP API.

    Args:
        routers: The routers to mount under ``/api/v1`` (default: all). A Lambda
            function mounts only its group, so it needs only that group's rights.
        settings: The settings (default: :func:`~annotrain.settings.get_settings`,
            read from the environment now); routes see the same ones.
        store: The store (default: built from the settings on the first request).
        clock: The clock (default: the system clock).
        runner: The job runner that stops jobs (default: none; routes that need
            one answer 503). ``annotrain serve`` passes its local runner.
        blobs: The blob store (snapshots, logs, models; default: built from the
            settings on first use: ``DATA_DIR/blobs``, or the data bucket).
        events: Where submitted completions are published (default: in process, to
            the active-learning trigger over this app's store, blobs and runner).

    Returns:
        The app, with ``GET /health`` (no authentication) besides the routers.
    """
    if settings is None:
        settings = get_settings()
    if clock is None:
        from annotrain.adapters.system_clock import SystemClock

        clock = SystemClock()
    app = FastAPI(
        title="annotrain",
        version=__version__,
        summary="Annotate, train, benchmark and deploy NLP and Visual NER models.",
    )
    app.state.store_source = StoreSource(settings, store)
    app.state.blob_source = BlobSource(settings, blobs)
    app.state.clock = clock
    app.state.runner = runner
    app.state.events = events if events is not None else _in_process_events(app, settings)
    the_settings = settings

    async def app_settings() -> Settings:
        # async: a plain function would cost a thread-pool hop on every request.
        return the_settings

    app.dependency_overrides[get_settings] = app_settings
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_json_bytes=settings.max_json_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )

    @app.get("/health", tags=["system"])
    def health() -> dict[str, str]:
        """Say the app is up (no authentication)."""
        return {"status": "ok"}

    for router in all_routers() if routers is None else routers:
        app.include_router(router, prefix=API_PREFIX)

    build_document = app.openapi

    def openapi() -> dict[str, Any]:
        # The routes refer to the error shape; it joins the document when it is built.
        return document_error_shape(build_document())

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _in_process_events(app: FastAPI, settings: Settings) -> InProcessEvents:
    """Events delivered in this process: submitted completions reach active learning."""
    events = InProcessEvents()

    def trigger(event: CompletionSubmitted) -> None:
        # Imported and built on the first event: the stores and runner are the app's
        # as they are then (tests and `serve` set the runner after creating the app).
        from annotrain.api.routers.trainings import lab_has_gpu
        from annotrain.services.active_learning import ActiveLearningTrigger

        ActiveLearningTrigger(
            app.state.store_source.get(),
            app.state.blob_source.get(),
            app.state.runner,
            app.state.clock,
            gpu_available=lambda: lab_has_gpu(settings),
            allow_custom_scripts=settings.allow_custom_scripts,
        )(event)

    events.subscribe(trigger)
    return events
