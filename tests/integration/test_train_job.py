"""The training and pre-annotation jobs end to end, in process: SQLite store, blob folder,
the service starting the run, ``run_job`` running the glue with a fake trainer that
writes real folders, then the registry, the blobs, the config and the API reading it."""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_ml import FakeLoader, FakeTrainer, TooFewExamplesError
from fake_runner import RecordingRunner
from fakes import FakeClock
from licensing_kit import single_node_licensing

from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.config import parse_labeling_config
from annotrain.domain.errors import CustomScriptsDisabledError
from annotrain.domain.labelstudio import load_tasks
from annotrain.domain.records import Project, RunStatus
from annotrain.domain.tasks import Member, Role
from annotrain.domain.training_plan import ModelKind
from annotrain.services.access import Principal
from annotrain.services.active_learning import ActiveLearningTrigger, configure
from annotrain.services.events import CompletionSubmitted
from annotrain.services.preannotations import start_preannotation
from annotrain.services.training_scripts import put_training_script
from annotrain.services.trainings import (
    Source,
    TrainingRequest,
    start_training,
    submit_training,
    training_report,
)
from batch_jobs.preannotate import preannotate
from batch_jobs.runtime import EXIT_SUCCEEDED, run_job
from batch_jobs.train import train

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample_project"
OWNER = Principal("owner")


@dataclass
class Lab:
    store: SqliteStore
    blobs: FilesystemBlobStore
    runner: RecordingRunner
    clock: FakeClock
    project: Project
    tmp_path: Path

    def start(self, **request: Any) -> str:
        run = start_training(
            self.store, self.blobs, self.runner, OWNER, self.clock, self.project.id,
            TrainingRequest(**request), gpu_available=False, licensing=single_node_licensing(),
        )  # fmt: skip
        return run.id

    def run(self, work: Any, run_id: str) -> int:
        return run_job(
            work,
            ["--run-id", run_id],
            environ={},
            store_opener=lambda _: self.store,
            blob_opener=lambda _: self.blobs,
            clock=self.clock,
            heartbeat_interval=0.05,
        )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    clock = FakeClock()
    with SqliteStore(tmp_path / "lab.db") as store:
        config = (SAMPLE / "config.xml").read_text()
        project = store.create_project(Project(0, "Notes", config, "owner", clock.now()))
        store.put_member(project.id, Member("owner", Role.OWNER))
        tasks = load_tasks((SAMPLE / "tasks.json").read_bytes(), parse_labeling_config(config))
        store.add_tasks(project.id, tasks)
        blobs = FilesystemBlobStore(tmp_path / "blobs")
        yield Lab(store, blobs, RecordingRunner(store), clock, project, tmp_path)


def trained(lab: Lab, trainer: FakeTrainer, **request: Any) -> str:
    run_id = lab.start(**request)
    work = functools.partial(train, trainer=lambda: trainer, loader=FakeLoader)
    lab.run(work, run_id)
    return run_id


def blob_text(lab: Lab, key: str) -> str:
    with lab.blobs.open(key) as stream:
        return stream.read().decode()


