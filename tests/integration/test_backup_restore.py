"""Backup → wipe → restore of a single-node lab, and the backups a restore refuses."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeClock

from annotrain import cli
from annotrain.adapters.backup_targets import FolderBackupTarget, backup_target_for
from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.adapters.lab_lock import LabLock
from annotrain.adapters.sqlite import SqliteStore
from annotrain.adapters.sqlite_backup import SqliteLabDatabase
from annotrain.domain.records import JobKind, ModelEntry, Run, RunStatus
from annotrain.domain.training_plan import ModelKind
from annotrain.services import backups
from annotrain.services.access import Principal
from annotrain.services.demo import seed_demo_project

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample_project"
SINCE = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def _make_lab(data: Path) -> None:
    """A lab with every kind of thing a restore must bring back."""
    with SqliteStore(data / "annotrain.db") as store:
        project = seed_demo_project(store, Principal("admin", is_admin=True), FakeClock(), SAMPLE)
        assert project is not None
        store.create_run(Run("run-1", project.id, JobKind.TRAIN, RunStatus.SUCCEEDED, "admin",
                             SINCE))  # fmt: skip
        store.register_model(
            ModelEntry("notes-ner", 1, ModelKind.NER, ("Drug",), project.id, "run-1",
                       "models/notes-ner/1", "base", SINCE)
        )  # fmt: skip
    blobs = FilesystemBlobStore(data / "blobs")
    blobs.put("models/notes-ner/1/model.safetensors", io.BytesIO(bytes(range(256)) * 40))
    blobs.put("projects/1/tasks/1/page-1.png", io.BytesIO(b"\x89PNG fake"),
              content_type="image/png")  # fmt: skip
    (data / "logs").mkdir()
    (data / "logs" / "run-1.log").write_text("epoch 1 loss 0.5\n")


def _counts(data: Path) -> dict[str, int]:
    """What the lab holds, read through the store's ports."""
    with SqliteStore(data / "annotrain.db") as store:
        projects = store.list_projects().items
        tasks = [t for p in projects for t in store.iter_tasks(p.id)]
        completions = [c for t in tasks for c in t.completions]
        return {
            "projects": len(projects),
            "tasks": len(tasks),
            "completions": len(completions),
            "reviews": sum(len(c.reviews) for c in completions),
            "predictions": sum(len(t.predictions) for t in tasks),
            "runs": sum(len(store.list_runs(p.id).items) for p in projects),
            "models": len(store.list_models().items),
            "users": len(store.list_users().items),
        }


def _file_digests(data: Path) -> dict[str, str]:
    """SHA-256 of every file but the database, by relative path."""
    return {
        p.relative_to(data).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.rglob("*"))
        if p.is_file() and not p.name.startswith(("annotrain.db", ".annotrain"))
    }


def _dump(data: Path) -> list[str]:
    connection = sqlite3.connect(data / "annotrain.db")
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    data = tmp_path / "lab"
    data.mkdir()
    _make_lab(data)
    cli.main(["users", "create", "ann", "--data-dir", str(data)])
    return data


