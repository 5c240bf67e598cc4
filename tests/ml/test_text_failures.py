"""Runs that cannot train say why, before training, in words a person can act on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from text_projects import fast_params, mixed_snapshot

from annotrain.domain.snapshot import Part
from annotrain.domain.training_plan import ModelKind, ModelSpec


def test_too_few_examples_name_each_label_and_how_many_more(
    tmp_path: Path, tiny_options: Any
) -> None:
    from batch_jobs.text import NotEnoughDataError, train_snapshot

    snapshot = mixed_snapshot(train=12, test=2, kinds=("ner", "assertion"))
    options = replace(tiny_options, min_examples_per_label=10)
    with pytest.raises(NotEnoughDataError) as caught:
        train_snapshot(snapshot, tmp_path, options=options)
    message = str(caught.value)
    # 12 notes, one disease each: NER has 12 Disease mentions; assertion splits them.
    assert "'ner'" not in message
    assert "model 'assertion'" in message
    counts = {"Present": 0, "Absent": 0}
    for example in snapshot.part(Part.TRAIN):
        for item in example.result:
            if item["value"].get("labels", [""])[0] in counts:
                counts[item["value"]["labels"][0]] += 1
    for label, count in counts.items():
        if count < 10:
            assert f"'{label}' has {count}, needs {10 - count} more" in message
    assert list(tmp_path.iterdir()) == []


def test_a_model_without_labels_is_refused(tmp_path: Path, tiny_options: Any) -> None:
    from batch_jobs.text import NotEnoughDataError, train_snapshot

    snapshot = mixed_snapshot(train=10, test=2, kinds=())
    empty = replace(snapshot, models=(ModelSpec(ModelKind.NER, "ner", (), ("label",), ("text",)),))
    with pytest.raises(NotEnoughDataError, match="declares no labels"):
        train_snapshot(empty, tmp_path, options=tiny_options)
    with pytest.raises(NotEnoughDataError, match="no labels for a model"):
        train_snapshot(snapshot, tmp_path, options=tiny_options)


def test_an_empty_training_part_is_refused(tmp_path: Path, tiny_options: Any) -> None:
    from batch_jobs.text import NotEnoughDataError, train_snapshot

    snapshot = mixed_snapshot(train=0, test=10, kinds=("ner",))
    with pytest.raises(NotEnoughDataError, match="training part holds no annotated example"):
        train_snapshot(snapshot, tmp_path, options=tiny_options)


def test_cancellation_stops_training_within_a_step(tmp_path: Path, tiny_options: Any) -> None:
    from batch_jobs.text import TrainingCancelledError, train_snapshot

    snapshot = mixed_snapshot(train=40, test=5, kinds=("ner",))
    checks = 0

    def stop_after_three_steps() -> bool:
        nonlocal checks
        checks += 1
        return checks > 3

    with pytest.raises(TrainingCancelledError, match="cancelled while training model 'ner:ner'"):
        train_snapshot(snapshot, tmp_path, should_stop=stop_after_three_steps, options=tiny_options)
    assert checks == 4
    assert not (tmp_path / "ner").exists()


def test_asking_for_the_gpu_without_cuda_is_refused(tmp_path: Path, tiny_options: Any) -> None:
    import torch

    from batch_jobs.text import GpuUnavailableError, train_snapshot

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot happen here")
    snapshot = mixed_snapshot(train=10, test=2, kinds=("ner",), params=fast_params(epochs=1))
    with pytest.raises(GpuUnavailableError, match="use_gpu false"):
        train_snapshot(snapshot, tmp_path, device="cuda", options=tiny_options)
    with pytest.raises(GpuUnavailableError):
        train_snapshot(replace(snapshot, use_gpu=True), tmp_path, options=tiny_options)


def test_out_of_memory_suggests_the_largest_batch_size_measured_to_fit() -> None:
    import torch

    from batch_jobs.text import OutOfMemoryError
    from batch_jobs.text.train import fitting_batch_size

    tried: list[int] = []

    def step(size: int) -> None:
        tried.append(size)
        if size > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    assert fitting_batch_size(step, 32) == 4
    assert tried == [16, 8, 4]
    assert fitting_batch_size(step, 1) == 0
    message = str(OutOfMemoryError("visual_ner:visual_ner", "cuda", 32, 512, fits=4))
    assert "set params.batch_size to 4" in message
    assert "not even a batch of 1" in str(OutOfMemoryError("m", "cuda", 1, 512, fits=0))
