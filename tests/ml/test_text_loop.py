"""The loop's parts: bucketed batches, early stopping, thresholds, scores, windows end to end."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

from text_projects import fast_params, long_notes_snapshot, note

from annotrain.domain.training_plan import ModelKind


def test_bucketed_batches_cover_every_row_once_with_similar_lengths() -> None:
    from batch_jobs.text.train import length_bucketed_batches

    rng = random.Random(0)
    lengths = [rng.randint(5, 500) for _ in range(1000)]
    batches = length_bucketed_batches(lengths, 10, random.Random(1))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    shuffled = [list(range(i, i + 10)) for i in range(0, 1000, 10)]
    random_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in shuffled)
    assert spread < random_spread / 5
    assert batches != length_bucketed_batches(lengths, 10, random.Random(2))


def fit_with_scores(
    tiny_options: Any, scores: list[float], patience: int
) -> tuple[list[dict[str, Any]], int, Any, list[Any]]:
    """Train a tiny classifier whose validation scores are ``scores`` in turn (one
    evaluation per epoch); returns the history, the best epoch, the model and its
    head's weights at each evaluation."""
    import torch

    from batch_jobs.text.data import Feature
    from batch_jobs.text.model import build_model
    from batch_jobs.text.train import fit

    model = build_model(tiny_options.encoder, labels=["a", "b"], token_level=False, dropout=0.0,
                        vocab_size=30522)  # fmt: skip
    features = [Feature([101, 2000 + i, 102], i % 2, i) for i in range(16)]
    given = iter(scores)
    snapshots: list[torch.Tensor] = []

    def validation_score() -> float:
        snapshots.append(model.classifier.weight.detach().clone())
        return next(given)

    history, best = fit(
        model, features, params=fast_params(epochs=len(scores), early_stopping_patience=patience),
        device=torch.device("cpu"), pad_id=0, validation_score=validation_score, model_name="t",
    )  # fmt: skip
    return history, best, model, snapshots


def test_early_stopping_restores_the_best_epochs_weights(tiny_options: Any) -> None:
    import torch

    history, best, model, snapshots = fit_with_scores(
        tiny_options, [0.2, 0.9, 0.5, 0.4, 0.3, 0.1], patience=2
    )
    assert best == 2
    assert [h["val_score"] for h in history] == [0.2, 0.9, 0.5, 0.4]
    assert torch.equal(model.classifier.weight, snapshots[1])
    assert not torch.equal(model.classifier.weight, snapshots[-1])


def test_a_tie_with_the_best_score_keeps_the_later_weights_but_does_not_reset_patience(
    tiny_options: Any,
) -> None:
    import torch

    # A small validation part saturates: 1.0, then ties, then worse.
    history, best, model, snapshots = fit_with_scores(
        tiny_options, [0.5, 1.0, 1.0, 0.8, 1.0, 0.9], patience=3
    )
    # Three evaluations after epoch 2 without a better score (two ties) stop training.
    assert [h["val_score"] for h in history] == [0.5, 1.0, 1.0, 0.8, 1.0]
    assert best == 5
    assert torch.equal(model.classifier.weight, snapshots[4])


def test_thresholds_are_chosen_per_label_on_validation_scores() -> None:
    from batch_jobs.text.evaluate import choose_thresholds

    probabilities = [[0.9, 0.2], [0.8, 0.25], [0.3, 0.1], [0.2, 0.3], [0.6, 0.05]]
    truth = [[1, 1], [1, 1], [0, 0], [0, 1], [0, 0]]
    first, second = choose_thresholds(probabilities, truth, 2)
    assert 0.6 < first <= 0.8  # above the negative at 0.6, at or below the positive at 0.8
    assert 0.1 < second <= 0.2  # every positive (0.2, 0.25, 0.3) kept, the negatives dropped
    assert choose_thresholds([[0.9]], [[0]], 1) == [0.5]


