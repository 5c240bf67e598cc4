"""Importing CSV, TSV, plain text, JSON files and images; reading images back."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Lab, make_settings
from fastapi.testclient import TestClient
from PIL import Image

from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.adapters.s3 import S3BlobStore
from annotrain.api import create_app
from annotrain.domain.errors import StoreUnavailableError
from annotrain.domain.task_files import image_key_of_reference

IMAGE_CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="box" toName="image"><Label value="Drug"/></RectangleLabels></View>'
)
TWO_TEXTS_CONFIG = (
    '<View><Text name="title" value="$title"/><Text name="text" value="$text"/>'
    '<Labels name="label" toName="text"><Label value="Drug"/></Labels></View>'
)


@pytest.fixture(autouse=True)
def no_tasks_yet(lab: Lab) -> None:
    """These tests count tasks: start from none."""
    lab.store.delete_task(lab.project_id, lab.task_id)


def _image(fmt: str, size: tuple[int, int] = (12, 8), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 30, 30) if mode == "RGB" else 1).save(out, format=fmt)
    return out.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header that claims a size, with no pixels: what a decompression bomb starts as."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _set_config(lab: Lab, config: str) -> None:
    project = lab.store.get_project(lab.project_id)
    lab.store.update_project(replace(project, label_config=config))


def _upload(
    lab: Lab, files: list[tuple[str, bytes, str]], role: str = "owner", **params: Any
) -> Any:
    return lab.client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/import/files",
        files=[("files", (name, content, ctype)) for name, content, ctype in files],
        params=params,
        headers=lab.auth(role),
    )


def _texts(lab: Lab, field: str = "text") -> list[Any]:
    return [t.data.get(field) for t in lab.store.iter_tasks(lab.project_id)]


def _blob_keys(lab: Lab) -> list[str]:
    blobs = FilesystemBlobStore(lab.tmp_path / "blobs")
    return [info.key for info in blobs.list("projects/", limit=1000).items]


def _error(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# CSV and TSV


def test_csv_rows_become_tasks_with_quotes_newlines_and_a_bom(lab: Lab) -> None:
    content = '\ufefftext,source\n"Aspirin, 81 mg ""daily""",ward 3\n"Line one\nline two",clinic\n'
    response = _upload(lab, [("notes.csv", content.encode(), "text/csv")])
    assert response.status_code == 201, response.text
    assert response.json()["imported"] == 2
    tasks = list(lab.store.iter_tasks(lab.project_id))
    assert [dict(t.data) for t in tasks] == [
        {"text": 'Aspirin, 81 mg "daily"', "source": "ward 3"},
        {"text": "Line one\nline two", "source": "clinic"},
    ]
    assert [t.id for t in tasks] == response.json()["task_ids"]


def test_tsv_from_a_spreadsheet_in_utf16_imports(lab: Lab) -> None:
    content = "text\tward\r\nNo fever.\t3\r\nCough\t\r\n".encode("utf-16")
    response = _upload(lab, [("export.tsv", content, "application/octet-stream")])
    assert response.status_code == 201, response.text
    assert _texts(lab) == ["No fever.", "Cough"]
    assert _texts(lab, "ward") == ["3", ""]


def test_a_tags_column_tags_the_tasks_instead_of_being_data(lab: Lab) -> None:
    content = b'text,split\nAspirin.,"Train, gold"\nNo fever.,Test\n'
    response = _upload(lab, [("n.csv", content, "text/csv")], tags_column="split")
    assert response.status_code == 201, response.text
    tasks = list(lab.store.iter_tasks(lab.project_id))
    assert [t.tags for t in tasks] == [("Train", "gold"), ("Test",)]
    assert all("split" not in t.data for t in tasks)


def test_a_missing_column_is_named_with_the_fix(lab: Lab) -> None:
    error = _error(_upload(lab, [("n.csv", b"note\nAspirin.\n", "text/csv")]))
    assert error["code"] == "invalid_files"
    assert error["field"] == "files"
    (problem,) = error["details"]
    assert problem["file"] == "n.csv"
    assert problem["line"] == 1
    assert "needs a column 'text'" in problem["reason"]
    assert "'note'" in problem["reason"]
    assert lab.store.count_tasks(lab.project_id) == 0


def test_a_ragged_row_names_its_line_and_nothing_is_stored(lab: Lab) -> None:
    content = b'text\n"two\nlines"\nok\nAspirin, daily\n'
    error = _error(_upload(lab, [("n.csv", content, "text/csv")]))
    (problem,) = error["details"]
    assert problem["line"] == 5
    assert "2 fields but the header has 1" in problem["reason"]
    assert lab.store.count_tasks(lab.project_id) == 0


