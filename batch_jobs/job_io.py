"""What the training and pre-annotation jobs share: the live log, throttled progress,
the model code resolved at call time, and moving model folders to and from blobs.
"""

from __future__ import annotations

import importlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

from annotrain.domain.records import Run
from annotrain.ports import MAX_PAGE_SIZE, BlobStore, Store
from batch_jobs.runtime import JobContext

#: Seconds between two rewrites of the log blob while a job runs.
LOG_FLUSH_SECONDS = 3.0
#: Seconds between two progress writes (the last one is always written).
PROGRESS_SECONDS = 1.5
#: Lines of history a run keeps while it runs; older points are thinned out.
MAX_LIVE_HISTORY = 500
#: Modules that may hold the model code (the first that exists is used).
TRAINER_MODULES = ("batch_jobs.text.training", "batch_jobs.text.train")
PREDICTOR_MODULES = ("batch_jobs.text.predict", "batch_jobs.text.inference")
_LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def full_store(context: JobContext) -> Store:
    """The job's store as the whole lab's store (``open_store`` opens one; tests give one)."""
    return cast(Store, context.store)


def resolve(modules: Sequence[str], attribute: str) -> Any:
    """The first of ``modules`` that exists, its ``attribute`` (imported now, not before).

    Raises:
        ModuleNotFoundError: None of them exists (a missing dependency of one that
            does exist, such as torch, is raised as it is).
    """
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # this candidate (or its package) is not there: try the next
            raise
        return getattr(module, attribute)
    raise ModuleNotFoundError(f"none of {', '.join(modules)} is installed (the model code)")


class BlobLog(logging.Handler):
    """A log handler that keeps a run's log in the blob store, rewritten every few seconds.

    The whole log is rewritten each time (blob stores replace, they do not append),
    so a reader always sees a consistent log up to the last flush; :meth:`close`
    writes the rest.

    Args:
        blobs: Where the log goes.
        key: The run's ``logs_key``.
        interval: Seconds between two rewrites.
    """

    def __init__(self, blobs: BlobStore, key: str, *, interval: float = LOG_FLUSH_SECONDS) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(_LOG_FORMAT))
        self._blobs = blobs
        self._key = key
        self._interval = interval
        self._lines: list[str] = []
        self._written = 0
        self._buffer_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="annotrain-log", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the line; it reaches the blob at the next flush."""
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        with self._buffer_lock:
            self._lines.append(line + "\n")

    def flush(self) -> None:
        """Rewrite the log blob if lines came since the last write."""
        with self._write_lock:
            with self._buffer_lock:
                count = len(self._lines)
                if count == self._written:
                    return
                text = "".join(self._lines)
            self._blobs.put(
                self._key, io.BytesIO(text.encode()), content_type="text/plain; charset=utf-8"
            )
            self._written = count

    def close(self) -> None:
        """Stop the flusher and write what is left."""
        self._stop.set()
        if self._flusher.is_alive() and self._flusher is not threading.current_thread():
            self._flusher.join()
        try:
            self.flush()
        finally:
            super().close()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:
                logging.getLogger("batch_jobs").warning("log not written", exc_info=True)


class RunLogger:
    """A logger for one run that writes to its log blob (and to stderr through the root).

    Use as a context manager: leaving it writes the last lines.
    """

    def __init__(self, blobs: BlobStore, run: Run, *, interval: float = LOG_FLUSH_SECONDS) -> None:
        self.logger = logging.getLogger(f"batch_jobs.run.{run.id}")
        self.logger.setLevel(logging.INFO)
        self._handler: BlobLog | None = None
        if run.logs_key is not None:
            self._handler = BlobLog(blobs, run.logs_key, interval=interval)
            self.logger.addHandler(self._handler)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.logger.error("failed: %s", exc)
        if self._handler is not None:
            self.logger.removeHandler(self._handler)
            self._handler.close()


class ThrottledProgress:
    """Writes a run's progress at most every ``interval`` seconds, and the last one always.

    Args:
        context: The job's context (its ``update_run`` never overwrites an ended run).
        interval: Seconds between two writes.
        clock: Monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        context: JobContext,
        *,
        interval: float = PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._context = context
        self._interval = interval
        self._clock = clock
        self._last_write: float | None = None
        self._pending: Mapping[str, Any] | None = None
        self._lock = threading.Lock()

    def __call__(self, point: Mapping[str, Any]) -> None:
        """Note a progress point (``percent``, ``epoch``…); written if the interval passed."""
        with self._lock:
            self._pending = dict(point)
            now = self._clock()
            if self._last_write is not None and now - self._last_write < self._interval:
                return
            self._last_write = now
        self.flush()

    def flush(self) -> None:
        """Write the latest point not yet written."""
        with self._lock:
            point, self._pending = self._pending, None
        if point is None:
            return
        self._context.update_run(lambda run: _with_point(run, point))


def _with_point(run: Run, point: Mapping[str, Any]) -> Run:
    percent = point.get("percent")
    progress = run.progress if percent is None else max(0.0, min(99.0, float(percent)))
    history = [*run.history, {k: v for k, v in point.items() if v is not None}]
    if len(history) > MAX_LIVE_HISTORY:
        history = history[::2]
    epoch = point.get("epoch")
    return replace(
        run,
        progress=progress,
        epoch=run.epoch if epoch is None else int(epoch),
        history=tuple(history),
    )


def upload_folder(blobs: BlobStore, folder: Path, prefix: str) -> list[str]:
    """Copy every file under ``folder`` to ``prefix/<relative path>``; returns the keys."""
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        with path.open("rb") as stream:
            blobs.put(key, stream, content_type=_content_type(path))
        keys.append(key)
    return keys


def upload_file(blobs: BlobStore, path: Path, key: str) -> str:
    """Copy one file to ``key``."""
    with path.open("rb") as stream:
        blobs.put(key, stream, content_type=_content_type(path))
    return key


def download_folder(blobs: BlobStore, prefix: str, folder: Path) -> int:
    """Copy every blob under ``prefix/`` into ``folder``; returns how many files.

    Raises:
        NotFoundError: Nothing is stored under the prefix.
    """
    count = 0
    for key in _keys(blobs, prefix.rstrip("/") + "/"):
        target = folder / key.removeprefix(prefix.rstrip("/") + "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with blobs.open(key) as source, target.open("wb") as sink:
            while chunk := source.read(1024 * 1024):
                sink.write(chunk)
        count += 1
    if count == 0:
        from annotrain.domain.errors import NotFoundError

        raise NotFoundError("model files", prefix)
    return count


def _keys(blobs: BlobStore, prefix: str) -> Iterator[str]:
    token: str | None = None
    while True:
        page = blobs.list(prefix, limit=MAX_PAGE_SIZE, token=token)
        yield from (info.key for info in page.items)
        if page.next_token is None:
            return
        token = page.next_token


def _content_type(path: Path) -> str:
    return {
        ".json": "application/json",
        ".png": "image/png",
        ".txt": "text/plain; charset=utf-8",
        ".safetensors": "application/octet-stream",
    }.get(path.suffix.lower(), "application/octet-stream")
