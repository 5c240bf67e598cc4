"""The training snapshot: the one document a training job reads."""

from __future__ import annotations

import pytest

from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.snapshot import Example, Part, TrainingParams, TrainingSnapshot
from annotrain.domain.training_plan import ModelKind, ModelSpec

NER = ModelSpec(ModelKind.NER, "ner", ("PER", "ORG"), ("label",), ("text",))
SPAM = ModelSpec(ModelKind.CLASSIFICATION, "spam", ("ham", "spam"), ("spam",), ("text",))


def _example(task_id: str, part: Part, text: str = "Ada works at Acme") -> Example:
    span = {
        "from_name": "label", "to_name": "text", "type": "labels",
        "value": {"start": 0, "end": 3, "text": "Ada", "labels": ["PER"]},
    }  # fmt: skip
    return Example(task_id, part, {"text": text}, (span,))


def _snapshot(*examples: Example) -> TrainingSnapshot:
    return TrainingSnapshot(
        run_id="r1", project_id=3, language="en", base_model="minilm-l6-en",
        params=TrainingParams(epochs=2), models=(NER, SPAM), examples=examples,
        label_config="<View/>", selection={"chosen": len(examples)},
    )  # fmt: skip


def test_snapshot_round_trips_through_its_bytes() -> None:
    snapshot = _snapshot(_example("1", Part.TRAIN), _example("2", Part.TEST))

    again = TrainingSnapshot.from_bytes(snapshot.to_bytes())

    assert again == snapshot
    assert [e.task_id for e in again.part(Part.TEST)] == ["2"]
    assert again.model(ModelKind.CLASSIFICATION, "spam") == SPAM
    assert again.model(ModelKind.ASSERTION) is None


def test_fingerprint_follows_the_data_not_the_order() -> None:
    a, b = _example("1", Part.TRAIN), _example("2", Part.TEST)

    assert _snapshot(a, b).fingerprint == _snapshot(b, a).fingerprint
    assert _snapshot(a, b).fingerprint != _snapshot(a, _example("2", Part.TEST, "Bo")).fingerprint


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"epochs": 0}, "params.epochs"),
        ({"epochs": True}, "params.epochs"),
        ({"learning_rate": float("nan")}, "params.learning_rate"),
        ({"dropout": 0.95}, "params.dropout"),
        ({"batch_size": 2.5}, "params.batch_size"),
        ({"epoch": 3}, "params.epoch"),
    ],
)
def test_bad_parameters_are_refused_by_name(values: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        TrainingParams.from_mapping(values)

    assert caught.value.field == field


def test_missing_parameters_take_their_defaults() -> None:
    params = TrainingParams.from_mapping({"epochs": 3, "learning_rate": None})

    assert params.epochs == 3
    assert params.learning_rate == TrainingParams().learning_rate


def test_a_document_of_another_format_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match=r"annotrain\.snapshot/1"):
        TrainingSnapshot.from_json({"format": "something/2"})
