"""Scores of a trained text model, thresholds of a multi-label one, and plots as PNG.

Every function returns JSON values: ``{"per_label": {label: {"precision",
"recall", "f1", "support"}}, "micro": {...}, "macro": {...}}``, with a
``confusion_matrix`` (``{"labels", "matrix"}``, rows the truth, columns the
prediction) for single-label classifiers and assertion, and one 2x2 matrix per
label (``confusion_matrices``) for multi-label classifiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _macro(per_label: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    count = len(per_label) or 1
    return {
        key: sum(v[key] for v in per_label.values()) / count
        for key in ("precision", "recall", "f1")
    } | {"support": sum(v["support"] for v in per_label.values())}


def ner_metrics(
    truth: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], labels: Sequence[str]
) -> dict[str, Any]:
    """Entity-level precision, recall and F1 (seqeval, default lenient mode) per label."""
    from seqeval.metrics.sequence_labeling import (  # type: ignore[import-untyped]
        get_entities,
    )

    per_label: dict[str, dict[str, float]] = {}
    found = {label: [0, 0, 0] for label in labels}  # tp, fp, fn
    for index, (true_tags, predicted_tags) in enumerate(zip(truth, predicted, strict=True)):
        true_entities = {(index, *e) for e in get_entities(list(true_tags))}
        predicted_entities = {(index, *e) for e in get_entities(list(predicted_tags))}
        for entity in true_entities | predicted_entities:
            counts = found.setdefault(entity[1], [0, 0, 0])
            if entity in true_entities and entity in predicted_entities:
                counts[0] += 1
            elif entity in predicted_entities:
                counts[1] += 1
            else:
                counts[2] += 1
    for label, (tp, fp, fn) in found.items():
        per_label[label] = _prf(tp, fp, fn) | {"support": tp + fn}
    tp, fp, fn = (sum(c[i] for c in found.values()) for i in range(3))
    return {
        "per_label": per_label,
        "micro": _prf(tp, fp, fn) | {"support": tp + fn},
        "macro": _macro(per_label),
    }


def class_metrics(
    truth: Sequence[int], predicted: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Per-class precision, recall, F1 and the confusion matrix of a single-label model.

    Micro averages over all examples equal accuracy for single-label predictions.
    """
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, predicted, strict=True):
        matrix[t][p] += 1
    per_label = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        fp = sum(matrix[r][i] for r in range(len(labels))) - tp
        fn = sum(matrix[i]) - tp
        per_label[label] = _prf(tp, fp, fn) | {"support": sum(matrix[i])}
    tp = sum(matrix[i][i] for i in range(len(labels)))
    wrong = len(truth) - tp
    return {
        "per_label": per_label,
        "micro": _prf(tp, wrong, wrong) | {"support": len(truth)},
        "macro": _macro(per_label),
        "confusion_matrix": {"labels": list(labels), "matrix": matrix},
    }


def multilabel_metrics(
    truth: Sequence[Sequence[int]], predicted: Sequence[Sequence[int]], labels: Sequence[str]
) -> dict[str, Any]:
    """Per-label precision, recall, F1 and 2x2 confusion matrix of a multi-label model."""
    per_label = {}
    matrices = {}
    totals = [0, 0, 0]
    for i, label in enumerate(labels):
        cells = [[0, 0], [0, 0]]
        for t, p in zip(truth, predicted, strict=True):
            cells[t[i]][p[i]] += 1
        tp, fp, fn = cells[1][1], cells[0][1], cells[1][0]
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
        per_label[label] = _prf(tp, fp, fn) | {"support": tp + fn}
        matrices[label] = {"labels": [f"not {label}", label], "matrix": cells}
    return {
        "per_label": per_label,
        "micro": _prf(*totals) | {"support": totals[0] + totals[2]},
        "macro": _macro(per_label),
        "confusion_matrices": matrices,
    }


def choose_thresholds(
    probabilities: Sequence[Sequence[float]], truth: Sequence[Sequence[int]], count: int
) -> list[float]:
    """Per label, the threshold on the sigmoid score that gives the best F1 on these examples.

    Ties go to the threshold closest to 0.5; a label without positive examples
    keeps 0.5 (nothing to tune it on).
    """
    thresholds = []
    for i in range(count):
        scores = [p[i] for p in probabilities]
        gold = [t[i] for t in truth]
        if not any(gold):
            thresholds.append(0.5)
            continue
        best = (-1.0, 0.0, 0.5)
        for threshold in THRESHOLD_GRID:
            tp = sum(1 for s, g in zip(scores, gold, strict=True) if s >= threshold and g)
            fp = sum(1 for s, g in zip(scores, gold, strict=True) if s >= threshold and not g)
            fn = sum(gold) - tp
            f1 = _prf(tp, fp, fn)["f1"]
            best = max(best, (f1, -abs(threshold - 0.5), threshold))
        thresholds.append(best[2])
    return thresholds


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curve(history: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    """Training loss and validation score at each evaluation (x: epochs done), as a PNG."""
    plt = _pyplot()
    figure, loss_axis = plt.subplots(figsize=(6, 4))
    epochs = [h.get("at_epoch", h["epoch"]) for h in history]
    loss_axis.plot(epochs, [h["loss"] for h in history], "o-", color="tab:red", label="loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss")
    score_axis = loss_axis.twinx()
    scored = [h for h in history if h.get("val_score") is not None]
    score_axis.plot(
        [h.get("at_epoch", h["epoch"]) for h in scored],
        [h["val_score"] for h in scored],
        "s-",
        color="tab:blue",
    )
    score_axis.set_ylabel("validation F1")
    score_axis.set_ylim(0, 1)
    loss_axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str
) -> Path:
    """A confusion matrix (rows truth, columns prediction) with counts, as a PNG."""
    plt = _pyplot()
    size = max(4.0, 0.6 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    peak = max((v for row in matrix for v in row), default=0)
    for r, row in enumerate(matrix):
        for c, value in enumerate(row):
            color = "white" if peak and value > peak / 2 else "black"
            axis.text(c, r, str(value), ha="center", va="center", color=color)
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
