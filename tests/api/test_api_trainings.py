"""Trainings through the API: start (checked first, then written), read, list, compare,
logs, cancel; deploy and pre-annotation refusals; the project language."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_CONFIG, Lab
from fake_runner import RecordingRunner

from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.domain.config import parse_labeling_config
from annotrain.domain.labelstudio import load_tasks
from annotrain.domain.records import JobKind, RunStatus
from annotrain.domain.snapshot import Part, TrainingSnapshot
from annotrain.ports import JobSpec

SAMPLE_TASKS = Path(__file__).resolve().parents[2] / "examples" / "sample_project" / "tasks.json"


@pytest.fixture
def trainable(lab: Lab) -> Lab:
    """The lab with the sample's six completed tasks (and one incomplete) and a runner."""
    schema = parse_labeling_config(SAMPLE_CONFIG)
    lab.store.add_tasks(lab.project_id, load_tasks(SAMPLE_TASKS.read_bytes(), schema))
    lab.client.app.state.runner = RecordingRunner(lab.store)  # type: ignore[attr-defined]
    return lab


def runner_of(lab: Lab) -> RecordingRunner:
    runner: RecordingRunner = lab.client.app.state.runner  # type: ignore[attr-defined]
    return runner


def blobs_of(lab: Lab) -> FilesystemBlobStore:
    return FilesystemBlobStore(lab.tmp_path / "blobs")


def start(lab: Lab, body: dict[str, Any] | None = None, role: str = "owner") -> Any:
    return lab.client.post(
        f"/api/v1/projects/{lab.project_id}/trainings",
        json={"params": {"epochs": 2}} if body is None else body,
        headers=lab.auth(role),
    )


def run_ids(lab: Lab) -> list[str]:
    return [r.id for r in lab.store.list_runs(lab.project_id).items]


def test_starting_a_training_writes_the_snapshot_then_queues_and_submits_the_run(
    trainable: Lab,
) -> None:
    response = start(trainable, {"params": {"epochs": 2, "seed": 7}, "deploy": False})

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["source"] == "manual"
    assert body["data"]["train"] + body["data"]["test"] == 6
    assert body["data"]["skipped"] == {"no submitted completion": 2}
    run = trainable.store.get_run(body["id"])
    assert (run.kind, run.status, run.use_gpu) == (JobKind.TRAIN, RunStatus.QUEUED, False)
    assert runner_of(trainable).submitted == [JobSpec(JobKind.TRAIN, run.id, False)]
    assert run.dataset_key == f"runs/{run.id}/snapshot.json"
    with blobs_of(trainable).open(run.dataset_key) as stream:
        snapshot = TrainingSnapshot.from_bytes(stream.read())
    assert snapshot.run_id == run.id
    assert snapshot.params.epochs == 2
    assert snapshot.params.seed == 7
    assert snapshot.base_model == "minilm-l6-en"
    assert [m.name for m in snapshot.models] == ["ner", "assertion", "urgency"]
    assert len(snapshot.part(Part.TEST)) == body["data"]["test"] >= 1
    assert run.params["data"]["fingerprint"] == snapshot.fingerprint
    assert run.params["deploy"] is False


def test_types_narrow_the_models_and_a_type_the_config_lacks_is_refused_naming_its_models(
    trainable: Lab,
) -> None:
    response = start(trainable, {"types": ["classification"], "classifiers": ["topics"]})
    assert response.status_code == 202, response.text
    assert [m["name"] for m in response.json()["params"]["models"]] == ["topics"]

    ner_only = (
        '<View><Text name="text" value="$text"/>'
        '<Labels name="label" toName="text"><Label value="Medication"/></Labels></View>'
    )
    project = trainable.store.get_project(trainable.project_id)
    trainable.store.update_project(replace(project, label_config=ner_only))
    refused = start(trainable, {"types": ["classification"]})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "types"
    assert "implies: ner" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"params": {"epochs": 0}}, "params.epochs"),
        ({"params": {"learning_rate": 5.0}}, "params.learning_rate"),
        ({"types": ["visual_ner"]}, "types"),  # the notes config implies no Visual NER
        ({"types": ["ocr"]}, "types"),
        ({"split": {"validation_share": 1.5}}, "split.validation_share"),
        ({"split": {"validation_share": 0.2, "train_tag": "Train", "test_tag": "Test"}}, "split"),
        ({"split": {"train_tag": "Train"}}, "split"),
        ({"base_model": "bert-huge"}, "base_model"),
        ({"classifiers": ["nope"]}, "classifiers"),
    ],
)
def test_a_request_that_does_not_fit_is_refused_by_field_and_nothing_is_written(
    trainable: Lab, body: dict[str, Any], field: str
) -> None:
    response = start(trainable, body)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert run_ids(trainable) == []
    assert runner_of(trainable).submitted == []
    assert blob_files(trainable) == []


def test_an_empty_train_part_is_refused_with_the_count_of_tasks_skipped_by_reason(
    trainable: Lab,
) -> None:
    response = start(trainable, {"tags": ["nowhere"]})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "data"
    assert "8 task(s) not tagged with a requested tag" in error["message"]
    assert run_ids(trainable) == []


