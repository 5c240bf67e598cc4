"""``create_app``: the one FastAPI app, whole or as a subset of its routers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI

from annotrain import __version__
from annotrain.api.console import install_console
from annotrain.api.cost_banner import CostBannerHeader
from annotrain.api.deps import BlobSource, StoreSource
from annotrain.api.errors import document_error_shape, install_error_handlers
from annotrain.api.limits import BodySizeLimit
from annotrain.ports import BlobStore, Clock, JobRunner, Store
from annotrain.services.events import CompletionSubmitted, EventPublisher, InProcessEvents
from annotrain.services.licenses import GrantCache, Licensing
from annotrain.services.system import GpuProbe, NvidiaGpuProbe
from annotrain.settings import Settings, get_settings

if TYPE_CHECKING:
    from annotrain.services.active_learning import ActiveLearningTrigger

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
        ocr,
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
        ocr.router, servers.router,
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
    licensing: Licensing | None = None,
    gpu_probe: GpuProbe | None = None,
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
        licensing: Which license signers are trusted, the instance, AMI mode
            (default: from the settings: the vendor keys, ``DATA_DIR``'s instance key).
        gpu_probe: Says whether the machine has a GPU (default: the NVIDIA driver's
            list or ``nvidia-smi -L``, asked once).

    Returns:
        The app, with ``GET /health`` (no authentication) and the web console at
        ``/`` (:mod:`annotrain.api.console`) besides the routers. Every
        response carries ``X-Annotrain-Cost-Banner`` while a PAYG license is in force.
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
    if licensing is None:
        from annotrain.adapters.ed25519 import licensing_from_settings

        licensing = licensing_from_settings(settings)
    app.state.licensing = licensing
    app.state.gpu_probe = gpu_probe if gpu_probe is not None else NvidiaGpuProbe()
    store_source: StoreSource = app.state.store_source
    the_licensing, the_clock = licensing, clock
    app.state.grants = GrantCache(
        lambda: the_licensing.grant(store_source.get(), the_clock.now()),
        settings.license_cache_seconds,
        clock,
    )
    app.state.settings = settings
    app.state.events = events if events is not None else _in_process_events(app)
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
    # Added last, so it is the outermost: even a 413 from the size limit carries it.
    app.add_middleware(CostBannerHeader, grants=app.state.grants)

    @app.get("/health", tags=["system"])
    def health() -> dict[str, str]:
        """Say the app is up (no authentication)."""
        return {"status": "ok"}

    for router in all_routers() if routers is None else routers:
        app.include_router(router, prefix=API_PREFIX)
    # The web console's static files at / (not in the OpenAPI document).
    install_console(app, settings)

    build_document = app.openapi

    def openapi() -> dict[str, Any]:
        # The routes refer to the error shape; it joins the document when it is built.
        return document_error_shape(build_document())

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def active_learning_trigger(app: FastAPI) -> ActiveLearningTrigger:
    """The active-learning trigger over the app's store, blobs, runner and clock, as they are now.

    The single node calls it in process for each submitted completion; the
    serverless jobs function calls it for each event the completions function put
    on the bus (``lambdas.api.jobs_handler``).
    """
    # Imported here: the trainings router is not every Lambda function's to import.
    from annotrain.api.routers.trainings import lab_has_gpu
    from annotrain.services.active_learning import ActiveLearningTrigger

    settings: Settings = app.state.settings
    return ActiveLearningTrigger(
        app.state.store_source.get(),
        app.state.blob_source.get(),
        app.state.runner,
        app.state.clock,
        gpu_available=lambda: lab_has_gpu(settings, app.state.gpu_probe),
        licensing=app.state.licensing,
        allow_custom_scripts=settings.allow_custom_scripts,
    )


def _in_process_events(app: FastAPI) -> InProcessEvents:
    """Events delivered in this process: submitted completions reach active learning."""
    events = InProcessEvents()

    def trigger(event: CompletionSubmitted) -> None:
        # Built on each event: the stores and runner are the app's as they are then
        # (tests and `serve` set the runner after creating the app).
        active_learning_trigger(app)(event)

    events.subscribe(trigger)
    return events
