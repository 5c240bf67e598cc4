"""Uploading images and PDFs (a task per page, OCR started by itself), the OCR routes, and
the OCR summary a task read shows."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from typing import Any

import pytest
from conftest import Lab, make_settings
from fake_runner import RecordingRunner
from PIL import Image, ImageDraw, ImageFont

from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.domain.records import JobKind, RunStatus
from annotrain.domain.tasks import Task
from annotrain.settings import get_settings
from batch_jobs.ocr import ocr
from batch_jobs.runtime import EXIT_SUCCEEDED, run_job
from batch_jobs.visual.synthetic import LABELING_CONFIG

OTHER_IMAGE = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def ocr_lab(lab: Lab) -> Lab:
    """The lab's project as an invoice project with no tasks, and a recording job runner."""
    lab.store.delete_task(lab.project_id, lab.task_id)
    project = lab.store.get_project(lab.project_id)
    lab.store.update_project(replace(project, label_config=LABELING_CONFIG))
    lab.client.app.state.runner = RecordingRunner(lab.store)  # type: ignore[attr-defined]
    return lab


def _runner(lab: Lab) -> RecordingRunner:
    runner: RecordingRunner = lab.client.app.state.runner  # type: ignore[attr-defined]
    return runner


def _png(text: str = "Total 12.50 EUR", size: tuple[int, int] = (420, 90)) -> bytes:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((20, 25), text, fill="black", font=ImageFont.load_default(size=32))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _pdf(pages: int) -> bytes:
    images = [Image.open(io.BytesIO(_png(f"Page {n}"))).convert("RGB") for n in range(pages)]
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return out.getvalue()


