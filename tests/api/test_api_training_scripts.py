"""``/projects/{id}/training-script``: off by default, checked on upload, read back, deleted."""

from __future__ import annotations

from pathlib import Path

from conftest import Lab, make_settings
from fastapi.testclient import TestClient

from annotrain.api import create_app

PATH = "/api/v1/projects/{pid}/training-script"


def test_uploads_are_refused_while_the_lab_has_custom_scripts_off(lab: Lab, tmp_path: Path) -> None:
    app = create_app(settings=make_settings(tmp_path / "off"), store=lab.store)
    with TestClient(app) as client:
        response = client.put(
            PATH.format(pid=lab.project_id),
            files=[("file", ("train.py", b"print(1)\n", "text/x-python"))],
            headers=lab.auth("owner"),
        )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "custom_scripts_disabled"
    assert "ANNOTRAIN_ALLOW_CUSTOM_SCRIPTS=true" in error["message"]


def test_a_script_uploads_reads_back_and_deletes(lab: Lab) -> None:
    source = b"import sys\nprint(sys.argv)\n"
    put = lab.client.put(
        PATH.format(pid=lab.project_id),
        files=[("file", ("train.py", source, "text/x-python"))],
        headers=lab.auth("owner"),
    )
    assert put.status_code == 200, put.text
    read = lab.client.get(PATH.format(pid=lab.project_id), headers=lab.auth("manager"))
    assert read.json()["script"] == source.decode()
    assert read.json()["size"] == len(source)
    assert put.json()["sha256"] == read.json()["sha256"]
    gone = lab.client.delete(PATH.format(pid=lab.project_id), headers=lab.auth("owner"))
    assert gone.status_code == 204
    missing = lab.client.get(PATH.format(pid=lab.project_id), headers=lab.auth("owner"))
    assert missing.status_code == 404


def test_a_script_that_is_not_python_is_refused_naming_the_line(lab: Lab) -> None:
    response = lab.client.put(
        PATH.format(pid=lab.project_id),
        files=[("file", ("train.py", b"x = 1\ndef broken(:\n", "text/x-python"))],
        headers=lab.auth("owner"),
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", "file")
    assert "line 2" in error["message"]


def test_a_script_over_the_limit_is_refused(lab: Lab, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "small", allow_custom_scripts=True,
                             max_training_script_bytes=32)  # fmt: skip
    with TestClient(create_app(settings=settings, store=lab.store)) as client:
        response = client.put(
            PATH.format(pid=lab.project_id),
            files=[("file", ("train.py", b"# " + b"x" * 64 + b"\n", "text/x-python"))],
            headers=lab.auth("owner"),
        )
    assert response.status_code == 422
    assert "the limit is 32 bytes" in response.json()["error"]["message"]