def test_entity_scores_follow_seqeval_and_class_scores_the_confusion_matrix() -> None:
    from batch_jobs.text.evaluate import class_metrics, ner_metrics

    truth = [["B-D", "I-D", "O", "B-C"], ["B-D", "O"]]
    predicted = [["B-D", "I-D", "O", "O"], ["B-D", "I-D"]]
    metrics = ner_metrics(truth, predicted, ["D", "C"])
    assert metrics["per_label"]["D"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert metrics["per_label"]["C"]["recall"] == 0.0
    assert metrics["micro"]["precision"] == 1 / 2
    assert metrics["micro"]["recall"] == 1 / 3
    scores = class_metrics([0, 0, 1, 2], [0, 1, 1, 2], ["x", "y", "z"])
    assert scores["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert scores["per_label"]["y"]["precision"] == 0.5
    assert scores["micro"]["f1"] == 0.75


def test_an_entity_straddling_a_window_edge_is_found_in_a_long_document(
    tmp_path: Path, tiny_options: Any
) -> None:
    from batch_jobs.text import load_models, train_snapshot
    from batch_jobs.text.data import windows, words_of
    from batch_jobs.text.model import load_tokenizer

    # Training examples of four notes each are longer than a window too, so the model
    # learns every position of a window (and training reads windows as well).
    params = fast_params(max_length=24, epochs=10)
    snapshot = long_notes_snapshot(train=30, test=5, notes_per_example=4, params=params)
    [model] = train_snapshot(snapshot, tmp_path, options=tiny_options)
    assert model.metrics["micro"]["f1"] >= 0.9
    # A long document of notes like the training ones, read in many windows.
    notes = [note(random.Random(seed)) for seed in range(7, 31)]
    text = " ".join(t for t, _ in notes)
    expected = []
    offset = 0
    for one, items in notes:
        start, end = items[0]["value"]["start"], items[0]["value"]["end"]
        expected.append((offset + start, offset + end))
        offset += len(one) + 1
    # Some window edge falls inside an entity, with the windows prediction reads in.
    description = json.loads((model.directory / "annotrain.json").read_text())
    overlap = description["settings"]["window"]["overlap"]
    document = words_of("1", text)
    tokenizer = load_tokenizer(model.directory)
    word_ids = tokenizer([[w.text for w in document.words]], is_split_into_words=True,
                         add_special_tokens=False).word_ids(0)  # fmt: skip
    ranges = windows(word_ids, 24 - 2, overlap)
    assert len(ranges) > 4
    straddling = []
    for start, end in expected:
        inside = [i for i, w in enumerate(word_ids)
                  if start <= document.words[w].start < end]  # fmt: skip
        first, last = inside[0], inside[-1]
        if any(first < edge <= last for r in ranges for edge in r):
            straddling.append((start, end))
    assert straddling
    [prediction] = load_models([model.directory]).predict([{"note": text}])
    spans = {(i["value"]["start"], i["value"]["end"]) for i in prediction.result}
    assert set(straddling) <= spans
    assert len(spans & set(expected)) >= 0.9 * len(expected)


def test_evaluation_points_spread_over_the_epoch_and_end_it() -> None:
    from batch_jobs.text.train import evaluation_steps

    assert evaluation_steps(10, 2) == {5, 10}
    assert evaluation_steps(9, 3) == {3, 6, 9}
    assert evaluation_steps(7, 1) == {7}
    assert evaluation_steps(2, 4) == {1, 2}  # a short epoch: after every step


def test_the_schedule_warms_up_then_decays_linearly_to_zero() -> None:
    from batch_jobs.text.train import learning_rate_factor

    factors = [learning_rate_factor(step, 100, 10) for step in range(101)]
    assert factors[0] == 0.1
    assert factors[9] == 1.0
    assert factors[10] == 1.0
    assert factors[55] == 0.5
    assert factors[100] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))


def test_class_weights_favour_the_rare_class_and_keep_the_mean_at_one() -> None:
    from batch_jobs.text.train import class_weights

    labels = [0] * 90 + [1] * 10
    common, rare = class_weights(labels, 2)
    assert abs(rare / common - 3.0) < 1e-9  # sqrt(90 / 10)
    assert abs(sum(common if y == 0 else rare for y in labels) / len(labels) - 1) < 1e-9
    assert class_weights([0, 1, 0, 1], 2) == [1.0, 1.0]
    # A class with no training example weighs as much as the rarest one seen.
    assert class_weights([0, 0, 1], 3)[2] == class_weights([0, 0, 1], 3)[1]


