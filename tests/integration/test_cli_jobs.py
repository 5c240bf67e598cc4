"""``annotrain train`` and ``annotrain preannotate``: a local worker runs the job as a
subprocess (here with the fake trainer and predictor), the command waits and exits
by the run's end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fakes import FakeClock

from annotrain.adapters import local_runner
from annotrain.adapters.sqlite import SqliteStore
from annotrain.cli import main
from annotrain.domain.config import parse_labeling_config
from annotrain.domain.labelstudio import load_tasks
from annotrain.domain.records import Project, RunStatus
from annotrain.domain.tasks import Member, Role
from annotrain.ports import JobSpec

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample_project"
TESTS = Path(__file__).resolve().parents[1]
# The job as `python -m batch_jobs.<kind>` runs it, with the fakes in place of the model code.
FAKE_JOB = (
    "import functools, sys; sys.path.insert(0, {tests!r}); "
    "from fake_ml import FakeTrainer, FakeLoader; "
    "from batch_jobs.runtime import main; "
    "from batch_jobs.train import train; from batch_jobs.preannotate import preannotate; "
    "work = {{'train': functools.partial(train, trainer=lambda: FakeTrainer({f1})), "
    "'preannotate': functools.partial(preannotate, loader=lambda: FakeLoader())}}[{kind!r}]; "
    "main(work)"
)


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder with the sample project (id 1); jobs run the fake model code."""
    with SqliteStore(tmp_path / "annotrain.db") as store:
        config = (SAMPLE / "config.xml").read_text()
        project = store.create_project(Project(0, "Notes", config, "admin", FakeClock().now()))
        store.put_member(project.id, Member("admin", Role.OWNER))
        schema = parse_labeling_config(config)
        store.add_tasks(project.id, load_tasks((SAMPLE / "tasks.json").read_bytes(), schema))

    def command(spec: JobSpec) -> list[str]:
        code = FAKE_JOB.format(tests=str(TESTS), kind=spec.kind.value, f1=0.8)
        return [sys.executable, "-c", code, "--run-id", spec.run_id]

    monkeypatch.setattr(local_runner, "job_module_command", command)
    monkeypatch.chdir(ROOT)
    return tmp_path


@pytest.mark.slow
def test_train_waits_for_the_run_and_prints_its_scores_then_preannotate_uses_the_models(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "1", "--epochs", "1", "--types", "ner", "--wait", "--data-dir", str(lab)])

    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert result["metrics"]["models"]["project1-ner"]["micro"]["f1"] == 0.8
    assert "100.0% succeeded" in err

    code = main(["preannotate", "1", "--wait", "--data-dir", str(lab)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["metrics"]["predicted"] == 1
    with SqliteStore(lab / "annotrain.db") as store:
        runs = store.list_runs(1).items
        assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]


def test_train_refuses_a_request_that_does_not_fit_with_exit_2(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "1", "--tags", "nowhere", "--data-dir", str(lab)])

    assert code == 2
    assert "no task gives a training example" in capsys.readouterr().err


def test_a_failed_run_exits_1_with_its_reason(
    lab: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(spec: JobSpec) -> list[str]:
        code = "import sys; sys.exit(3)"
        return [sys.executable, "-c", code, "--run-id", spec.run_id]

    monkeypatch.setattr(local_runner, "job_module_command", failing)

    code = main(["train", "1", "--data-dir", str(lab)])

    assert code == 1
    assert "failed: exited with code 3" in capsys.readouterr().err