def test_a_training_registers_uploads_scores_and_deploys_its_models(lab: Lab) -> None:
    trainer = FakeTrainer(f1=0.8)
    run_id = lab.start()
    work = functools.partial(train, trainer=lambda: trainer, loader=FakeLoader)

    assert lab.run(work, run_id) == EXIT_SUCCEEDED

    run = lab.store.get_run(run_id)
    assert (run.status, run.progress, run.failure_reason) == (RunStatus.SUCCEEDED, 100, None)
    assert trainer.calls[0]["device"] == "cpu"
    names = [m["name"] for m in run.metrics["registered"]]
    assert names == ["project1-ner", "project1-assertion", "project1-urgency"]
    entry = lab.store.get_model("project1-ner")
    assert (entry.version, entry.run_id, entry.base_model) == (1, run_id, "minilm-l6-en")
    assert entry.artifact_key == f"models/project1-ner/{run_id}"
    assert entry.metrics["micro"]["f1"] == 0.8
    assert blob_text(lab, f"{entry.artifact_key}/annotrain.json")
    assert lab.blobs.head(f"{entry.artifact_key}/plots/ner-curve.png").size > 0
    assert run.metrics["models"]["project1-ner"]["per_label"]["Medication"]["support"] == 3
    assert [h["model"] for h in run.history] == names
    # Deployed: the config names the models on their labels, and the registry knows it.
    config = lab.store.get_project(lab.project.id).label_config
    assert '<Label value="Medication" background="#17bebb" model="project1-ner"/>' in config
    assert '<Label value="Absent" assertion="true" background="#ffc914" ' \
           'model="project1-assertion"/>' in config  # fmt: skip
    assert '<Choice value="Urgent" model="project1-urgency"/>' in config
    assert '<Choice value="Cardiology"/>' in config
    assert lab.store.get_model("project1-ner").deployed_in == (lab.project.id,)
    assert all(d["deployed"] for d in run.metrics["deploy"])
    # The log: parameters, data counts, the trainer's lines, the scores.
    log = blob_text(lab, run.logs_key or "")
    assert "parameters: {'epochs': 10" in log
    assert "data: " in log
    assert " train, " in log
    assert "fake trainer: 6 examples" in log
    assert "project1-ner v1 deployed" in log


def test_a_finished_trainings_report_holds_its_log_summary_scores_and_plots(lab: Lab) -> None:
    run_id = trained(lab, FakeTrainer(f1=0.8))
    report = training_report(
        lab.store, lab.blobs, OWNER, run_id, summarize=lambda run: run.id.encode()
    )

    with zipfile.ZipFile(io.BytesIO(b"".join(report))) as archive:
        names = set(archive.namelist())
        assert archive.read("training.json") == run_id.encode()
        assert "project1-ner v1 deployed" in archive.read("training.log").decode()
        description = json.loads(archive.read("project1-ner-v1/annotrain.json"))
        png = archive.read("project1-ner-v1/plots/ner-curve.png")
    assert "Medication" in description["labels"]
    assert png.startswith(b"\x89PNG")
    # Every registered model's scores and plots; never its weights or tokenizer.
    for name in ("project1-ner", "project1-assertion", "project1-urgency"):
        assert f"{name}-v1/annotrain.json" in names
    assert all(n.endswith((".json", ".png", ".log")) for n in names), names


def test_a_second_training_is_the_next_version_and_takes_the_deployment_over(lab: Lab) -> None:
    trained(lab, FakeTrainer())
    second = trained(lab, FakeTrainer(), types=(next(iter(_ner())),))

    latest = lab.store.get_model("project1-ner")
    assert (latest.version, latest.run_id) == (2, second)
    assert latest.deployed_in == (lab.project.id,)
    assert lab.store.get_model("project1-ner", 1).deployed_in == ()


def _ner() -> Any:
    from annotrain.domain.training_plan import ModelKind

    return [ModelKind.NER]


def test_a_training_not_asked_to_deploy_leaves_the_config_alone(lab: Lab) -> None:
    before = lab.store.get_project(lab.project.id).label_config
    run_id = trained(lab, FakeTrainer(), deploy=False)

    assert lab.store.get_project(lab.project.id).label_config == before
    assert lab.store.get_model("project1-ner").deployed_in == ()
    decisions = lab.store.get_run(run_id).metrics["deploy"]
    assert {d["why"] for d in decisions} == {"deploy was not asked"}


def test_the_trainers_error_is_the_failure_reason_and_nothing_is_registered(lab: Lab) -> None:
    reason = "too few examples: Medication has 2, needs 40 (38 more)"
    run_id = trained(lab, FakeTrainer(fail=TooFewExamplesError(reason)))

    run = lab.store.get_run(run_id)
    assert (run.status, run.failure_reason) == (RunStatus.FAILED, reason)
    assert lab.store.list_models().items == []
    assert "failed: too few examples" in blob_text(lab, run.logs_key or "")