def test_broken_quoting_is_refused_naming_the_line(lab: Lab) -> None:
    error = _error(_upload(lab, [("n.csv", b'text\nok\n"Aspirin" daily\n', "text/csv")]))
    assert error["details"][0]["line"] == 3
    assert "quote" in error["details"][0]["reason"]


def test_bad_encoding_names_the_file_line_and_the_fix(lab: Lab) -> None:
    content = "text\nNo fever.\nCaf\u00e9\n".encode("latin-1")
    error = _error(_upload(lab, [("latin.csv", content, "text/csv")]))
    (problem,) = error["details"]
    assert (problem["file"], problem["line"]) == ("latin.csv", 3)
    assert "UTF-8" in problem["reason"]


def test_a_header_only_file_and_an_empty_file_are_refused(lab: Lab) -> None:
    error = _error(_upload(lab, [("a.csv", b"text\n", "text/csv"), ("b.csv", b"", "text/csv")]))
    assert [p["file"] for p in error["details"]] == ["a.csv", "b.csv"]


def test_a_csv_over_the_text_limit_is_refused(tmp_path: Path, lab: Lab) -> None:
    app = create_app(settings=make_settings(tmp_path, max_json_bytes=64), store=lab.store)
    with TestClient(app) as client:
        response = client.post(
            f"/api/v1/projects/{lab.project_id}/tasks/import/files",
            files=[("files", ("big.csv", b"text\n" + b"x" * 100 + b"\n", "text/csv"))],
            headers=lab.auth("owner"),
        )
    error = _error(response)
    assert "ANNOTRAIN_MAX_JSON_BYTES" in error["details"][0]["reason"]


# Plain text


def test_plain_text_is_a_task_per_non_blank_line(lab: Lab) -> None:
    response = _upload(
        lab, [("notes.txt", b"Aspirin daily.\r\n\r\n  \nNo fever. \n", "text/plain")]
    )
    assert response.status_code == 201, response.text
    assert _texts(lab) == ["Aspirin daily.", "No fever. "]


def test_plain_text_as_one_task_per_file(lab: Lab) -> None:
    files = [("a.txt", b"Line 1\nLine 2\n", "text/plain"), ("b.txt", b"Other\n", "text/plain")]
    response = _upload(lab, files, text_split="file")
    assert response.status_code == 201, response.text
    assert _texts(lab) == ["Line 1\nLine 2\n", "Other\n"]


def test_plain_text_into_a_config_with_two_text_fields_says_to_use_csv(lab: Lab) -> None:
    _set_config(lab, TWO_TEXTS_CONFIG)
    error = _error(_upload(lab, [("n.txt", b"Aspirin.\n", "text/plain")]))
    assert "CSV" in error["details"][0]["reason"]
    assert "$title" in error["details"][0]["reason"]


def test_plain_text_into_an_image_config_is_refused(lab: Lab) -> None:
    _set_config(lab, IMAGE_CONFIG)
    error = _error(_upload(lab, [("n.txt", b"Aspirin.\n", "text/plain")]))
    assert "no <Text" in error["details"][0]["reason"]


def test_a_label_studio_json_file_imports_like_the_json_route(lab: Lab) -> None:
    content = b'[{"data": {"text": "Aspirin."}}, {"text": "No fever."}]'
    response = _upload(lab, [("tasks.json", content, "application/json")])
    assert response.status_code == 201, response.text
    assert _texts(lab) == ["Aspirin.", "No fever."]


# Images


