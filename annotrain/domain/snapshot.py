"""The dataset snapshot a training run reads, and the parameters it trains with.

When a training starts, the service selects one completion per task, splits the
tasks, and writes what the job needs as one immutable JSON document in the blob
store (``Run.dataset_key``). The job reads nothing else about the project: the
snapshot is the whole contract between the two sides, so a run can be repeated
from it and the data a model saw is known exactly (``fingerprint``).

The examples keep the task data and the chosen completion's result in Label
Studio's JSON shape (``{"from_name", "to_name", "type", "value": {...}}``), the
format the lab imports and exports; the model code reads spans, choices and
assertion labels from it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.training_plan import ModelKind, ModelSpec

SNAPSHOT_FORMAT = "annotrain.snapshot/1"

#: Languages a project may declare; the lab picks the tokenizer and encoder from it.
LANGUAGES = ("en", "de", "es", "pt", "it", "da", "ro")


class Part(StrEnum):
    """Which part of the split an example belongs to."""

    TRAIN = "train"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class TrainingParams:
    """How to train; every field has a default a user can leave alone.

    Attributes:
        epochs: Passes over the training part (at most; early stopping may end sooner).
        learning_rate: Peak learning rate of AdamW.
        decay: Weight decay of AdamW.
        dropout: Dropout of the encoder and the classification head.
        batch_size: Examples per optimisation step.
        max_length: Longest input in tokens; longer NER documents are read in
            overlapping windows, never cut.
        seed: Makes a run repeatable (initialisation, shuffling).
        early_stopping_patience: Evaluations without improvement on the
            validation part before training stops; 0 turns early stopping off.
        eval_steps: Evaluate on the validation part every this many optimisation
            steps as well as after each epoch; 0 evaluates after each epoch only.
        max_steps: Stop after this many optimisation steps even if epochs remain
            (the learning-rate schedule ends there); 0 for no limit.
    """

    epochs: int = 10
    learning_rate: float = 1e-4
    decay: float = 0.01
    dropout: float = 0.1
    batch_size: int = 8
    max_length: int = 256
    seed: int = 42
    early_stopping_patience: int = 3
    eval_steps: int = 0
    max_steps: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainingParams:
        """Read parameters as a request or a snapshot gives them; unknown names refused.

        Raises:
            InvalidRequestError: Naming the parameter (``params.epochs``) and its range.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidRequestError(
                f"params.{unknown[0]}",
                f"unknown training parameter; use one of: {', '.join(sorted(known))}",
            )
        params = cls(**{k: v for k, v in values.items() if v is not None})
        params.check()
        return params

    def check(self) -> None:
        """Refuse values no training can use.

        Raises:
            InvalidRequestError: Naming the parameter and the range it must lie in.
        """
        _int_in("epochs", self.epochs, 1, 1000)
        _float_in("learning_rate", self.learning_rate, 1e-7, 1.0)
        _float_in("decay", self.decay, 0.0, 1.0)
        _float_in("dropout", self.dropout, 0.0, 0.9)
        _int_in("batch_size", self.batch_size, 1, 1024)
        _int_in("max_length", self.max_length, 16, 4096)
        _int_in("seed", self.seed, 0, 2**31 - 1)
        _int_in("early_stopping_patience", self.early_stopping_patience, 0, 1000)
        _int_in("eval_steps", self.eval_steps, 0, 1_000_000)
        _int_in("max_steps", self.max_steps, 0, 10_000_000)

    def to_json(self) -> dict[str, Any]:
        """The parameters as JSON values."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Example:
    """One task and the completion chosen to learn from.

    Attributes:
        task_id: The task's id, as text.
        part: Train or test.
        data: The task's data (``{"text": …}``).
        result: The chosen completion's result items, in Label Studio JSON.
        ocr: For an image task of a Visual NER run, the OCR of its image as stored
            beside it (:func:`annotrain.domain.ocr.page_to_json`); None otherwise.
    """

    task_id: str
    part: Part
    data: Mapping[str, Any]
    result: tuple[Mapping[str, Any], ...]
    ocr: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TrainingSnapshot:
    """Everything a training job reads.

    Attributes:
        run_id: The run it was written for.
        project_id: The project the data came from.
        language: The project's language (one of :data:`LANGUAGES`).
        base_model: The encoder to start from (``minilm-l6-en``, ``e5-small-multilingual``…).
        params: How to train.
        models: The models to train, as the labeling config implies them.
        examples: One per selected task.
        label_config: The project's labeling config when the snapshot was written.
        use_gpu: Whether the run asked for the GPU.
        selection: How the examples were chosen (rules and counts), for the log.
    """

    run_id: str
    project_id: int
    language: str
    base_model: str
    params: TrainingParams
    models: tuple[ModelSpec, ...]
    examples: tuple[Example, ...]
    label_config: str = ""
    use_gpu: bool = False
    selection: Mapping[str, Any] = field(default_factory=dict)

    def part(self, part: Part) -> list[Example]:
        """The examples of one part of the split."""
        return [e for e in self.examples if e.part is part]

    def model(self, kind: ModelKind, name: str | None = None) -> ModelSpec | None:
        """The model of a kind (and name, for classifiers) this run trains, if any."""
        for spec in self.models:
            if spec.kind is kind and (name is None or spec.name == name):
                return spec
        return None

    @property
    def fingerprint(self) -> str:
        """A digest of the examples: the same data gives the same fingerprint."""
        digest = hashlib.blake2b(digest_size=16)
        for example in sorted(self.examples, key=lambda e: e.task_id):
            digest.update(_canonical(_example_json(example)).encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The snapshot as one JSON document."""
        return {
            "format": SNAPSHOT_FORMAT,
            "run_id": self.run_id,
            "project_id": self.project_id,
            "language": self.language,
            "base_model": self.base_model,
            "params": self.params.to_json(),
            "use_gpu": self.use_gpu,
            "models": [_spec_json(s) for s in self.models],
            "selection": dict(self.selection),
            "label_config": self.label_config,
            "fingerprint": self.fingerprint,
            "examples": [_example_json(e) for e in self.examples],
        }

    def to_bytes(self) -> bytes:
        """The JSON document, UTF-8 encoded."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TrainingSnapshot:
        """Read a snapshot document.

        Raises:
            InvalidRequestError: When it is not a snapshot of this format.
        """
        if document.get("format") != SNAPSHOT_FORMAT:
            raise InvalidRequestError(
                "format",
                f"not a training snapshot of format {SNAPSHOT_FORMAT!r} "
                f"(got {document.get('format')!r})",
            )
        try:
            return cls(
                run_id=str(document["run_id"]),
                project_id=int(document["project_id"]),
                language=str(document["language"]),
                base_model=str(document["base_model"]),
                params=TrainingParams.from_mapping(document["params"]),
                models=tuple(_spec_from_json(s) for s in document["models"]),
                examples=tuple(
                    Example(
                        str(e["task_id"]),
                        Part(e["part"]),
                        e["data"],
                        tuple(e["result"]),
                        e.get("ocr"),
                    )
                    for e in document["examples"]
                ),
                label_config=str(document.get("label_config", "")),
                use_gpu=bool(document.get("use_gpu", False)),
                selection=document.get("selection", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequestError("snapshot", f"malformed training snapshot: {exc!r}") from exc

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainingSnapshot:
        """Read a snapshot from its encoded JSON."""
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise InvalidRequestError("snapshot", f"not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise InvalidRequestError("snapshot", "a training snapshot is a JSON object")
        return cls.from_json(document)


def _int_in(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequestError(
            f"params.{name}", f"must be a whole number from {low} to {high} (got {value!r})"
        )


def _float_in(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise InvalidRequestError(
            f"params.{name}", f"must be a number from {low:g} to {high:g} (got {value!r})"
        )


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _example_json(example: Example) -> dict[str, Any]:
    document = {
        "task_id": example.task_id,
        "part": example.part.value,
        "data": dict(example.data),
        "result": [dict(r) for r in example.result],
    }
    if example.ocr is not None:
        # Only image examples carry it, so text snapshots keep their fingerprints.
        document["ocr"] = dict(example.ocr)
    return document


def _spec_json(spec: ModelSpec) -> dict[str, Any]:
    return {
        "kind": spec.kind.value,
        "name": spec.name,
        "labels": list(spec.labels),
        "from_names": list(spec.from_names),
        "to_names": list(spec.to_names),
        "multi_label": spec.multi_label,
        "pretrained": [[m, list(v)] for m, v in spec.pretrained],
    }


def _spec_from_json(value: Mapping[str, Any]) -> ModelSpec:
    return ModelSpec(
        kind=ModelKind(value["kind"]),
        name=str(value["name"]),
        labels=tuple(value["labels"]),
        from_names=tuple(value["from_names"]),
        to_names=tuple(value["to_names"]),
        multi_label=bool(value.get("multi_label", False)),
        pretrained=tuple((str(m), tuple(v)) for m, v in value.get("pretrained", ())),
    )


def snapshot_examples(examples: Sequence[Example]) -> dict[Part, int]:
    """How many examples each part holds (for logs and failure reasons)."""
    counts = dict.fromkeys(Part, 0)
    for example in examples:
        counts[example.part] += 1
    return counts
