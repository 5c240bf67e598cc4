"""The OCR job end to end, in process, on real Tesseract: synthetic invoices uploaded as a
PNG and a PDF, the OCR run the upload starts, ``run_job`` running ``batch_jobs.ocr``, then
the words beside each image, the cache, and the failures a person can act on."""

from __future__ import annotations

import functools
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fake_runner import RecordingRunner
from fakes import FakeClock

from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.config import parse_labeling_config
from annotrain.domain.layout import label_words
from annotrain.domain.ocr import ocr_key, page_from_json
from annotrain.domain.records import JobKind, Project, RunStatus
from annotrain.domain.task_files import task_image_ids
from annotrain.domain.tasks import Member, Role
from annotrain.services import imports
from annotrain.services.access import Principal
from annotrain.services.ocr import ocr_summary, start_ocr, upload_and_ocr
from annotrain.services.pdf_pages import PdfLimits
from batch_jobs.ocr import ocr
from batch_jobs.runtime import EXIT_FAILED, EXIT_SUCCEEDED, run_job
from batch_jobs.visual.ocr_engine import PageWords
from batch_jobs.visual.synthetic import LABELING_CONFIG, SyntheticForm, generate_form

pytestmark = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="Tesseract is not installed: `make setup` as root installs tesseract-ocr and its "
    "language packs (DEBIAN_PACKAGES), or: apt-get install tesseract-ocr tesseract-ocr-eng",
)
OWNER = Principal("owner")
LIMITS = imports.ImportLimits(max_text_bytes=1 << 20, max_image_bytes=1 << 24)


def refuse_to_read(path: str, language: str) -> PageWords:
    """A reader for runs that must not call Tesseract: every page should come from the cache."""
    raise AssertionError(f"Tesseract was asked to read {path} again")


@dataclass
class Lab:
    store: SqliteStore
    blobs: FilesystemBlobStore
    runner: RecordingRunner
    clock: FakeClock
    project: Project

    def upload(self, *files: tuple[str, bytes]) -> tuple[list[int], str]:
        uploads = [imports.UploadedFile(name, None, io.BytesIO(data)) for name, data in files]
        result = upload_and_ocr(
            self.store, self.blobs, self.runner, OWNER, self.clock, self.project.id, uploads,
            limits=LIMITS, pdf=PdfLimits(max_pages=5),
        )  # fmt: skip
        return [int(t.id or 0) for t in result.tasks], result.run.id

    def run(self, run_id: str, **options: Any) -> int:
        return run_job(
            functools.partial(ocr, **options),
            ["--run-id", run_id],
            environ={},
            store_opener=lambda _: self.store,
            blob_opener=lambda _: self.blobs,
            clock=self.clock,
            heartbeat_interval=0.05,
        )

    def page(self, task_id: int) -> Any:
        task = self.store.get_task(self.project.id, task_id)
        (image_id,) = task_image_ids(
            task.data, parse_labeling_config(LABELING_CONFIG), self.project.id
        )
        with self.blobs.open(ocr_key(self.project.id, image_id)) as stream:
            return page_from_json(json.load(stream))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    clock = FakeClock()
    with SqliteStore(tmp_path / "lab.db") as store:
        project = store.create_project(
            Project(0, "Invoices", LABELING_CONFIG, "owner", clock.now())
        )
        store.put_member(project.id, Member("owner", Role.OWNER))
        yield Lab(
            store, FilesystemBlobStore(tmp_path / "blobs"), RecordingRunner(store), clock, project
        )


@functools.cache
def _form(seed: int) -> SyntheticForm:
    return generate_form(seed)


def _pdf(*forms: SyntheticForm) -> bytes:
    out = io.BytesIO()
    first, *rest = (f.image for f in forms)
    first.save(out, format="PDF", resolution=150, save_all=True, append_images=rest)
    return out.getvalue()


def test_ocr_of_an_uploaded_form_finds_its_words_and_labels_them_from_the_gold_boxes(
    lab: Lab,
) -> None:
    form = _form(0)
    (task_id,), run_id = lab.upload(("invoice.png", form.png()))
    assert [s.kind for s in lab.runner.submitted] == [JobKind.OCR]

    assert lab.run(run_id, workers=1) == EXIT_SUCCEEDED

    run = lab.store.get_run(run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert run.metrics["read"] == 1
    assert run.metrics["language"] == "eng"
    page = lab.page(task_id)
    assert (page.width, page.height) == form.size
    found = {w.text for w in page.words}
    for gold in form.fields:
        assert set(gold.text.split()) <= found, gold
    assert all(0 <= c <= 1000 for w in page.words for c in page.normalised_box(w))
    width, height = form.size
    labels = label_words(page.words, form.regions(), width, height)
    assert labels.skipped == ()
    tagged = [(w.text, t) for w, t in zip(page.words, labels.tags, strict=True) if t != "O"]
    iban = next(f for f in form.fields if f.label == "IBAN").text.split()
    assert [t for w, t in tagged if w in iban] == ["B-IBAN"] + ["I-IBAN"] * (len(iban) - 1)
    task = lab.store.get_task(lab.project.id, task_id)
    summary = ocr_summary(lab.blobs, parse_labeling_config(LABELING_CONFIG), lab.project.id, task)
    assert summary is not None
    assert summary["words"] == len(page.words)


def test_a_pdf_becomes_a_task_per_page_read_in_parallel_then_never_read_again(lab: Lab) -> None:
    forms = (_form(1), _form(2))
    task_ids, run_id = lab.upload(("two pages.pdf", _pdf(*forms)))
    data = [lab.store.get_task(lab.project.id, t).data for t in task_ids]
    assert [(d["document"], d["page"]) for d in data] == [
        ("two pages.pdf", 1),
        ("two pages.pdf", 2),
    ]

    assert lab.run(run_id, workers=2) == EXIT_SUCCEEDED
    assert lab.store.get_run(run_id).metrics["read"] == 2
    for task_id, form in zip(task_ids, forms, strict=True):
        words = {w.text for w in lab.page(task_id).words}
        assert set(next(f for f in form.fields if f.label == "InvoiceNumber").text.split()) <= words

    # Again over the same tasks: every page was read in this language by this Tesseract.
    again = start_ocr(lab.store, lab.runner, OWNER, lab.clock, lab.project.id)
    assert lab.run(again.id, reader=refuse_to_read, workers=1) == EXIT_SUCCEEDED
    metrics = lab.store.get_run(again.id).metrics
    assert (metrics["done_before"], metrics["cached"], metrics["read"]) == (2, 0, 0)


def test_the_same_picture_uploaded_again_comes_from_the_cache(lab: Lab) -> None:
    png = _form(0).png()
    (first,), run_id = lab.upload(("a.png", png))
    assert lab.run(run_id, workers=1) == EXIT_SUCCEEDED
    (second,), run_id = lab.upload(("copy of a.png", png))

    assert lab.run(run_id, reader=refuse_to_read, workers=1) == EXIT_SUCCEEDED
    metrics = lab.store.get_run(run_id).metrics
    assert (metrics["cached"], metrics["read"]) == (1, 0)
    assert lab.page(second) == lab.page(first)


def test_a_language_without_its_pack_fails_the_run_naming_the_debian_package(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytesseract

    lab.store.update_project(replace(lab.project, settings={"language": "ro"}))
    (_task,), run_id = lab.upload(("a.png", _form(0).png()))
    monkeypatch.setattr(pytesseract, "get_languages", lambda config="": ["eng", "osd"])

    assert lab.run(run_id, workers=1) == EXIT_FAILED
    reason = lab.store.get_run(run_id).failure_reason or ""
    assert "no 'ron' language data" in reason
    assert "apt-get install tesseract-ocr-ron" in reason


def test_a_page_tesseract_cannot_read_fails_the_run_and_keeps_the_others(lab: Lab) -> None:
    task_ids, run_id = lab.upload(("a.png", _form(0).png()), ("b.png", _form(1).png()))
    readable = lab.store.get_task(lab.project.id, task_ids[0])
    schema = parse_labeling_config(LABELING_CONFIG)
    (readable_image,) = task_image_ids(readable.data, schema, lab.project.id)

    def only_the_first(path: str, language: str) -> PageWords:
        if Path(path).name != readable_image:
            raise RuntimeError("Tesseract exited with code 1")
        return PageWords(10, 10, ())

    assert lab.run(run_id, reader=only_the_first, workers=1) == EXIT_FAILED
    run = lab.store.get_run(run_id)
    assert f"task {task_ids[1]} (RuntimeError: Tesseract exited with code 1)" in (
        run.failure_reason or ""
    )
    assert lab.page(task_ids[0]).words == ()