@pytest.mark.parametrize(("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                                   ("TIFF", "image/tiff")])  # fmt: skip
def test_an_image_becomes_a_task_and_reads_back(lab: Lab, fmt: str, content_type: str) -> None:
    _set_config(lab, IMAGE_CONFIG)
    content = _image(fmt)
    # Recognised by content: the name and declared type say nothing.
    response = _upload(lab, [("scan.bin", content, "application/octet-stream")])
    assert response.status_code == 201, response.text
    (task_id,) = response.json()["task_ids"]
    task = lab.client.get(
        f"/api/v1/projects/{lab.project_id}/tasks/{task_id}", headers=lab.auth("annotator")
    ).json()
    assert task["file_upload"] == "scan.bin"
    url = task["data"]["image"]
    assert url.startswith(f"/api/v1/projects/{lab.project_id}/images/")
    image = lab.client.get(url, headers=lab.auth("reviewer"))
    assert image.status_code == 200
    assert image.content == content
    assert image.headers["content-type"] == content_type
    assert image.headers["x-content-type-options"] == "nosniff"
    assert _blob_keys(lab) == [image_key_of_reference(url)]


def test_several_images_in_one_form(lab: Lab) -> None:
    _set_config(lab, IMAGE_CONFIG)
    files = [(f"p{i}.png", _image("PNG", (5 + i, 5)), "image/png") for i in range(3)]
    response = _upload(lab, files)
    assert response.json()["imported"] == 3
    assert len(_blob_keys(lab)) == 3


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        ("anim.gif", b"GIF89a" + b"\x00" * 30, "a GIF image"),
        ("scan.pdf", b"%PDF-1.7\n" + b"x" * 30, "a PDF document"),
        ("photo.png", b"MZ\x90\x00" + b"\x00" * 60, "a Windows executable"),
        ("photo.jpg", b"just some text", "not an image by its content"),
    ],
)
def test_other_files_are_refused_by_content_naming_the_file(
    lab: Lab, name: str, content: bytes, what: str
) -> None:
    _set_config(lab, IMAGE_CONFIG)
    good = ("good.png", _image("PNG"), "image/png")
    error = _error(_upload(lab, [good, (name, content, "image/png")]))
    (problem,) = error["details"]
    assert problem["file"] == name
    assert what in problem["reason"]
    assert "PNG, JPEG or TIFF" in problem["reason"]
    assert lab.store.count_tasks(lab.project_id) == 0
    assert _blob_keys(lab) == []  # the good image was not written either