def test_a_training_cancelled_while_it_runs_registers_nothing_and_stays_cancelled(
    lab: Lab,
) -> None:
    run_id = lab.start()
    stop = threading.Event()

    def cancel_now() -> None:
        lab.runner.cancel(run_id)
        stop.set()

    trainer = FakeTrainer(stop_after_progress=cancel_now)

    def work(context: Any) -> None:
        # The heartbeat sets stop_requested once it sees the run ended; wait for it.
        original = context.stop_requested.is_set

        def should_stop() -> bool:
            if stop.is_set():
                context.stop_requested.wait(5)
            return bool(original())

        context.stop_requested.is_set = should_stop
        train(context, trainer=lambda: trainer)

    lab.run(work, run_id)

    run = lab.store.get_run(run_id)
    assert (run.status, run.failure_reason) == (RunStatus.CANCELLED, "cancelled by user")
    assert lab.store.list_models().items == []


def test_pre_annotation_stores_predictions_in_the_label_studio_shape(lab: Lab) -> None:
    trained(lab, FakeTrainer())
    loader = FakeLoader()
    run = start_preannotation(
        lab.store, lab.runner, OWNER, lab.clock, lab.project.id, licensing=single_node_licensing()
    )
    assert [m["name"] for m in run.params["models"]] == [
        "project1-assertion", "project1-ner", "project1-urgency",
    ]  # fmt: skip

    code = lab.run(functools.partial(preannotate, loader=lambda: loader), run.id)

    assert code == EXIT_SUCCEEDED
    done = lab.store.get_run(run.id)
    assert (done.status, done.progress, done.metrics["predicted"]) == (RunStatus.SUCCEEDED, 100, 1)
    assert len(loader.loaded[0]) == 3
    (incomplete,) = [
        t for t in lab.store.iter_tasks(lab.project.id) if "warfarin" in t.data["text"]
    ]
    new = incomplete.predictions[-1]
    assert new.model_version is not None
    assert "project1-ner" in new.model_version
    assert new.score == 0.4  # the fake found no medication in "Patient on warfarin…"


def test_pre_annotating_named_tasks_marks_what_the_model_finds(lab: Lab) -> None:
    trained(lab, FakeTrainer())
    first = next(iter(lab.store.iter_tasks(lab.project.id)))
    assert isinstance(first.id, int)
    run = start_preannotation(
        lab.store, lab.runner, OWNER, lab.clock, lab.project.id, task_ids=[first.id],
        model_names=["project1-ner"], licensing=single_node_licensing(),
    )  # fmt: skip

    lab.run(functools.partial(preannotate, loader=FakeLoader), run.id)

    prediction = lab.store.get_task(lab.project.id, first.id).predictions[-1]
    (item,) = prediction.result
    assert (item.type, item.from_name, item.value["labels"]) == ("labels", "label", ["Medication"])
    assert first.data["text"][item.value["start"] : item.value["end"]].lower() == "aspirin"
    assert item.score == 0.9


def test_active_learning_starts_a_training_at_the_threshold_and_not_before(lab: Lab) -> None:
    configure(lab.store, lab.project.id, enabled=True, threshold=50,
              request=TrainingRequest(params={"epochs": 1}), by="owner")  # fmt: skip
    trigger = ActiveLearningTrigger(
        lab.store,
        lab.blobs,
        lab.runner,
        lab.clock,
        gpu_available=lambda: False,
        licensing=single_node_licensing(),
    )
    event = CompletionSubmitted(lab.project.id, 1, 1)

    started = [trigger(event) for _ in range(49)]
    assert started == [None] * 49
    assert lab.store.list_runs(lab.project.id).items == []

    run = trigger(event)
    assert run is not None
    assert run.params["source"] == "active_learning"
    assert run.params["training"]["epochs"] == 1
    assert lab.runner.submitted[-1].run_id == run.id
    state = lab.store.get_project(lab.project.id).settings["active_learning"]
    assert (state["submitted_since"], state["last_run"]) == (0, run.id)
    assert trigger(event) is None


