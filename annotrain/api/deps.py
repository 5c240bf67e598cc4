"""The dependencies routes declare: settings, the store, the clock, the caller.

They are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
one hop per dependency per request, which cost more than the work they do (handing
back an object, or one indexed read of a token hash, which on SQLite in WAL mode
never waits for a writer). The routes themselves stay ``def``: their store writes
may wait for the write lock, and that wait must not hold up the event loop.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Path, Request

from annotrain.api.identity import principal_from_claims, principal_from_token
from annotrain.ports import BlobStore, Clock, JobRunner
from annotrain.ports import Store as StorePort
from annotrain.services.access import Principal
from annotrain.services.events import EventPublisher
from annotrain.services.licenses import GrantCache, Licensing
from annotrain.services.system import GpuProbe
from annotrain.settings import Mode, Settings, get_settings

__all__ = [
    "AppSettings",
    "BlobSource",
    "Blobs",
    "CompletionId",
    "CurrentUser",
    "Events",
    "GpuCheck",
    "Grants",
    "LicensingPolicy",
    "Now",
    "ProjectId",
    "Runner",
    "Store",
    "StoreSource",
    "TaskId",
    "get_store",
]


class StoreSource:
    """The app's store: the one given, or one built from the settings on first use.

    Built lazily so that creating the app opens no database and makes no AWS
    client (tests, Lambda cold starts).
    """

    def __init__(self, settings: Settings, store: StorePort | None = None) -> None:
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()

    def get(self) -> StorePort:
        """The store, built on first call."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = _build_store(self._settings)
        return self._store


def _build_store(settings: Settings) -> StorePort:
    if settings.mode == Mode.SERVERLESS:
        from annotrain.adapters.dynamodb import DynamoDbStore

        return DynamoDbStore(settings.table, overflow_bucket=settings.overflow_bucket)
    from annotrain.adapters.sqlite import SqliteStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteStore(settings.database_path)


class BlobSource:
    """The app's blob store: the one given, or one built from the settings on first use.

    A folder (``DATA_DIR/blobs``) on a single node, the data bucket serverless.
    Built lazily for the same reasons as :class:`StoreSource`.
    """

    def __init__(self, settings: Settings, blobs: BlobStore | None = None) -> None:
        self._settings = settings
        self._blobs = blobs
        self._lock = threading.Lock()

    def get(self) -> BlobStore:
        """The blob store, built on first call."""
        if self._blobs is None:
            with self._lock:
                if self._blobs is None:
                    self._blobs = _build_blobs(self._settings)
        return self._blobs


def _build_blobs(settings: Settings) -> BlobStore:
    if settings.mode == Mode.SERVERLESS:
        if not settings.data_bucket:
            raise RuntimeError("set ANNOTRAIN_DATA_BUCKET: serverless files live in that bucket")
        from annotrain.adapters.s3 import S3BlobStore

        return S3BlobStore(settings.data_bucket)
    from annotrain.adapters.filesystem import FilesystemBlobStore

    settings.blob_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return FilesystemBlobStore(settings.blob_dir)


async def get_store(request: Request) -> StorePort:
    """The store the app was made with."""
    return _store_of(request)


def _store_of(request: Request) -> StorePort:
    source: StoreSource = request.app.state.store_source
    return source.get()


async def get_blobs(request: Request) -> BlobStore:
    """The blob store the app was made with."""
    source: BlobSource = request.app.state.blob_source
    return source.get()


async def get_clock(request: Request) -> Clock:
    """The clock the app was made with."""
    clock: Clock = request.app.state.clock
    return clock


async def get_events(request: Request) -> EventPublisher:
    """Where the app publishes what happened (submitted completions)."""
    events: EventPublisher = request.app.state.events
    return events


async def get_runner(request: Request) -> JobRunner | None:
    """The job runner the app was made with, or None when it has none."""
    runner: JobRunner | None = request.app.state.runner
    return runner


def get_licensing(request: Request) -> Licensing:
    """How the app judges licenses."""
    licensing: Licensing = request.app.state.licensing
    return licensing


def get_grants(request: Request) -> GrantCache:
    """The cached grant behind the cost banner; license changes invalidate it."""
    grants: GrantCache = request.app.state.grants
    return grants


def get_gpu_probe(request: Request) -> GpuProbe:
    """Says whether the machine has a GPU."""
    probe: GpuProbe = request.app.state.gpu_probe
    return probe


AppSettings = Annotated[Settings, Depends(get_settings)]
LicensingPolicy = Annotated[Licensing, Depends(get_licensing)]
Grants = Annotated[GrantCache, Depends(get_grants)]
GpuCheck = Annotated[GpuProbe, Depends(get_gpu_probe)]
Store = Annotated[StorePort, Depends(get_store)]
Blobs = Annotated[BlobStore, Depends(get_blobs)]
Now = Annotated[Clock, Depends(get_clock)]
Runner = Annotated[JobRunner | None, Depends(get_runner)]
Events = Annotated[EventPublisher, Depends(get_events)]


async def get_current_user(request: Request, settings: AppSettings) -> Principal:
    """The authenticated caller (401 when there is none)."""
    if settings.mode == Mode.SERVERLESS:
        return principal_from_claims(request)
    return principal_from_token(request, _store_of(request))


CurrentUser = Annotated[Principal, Depends(get_current_user)]


# Ids are 64-bit in every store: larger ones are refused as invalid, not looked up.
_MAX_ID = 2**63 - 1
ProjectId = Annotated[int, Path(ge=1, le=_MAX_ID, description="the project's id")]
TaskId = Annotated[int, Path(ge=1, le=_MAX_ID, description="the task's id")]
CompletionId = Annotated[int, Path(ge=1, le=_MAX_ID, description="the completion's id")]
