"""A stand-in for batch_jobs.text: a trainer that writes real model folders and a predictor.

The fake trainer does what the job glue relies on from the real one: it writes a
folder per model (``config.json`` and ``annotrain.json``), a plot, metrics in the
agreed shape, reports progress, logs, and stops when asked. The fake predictor
marks every occurrence of words it learnt ("aspirin", "ibuprofen") as Medication.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotrain.domain.errors import AnnotrainError
from annotrain.domain.snapshot import Part, TrainingSnapshot
from annotrain.domain.training_plan import ModelKind, ModelSpec

MEDICATIONS = ("aspirin", "ibuprofen")


@dataclass(frozen=True)
class Progress:
    percent: float
    epoch: int | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    model_name: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Trained:
    spec: ModelSpec
    directory: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    plots: list[Path]


@dataclass
class FakeTrainer:
    """Records its calls; ``fail`` raises that error; ``f1`` is the micro F1 it reports."""

    f1: float = 0.8
    fail: Exception | None = None
    stop_after_progress: Callable[[], None] | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        snapshot: TrainingSnapshot,
        out_dir: Path,
        *,
        device: str = "cpu",
        on_progress: Callable[[Any], None],
        log: logging.Logger | None,
        should_stop: Callable[[], bool],
    ) -> list[Trained]:
        self.calls.append({"snapshot": snapshot, "device": device})
        if log is not None:
            log.info("fake trainer: %d examples", len(snapshot.examples))
        if self.fail is not None:
            raise self.fail
        models = []
        for n, spec in enumerate(snapshot.models):
            on_progress(Progress(50.0 * n / len(snapshot.models), 1, 1, 2, 0.5, spec.name))
            if self.stop_after_progress is not None:
                self.stop_after_progress()
            if should_stop():
                return []
            folder = out_dir / spec.name
            folder.mkdir(parents=True)
            (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
            (folder / "annotrain.json").write_text(
                json.dumps({"kind": spec.kind.value, "labels": list(spec.labels)})
            )
            plot = out_dir / f"{spec.name}-curve.png"
            plot.write_bytes(b"\x89PNG fake")
            models.append(Trained(spec, folder, _metrics(spec, self.f1), [{"epoch": 1}], [plot]))
        on_progress(Progress(100.0, 1, 2, 2, 0.1, None, "done"))
        return models


def _metrics(spec: ModelSpec, f1: float) -> dict[str, Any]:
    scores = {"precision": f1, "recall": f1, "f1": f1}
    return {
        "per_label": {label: {**scores, "support": 3} for label in spec.labels},
        "micro": scores,
        "macro": scores,
        "confusion_matrix": {"labels": list(spec.labels), "matrix": [[1] * len(spec.labels)]},
    }


@dataclass(frozen=True)
class TaskPrediction:
    result: list[dict[str, Any]]
    score: float
    model_version: str


class FakePredictor:
    """Marks medications found in the text, from the model folders it was given."""

    def __init__(self, directories: Sequence[Path]) -> None:
        self.kinds = []
        for directory in directories:
            meta = json.loads((directory / "annotrain.json").read_text())
            self.kinds.append(ModelKind(meta["kind"]))
        self.version = ",".join(d.name for d in directories)

    def predict(self, tasks: Sequence[Mapping[str, Any]]) -> list[TaskPrediction]:
        out = []
        for task in tasks:
            text = str(task["data"].get("text", ""))
            result: list[dict[str, Any]] = []
            if ModelKind.NER in self.kinds:
                for word in MEDICATIONS:
                    for match in re.finditer(word, text, re.IGNORECASE):
                        result.append({
                            "from_name": "label", "to_name": "text", "type": "labels",
                            "value": {"start": match.start(), "end": match.end(),
                                      "text": match.group(), "labels": ["Medication"]},
                            "score": 0.9,
                        })  # fmt: skip
            out.append(TaskPrediction(result, 0.9 if result else 0.4, self.version))
        return out


@dataclass
class FakeLoader:
    loaded: list[list[Path]] = field(default_factory=list)

    def __call__(self, directories: Sequence[Path], device: str = "cpu") -> FakePredictor:
        self.loaded.append(list(directories))
        return FakePredictor(directories)


class TooFewExamplesError(AnnotrainError):
    """What the real trainer raises when a label has too few examples."""


def test_part(snapshot: TrainingSnapshot) -> int:
    """How many test examples a snapshot holds."""
    return len(snapshot.part(Part.TEST))