def test_active_learning_turned_off_starts_nothing(lab: Lab) -> None:
    configure(lab.store, lab.project.id, enabled=False, threshold=50,
              request=TrainingRequest(), by="owner")  # fmt: skip
    trigger = ActiveLearningTrigger(
        lab.store,
        lab.blobs,
        lab.runner,
        lab.clock,
        gpu_available=lambda: False,
        licensing=single_node_licensing(),
    )
    assert [trigger(CompletionSubmitted(lab.project.id, 1, 1)) for _ in range(60)] == [None] * 60


def test_an_active_learning_run_deploys_only_when_it_beats_the_deployed_model(lab: Lab) -> None:
    trained(lab, FakeTrainer(f1=0.8), types=tuple(_ner()))
    # The deployed model, as this loader loads it, predicts exactly what was annotated:
    # F1 1.0 on any test split, so a new model reporting 0.1 must not replace it.
    worse = submit_training(
        lab.store, lab.blobs, lab.runner, lab.clock, lab.project,
        TrainingRequest(types=tuple(_ner())), created_by="owner",
        source=Source.ACTIVE_LEARNING, gpu_available=False,
        licensing=single_node_licensing(),
    )  # fmt: skip
    lab.run(functools.partial(train, trainer=lambda: FakeTrainer(f1=0.1),
                              loader=lambda: _perfect_loader(lab)), worse.id)  # fmt: skip

    run = lab.store.get_run(worse.id)
    (decision,) = run.metrics["deploy"]
    assert decision["deployed"] is False
    assert "micro F1 on this run's test split" in decision["why"]
    assert "new v2 0.1000 vs deployed v1 1.0000" in decision["why"]
    assert lab.store.get_model("project1-ner", 1).deployed_in == (lab.project.id,)
    assert lab.store.get_model("project1-ner", 2).deployed_in == ()

    better = submit_training(
        lab.store, lab.blobs, lab.runner, lab.clock, lab.project,
        TrainingRequest(types=tuple(_ner())), created_by="owner",
        source=Source.ACTIVE_LEARNING, gpu_available=False,
        licensing=single_node_licensing(),
    )  # fmt: skip
    # The fake predictor only finds medications; the test split has conditions too.
    lab.run(functools.partial(train, trainer=lambda: FakeTrainer(f1=0.95),
                              loader=FakeLoader), better.id)  # fmt: skip
    (decision,) = lab.store.get_run(better.id).metrics["deploy"]
    assert decision["deployed"] is True
    assert lab.store.get_model("project1-ner", 3).deployed_in == (lab.project.id,)


def _perfect_loader(lab: Lab) -> Any:
    """A loader whose models predict, for each task, the completion training would use."""
    from fake_ml import TaskPrediction

    from annotrain.domain.labelstudio import result_to_json
    from annotrain.domain.selection import select_training_completions

    chosen = select_training_completions(lab.store.iter_tasks(lab.project.id)).chosen
    gold = {str(task.id): result_to_json(c.result) for task, c in chosen}

    class Perfect:
        def predict(self, tasks: Any) -> list[TaskPrediction]:
            return [TaskPrediction(gold.get(str(t["id"]), []), 1.0, "gold") for t in tasks]

    return lambda directories, device="cpu": Perfect()


