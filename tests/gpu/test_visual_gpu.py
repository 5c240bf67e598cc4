"""Visual NER training and pre-annotation on CUDA (mixed precision); skipped without a GPU.

The pages' OCR records are the generator's drawn words (``drawn_page``), so the test
needs no Tesseract on the GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from annotrain.domain.ocr import page_to_json
from annotrain.domain.snapshot import Example, Part, TrainingParams, TrainingSnapshot
from annotrain.domain.training_plan import ModelKind, ModelSpec
from batch_jobs.visual.synthetic import LABELING_CONFIG, LABELS, generate_forms

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device on this machine", allow_module_level=True)


def test_visual_ner_trains_and_predicts_rectangles_on_the_gpu(tmp_path: Path) -> None:
    from batch_jobs.text import TrainOptions, load_models, train_snapshot
    from batch_jobs.text.model import tiny_encoder

    forms = generate_forms(24, seed=300, size=(620, 877))
    examples = tuple(
        Example(str(n), Part.TEST if n % 4 == 0 else Part.TRAIN, {"image": "x"},
                tuple(form.result()), page_to_json(form.drawn_page()))
        for n, form in enumerate(forms)
    )  # fmt: skip
    spec = ModelSpec(ModelKind.VISUAL_NER, "visual_ner", LABELS, ("label",), ("image",))
    snapshot = TrainingSnapshot(
        "gpu", 1, "en", "minilm-l6-en",
        TrainingParams(epochs=15, learning_rate=5e-3, batch_size=4, early_stopping_patience=0),
        (spec,), examples, LABELING_CONFIG, use_gpu=True,
    )  # fmt: skip
    options = TrainOptions(min_examples_per_label=5, encoder=tiny_encoder())
    (model,) = train_snapshot(snapshot, tmp_path, options=options)
    assert model.metrics["micro"]["f1"] > 0.3
    predictor = load_models([model.directory], device="cuda")
    (prediction,) = predictor.predict([{"id": 1, "data": {}, "ocr": examples[0].ocr}])
    assert prediction.result
    assert {item["type"] for item in prediction.result} == {"rectanglelabels"}