def test_a_truncated_image_is_refused(lab: Lab) -> None:
    _set_config(lab, IMAGE_CONFIG)
    content = _image("PNG", (64, 64))
    error = _error(_upload(lab, [("cut.png", content[: len(content) // 2], "image/png")]))
    assert "truncated or damaged" in error["details"][0]["reason"]


def test_a_decompression_bomb_is_refused_before_it_is_decoded(lab: Lab) -> None:
    _set_config(lab, IMAGE_CONFIG)
    error = _error(_upload(lab, [("bomb.png", _png_claiming(100_000, 100_000), "image/png")]))
    assert "pixels" in error["details"][0]["reason"]


def test_an_image_over_the_byte_limit_is_refused(tmp_path: Path, lab: Lab) -> None:
    _set_config(lab, IMAGE_CONFIG)
    settings_ = make_settings(tmp_path, max_image_bytes=100)
    with TestClient(create_app(settings=settings_, store=lab.store)) as client:
        response = client.post(
            f"/api/v1/projects/{lab.project_id}/tasks/import/files",
            files=[("files", ("big.png", _image("PNG", (200, 200)), "image/png"))],
            headers=lab.auth("owner"),
        )
    assert "ANNOTRAIN_MAX_IMAGE_BYTES" in _error(response)["details"][0]["reason"]


def test_an_image_into_a_text_config_says_what_to_do(lab: Lab) -> None:
    error = _error(_upload(lab, [("p.png", _image("PNG"), "image/png")]))
    assert "no <Image" in error["details"][0]["reason"]


def test_images_written_before_the_store_fails_are_deleted(lab: Lab) -> None:
    _set_config(lab, IMAGE_CONFIG)
    failing = _FailingAdds(lab.store)
    app = create_app(settings=make_settings(lab.tmp_path), store=failing)  # type: ignore[arg-type]
    with TestClient(app) as client:
        response = client.post(
            f"/api/v1/projects/{lab.project_id}/tasks/import/files",
            files=[("files", (f"{i}.png", _image("PNG"), "image/png")) for i in range(2)],
            headers=lab.auth("owner"),
        )
    assert response.status_code == 503
    assert _blob_keys(lab) == []


class _FailingAdds:
    """The lab's store, but storing tasks fails as a busy database does."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def add_tasks(self, project_id: int, tasks: Any) -> Any:
        raise StoreUnavailableError("the database stayed locked")


def test_an_unknown_image_is_404_and_a_malformed_id_422(lab: Lab) -> None:
    base = f"/api/v1/projects/{lab.project_id}/images/"
    assert _error(lab.client.get(base + "0" * 32, headers=lab.auth("owner")), 404)
    error = _error(lab.client.get(base + "0" * 31 + "A", headers=lab.auth("owner")), 422)
    assert error["field"] == "image_id"
    # Decoded, "..%2F" is a second segment: no route, never a file outside the project.
    assert (
        lab.client.get(base + "..%2F..%2Fadmin-token", headers=lab.auth("owner")).status_code == 404
    )


def test_the_json_export_keeps_the_image_reference(lab: Lab) -> None:
    _set_config(lab, IMAGE_CONFIG)
    _upload(lab, [("p.png", _image("PNG"), "image/png")])
    export = lab.client.get(
        f"/api/v1/projects/{lab.project_id}/export?format=json", headers=lab.auth("owner")
    ).json()
    url = export[0]["data"]["image"]
    assert lab.client.get(url, headers=lab.auth("annotator")).status_code == 200


# Presigned uploads


def test_presigning_on_a_folder_store_says_to_upload_in_a_form(lab: Lab) -> None:
    response = lab.client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/import/presigned",
        json={"content_type": "image/png"},
        headers=lab.auth("owner"),
    )
    error = _error(response, 501)
    assert error["code"] == "presigned_urls_unavailable"
    assert "tasks/import/files" in error["message"]


@pytest.fixture
def s3_lab(lab: Lab, aws: None) -> Iterator[tuple[Lab, Any, TestClient]]:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
    s3.create_bucket(Bucket="annotrain-data")
    blobs = S3BlobStore("annotrain-data", client=s3)
    _set_config(lab, IMAGE_CONFIG)
    app = create_app(settings=make_settings(lab.tmp_path), store=lab.store, blobs=blobs)
    with TestClient(app) as client:
        yield lab, s3, client


def _presign(lab: Lab, client: TestClient, content_type: str = "image/png") -> Any:
    response = client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/import/presigned",
        json={"content_type": content_type},
        headers=lab.auth("manager"),
    )
    assert response.status_code == 201, response.text
    return response.json()


def _confirm(lab: Lab, client: TestClient, ids: list[str]) -> Any:
    return client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/import/presigned/confirm",
        json={"upload_ids": ids},
        headers=lab.auth("manager"),
    )


def _put_upload(s3: Any, presigned: Any, content: bytes) -> None:
    # What the browser's form POST leaves in the bucket.
    fields = presigned["fields"]
    s3.put_object(
        Bucket="annotrain-data", Key=fields["key"], Body=content, ContentType=fields["Content-Type"]
    )


def test_a_presigned_upload_becomes_a_task_once_confirmed(s3_lab: Any) -> None:
    lab, s3, client = s3_lab
    presigned = _presign(lab, client)
    assert presigned["method"] == "POST"
    assert presigned["fields"]["key"] == f"uploads/{lab.project_id}/{presigned['upload_id']}"
    assert presigned["fields"]["Content-Type"] == "image/png"
    content = _image("PNG")
    _put_upload(s3, presigned, content)
    response = _confirm(lab, client, [presigned["upload_id"]])
    assert response.status_code == 201, response.text
    (task_id,) = response.json()["task_ids"]
    url = lab.store.get_task(lab.project_id, task_id).data["image"]
    image = client.get(url, headers=lab.auth("annotator"))
    assert image.content == content
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="annotrain-data")["Contents"]]
    assert keys == [image_key_of_reference(url)]  # the upload itself is gone


def test_a_confirm_with_a_bad_upload_stores_nothing_and_drops_the_bad_one(s3_lab: Any) -> None:
    lab, s3, client = s3_lab
    good, bad, missing = _presign(lab, client), _presign(lab, client), _presign(lab, client)
    _put_upload(s3, good, _image("PNG"))
    _put_upload(s3, bad, b"GIF89a" + b"\x00" * 40)
    response = _confirm(lab, client, [good["upload_id"], bad["upload_id"], missing["upload_id"]])
    error = _error(response)
    assert [p["file"] for p in error["details"]] == [bad["upload_id"], missing["upload_id"]]
    assert "a GIF image" in error["details"][0]["reason"]
    assert "was not uploaded" in error["details"][1]["reason"]
    assert lab.store.count_tasks(lab.project_id) == 0
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="annotrain-data")["Contents"]]
    assert keys == [good["fields"]["key"]]  # kept, to confirm again without the bad one
    assert _confirm(lab, client, [good["upload_id"]]).status_code == 201


def test_an_upload_of_another_type_than_presigned_is_refused(s3_lab: Any) -> None:
    lab, s3, client = s3_lab
    presigned = _presign(lab, client, "image/png")
    _put_upload(s3, presigned, _image("JPEG"))
    error = _error(_confirm(lab, client, [presigned["upload_id"]]))
    assert "presigned as image/png" in error["details"][0]["reason"]


def test_presign_refuses_other_types_and_confirm_malformed_ids(s3_lab: Any) -> None:
    lab, _, client = s3_lab
    response = client.post(
        f"/api/v1/projects/{lab.project_id}/tasks/import/presigned",
        json={"content_type": "image/gif"},
        headers=lab.auth("owner"),
    )
    assert _error(response)["field"] == "content_type"
    assert _error(_confirm(lab, client, ["../../etc"]))["code"] == "validation_error"