@pytest.mark.slow
def test_the_train_module_runs_as_a_process_on_the_real_model_code(lab: Lab) -> None:
    run_id = lab.start(params={"epochs": 1, "max_length": 64}, types=tuple(_ner()))
    env = {
        **os.environ,
        "ANNOTRAIN_DB": str(lab.tmp_path / "lab.db"),
        "ANNOTRAIN_BLOB_DIR": str(lab.tmp_path / "blobs"),
        "ANNOTRAIN_RUN_ID": run_id,
    }
    done = subprocess.run(
        [sys.executable, "-m", "batch_jobs.train"], env=env, cwd=ROOT, capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip
    run = lab.store.get_run(run_id)
    # A handful of examples is below the production minimum of 40 per label: the real
    # trainer refuses before it trains, naming each label and how many more it needs.
    assert run.status is RunStatus.FAILED, done.stderr
    assert run.failure_reason is not None
    assert "at least 40 per label" in run.failure_reason
    assert "more" in run.failure_reason
    assert done.returncode == 1


# --- pre-annotation replaces the model's earlier prediction -------------------------


def test_pre_annotating_again_replaces_the_models_prediction_and_keeps_imported_ones(
    lab: Lab,
) -> None:
    trained(lab, FakeTrainer())
    before = {t.id: len(t.predictions) for t in lab.store.iter_tasks(lab.project.id)}
    for _ in range(2):
        run = start_preannotation(
            lab.store, lab.runner, OWNER, lab.clock, lab.project.id,
            licensing=single_node_licensing(),
        )  # fmt: skip
        assert lab.run(functools.partial(preannotate, loader=FakeLoader), run.id) == 0
    predicted = 0
    for task in lab.store.iter_tasks(lab.project.id):
        ours = [
            p for p in task.predictions if p.model_version and "project1-ner" in p.model_version
        ]
        assert len(ours) <= 1
        assert len(task.predictions) == before[task.id] + len(ours)  # imported ones stay
        predicted += len(ours)
    assert predicted == 1  # the one task without a submitted completion, predicted once


# --- custom training scripts ----------------------------------------------------------

SCRIPT_OK = b"""
import argparse, json, os, pathlib, sys
parser = argparse.ArgumentParser()
parser.add_argument("--input", required=True)
parser.add_argument("--output", required=True)
args = parser.parse_args()
source, out = pathlib.Path(args.input), pathlib.Path(args.output)
snapshot = json.loads((source / "snapshot.json").read_text())
params = json.loads((source / "params.json").read_text())
for name in sorted(os.environ):
    print("env", name)
print("cwd holds", sorted(p.name for p in pathlib.Path.cwd().iterdir()))
print("examples", len(snapshot["examples"]), "labels", params["model"]["labels"])
(out / "model").mkdir()
(out / "model" / "weights.txt").write_text("tiny")
scores = {"precision": 0.5, "recall": 0.25, "f1": 0.3333}
per_label = {label: {**scores, "support": 2} for label in params["model"]["labels"]}
(out / "metrics.json").write_text(json.dumps({"per_label": per_label, "micro": scores,
                                              "macro": scores}))
print("trained", file=sys.stderr)
"""
SCRIPT_FAILS = b"""
import sys
print("loading data", file=sys.stderr)
raise SystemExit("my trainer broke: no GPU memory left")
"""


def with_script(lab: Lab, content: bytes) -> None:
    put_training_script(lab.store, lab.blobs, OWNER, lab.project.id, content,
                        allowed=True, max_bytes=64 * 1024)  # fmt: skip


def scripted(lab: Lab, trainer: FakeTrainer, **request: Any) -> str:
    run = start_training(
        lab.store, lab.blobs, lab.runner, OWNER, lab.clock, lab.project.id,
        TrainingRequest(**request), gpu_available=False, licensing=single_node_licensing(),
        allow_custom_scripts=True,
    )  # fmt: skip
    work = functools.partial(
        train, trainer=lambda: trainer, loader=FakeLoader, allow_custom_scripts=lambda: True,
        script_timeout_s=lambda: 60.0,
    )  # fmt: skip
    lab.run(work, run.id)
    return run.id


def test_a_custom_script_trains_the_ner_model_in_its_own_stripped_process(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANNOTRAIN_DB", "/secret/lab.db")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-scripts")
    with_script(lab, SCRIPT_OK)
    trainer = FakeTrainer()

    run_id = scripted(lab, trainer)

    run = lab.store.get_run(run_id)
    assert (run.status, run.failure_reason) == (RunStatus.SUCCEEDED, None), run.failure_reason
    # The default trainer trained the rest; the script the NER model.
    assert [s.kind.value for s in trainer.calls[0]["snapshot"].models] == [
        "assertion", "classification",
    ]  # fmt: skip
    entry = lab.store.get_model("project1-ner")
    assert entry.metrics["micro"] == {"precision": 0.5, "recall": 0.25, "f1": 0.3333}
    assert blob_text(lab, f"{entry.artifact_key}/weights.txt") == "tiny"
    assert "ner" in blob_text(lab, f"{entry.artifact_key}/annotrain.json")
    log = blob_text(lab, run.logs_key or "")
    env = [line.split("env ", 1)[1] for line in log.splitlines() if "script out: env " in line]
    assert "PATH" in env
    assert not [name for name in env if name.startswith(("ANNOTRAIN_", "AWS_"))]
    assert "cwd holds ['input', 'output', 'script.py']" in log
    assert "script err: trained" in log


def test_a_failing_custom_script_fails_the_run_with_its_stderr_tail(lab: Lab) -> None:
    with_script(lab, SCRIPT_FAILS)

    run_id = scripted(lab, FakeTrainer(), types=(ModelKind.NER,))

    run = lab.store.get_run(run_id)
    assert run.status is RunStatus.FAILED
    assert run.failure_reason is not None
    assert "exited with code 1" in run.failure_reason
    assert "loading data" in run.failure_reason
    assert "my trainer broke: no GPU memory left" in run.failure_reason
    assert lab.store.list_models().items == []


def test_a_script_without_metrics_fails_the_run_before_anything_registers(lab: Lab) -> None:
    with_script(lab, b"import pathlib, sys\n(pathlib.Path(sys.argv[4]) / 'model').mkdir()\n"
                     b"(pathlib.Path(sys.argv[4]) / 'model' / 'x').write_text('x')\n")  # fmt: skip

    run_id = scripted(lab, FakeTrainer(), types=(ModelKind.NER,))

    run = lab.store.get_run(run_id)
    assert run.status is RunStatus.FAILED
    assert "metrics.json" in (run.failure_reason or "")
    assert lab.store.list_models().items == []


def test_custom_scripts_are_refused_while_the_lab_has_them_off(lab: Lab) -> None:
    with pytest.raises(CustomScriptsDisabledError):
        put_training_script(lab.store, lab.blobs, OWNER, lab.project.id, SCRIPT_OK,
                            allowed=False, max_bytes=64 * 1024)  # fmt: skip
    with_script(lab, SCRIPT_OK)  # uploaded while it was on, then turned off
    with pytest.raises(CustomScriptsDisabledError):
        lab.start()
    assert lab.store.list_runs(lab.project.id).items == []
    # A run queued while it was on fails in the job once the lab turns it off.
    run = start_training(
        lab.store, lab.blobs, lab.runner, OWNER, lab.clock, lab.project.id,
        TrainingRequest(types=(ModelKind.NER,)), gpu_available=False,
        licensing=single_node_licensing(), allow_custom_scripts=True,
    )  # fmt: skip
    work = functools.partial(train, trainer=FakeTrainer, allow_custom_scripts=lambda: False)
    lab.run(work, run.id)
    failed = lab.store.get_run(run.id)
    assert failed.status is RunStatus.FAILED
    assert "ANNOTRAIN_ALLOW_CUSTOM_SCRIPTS" in (failed.failure_reason or "")
