"""Models through the API: listing, benchmark, zip download, deploy; pre-annotation runs."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import pytest
from conftest import Lab
from fake_runner import RecordingRunner

from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.domain.records import JobKind, ModelEntry, RunStatus
from annotrain.domain.tasks import Prediction, ResultItem
from annotrain.domain.training_plan import ModelKind

SINCE = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
METRICS = {
    "per_label": {"Medication": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 4}},
    "micro": {"precision": 0.9, "recall": 0.8, "f1": 0.85},
    "macro": {"precision": 0.9, "recall": 0.8, "f1": 0.85},
    "confusion_matrix": {"labels": ["Medication", "O"], "matrix": [[4, 1], [0, 9]]},
}


@pytest.fixture
def models(lab: Lab) -> Lab:
    """Two versions of a NER model of the lab's project, with files, and a runner."""
    blobs = FilesystemBlobStore(lab.tmp_path / "blobs")
    for version in (1, 2):
        key = f"models/project1-ner/run-{version}"
        lab.store.register_model(
            ModelEntry("project1-ner", 0, ModelKind.NER, ("Medication",), lab.project_id,
                       f"run-{version}", key, "minilm-l6-en", SINCE, METRICS)
        )  # fmt: skip
        blobs.put(f"{key}/config.json", io.BytesIO(b'{"model_type": "bert"}'))
        blobs.put(f"{key}/plots/curve.png", io.BytesIO(b"\x89PNG" * 1000))
    lab.client.app.state.runner = RecordingRunner(lab.store)  # type: ignore[attr-defined]
    return lab


def test_models_list_with_their_latest_version_and_score(models: Lab) -> None:
    body = models.client.get("/api/v1/models", headers=models.auth("annotator")).json()

    (item,) = body["items"]
    assert (item["name"], item["latest_version"], item["versions"]) == ("project1-ner", 2, 2)
    assert item["micro_f1"] == 0.85
    assert models.client.get("/api/v1/models", headers=models.auth("outsider")).json() == {
        "items": []
    }
    other = models.client.get(
        f"/api/v1/models?project_id={models.project_id}", headers=models.auth("outsider")
    )
    assert other.status_code == 404


def test_a_model_reads_with_each_versions_benchmark(models: Lab) -> None:
    body = models.client.get("/api/v1/models/project1-ner", headers=models.auth("reviewer")).json()

    assert [v["version"] for v in body["history"]] == [1, 2]
    assert body["history"][1]["metrics"]["confusion_matrix"]["matrix"] == [[4, 1], [0, 9]]
    assert body["history"][0]["metrics"]["per_label"]["Medication"]["f1"] == 0.85


def test_a_model_downloads_as_a_zip_of_its_folder(models: Lab) -> None:
    response = models.client.get(
        "/api/v1/models/project1-ner/download?version=1", headers=models.auth("manager")
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="project1-ner-v1.zip"' in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == [
        "project1-ner-v1/config.json", "project1-ner-v1/plots/curve.png",
    ]  # fmt: skip
    assert archive.read("project1-ner-v1/plots/curve.png") == b"\x89PNG" * 1000
    missing = models.client.get(
        "/api/v1/models/project1-ner/download?version=9", headers=models.auth("owner")
    )
    assert missing.status_code == 404


def test_deploying_points_the_labels_at_the_model_and_records_it(models: Lab) -> None:
    response = models.client.post(
        f"/api/v1/projects/{models.project_id}/models/project1-ner/deploy",
        json={"version": 1},
        headers=models.auth("manager"),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["version"], body["labels"]) == (1, ["Medication"])
    config = models.client.get(
        f"/api/v1/projects/{models.project_id}/config", headers=models.auth("owner")
    ).json()
    assert (
        'value="Medication" background="#17bebb" model="project1-ner"'
        in (config["labeling_config"])
    )
    assert config["models"][0]["pretrained"] == {"project1-ner": ["Medication"]}
    assert models.store.get_model("project1-ner", 1).deployed_in == (models.project_id,)
    assert models.store.get_model("project1-ner", 2).deployed_in == ()


def test_a_pre_annotation_starts_reads_and_its_predictions_show_on_the_task(
    models: Lab,
) -> None:
    models.client.post(
        f"/api/v1/projects/{models.project_id}/models/project1-ner/deploy",
        headers=models.auth("owner"),
    )
    started = models.client.post(
        f"/api/v1/projects/{models.project_id}/preannotations",
        json={"task_ids": [models.task_id]},
        headers=models.auth("owner"),
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    run = models.store.get_run(run_id)
    assert (run.kind, run.status) == (JobKind.PREANNOTATE, RunStatus.QUEUED)
    assert run.params["models"][0]["version"] == 2
    # What the job stores (tests/integration/test_train_job.py runs the job itself).
    item = ResultItem(
        "r1",
        "labels",
        "label",
        "text",
        {"start": 0, "end": 7, "text": "Aspirin", "labels": ["Medication"]},
        0.9,
    )
    models.store.add_predictions(
        models.project_id, [(models.task_id, Prediction(None, (item,), "project1-ner v2", 0.9))]
    )  # fmt: skip

    read = models.client.get(f"/api/v1/preannotations/{run_id}", headers=models.auth("annotator"))
    assert read.json()["status"] == "queued"
    assert read.json()["tasks"] == 1
    task = models.client.get(
        f"/api/v1/projects/{models.project_id}/tasks/{models.task_id}",
        headers=models.auth("annotator"),
    ).json()
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == "project1-ner v2"
    assert prediction["result"][0]["value"]["labels"] == ["Medication"]
    assert prediction["result"][0]["score"] == 0.9


def test_pre_annotating_a_task_of_another_project_is_refused(models: Lab) -> None:
    response = models.client.post(
        f"/api/v1/projects/{models.project_id}/preannotations",
        json={"task_ids": [999], "models": ["project1-ner"]},
        headers=models.auth("owner"),
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "task_ids"