def _encrypted_pdf() -> bytes:
    """A one-page PDF whose standard security handler wants a password nobody knows."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <" + b"11" * 32 + b"> /U <" + b"22" * 32
        + b"> /P -44 >>",
    ]  # fmt: skip
    out = io.BytesIO(b"%PDF-1.4\n")
    out.seek(0, 2)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [<%s> <%s>] >>\n"
        b"startxref\n%d\n%%%%EOF\n" % (len(objects) + 1, b"ab" * 16, b"ab" * 16, xref)
    )
    return out.getvalue()


def _upload(lab: Lab, *files: tuple[str, bytes], role: str = "manager") -> Any:
    return lab.client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/upload",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        headers=lab.auth(role),
    )


def _stored_nothing(lab: Lab) -> None:
    assert list(lab.store.iter_tasks(lab.project_id)) == []
    blobs = FilesystemBlobStore(lab.tmp_path / "blobs")
    assert blobs.list(f"projects/{lab.project_id}/").items == []
    assert lab.store.list_runs(lab.project_id).items == []
    assert _runner(lab).submitted == []


def test_an_upload_of_an_image_and_a_pdf_makes_a_task_per_page_and_starts_their_ocr(
    ocr_lab: Lab,
) -> None:
    response = _upload(ocr_lab, ("scan.png", _png()), ("report.pdf", _pdf(2)))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["imported"] == 3
    assert body["ocr"]["status"] == "queued"
    assert body["ocr"]["language"] == "eng"
    assert body["ocr"]["tasks"] == 3
    (spec,) = _runner(ocr_lab).submitted
    assert (spec.kind, spec.run_id, spec.use_gpu) == (JobKind.OCR, body["ocr"]["id"], False)
    tasks = [ocr_lab.store.get_task(ocr_lab.project_id, t) for t in body["task_ids"]]
    assert tasks[0].extra["file_upload"] == "scan.png"
    assert [(t.data["document"], t.data["page"]) for t in tasks[1:]] == [
        ("report.pdf", 1),
        ("report.pdf", 2),
    ]
    page = ocr_lab.client.get(
        tasks[1].data["image"], headers=ocr_lab.auth("annotator")
    )  # the rendered page, served like any image
    assert page.headers["content-type"] == "image/png"
    width, height = Image.open(io.BytesIO(page.content)).size
    # Saved at 150 dpi (2.8 x 0.6 inches), drawn back at the lab's 150 dpi: the same pixels.
    assert abs(width - 420) <= 1
    assert abs(height - 90) <= 1
    read = ocr_lab.client.get(f"/api/v1/ocr/{body['ocr']['id']}", headers=ocr_lab.auth("reviewer"))
    assert read.json()["status"] == "queued"


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed")
def test_a_task_read_shows_its_ocr_summary_once_the_job_ran_and_listings_do_not(
    ocr_lab: Lab,
) -> None:
    body = _upload(ocr_lab, ("total.png", _png())).json()
    task_path = f"/api/v1/projects/{ocr_lab.project_id}/tasks/{body['task_ids'][0]}"
    assert ocr_lab.client.get(task_path, headers=ocr_lab.auth("owner")).json()["ocr"] is None

    code = run_job(
        ocr, ["--run-id", body["ocr"]["id"]], environ={},
        store_opener=lambda _: ocr_lab.store,
        blob_opener=lambda _: FilesystemBlobStore(ocr_lab.tmp_path / "blobs"),
        heartbeat_interval=0.05,
    )  # fmt: skip

    assert code == EXIT_SUCCEEDED
    summary = ocr_lab.client.get(task_path, headers=ocr_lab.auth("annotator")).json()["ocr"]
    assert summary["words"] == 3
    assert summary["language"] == "eng"
    assert (summary["width"], summary["height"]) == (420, 90)
    listed = ocr_lab.client.get(
        f"/api/v1/projects/{ocr_lab.project_id}/tasks", headers=ocr_lab.auth("owner")
    ).json()["items"]
    assert "ocr" not in listed[0]
    run = ocr_lab.client.get(f"/api/v1/ocr/{body['ocr']['id']}", headers=ocr_lab.auth("owner"))
    assert run.json()["status"] == "succeeded"
    assert run.json()["metrics"]["words"] == 3


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        (
            "anim.gif",
            b"GIF89a" + b"\x00" * 40,
            "is a GIF image; upload PNG, JPEG or TIFF images or PDF",
        ),
        ("locked.pdf", _encrypted_pdf(), "is password-protected (encrypted)"),
        ("cut.pdf", _pdf(1)[:300], "cannot be opened"),
        ("notes.txt", b"just text", "upload PNG, JPEG or TIFF images or PDF documents"),
    ],
)
def test_a_refused_file_is_named_with_the_fix_and_nothing_is_stored(
    ocr_lab: Lab, name: str, data: bytes, says: str
) -> None:
    response = _upload(ocr_lab, ("fine.png", _png()), (name, data))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_files"
    (detail,) = error["details"]
    assert detail["file"] == name
    assert says in detail["reason"]
    _stored_nothing(ocr_lab)


def test_pdfs_over_the_page_limit_are_refused_before_any_page_is_rendered(ocr_lab: Lab) -> None:
    settings = make_settings(ocr_lab.tmp_path, max_pdf_pages=3)
    ocr_lab.client.app.dependency_overrides[get_settings] = lambda: settings  # type: ignore[attr-defined]

    response = _upload(ocr_lab, ("a.pdf", _pdf(2)), ("b.pdf", _pdf(2)))

    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["file"] == "b.pdf"
    assert "brings this upload to 4" in detail["reason"]
    assert "ANNOTRAIN_MAX_PDF_PAGES" in detail["reason"]
    _stored_nothing(ocr_lab)


def test_an_upload_without_a_job_runner_is_refused_before_anything_is_stored(
    ocr_lab: Lab,
) -> None:
    ocr_lab.client.app.state.runner = None  # type: ignore[attr-defined]
    response = _upload(ocr_lab, ("a.png", _png()))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "job_runner_unavailable"
    assert list(ocr_lab.store.iter_tasks(ocr_lab.project_id)) == []


def test_an_upload_the_runner_refuses_keeps_the_tasks_and_says_why_ocr_failed(
    ocr_lab: Lab,
) -> None:
    _runner(ocr_lab).fail = RuntimeError("queue full")
    response = _upload(ocr_lab, ("a.png", _png()))
    assert response.status_code == 201
    assert response.json()["ocr"]["status"] == "failed"
    assert "queue full" in response.json()["ocr"]["failure_reason"]


def test_a_project_without_an_image_field_refuses_uploads_naming_the_config(lab: Lab) -> None:
    lab.client.app.state.runner = RecordingRunner(lab.store)  # type: ignore[attr-defined]
    response = _upload(lab, ("a.png", _png()))
    assert response.status_code == 422
    (detail,) = response.json()["error"]["details"]
    assert detail["file"] == "(labeling config)"


def test_ocr_of_named_tasks_refuses_one_without_an_uploaded_image_of_this_project(
    ocr_lab: Lab,
) -> None:
    url_task, foreign = ocr_lab.store.add_tasks(
        ocr_lab.project_id,
        [
            Task(None, {"image": "https://example.com/scan.png"}),
            Task(None, {"image": f"/api/v1/projects/999/images/{OTHER_IMAGE}"}),
        ],
    )
    path = f"/api/v1/projects/{ocr_lab.project_id}/ocr"
    for task, says in ((url_task, "its image is a URL"), (foreign, "an image of project 999")):
        response = ocr_lab.client.post(
            path, json={"task_ids": [task.id]}, headers=ocr_lab.auth("owner")
        )
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["field"] == "task_ids"
        assert says in error["message"]
    everything = ocr_lab.client.post(path, headers=ocr_lab.auth("owner"))
    assert everything.status_code == 422
    assert (
        "no task of this project shows an uploaded image" in everything.json()["error"]["message"]
    )
    assert ocr_lab.store.list_runs(ocr_lab.project_id).items == []


def test_ocr_of_every_image_task_names_them_all_in_one_run(ocr_lab: Lab) -> None:
    ids = _upload(ocr_lab, ("a.png", _png()), ("b.png", _png("IBAN"))).json()["task_ids"]
    ocr_lab.store.add_tasks(
        ocr_lab.project_id, [Task(None, {"image": "https://example.com/x.png"})]
    )

    response = ocr_lab.client.post(
        f"/api/v1/projects/{ocr_lab.project_id}/ocr", headers=ocr_lab.auth("manager")
    )

    assert response.status_code == 202
    run = ocr_lab.store.get_run(response.json()["id"])
    assert (run.kind, run.status) == (JobKind.OCR, RunStatus.QUEUED)
    assert run.params["task_ids"] == ids
    assert run.params["language"] == "en"


def test_a_run_of_another_kind_is_not_found_as_an_ocr_run(ocr_lab: Lab) -> None:
    response = ocr_lab.client.get("/api/v1/ocr/run-1", headers=ocr_lab.auth("admin"))
    assert response.status_code == 404
