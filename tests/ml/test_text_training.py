"""A mixed project (NER, assertion, a single- and a multi-label classifier) trained in one run."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from text_projects import mixed_snapshot, note

from annotrain.domain.training_plan import ModelKind


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_options: Any) -> dict[str, Any]:
    from batch_jobs.text import train_snapshot

    snapshot = mixed_snapshot()
    progress: list[Any] = []
    models = train_snapshot(
        snapshot, tmp_path_factory.mktemp("models"), on_progress=progress.append,
        options=tiny_options,
    )  # fmt: skip
    return {"snapshot": snapshot, "models": {m.spec.name: m for m in models}, "progress": progress}


def test_mixed_project_trains_every_text_model_in_one_run(trained: dict[str, Any]) -> None:
    models = trained["models"]
    assert sorted(models) == ["assertion", "ner", "priority", "systems"]
    assert models["ner"].metrics["micro"]["f1"] >= 0.8
    assert models["assertion"].metrics["macro"]["f1"] >= 0.8
    assert models["priority"].metrics["macro"]["f1"] >= 0.8
    assert models["systems"].metrics["micro"]["f1"] >= 0.7
    for model in models.values():
        assert model.metrics["evaluated_on"] == "test"
        assert set(model.metrics["per_label"]) == set(model.spec.labels)
        assert {"precision", "recall", "f1", "support"} <= set(model.metrics["micro"])
        # Two evaluations per epoch (the default), halfway and at its end.
        count = len(model.history)
        assert [h["epoch"] for h in model.history] == [(i + 2) // 2 for i in range(count)]
        assert [h["at_epoch"] for h in model.history[1::2]] == list(range(1, count // 2 + 1))
        assert all(0 < h["at_epoch"] - h["epoch"] + 1 < 1 for h in model.history[::2])
        json.dumps([model.metrics, model.history], allow_nan=False)


def test_classifiers_and_assertion_report_confusion_matrices(trained: dict[str, Any]) -> None:
    models = trained["models"]
    matrix = models["assertion"].metrics["confusion_matrix"]
    assert matrix["labels"] == ["Present", "Absent"]
    test_mentions = sum(1 for e in trained["snapshot"].examples if e.part == "test")
    assert sum(map(sum, matrix["matrix"])) == test_mentions
    assert "confusion_matrix" in models["priority"].metrics
    per_label = models["systems"].metrics["confusion_matrices"]
    assert set(per_label) == {"cardiac", "respiratory"}
    assert "confusion_matrix" not in models["ner"].metrics


def test_artifact_records_what_made_the_model(trained: dict[str, Any]) -> None:
    snapshot = trained["snapshot"]
    ner = json.loads((trained["models"]["ner"].directory / "annotrain.json").read_text())
    assert ner["type"] == "ner"
    assert ner["model_labels"] == ["O", "B-Disease", "I-Disease"]
    assert ner["data_fingerprint"] == snapshot.fingerprint
    assert ner["parameters"]["learning_rate"] == snapshot.params.learning_rate
    assert ner["base_model"] == "tiny-bert-test"
    assert ner["settings"]["window"]["max_length"] == snapshot.params.max_length
    assert {"torch", "transformers", "annotrain"} <= set(ner["versions"])
    systems = json.loads((trained["models"]["systems"].directory / "annotrain.json").read_text())
    thresholds = systems["settings"]["thresholds"]
    assert set(thresholds) == {"cardiac", "respiratory"}
    assert all(0 < t < 1 for t in thresholds.values())
    # Class weights by default for assertion only: the spam classifier learnt slower with them.
    described = {
        name: json.loads((model.directory / "annotrain.json").read_text())
        for name, model in trained["models"].items()
    }
    assert len(described["assertion"]["settings"]["class_weights"]) == 2
    assert all(
        "class_weights" not in described[n]["settings"] for n in ("ner", "priority", "systems")
    )


def test_plots_are_png_files(trained: dict[str, Any]) -> None:
    for model in trained["models"].values():
        assert model.plots
        for plot in model.plots:
            assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_rises_to_100_percent_with_epoch_step_and_loss(trained: dict[str, Any]) -> None:
    progress = trained["progress"]
    percents = [p.percent for p in progress]
    assert percents == sorted(percents)
    assert percents[-1] == pytest.approx(100.0)
    assert {p.model_name for p in progress} == {
        "ner:ner",
        "assertion:assertion",
        "classification:priority",
        "classification:systems",
    }
    assert all(p.loss is not None and p.loss >= 0 and 0 < p.step <= p.total_steps for p in progress)


def test_artifacts_load_as_they_are_in_transformers_pipeline(trained: dict[str, Any]) -> None:
    from transformers import pipeline

    models = trained["models"]
    tagger = pipeline("token-classification", model=str(models["ner"].directory), device="cpu")
    tags = {t["entity"] for t in tagger("He has asthma , seen today .")}
    assert tags <= {"O", "B-Disease", "I-Disease"}
    classifier = pipeline("text-classification", model=str(models["priority"].directory))
    assert classifier("She has asthma , emergency now .")[0]["label"] in {"urgent", "routine"}


def test_predictions_are_label_studio_results_whose_offsets_slice_the_text(
    trained: dict[str, Any],
) -> None:
    from batch_jobs.text import load_models

    predictor = load_models([m.directory for m in trained["models"].values()])
    rng = random.Random(99)
    notes = [note(rng) for _ in range(12)]
    predictions = predictor.predict([{"note": text} for text, _ in notes])
    assert len(predictions) == len(notes)
    found = 0
    for (text, truth), prediction in zip(notes, predictions, strict=True):
        assert 0 < prediction.score <= 1
        assert prediction.model_version.count("run-1:") == 4
        for item in prediction.result:
            assert item["to_name"] == "text"
            assert 0 <= item["score"] <= 1
            if item["type"] == "labels":
                value = item["value"]
                assert value["text"] == text[value["start"] : value["end"]]
                assert item["from_name"] == "label"
            else:
                assert item["type"] == "choices"
                assert item["from_name"] in {"priority", "systems"}
        predicted = {(i["value"]["start"], i["value"]["end"], i["value"]["labels"][0])
                     for i in prediction.result if i["type"] == "labels"}  # fmt: skip
        expected = {(i["value"]["start"], i["value"]["end"], i["value"]["labels"][0])
                    for i in truth if i["type"] == "labels"}  # fmt: skip
        found += predicted == expected
    assert found >= 10


def test_predicting_a_task_without_the_text_field_gives_no_items(trained: dict[str, Any]) -> None:
    from batch_jobs.text import load_models

    predictor = load_models([trained["models"]["ner"].directory])
    [prediction] = predictor.predict([{"other": "He has asthma"}])
    assert prediction.result == []


def test_a_visual_ner_model_beside_text_models_is_trained_in_the_same_run(
    tmp_path: Path, tiny_options: Any
) -> None:
    from dataclasses import replace

    from annotrain.domain.training_plan import ModelSpec
    from batch_jobs.text import train_snapshot
    from batch_jobs.visual.errors import OcrMissingError

    snapshot = mixed_snapshot(train=30, test=5, kinds=("classification",))
    visual = ModelSpec(ModelKind.VISUAL_NER, "visual_ner", ("Total",), ("box",), ("image",))
    snapshot = replace(snapshot, models=(snapshot.models[0], visual))
    # Text examples carry no OCR: the Visual NER model cannot read them, and says so.
    with pytest.raises(OcrMissingError, match="run OCR first"):
        train_snapshot(snapshot, tmp_path, options=tiny_options)


def test_without_validation_data_the_last_epoch_is_kept_and_json_stays_strict(
    tmp_path: Path, tiny_options: Any
) -> None:
    from dataclasses import replace

    from text_projects import fast_params

    from batch_jobs.text import train_snapshot

    snapshot = mixed_snapshot(train=20, test=4, kinds=("classification",),
                              params=fast_params(epochs=2))  # fmt: skip
    options = replace(tiny_options, validation_share=0.0, min_examples_per_label=1)
    models = train_snapshot(snapshot, tmp_path, options=options)
    for model in models:
        assert [h["val_score"] for h in model.history] == [None, None]
        assert model.metrics["best_epoch"] == 2
        json.loads((model.directory / "annotrain.json").read_text())
        json.dumps([model.metrics, model.history], allow_nan=False)


def test_predicting_tasks_together_equals_predicting_them_one_by_one(
    trained: dict[str, Any],
) -> None:
    from batch_jobs.text import load_models

    predictor = load_models([m.directory for m in trained["models"].values()])
    rng = random.Random(11)
    # Lengths differ, so batches are padded and sorted: neither may change a prediction.
    tasks = [{"note": " ".join(note(rng)[0] for _ in range(1 + i % 3))} for i in range(12)]
    together = predictor.predict(tasks)
    alone = [predictor.predict([task])[0] for task in tasks]
    for a, b in zip(together, alone, strict=True):
        assert [(i["value"], i["from_name"]) for i in a.result] == [
            (i["value"], i["from_name"]) for i in b.result
        ]
        assert [i["score"] for i in a.result] == pytest.approx(
            [i["score"] for i in b.result], abs=1e-4
        )
        assert a.score == pytest.approx(b.score, abs=1e-4)
