"""A project exported from one lab and imported into another, SQLite and DynamoDB alike."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from conftest import _dynamodb_store
from fakes import FakeClock

from annotrain import cli
from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.errors import InvalidRequestError, TaskImportError
from annotrain.domain.labelstudio import task_to_json
from annotrain.services.access import Principal
from annotrain.services.demo import seed_demo_project
from annotrain.services.project_transfer import export_project, import_project

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample_project"


def _seeded(store: Any) -> int:
    project = seed_demo_project(store, Principal("admin", is_admin=True), FakeClock(), SAMPLE)
    assert project is not None
    return project.id


def _comparable(store: Any, project_id: int) -> list[dict[str, Any]]:
    """The project's tasks as Label Studio JSON, without what a lab assigns (ids, times)."""
    tasks = []
    for task in store.iter_tasks(project_id):
        document = task_to_json(task)
        document.pop("id", None)
        for key in ("annotations", "drafts", "predictions"):
            for entry in document.get(key, []):
                entry.pop("id", None)
        tasks.append(document)
    return tasks


def test_export_then_import_brings_back_every_task_completion_review_and_prediction(
    store: Any,
) -> None:
    source = _seeded(store)
    out = io.StringIO()
    exported = export_project(store, source, out)
    assert exported.completions > 0
    assert exported.reviews > 0
    assert exported.predictions > 0

    imported = import_project(store, io.StringIO(out.getvalue()), FakeClock(),
                              created_by="admin", name="copy")  # fmt: skip
    assert imported.project_id != source
    assert (imported.tasks, imported.completions, imported.reviews, imported.predictions) == (
        exported.tasks, exported.completions, exported.reviews, exported.predictions
    )  # fmt: skip
    assert _comparable(store, imported.project_id) == _comparable(store, source)
    copy = store.get_project(imported.project_id)
    assert copy.name == "copy"
    assert copy.label_config == store.get_project(source).label_config


def test_a_task_that_does_not_fit_the_config_imports_nothing(store: Any) -> None:
    out = io.StringIO()
    export_project(store, _seeded(store), out)
    lines = out.getvalue().splitlines()
    lines.append('{"data": {"text": "x"}, "annotations": [{"result": [{"from_name": "nope", '
                 '"to_name": "text", "type": "labels", "value": {"start": 0, "end": 1, '
                 '"labels": ["X"]}}]}]}')  # fmt: skip
    before = len(store.list_projects().items)
    with pytest.raises(TaskImportError):
        import_project(store, lines, FakeClock(), created_by="admin")
    assert len(store.list_projects().items) == before


def test_a_file_that_is_no_export_is_refused_naming_the_line(store: Any) -> None:
    with pytest.raises(InvalidRequestError, match="line 1"):
        import_project(store, ['{"tasks": []}'], FakeClock(), created_by="admin")


def test_a_project_moves_from_a_single_node_to_a_serverless_lab(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "node"
    with SqliteStore(_make(data) / "annotrain.db") as node:
        source = _seeded(node)
        expected = _comparable(node, source)
    export = tmp_path / "project.jsonl"
    assert cli.main(["project", "export", str(source), "--to", str(export),
                     "--data-dir", str(data)]) == 0  # fmt: skip
    serverless = _dynamodb_store(tmp_path)
    with export.open() as lines:
        imported = import_project(serverless, lines, FakeClock(), created_by="root")
    assert _comparable(serverless, imported.project_id) == expected

    # …and back, through the CLI, into a fresh single node.
    back = tmp_path / "back.jsonl"
    with back.open("w") as out:
        export_project(serverless, imported.project_id, out)
    fresh = tmp_path / "fresh"
    assert cli.main(["project", "import", str(back), "--data-dir", str(fresh)]) == 0
    new_id = int(capsys.readouterr().out.strip().splitlines()[-1])
    with SqliteStore(fresh / "annotrain.db") as node:
        assert _comparable(node, new_id) == expected


def _make(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder
