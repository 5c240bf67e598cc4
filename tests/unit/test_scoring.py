"""Micro F1 of predictions against completions, entity level."""

from __future__ import annotations

from annotrain.domain.scoring import micro_f1


def span(start: int, end: int, label: str) -> dict[str, object]:
    return {"from_name": "label", "type": "labels",
            "value": {"start": start, "end": end, "labels": [label]}}  # fmt: skip


def test_exact_spans_count_and_a_shifted_one_is_a_miss_and_a_false_alarm() -> None:
    gold = [[span(0, 5, "Drug"), span(10, 15, "Drug")]]
    predicted = [[span(0, 5, "Drug"), span(10, 14, "Drug")]]

    assert micro_f1(gold, predicted, {"Drug"}) == 0.5


def test_labels_outside_the_model_are_not_scored() -> None:
    gold = [[span(0, 5, "Drug"), span(6, 9, "Present")]]
    assert micro_f1(gold, [[span(0, 5, "Drug")]], {"Drug"}) == 1.0


def test_choices_score_by_class() -> None:
    choice = {"from_name": "urgency", "type": "choices", "value": {"choices": ["Urgent"]}}
    other = {"from_name": "urgency", "type": "choices", "value": {"choices": ["Routine"]}}
    labels = {"Urgent", "Routine"}
    assert micro_f1([[choice], [choice]], [[choice], [other]], labels) == 0.5


def test_nothing_expected_and_nothing_predicted_scores_zero() -> None:
    assert micro_f1([[]], [[]], {"Drug"}) == 0.0
