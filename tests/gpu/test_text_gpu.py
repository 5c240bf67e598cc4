"""Text training and prediction on CUDA (mixed precision); skipped where there is no GPU."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device on this machine", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ml"))
from text_projects import mixed_snapshot  # noqa: E402


def test_a_mixed_project_trains_and_predicts_on_the_gpu_with_mixed_precision(
    tmp_path: Path,
) -> None:
    from batch_jobs.text import TrainOptions, load_models, train_snapshot
    from batch_jobs.text.model import tiny_encoder

    options = TrainOptions(min_examples_per_label=5, validation_share=0.2, encoder=tiny_encoder())
    snapshot = replace(mixed_snapshot(), use_gpu=True)
    models = train_snapshot(snapshot, tmp_path, options=options)
    assert {m.spec.name for m in models} == {"ner", "assertion", "priority", "systems"}
    assert models[0].metrics["micro"]["f1"] >= 0.8
    predictor = load_models([m.directory for m in models], device="cuda")
    [prediction] = predictor.predict([{"note": "He has asthma , emergency now ."}])
    assert any(item["type"] == "labels" for item in prediction.result)


def test_out_of_memory_names_the_parameters_to_lower(tmp_path: Path) -> None:
    from text_projects import fast_params

    from batch_jobs.text import OutOfMemoryError, TrainOptions, train_snapshot
    from batch_jobs.text.model import packaged_encoder

    free, _ = torch.cuda.mem_get_info()
    # Leave 32 MiB: less than MiniLM's 90 MB of weights.
    hog = torch.empty(free - 32 * 2**20, dtype=torch.uint8, device="cuda")
    try:
        options = TrainOptions(min_examples_per_label=5, encoder=packaged_encoder("minilm-l6-en"))
        snapshot = mixed_snapshot(kinds=("ner",), params=fast_params(batch_size=64))
        with pytest.raises(OutOfMemoryError, match=r"lower params\.batch_size"):
            train_snapshot(snapshot, tmp_path, device="cuda", options=options)
    finally:
        del hog
        torch.cuda.empty_cache()


def test_class_weights_and_dev_scoring_at_each_evaluation_run_on_the_gpu(tmp_path: Path) -> None:
    """The benchmark's ``--device cuda`` path: weighted loss, scores timed in, pinned batches."""
    from text_projects import fast_params

    from batch_jobs.text import TrainOptions, train_snapshot
    from batch_jobs.text.data import Feature
    from batch_jobs.text.model import pad_batch, tiny_encoder

    options = TrainOptions(
        min_examples_per_label=5, validation_share=0.2, encoder=tiny_encoder(),
        score_test_each_evaluation=True,
    )  # fmt: skip
    snapshot = mixed_snapshot(kinds=("assertion", "classification"), params=fast_params())
    models = train_snapshot(snapshot, tmp_path, device="cuda", options=options)
    for model in models:
        assert len(model.history) == 16  # 8 epochs, 2 evaluations each
        assert all(h["test_score"] is not None for h in model.history)
    single = [m for m in models if not m.spec.multi_label]
    assert all(m.metrics["macro"]["f1"] >= 0.8 for m in single)
    batch = pad_batch([Feature([101, 7, 102], 1, 0)], 0, torch.device("cuda"))
    assert all(t.device.type == "cuda" for t in batch.values())