def _backup(data: Path, to: Path | str, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["backup", "--to", str(to), "--data-dir", str(data)]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_backup_wipe_restore_brings_everything_back(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counts, digests, dump = _counts(lab), _file_digests(lab), _dump(lab)
    assert counts["completions"] > 0
    assert counts["reviews"] > 0
    assert counts["predictions"] > 0
    location = _backup(lab, tmp_path / "backups", capsys)

    shutil.rmtree(lab)
    assert cli.main(["restore", "--from", location, "--data-dir", str(lab)]) == 0

    assert _counts(lab) == counts
    assert _file_digests(lab) == digests
    assert _dump(lab) == dump
    blobs = FilesystemBlobStore(lab / "blobs")
    assert blobs.head("projects/1/tasks/1/page-1.png").content_type == "image/png"
    assert not list(lab.glob(".restore-*"))  # the staging folder is gone


def test_the_manifest_lists_every_file_with_size_and_digest(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = Path(_backup(lab, tmp_path / "backups", capsys))
    manifest = json.loads((location / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    assert listed["annotrain.db"]["size"] == (location / "files" / "annotrain.db").stat().st_size
    log = listed["logs/run-1.log"]
    assert log["sha256"] == hashlib.sha256(b"epoch 1 loss 0.5\n").hexdigest()
    assert "blobs/models/notes-ner/1/model.safetensors" in listed
    assert manifest["counts"]["reviews"] == _counts(lab)["reviews"]
    assert not any(p.startswith(".annotrain") for p in listed)  # no lock files


def test_a_changed_file_is_refused_by_name_and_nothing_is_replaced(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = Path(_backup(lab, tmp_path / "backups", capsys))
    tampered = location / "files" / "blobs" / "models" / "notes-ner" / "1" / "model.safetensors"
    content = bytearray(tampered.read_bytes())
    content[100] ^= 1
    tampered.write_bytes(bytes(content))
    (lab / "logs" / "after-backup.log").write_text("kept\n")

    assert cli.main(["restore", "--from", str(location), "--data-dir", str(lab)]) == 2
    err = capsys.readouterr().err
    assert "files/blobs/models/notes-ner/1/model.safetensors" in err
    assert "SHA-256" in err
    assert (lab / "logs" / "after-backup.log").read_text() == "kept\n"
    assert not list(lab.glob(".restore-*"))


def test_a_missing_file_is_refused_by_name(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = Path(_backup(lab, tmp_path / "backups", capsys))
    (location / "files" / "logs" / "run-1.log").unlink()
    assert cli.main(["restore", "--from", str(location), "--data-dir", str(lab)]) == 2
    assert "files/logs/run-1.log: missing from the backup" in capsys.readouterr().err


def test_a_backup_without_manifest_is_partial_and_refused(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = Path(_backup(lab, tmp_path / "backups", capsys))
    (location / "manifest.json").unlink()
    assert cli.main(["restore", "--from", str(location), "--data-dir", str(lab)]) == 2
    assert "partial" in capsys.readouterr().err
    listed = backups.list_backups(FolderBackupTarget(tmp_path / "backups"))
    assert [b.complete for b in listed] == [False]


def test_a_manifest_that_leads_outside_the_lab_is_refused(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = Path(_backup(lab, tmp_path / "backups", capsys))
    manifest = json.loads((location / "manifest.json").read_text())
    manifest["files"][1]["path"] = "../escaped"
    (location / "manifest.json").write_text(json.dumps(manifest))
    assert cli.main(["restore", "--from", str(location), "--data-dir", str(lab)]) == 2
    assert "not a valid backup manifest" in capsys.readouterr().err
    assert not (lab.parent / "escaped").exists()


def test_restore_refuses_while_the_server_uses_the_lab(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    location = _backup(lab, tmp_path / "backups", capsys)
    with LabLock(lab).shared("serve"):  # what `annotrain serve` holds while it runs
        assert cli.main(["restore", "--from", location, "--data-dir", str(lab)]) == 2
    assert "systemctl stop annotrain-api" in capsys.readouterr().err
    assert cli.main(["restore", "--from", location, "--data-dir", str(lab)]) == 0


def test_keep_prunes_all_but_the_newest_complete_backups(lab: Path, tmp_path: Path) -> None:
    target = FolderBackupTarget(tmp_path / "backups")
    database = SqliteLabDatabase(lab / "annotrain.db")
    clock = FakeClock()
    names = []
    for _ in range(3):
        manifest = backups.create_backup(data_dir=lab, database=database, target=target,
                                         clock=clock)  # fmt: skip
        names.append(manifest.name)
        clock.advance(86400)
    (tmp_path / "backups" / "annotrain-20200101T000000Z" / "files").mkdir(parents=True)
    deleted = backups.prune_backups(target, keep=2)
    assert deleted == sorted([names[0], "annotrain-20200101T000000Z"])
    assert target.names() == names[1:]


def test_a_backup_folder_inside_the_data_folder_is_left_out(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Path(_backup(lab, lab / "backups", capsys))
    second = Path(_backup(lab, lab / "backups", capsys))
    manifest = json.loads((second / "manifest.json").read_text())
    assert not any(f["path"].startswith("backups/") for f in manifest["files"])
    assert first != second


def test_backup_to_s3_and_restore_from_it(
    aws: None, lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket="lab-backups")
    counts, digests = _counts(lab), _file_digests(lab)
    location = _backup(lab, "s3://lab-backups/nightly", capsys)
    assert location.startswith("s3://lab-backups/nightly/annotrain-")
    target: Any = backup_target_for("s3://lab-backups/nightly")
    assert [b.complete for b in backups.list_backups(target)] == [True]
    objects = boto3.client("s3").list_objects_v2(Bucket="lab-backups")["Contents"]
    head = boto3.client("s3").head_object(Bucket="lab-backups", Key=objects[0]["Key"])
    assert head["ServerSideEncryption"] == "AES256"

    shutil.rmtree(lab)
    assert cli.main(["restore", "--from", location, "--data-dir", str(lab)]) == 0
    assert _counts(lab) == counts
    assert _file_digests(lab) == digests

    target.delete_backup(location.rsplit("/", 1)[1])
    assert target.names() == []


def test_s3_backup_with_a_changed_object_is_refused(
    aws: None, lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lab-backups")
    location = _backup(lab, "s3://lab-backups", capsys)
    name = location.rsplit("/", 1)[1]
    s3.put_object(Bucket="lab-backups", Key=f"{name}/files/logs/run-1.log", Body=b"changed\n")
    assert cli.main(["restore", "--from", location, "--data-dir", str(lab)]) == 2
    assert f"s3://lab-backups/{name}/files/logs/run-1.log" in capsys.readouterr().err
