"""Small synthetic text projects with lexical cues a tiny model learns in seconds."""

from __future__ import annotations

import random
from typing import Any

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.snapshot import Example, Part, TrainingParams, TrainingSnapshot
from annotrain.domain.training_plan import ModelSpec, implied_models

MIXED_CONFIG = """
<View>
  <Labels name="label" toName="text">
    <Label value="Disease"/>
    <Label value="Present" assertion="true"/>
    <Label value="Absent" assertion="true"/>
  </Labels>
  <Text name="text" value="$note"/>
  <Choices name="priority" toName="text" train="true">
    <Choice value="urgent"/>
    <Choice value="routine"/>
  </Choices>
  <Choices name="systems" toName="text" choice="multiple" train="true">
    <Choice value="cardiac"/>
    <Choice value="respiratory"/>
  </Choices>
</View>
"""

DISEASES = ("chronic kidney disease", "asthma", "heart failure", "pneumonia", "diabetes")
CARDIAC = {"heart failure"}
RESPIRATORY = {"asthma", "pneumonia"}
NAMES = ("Mr Smith", "The patient", "She", "He", "Ms Jones")


def note(rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
    """A one-line note with one disease, its status, and the note's choices."""
    disease = rng.choice(DISEASES)
    absent = rng.random() < 0.5
    urgent = rng.random() < 0.5
    head = f"{rng.choice(NAMES)} {'denies' if absent else 'has'} "
    text = head + disease + (" , emergency now ." if urgent else " , seen today .")
    start, end = len(head), len(head) + len(disease)
    result: list[dict[str, Any]] = [
        _span("e1", start, end, text, ["Disease"]),
        _span("a1", start, end, text, ["Absent" if absent else "Present"]),
        {"id": "c1", "from_name": "priority", "to_name": "text", "type": "choices",
         "value": {"choices": ["urgent" if urgent else "routine"]}},
    ]  # fmt: skip
    systems = [s for s, group in (("cardiac", CARDIAC), ("respiratory", RESPIRATORY))
               if disease in group]  # fmt: skip
    if systems:
        result.append({"id": "c2", "from_name": "systems", "to_name": "text",
                       "type": "choices", "value": {"choices": systems}})  # fmt: skip
    return text, result


def _span(item_id: str, start: int, end: int, text: str, labels: list[str]) -> dict[str, Any]:
    return {
        "id": item_id, "from_name": "label", "to_name": "text", "type": "labels",
        "value": {"start": start, "end": end, "text": text[start:end], "labels": labels},
    }  # fmt: skip


def mixed_snapshot(
    *,
    train: int = 60,
    test: int = 20,
    params: TrainingParams | None = None,
    kinds: tuple[str, ...] = ("ner", "assertion", "classification"),
    seed: int = 1,
    use_gpu: bool = False,
) -> TrainingSnapshot:
    """NER, assertion and two classifiers (single and multi-label) on one-line notes."""
    rng = random.Random(seed)
    examples = []
    for index in range(train + test):
        text, result = note(rng)
        part = Part.TRAIN if index < train else Part.TEST
        examples.append(Example(str(index), part, {"note": text}, tuple(result)))
    specs = tuple(s for s in implied_models(parse_labeling_config(MIXED_CONFIG)) if s.kind in kinds)
    return TrainingSnapshot(
        run_id="run-1", project_id=1, language="en", base_model="minilm-l6-en",
        params=params or fast_params(), models=specs, examples=tuple(examples),
        label_config=MIXED_CONFIG, use_gpu=use_gpu,
    )  # fmt: skip


def fast_params(**changes: Any) -> TrainingParams:
    """Parameters that make the tiny model learn the cues in a few epochs."""
    values: dict[str, Any] = {
        "epochs": 8, "learning_rate": 5e-3, "batch_size": 8, "max_length": 64,
        "dropout": 0.0, "early_stopping_patience": 0,
    }  # fmt: skip
    values.update(changes)
    return TrainingParams(**values)


def with_models(snapshot: TrainingSnapshot, specs: tuple[ModelSpec, ...]) -> TrainingSnapshot:
    """The same snapshot training other models."""
    from dataclasses import replace

    return replace(snapshot, models=specs)


def long_notes_snapshot(
    *, train: int, test: int, notes_per_example: int, params: TrainingParams
) -> TrainingSnapshot:
    """NER on examples of several notes each: longer than a window, so read in windows."""
    rng = random.Random(3)
    examples = []
    for index in range(train + test):
        text, result = "", []
        for _ in range(notes_per_example):
            one, items = note(rng)
            offset = len(text) + (1 if text else 0)
            text = f"{text} {one}" if text else one
            for item in items:
                if item["id"] == "e1":
                    value = dict(item["value"])
                    value["start"] += offset
                    value["end"] += offset
                    result.append({**item, "id": f"e{len(result)}", "value": value})
        part = Part.TRAIN if index < train else Part.TEST
        examples.append(Example(str(index), part, {"note": text}, tuple(result)))
    specs = tuple(s for s in implied_models(parse_labeling_config(MIXED_CONFIG)) if s.kind == "ner")
    return TrainingSnapshot(
        run_id="run-long", project_id=1, language="en", base_model="minilm-l6-en",
        params=params, models=specs, examples=tuple(examples), label_config=MIXED_CONFIG,
    )  # fmt: skip