def test_a_weighted_loss_is_the_weighted_cross_entropy_of_the_logits(tiny_options: Any) -> None:
    import torch

    from batch_jobs.text.data import Feature
    from batch_jobs.text.model import build_model
    from batch_jobs.text.train import fit

    features = [Feature([101, 2000 + i, 102], int(i % 4 == 0), i) for i in range(16)]

    def trained(weights: list[float] | None) -> torch.Tensor:
        model = build_model(tiny_options.encoder, labels=["a", "b"], token_level=False,
                            dropout=0.0, vocab_size=30522, seed=3)  # fmt: skip
        fit(model, features, params=fast_params(epochs=2), device=torch.device("cpu"), pad_id=0,
            validation_score=lambda: float("nan"), model_name="t", weights=weights)  # fmt: skip
        return model.classifier.weight.detach().clone()

    plain, even, rare_first = trained(None), trained([1.0, 1.0]), trained([0.5, 1.5])
    assert torch.allclose(plain, even, atol=1e-6)  # equal weights: the model's own loss
    assert not torch.allclose(plain, rare_first, atol=1e-4)


def test_the_test_part_can_be_scored_at_every_evaluation_and_is_timed_apart(
    tmp_path: Path, tiny_options: Any
) -> None:
    from dataclasses import replace

    from text_projects import mixed_snapshot

    from batch_jobs.text import train_snapshot

    snapshot = mixed_snapshot(kinds=("classification",), params=fast_params(epochs=2))
    options = replace(
        tiny_options, score_test_each_evaluation=True, evaluations_per_epoch=3,
        balance_classes=frozenset({ModelKind.CLASSIFICATION}),
    )  # fmt: skip
    models = train_snapshot(snapshot, tmp_path, options=options)
    for model in models:
        assert len(model.history) == 6
        assert all(0.0 <= h["test_score"] <= 1.0 for h in model.history)
        seconds = [h["seconds"] for h in model.history]
        assert seconds == sorted(seconds)
        assert seconds[0] > 0
        # The loop's own time leaves out building, tokenising and the test scoring.
        train_seconds = [h["train_seconds"] for h in model.history]
        assert train_seconds == sorted(train_seconds)
        assert all(0 < t < s for t, s in zip(train_seconds, seconds, strict=True))
    [single] = [m for m in models if not m.spec.multi_label]
    description = json.loads((single.directory / "annotrain.json").read_text())
    assert len(description["settings"]["class_weights"]) == len(single.spec.labels)
    [multi] = [m for m in models if m.spec.multi_label]  # its sigmoids have thresholds instead
    assert (
        "class_weights"
        not in json.loads((multi.directory / "annotrain.json").read_text())["settings"]
    )


def test_eval_steps_evaluate_within_epochs_and_max_steps_ends_training(tiny_options: Any) -> None:
    import torch

    from batch_jobs.text.data import Feature
    from batch_jobs.text.model import build_model
    from batch_jobs.text.train import fit

    model = build_model(tiny_options.encoder, labels=["a", "b"], token_level=False, dropout=0.0,
                        vocab_size=30522)  # fmt: skip
    features = [Feature([101, 2000 + i, 102], i % 2, i) for i in range(16)]  # 2 steps an epoch
    history, _ = fit(
        model, features, params=fast_params(epochs=6, batch_size=8, eval_steps=3, max_steps=7),
        device=torch.device("cpu"), pad_id=0, validation_score=lambda: 0.5, model_name="t",
    )  # fmt: skip
    # Every 3 steps, at epoch ends (2, 4, 6) not evaluated already, and where max_steps stops.
    assert [(h["epoch"], h["step"]) for h in history] == [
        (1, 2), (2, 3), (2, 4), (3, 6), (4, 7)
    ]  # fmt: skip
