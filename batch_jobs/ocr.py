"""``python -m batch_jobs.ocr --run-id …``: OCR the run's task images and store words beside them.

For each task the run names, the job finds its uploaded image (the image field's
``/api/v1/projects/{id}/images/{image_id}`` reference), and:

1. if ``projects/<id>/ocr/<image id>.json`` holds an OCR in the run's language by
   this Tesseract version, does nothing more (``done_before``);
2. else hashes the image; if ``projects/<id>/ocr-cache/<sha256>-<lang>-<version>.json``
   exists (the same picture imported before), copies it beside the image (``cached``);
3. else queues the page for Tesseract (``read``).

Queued pages are read in parallel, one process per core (``OMP_THREAD_LIMIT=1``),
``image_to_data`` once per page; each result is written to the cache and beside
the image as it arrives, so a cancelled or failed run keeps what it read.
Progress counts pages; a cancel stops between pages. Pages Tesseract could not
read fail the run at the end, naming the tasks (the others are kept).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.errors import AnnotrainError, NotFoundError
from annotrain.domain.ocr import (
    OcrPage,
    ocr_cache_key,
    ocr_key,
    page_from_json,
    page_to_json,
    tesseract_language,
)
from annotrain.domain.task_files import image_key, task_image_ids
from annotrain.ports import BlobStore
from batch_jobs.job_io import RunLogger, ThrottledProgress, full_store
from batch_jobs.runtime import JobContext, main
from batch_jobs.visual.ocr_engine import (
    PageReader,
    check_language,
    read_page,
    read_pages,
    tesseract_version,
)

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Page:
    task_id: int
    image_id: str
    path: str
    sha256: str


def ocr(
    context: JobContext,
    *,
    reader: PageReader = read_page,
    workers: int | None = None,
    work_dir: Path | None = None,
) -> None:
    """OCR the run's tasks' images (the job's work).

    Args:
        context: The job's context.
        reader: Reads one page (Tesseract by default; tests count calls).
        workers: Processes reading pages at once (default: every core it may use).

    Raises:
        AnnotrainError: What went wrong, for the run's failure reason.
    """
    store = full_store(context)
    blobs = context.blob_store()
    run = context.run()
    language = tesseract_language(str(run.params.get("language", "en")))
    version = tesseract_version()
    check_language(language)
    project = store.get_project(run.project_id)
    schema = parse_labeling_config(project.label_config)
    task_ids = [int(t) for t in run.params.get("task_ids") or ()]
    workers = workers or _usable_cores()
    counts = {"pages": len(task_ids), "done_before": 0, "cached": 0, "read": 0, "words": 0}
    skipped: dict[str, list[int]] = {}
    with RunLogger(blobs, run) as run_log, tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        log = run_log.logger
        log.info(
            "OCR of %d task(s) in %s by Tesseract %s, %d worker(s)",
            len(task_ids), language.code, version, workers,
        )  # fmt: skip
        progress = ThrottledProgress(context)
        queued: list[_Page] = []
        for task_id in task_ids:
            if context.stop_requested.is_set():
                log.info("cancelled while looking for cached pages")
                return
            try:
                task = store.get_task(run.project_id, task_id)
            except NotFoundError:
                skipped.setdefault("task deleted", []).append(task_id)
                continue
            images = task_image_ids(task.data, schema, run.project_id)
            if not images:
                skipped.setdefault("no uploaded image", []).append(task_id)
                continue
            for image_id in images:
                found = _stored(blobs, ocr_key(run.project_id, image_id))
                if found is not None and (found.language, found.engine) == (language.code, version):
                    counts["done_before"] += 1
                    counts["words"] += len(found.words)
                    continue
                path = Path(tmp) / image_id
                sha256 = _download(blobs, image_key(run.project_id, image_id), path)
                cache = ocr_cache_key(run.project_id, sha256, language.code, version)
                cached = _stored(blobs, cache)
                if cached is not None:
                    _put_json(blobs, ocr_key(run.project_id, image_id), page_to_json(cached))
                    counts["cached"] += 1
                    counts["words"] += len(cached.words)
                    path.unlink()
                    continue
                queued.append(_Page(task_id, image_id, str(path), sha256))
        log.info(
            "%d page(s) OCR'd before, %d from the cache, %d to read; skipped: %s",
            counts["done_before"], counts["cached"], len(queued),
            {reason: len(ids) for reason, ids in skipped.items()} or "none",
        )  # fmt: skip
        failed: dict[int, str] = {}
        finished = counts["done_before"] + counts["cached"]
        for index, outcome in read_pages(
            [p.path for p in queued],
            language.code,
            workers=workers,
            reader=reader,
            should_stop=context.stop_requested.is_set,
        ):
            page = queued[index]
            if isinstance(outcome, Exception):
                failed[page.task_id] = f"{type(outcome).__name__}: {outcome}"
                log.error("task %d: Tesseract could not read its image: %s", page.task_id, outcome)
                continue
            record = OcrPage(
                outcome.width, outcome.height, outcome.words, language.code, version, page.sha256
            )
            body = page_to_json(record)
            _put_json(
                blobs, ocr_cache_key(run.project_id, page.sha256, language.code, version), body
            )
            _put_json(blobs, ocr_key(run.project_id, page.image_id), body)
            counts["read"] += 1
            counts["words"] += len(record.words)
            finished += 1
            progress({"percent": 100 * finished / max(len(task_ids), 1), "pages": finished})
        if context.stop_requested.is_set():
            log.info("cancelled after %d page(s) read", counts["read"])
            return
        progress.flush()
        metrics: dict[str, Any] = {
            **counts,
            "language": language.code,
            "engine": f"tesseract {version}",
            "skipped": {reason: ids[:100] for reason, ids in skipped.items()},
            "failed": {str(k): v for k, v in list(failed.items())[:100]},
        }
        context.update_run(lambda r: replace(r, metrics={**r.metrics, **metrics}))
        log.info("done: %s", json.dumps(counts))
        if failed:
            shown = ", ".join(f"task {k} ({v})" for k, v in list(failed.items())[:5])
            raise AnnotrainError(
                f"Tesseract could not read {len(failed)} page(s): {shown}; the others are "
                "stored. Re-import those images (a damaged file?) and run OCR again"
            )


def _usable_cores() -> int:
    """The cores this process may run on (a container's cpuset, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _stored(blobs: BlobStore, key: str) -> OcrPage | None:
    try:
        with blobs.open(key) as stream:
            raw: Mapping[str, Any] = json.load(stream)
    except NotFoundError:
        return None
    try:
        return page_from_json(raw)
    except (ValueError, KeyError, TypeError):
        return None  # an older or broken record: read the page again


def _download(blobs: BlobStore, key: str, path: Path) -> str:
    digest = hashlib.sha256()
    with blobs.open(key) as source, path.open("wb") as sink:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            sink.write(chunk)
    return digest.hexdigest()


def _put_json(blobs: BlobStore, key: str, value: Mapping[str, Any]) -> None:
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    blobs.put(key, io.BytesIO(data), content_type="application/json")


if __name__ == "__main__":
    main(ocr)
