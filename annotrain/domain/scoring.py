"""Scoring predictions against completions in Label Studio's result shape.

Used where two models must be compared on the same tasks (active learning: the
deployed model against a new one, on the new run's test split). A span counts
when its start, end and label match exactly (entity level, as seqeval scores
NER); a choice when its control and class match. Only the given labels count.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

_Key = tuple[Any, ...]


def result_keys(result: Iterable[Mapping[str, Any]], labels: Collection[str]) -> set[_Key]:
    """The scored units of one result: ``(from_name, start, end, label)`` and
    ``(from_name, class)``, for the labels given."""
    keys: set[_Key] = set()
    for item in result:
        value = item.get("value")
        if not isinstance(value, Mapping):
            continue
        source = item.get("from_name")
        if "start" in value and "end" in value:
            for label in value.get("labels") or ():
                if label in labels:
                    keys.add((source, value["start"], value["end"], label))
        for choice in value.get("choices") or ():
            name = choice if isinstance(choice, str) else "/".join(map(str, choice))
            if name in labels:
                keys.add((source, name))
    return keys


def micro_f1(
    gold: Sequence[Sequence[Mapping[str, Any]]],
    predicted: Sequence[Sequence[Mapping[str, Any]]],
    labels: Collection[str],
) -> float:
    """Micro-averaged F1 of predictions against completions, task by task.

    Args:
        gold: Each task's completion result.
        predicted: Each task's predicted result, in the same order.
        labels: The labels (classes) scored.

    Returns:
        F1 from 0 to 1; 0 when nothing was expected or predicted.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} completions but {len(predicted)} predictions")
    tp = fp = fn = 0
    for expected, got in zip(gold, predicted, strict=True):
        want, have = result_keys(expected, labels), result_keys(got, labels)
        tp += len(want & have)
        fp += len(have - want)
        fn += len(want - have)
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0