def test_a_tag_split_trains_on_train_tags_and_counts_tasks_with_neither(trainable: Lab) -> None:
    response = start(trainable, {"split": {"train_tag": "train", "test_tag": "TEST"}})
    assert response.status_code == 202, response.text
    assert response.json()["data"] | {"skipped": None} == {
        "train": 3, "test": 2, "unassigned": 1, "skipped": None,
        "fingerprint": response.json()["data"]["fingerprint"],
    }  # fmt: skip

    refused = start(trainable, {"split": {"train_tag": "Gold", "test_tag": "Test"}})
    assert refused.status_code == 422
    assert "4 task(s) tagged neither 'Gold' nor 'Test'" in refused.json()["error"]["message"]


def test_asking_for_the_gpu_where_there_is_none_is_refused_clearly(
    trainable: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainable.client.app.state.gpu_probe = lambda: False  # type: ignore[attr-defined]

    response = start(trainable, {"use_gpu": True})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "use_gpu"
    assert "no GPU" in error["message"]
    assert run_ids(trainable) == []


def test_a_submit_that_fails_leaves_the_run_failed_with_the_reason_not_queued(
    trainable: Lab,
) -> None:
    runner_of(trainable).fail = RuntimeError("the queue is gone")

    response = start(trainable)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "job_submit_failed"
    (run_id,) = run_ids(trainable)
    run = trainable.store.get_run(run_id)
    assert run.status is RunStatus.FAILED
    assert run.failure_reason == "the job could not be submitted: the queue is gone"


def test_without_a_job_runner_nothing_is_written(trainable: Lab) -> None:
    trainable.client.app.state.runner = None  # type: ignore[attr-defined]

    response = start(trainable)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "job_runner_unavailable"
    assert run_ids(trainable) == []
    assert blob_files(trainable) == []


def test_trainings_are_listed_newest_first_and_paged(trainable: Lab) -> None:
    first = start(trainable).json()["id"]
    trainable.client.app.state.clock.advance(60)  # type: ignore[attr-defined]
    second = start(trainable).json()["id"]
    url = f"/api/v1/projects/{trainable.project_id}/trainings"

    page = trainable.client.get(url, headers=trainable.auth("annotator")).json()
    assert [t["id"] for t in page["items"]] == [second, first]
    assert page["total"] == 2
    one = trainable.client.get(url + "?page=2&page_size=1", headers=trainable.auth("owner"))
    assert [t["id"] for t in one.json()["items"]] == [first]


def test_a_training_reads_with_its_status_progress_and_data(trainable: Lab) -> None:
    run_id = start(trainable).json()["id"]

    body = trainable.client.get(
        f"/api/v1/trainings/{run_id}", headers=trainable.auth("reviewer")
    ).json()

    assert body["status"] == "queued"
    assert body["progress"] == 0
    assert body["failure_reason"] is None
    assert body["params"]["training"]["epochs"] == 2
    assert body["data"]["skipped"] == {"no submitted completion": 2}
    assert body["created_by"] == "owner"


def test_two_trainings_compare_side_by_side(trainable: Lab) -> None:
    a = start(trainable, {"params": {"epochs": 2}}).json()["id"]
    b = start(trainable, {"params": {"epochs": 5}, "types": ["ner"]}).json()["id"]
    for run_id, f1 in ((a, 0.5), (b, 0.75)):
        run = trainable.store.get_run(run_id)
        metrics = {
            "models": {
                "project1-ner": {"micro": {"f1": f1}, "per_label": {"Medication": {"f1": f1}}}
            }
        }
        trainable.store.update_run(replace(run, metrics=metrics))  # fmt: skip

    response = trainable.client.get(
        f"/api/v1/trainings/compare?ids={a},{b}", headers=trainable.auth("annotator")
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ids"] == [a, b]
    assert body["params"]["training.epochs"] == [2, 5]
    assert "training.seed" not in body["params"]
    assert body["metrics"]["project1-ner"]["per_label"]["Medication"] == [
        {"f1": 0.5},
        {"f1": 0.75},
    ]
    assert (
        trainable.client.get(
            f"/api/v1/trainings/compare?ids={a}", headers=trainable.auth("owner")
        ).json()["error"]["field"]
        == "ids"
    )


def test_the_log_tails_and_downloads(trainable: Lab) -> None:
    run_id = start(trainable).json()["id"]
    url = f"/api/v1/trainings/{run_id}/logs"
    assert trainable.client.get(url, headers=trainable.auth("owner")).text == ""
    log = "".join(f"line {n}\n" for n in range(10))
    blobs_of(trainable).put(f"runs/{run_id}/log.txt", io.BytesIO(log.encode()))

    tail = trainable.client.get(url + "?tail=2", headers=trainable.auth("annotator"))
    assert tail.text == "line 8\nline 9\n"
    assert tail.headers["content-type"].startswith("text/plain")
    download = trainable.client.get(url + "?download=true", headers=trainable.auth("owner"))
    assert download.text == log
    assert download.headers["content-disposition"] == (
        f'attachment; filename="training-{run_id}.log"'
    )


def test_the_report_is_a_zip_of_the_training_as_read_and_its_log(trainable: Lab) -> None:
    run_id = start(trainable).json()["id"]
    blobs_of(trainable).put(f"runs/{run_id}/log.txt", io.BytesIO(b"epoch 1\n"))
    url = f"/api/v1/trainings/{run_id}/report"

    response = trainable.client.get(url, headers=trainable.auth("annotator"))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="training-{run_id}-report.zip"'
    )
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        # Queued: nothing registered yet, so no model folder.
        assert sorted(archive.namelist()) == ["training.json", "training.log"]
        summary = json.loads(archive.read("training.json"))
        assert archive.read("training.log") == b"epoch 1\n"
    read = trainable.client.get(f"/api/v1/trainings/{run_id}", headers=trainable.auth("owner"))
    assert summary == read.json()
    assert trainable.client.get(url).status_code == 401
    # Someone outside the project learns nothing, not even that the training exists.
    assert trainable.client.get(url, headers=trainable.auth("outsider")).status_code == 404


def test_cancelling_is_idempotent_and_a_finished_run_answers_409(trainable: Lab) -> None:
    run_id = start(trainable).json()["id"]
    url = f"/api/v1/trainings/{run_id}/cancel"

    first = trainable.client.post(url, headers=trainable.auth("manager"))
    again = trainable.client.post(url, headers=trainable.auth("owner"))

    assert (first.status_code, first.json()["status"]) == (202, "cancelled")
    assert (again.status_code, again.json()["status"]) == (202, "cancelled")
    assert runner_of(trainable).cancelled == [run_id]
    assert trainable.store.get_run(run_id).failure_reason == "cancelled by user"

    done = start(trainable).json()["id"]
    run = trainable.store.get_run(done)
    trainable.store.update_run(replace(run, status=RunStatus.SUCCEEDED))
    refused = trainable.client.post(
        f"/api/v1/trainings/{done}/cancel", headers=trainable.auth("owner")
    )
    assert refused.status_code == 409
    assert "succeeded" in refused.json()["error"]["message"]


def test_cancelling_without_a_runner_marks_the_run_cancelled(trainable: Lab) -> None:
    run_id = start(trainable).json()["id"]
    trainable.client.app.state.runner = None  # type: ignore[attr-defined]

    response = trainable.client.post(
        f"/api/v1/trainings/{run_id}/cancel", headers=trainable.auth("owner")
    )

    assert response.json()["status"] == "cancelled"


def test_pre_annotating_with_no_model_deployed_is_refused_clearly(trainable: Lab) -> None:
    response = trainable.client.post(
        f"/api/v1/projects/{trainable.project_id}/preannotations",
        json={},
        headers=trainable.auth("owner"),
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "models"
    assert "no model is deployed" in error["message"]


def test_a_project_keeps_its_language_and_refuses_one_the_lab_does_not_know(lab: Lab) -> None:
    url = f"/api/v1/projects/{lab.project_id}"
    assert lab.client.get(url, headers=lab.auth("owner")).json()["language"] == "en"

    refused = lab.client.patch(url, json={"language": "xx"}, headers=lab.auth("owner"))
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "language"
    changed = lab.client.patch(url, json={"language": "de"}, headers=lab.auth("owner"))
    assert changed.json()["language"] == "de"
    created = lab.client.post(
        "/api/v1/projects",
        json={"name": "Notizen", "labeling_config": SAMPLE_CONFIG, "language": "da"},
        headers=lab.auth("owner"),
    )
    assert created.json()["language"] == "da"


def test_a_project_language_picks_the_encoder_and_an_english_only_one_is_refused(
    trainable: Lab,
) -> None:
    trainable.client.patch(
        f"/api/v1/projects/{trainable.project_id}",
        json={"language": "ro"},
        headers=trainable.auth("owner"),
    )

    refused = start(trainable, {"base_model": "minilm-l6-en"})
    started = start(trainable)

    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["field"] == "base_model"
    assert "not 'ro'" in error["message"]
    assert started.status_code == 202, started.text
    training = trainable.client.get(
        f"/api/v1/trainings/{started.json()['id']}", headers=trainable.auth("owner")
    ).json()
    assert training["params"]["base_model"] == "e5-small-multilingual"


def test_turning_active_learning_on_keeps_the_request_on_the_project(trainable: Lab) -> None:
    body = {"params": {"epochs": 3}, "active_learning": {"enabled": True, "threshold": 50}}

    assert start(trainable, body).status_code == 202

    state = trainable.store.get_project(trainable.project_id).settings["active_learning"]
    assert (state["enabled"], state["threshold"], state["submitted_since"]) == (True, 50, 0)
    assert state["request"]["params"] == {"epochs": 3}
    assert json.dumps(state)  # JSON all the way down


def blob_files(lab: Lab) -> list[Path]:
    """Every file the lab's blob folder holds (the folder itself may exist, empty)."""
    return sorted(p for p in (lab.tmp_path / "blobs").rglob("*") if p.is_file())
