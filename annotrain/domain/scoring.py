"""Scoring predictions against completions in Label Studio's result shape.

Used where two models must be compared on the same tasks (active learning: the
deployed model against a new one, on the new run's test split). A span counts
when its start, end and label match exactly (entity level, as seqeval scores
NER); a choice when its control and class match. Only the given labels count.
Rectangles (Visual NER) are scored on the page's OCR words: each rectangle labels
the words mostly inside it, and an entity counts when the same words carry the
same label (:func:`rectangles_micro_f1`), as the model's own test scores do.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from annotrain.domain.layout import label_words, regions_of_json
from annotrain.domain.ocr import OcrPage

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


def rectangles_micro_f1(
    gold: Sequence[Sequence[Mapping[str, Any]]],
    predicted: Sequence[Sequence[Mapping[str, Any]]],
    pages: Sequence[OcrPage | None],
    labels: Collection[str],
) -> float:
    """Micro F1 of predicted rectangles against completions' rectangles, on the OCR words.

    Both sides' rectangles tag the page's words (:func:`label_words`); an entity is
    a run of words with one label, and counts when both sides have the same run.

    Args:
        gold: Each task's completion result.
        predicted: Each task's predicted result, in the same order.
        pages: Each task's OCR; a task without it is not scored.
        labels: The labels scored.
    """
    if not len(gold) == len(predicted) == len(pages):
        raise ValueError("give one completion, one prediction and one OCR page per task")
    tp = fp = fn = 0
    for expected, got, page in zip(gold, predicted, pages, strict=True):
        if page is None:
            continue
        want, have = (
            _word_entities(
                label_words(
                    page.words,
                    [r for r in regions_of_json(result) if r.label in labels],
                    page.width,
                    page.height,
                ).tags
            )
            for result in (expected, got)
        )
        tp += len(want & have)
        fp += len(have - want)
        fn += len(want - have)
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def _word_entities(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """Runs of ``B-X I-X…`` as ``(first word, last word, label)``."""
    found: set[tuple[int, int, str]] = set()
    start, label = 0, ""
    for index, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        if label and (prefix != "I" or name != label):
            found.add((start, index - 1, label))
            label = ""
        if prefix in ("B", "I") and name and not label:
            start, label = index, name
    return found
