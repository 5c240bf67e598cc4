"""The loop's parts: bucketed batches, early stopping, thresholds, scores, windows end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from text_projects import fast_params, long_notes_snapshot, note


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


def test_early_stopping_restores_the_best_epochs_weights(tiny_options: Any) -> None:
    import torch

    from batch_jobs.text.data import Feature
    from batch_jobs.text.model import build_model
    from batch_jobs.text.train import fit

    model = build_model(tiny_options.encoder, labels=["a", "b"], token_level=False, dropout=0.0,
                        vocab_size=30522)  # fmt: skip
    features = [Feature([101, 2000 + i, 102], i % 2, i) for i in range(16)]
    scores = iter([0.2, 0.9, 0.5, 0.4, 0.3, 0.1])
    snapshots: list[torch.Tensor] = []

    def validation_score() -> float:
        snapshots.append(model.classifier.weight.detach().clone())
        return next(scores)

    history, best = fit(
        model, features, params=fast_params(epochs=6, early_stopping_patience=2),
        device=torch.device("cpu"), pad_id=0, validation_score=validation_score, model_name="t",
    )  # fmt: skip
    assert best == 2
    assert [h["val_score"] for h in history] == [0.2, 0.9, 0.5, 0.4]
    assert torch.equal(model.classifier.weight, snapshots[1])
    assert not torch.equal(model.classifier.weight, snapshots[-1])


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
