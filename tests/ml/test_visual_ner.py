"""Visual NER end to end on CPU: synthetic invoices uploaded through the API, read by
Tesseract, their gold rectangles imported as completions, a tiny LayoutLM trained by
``batch_jobs.train``, deployed, and pre-annotating the uploaded pages with rectangles.

Pages are drawn at 40 % of A4 at 150 dpi (496x702 px): Tesseract still reads them,
in about a tenth of a second each, and the tiny model (2 layers, 32 wide, on the
real MiniLM tokenizer) learns the invoices' fields in a few seconds.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_ml import Trained
from fake_runner import RecordingRunner
from fakes import FakeClock
from fastapi.testclient import TestClient

from annotrain.adapters.filesystem import FilesystemBlobStore
from annotrain.adapters.sqlite import SqliteStore
from annotrain.api import create_app
from annotrain.domain.ocr import OcrPage, OcrWord, page_to_json
from annotrain.domain.records import RunStatus, UserRole
from annotrain.domain.snapshot import Example, Part, TrainingParams, TrainingSnapshot
from annotrain.domain.training_plan import ModelKind, ModelSpec
from annotrain.services.users import create_user
from annotrain.settings import Settings
from batch_jobs.ocr import ocr
from batch_jobs.preannotate import preannotate
from batch_jobs.runtime import EXIT_SUCCEEDED, run_job
from batch_jobs.train import train
from batch_jobs.visual.synthetic import LABELING_CONFIG, LABELS, SyntheticForm, generate_form

SMALL_PAGE = (496, 702)
TRAIN_PAGES = 24
NEW_PAGES = 2
SPEC = ModelSpec(ModelKind.VISUAL_NER, "visual_ner", LABELS, ("label",), ("image",))


@functools.cache
def _form(seed: int) -> SyntheticForm:
    return generate_form(seed, size=SMALL_PAGE)


@dataclass
class Lab:
    client: TestClient
    store: SqliteStore
    runner: RecordingRunner
    blobs: FilesystemBlobStore
    clock: FakeClock
    headers: dict[str, str]
    project_id: int

    def run(self, work: Any, run_id: str) -> int:
        return run_job(
            work, ["--run-id", run_id], environ={},
            store_opener=lambda _: self.store, blob_opener=lambda _: self.blobs,
            clock=self.clock, heartbeat_interval=0.05,
        )  # fmt: skip

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(
            method, f"/api/v1/projects/{self.project_id}{path}", headers=self.headers, **kwargs
        )
        assert response.status_code < 300, response.text
        return response.json()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    clock = FakeClock()
    with SqliteStore(tmp_path / "annotrain.db") as store:
        token = create_user(store, "owner", UserRole.USER, clock)[1]
        settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
        app = create_app(settings=settings, store=store, clock=clock)
        runner = RecordingRunner(store)
        with TestClient(app) as client:
            app.state.runner = runner
            headers = {"Authorization": f"Bearer {token}"}
            created = client.post(
                "/api/v1/projects",
                json={"name": "Invoices", "labeling_config": LABELING_CONFIG},
                headers=headers,
            )
            assert created.status_code == 201, created.text
            yield Lab(
                client, store, runner, FilesystemBlobStore(tmp_path / "blobs"), clock, headers,
                created.json()["id"],
            )  # fmt: skip


def _tiny_trainer() -> Any:
    from batch_jobs.text.model import tiny_encoder
    from batch_jobs.text.train import TrainOptions, train_snapshot

    options = TrainOptions(
        min_examples_per_label=5, validation_share=0.2, encoder=tiny_encoder(),
        progress_interval=0.0,
    )  # fmt: skip
    return functools.partial(train_snapshot, options=options)


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed")
def test_invoices_uploaded_ocrd_trained_and_preannotated_with_rectangles(lab: Lab) -> None:
    forms = [_form(seed) for seed in range(TRAIN_PAGES + NEW_PAGES)]
    upload = lab.api(
        "POST", "/tasks/upload",
        files=[("files", (f"inv-{f.seed}.png", f.png(), "image/png")) for f in forms],
    )  # fmt: skip
    assert lab.run(functools.partial(ocr, workers=1), upload["ocr"]["id"]) == EXIT_SUCCEEDED
    tasks = [lab.api("GET", f"/tasks/{task_id}") for task_id in upload["task_ids"]]
    assert all(t["ocr"]["words"] > 20 for t in tasks)

    # The labelled pages come back as a Label Studio import naming the uploaded images.
    imported = lab.api(
        "POST", "/tasks/import",
        json=[f.task(t["data"]["image"]) for f, t in zip(forms[:TRAIN_PAGES], tasks, strict=False)],
    )  # fmt: skip
    assert imported["imported"] == TRAIN_PAGES
    training = lab.api(
        "POST", "/trainings",
        json={"types": ["visual_ner"], "deploy": True, "split": {"validation_share": 0.25},
              "params": {"epochs": 12, "learning_rate": 0.005, "batch_size": 4,
                         "max_length": 128, "early_stopping_patience": 0}},
    )  # fmt: skip
    trainer = _tiny_trainer()
    assert lab.run(functools.partial(train, trainer=lambda: trainer), training["id"]) == 0

    run = lab.store.get_run(training["id"])
    assert run.status is RunStatus.SUCCEEDED, run.failure_reason
    (metrics,) = run.metrics["models"].values()
    assert set(metrics["per_label"]) == set(LABELS)
    assert metrics["micro"]["f1"] > 0.3, metrics["micro"]
    assert run.metrics["deploy"][0]["deployed"] is True

    _deployed_model_is_scored_on_the_words_of_its_rectangles(lab, run, metrics)

    started = lab.api("POST", "/preannotations", json={"task_ids": upload["task_ids"][-NEW_PAGES:]})
    assert lab.run(preannotate, started["id"]) == EXIT_SUCCEEDED
    for form, task_id in zip(forms[-NEW_PAGES:], upload["task_ids"][-NEW_PAGES:], strict=True):
        (prediction,) = lab.api("GET", f"/tasks/{task_id}")["predictions"]
        rectangles = [i for i in prediction["result"] if i["type"] == "rectanglelabels"]
        transcriptions = {i["id"]: i for i in prediction["result"] if i["type"] == "textarea"}
        assert rectangles, "the trained model proposed no rectangle"
        assert len(rectangles) + len(transcriptions) == len(prediction["result"])
        items = rectangles
        for item in items:
            # The config's per-region TextArea holds the OCR words inside each rectangle.
            text = transcriptions[item["id"]]
            assert (text["from_name"], text["to_name"]) == ("transcription", "image")
            geometry = {k: v for k, v in item["value"].items() if k != "rectanglelabels"}
            assert {k: v for k, v in text["value"].items() if k != "text"} == geometry
            (words,) = text["value"]["text"]
            assert words.strip()
            assert (item["from_name"], item["to_name"]) == ("label", "image")
            assert (item["original_width"], item["original_height"]) == form.size
            value = item["value"]
            assert value["rotation"] == 0
            assert value["rectanglelabels"][0] in LABELS
            assert 0 <= value["x"] <= 100
            assert 0 < value["width"] <= 100
            assert 0 <= item["score"] <= 1
        assert 0 < prediction["score"] <= min(item["score"] for item in items)
        found = {i["value"]["rectanglelabels"][0] for i in items}
        assert found & {"IBAN", "InvoiceNumber", "Total"}, found


def _deployed_model_is_scored_on_the_words_of_its_rectangles(
    lab: Lab, run: Any, metrics: dict[str, Any]
) -> None:
    """Active learning's comparison: the deployed model, scored on the run's test split."""
    import tempfile

    from batch_jobs.text import load_models
    from batch_jobs.train import Registered, _beats_deployed

    (entry,) = lab.store.list_models(project_id=lab.project_id).items
    with lab.blobs.open(run.dataset_key) as stream:
        snapshot = TrainingSnapshot.from_bytes(stream.read())
    trained = Trained(SPEC, Path("unused"), {**metrics, "micro": {"f1": 1.0}}, [], [])
    with tempfile.TemporaryDirectory() as tmp:
        beats, why = _beats_deployed(
            lab.blobs, entry, Registered(entry, trained), snapshot, lambda: load_models, Path(tmp)
        )
    deployed_f1 = float(why.rsplit(" ", 1)[1])
    # The deployed model is this run's: on the same words it scores near its own test F1.
    assert deployed_f1 == pytest.approx(metrics["micro"]["f1"], abs=0.15), why
    assert beats is (deployed_f1 < 1.0)


def _word_page(words: list[tuple[str, int, int, int]], size: tuple[int, int] = (1000, 500)) -> Any:
    """An OCR record of single-line words ``(text, left, top, line)``, 80x20 px each."""
    page = OcrPage(
        size[0], size[1],
        tuple(OcrWord(text, left, top, 80, 20, 95.0, line) for text, left, top, line in words),
        "eng", "5.3.0", "0" * 64,
    )  # fmt: skip
    return page_to_json(page)


def _rectangle(label: str, x: float, y: float, width: float, height: float) -> dict[str, Any]:
    return {
        "id": f"r-{label}-{x}", "from_name": "label", "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": width, "height": height, "rotation": 0,
                  "rectanglelabels": [label]},
    }  # fmt: skip


def _snapshot(examples: list[Example]) -> TrainingSnapshot:
    return TrainingSnapshot(
        "train-0", 1, "en", "minilm-l6-en", TrainingParams(epochs=1), (SPEC,), tuple(examples),
        LABELING_CONFIG,
    )  # fmt: skip


def test_completions_whose_boxes_hold_no_word_fail_the_run_naming_their_tasks(
    tmp_path: Path,
) -> None:
    from batch_jobs.visual.errors import PoorBoxesError

    ocr_record = _word_page([("Total", 100, 100, 0), ("12.50", 200, 100, 0)])
    good = [_rectangle("Total", 19.0, 19.0, 10.0, 6.0)]  # around "12.50"
    beside = [_rectangle("Total", 60.0, 60.0, 10.0, 6.0)]  # on blank paper
    examples = [
        Example(str(n), Part.TRAIN, {"image": "x"}, tuple(good), ocr_record) for n in range(6)
    ] + [Example("77", Part.TRAIN, {"image": "x"}, tuple(beside), ocr_record)]
    with pytest.raises(PoorBoxesError, match=r"no words inside — poor boxes.*task ids 77\b"):
        _tiny_trainer()(_snapshot(examples), tmp_path)


def test_examples_without_ocr_fail_the_run_saying_to_run_ocr_first(tmp_path: Path) -> None:
    from batch_jobs.visual.errors import OcrMissingError

    examples = [Example("5", Part.TRAIN, {"image": "x"}, (), None)]
    with pytest.raises(OcrMissingError, match=r"task ids 5\b.*run OCR first"):
        _tiny_trainer()(_snapshot(examples), tmp_path)


def test_too_few_rectangles_of_a_label_say_how_many_more_are_needed(tmp_path: Path) -> None:
    from batch_jobs.text.errors import NotEnoughDataError

    ocr_record = _word_page([("Total", 100, 100, 0), ("12.50", 200, 100, 0)])
    good = (_rectangle("Total", 19.0, 19.0, 10.0, 6.0),)
    examples = [Example(str(n), Part.TRAIN, {}, good, ocr_record) for n in range(3)]
    with pytest.raises(NotEnoughDataError, match=r"'Total' has 3, needs 2 more") as caught:
        _tiny_trainer()(_snapshot(examples), tmp_path)
    assert "'IBAN' has 0, needs 5 more" in str(caught.value)


def test_layout_encoding_gives_every_sub_word_its_words_box_and_labels_only_the_first() -> None:
    from annotrain.domain.ocr import page_from_json
    from batch_jobs.text.data import BOX_AFTER, BOX_BEFORE, IGNORE
    from batch_jobs.text.model import load_tokenizer, tiny_encoder
    from batch_jobs.visual.kinds import VisualNerHandler, page_document

    record = _word_page([("IBAN:", 10, 10, 0), ("DE89370400440532013000", 100, 10, 0)])
    page = page_from_json(record)
    document = page_document("1", page, ["O", "B-IBAN"])
    handler = VisualNerHandler(SPEC, _target(), max_length=64, overlap=8)
    tokenizer = load_tokenizer(tiny_encoder().tokenizer_path)
    (feature,) = handler.encode([document], tokenizer, labelled=True).features
    assert feature.bbox is not None
    assert feature.bbox[0] == BOX_BEFORE
    assert feature.bbox[-1] == BOX_AFTER
    iban_box = page.normalised_box(page.words[1])
    iban_rows = [i for i, box in enumerate(feature.bbox) if box == iban_box]
    assert len(iban_rows) > 1  # the IBAN is several sub-words, all on its box
    assert isinstance(feature.labels, list)
    tags = handler.model_labels
    assert tags[feature.labels[iban_rows[0]]] == "B-IBAN"
    assert all(feature.labels[i] == IGNORE for i in iban_rows[1:])


def test_the_layout_model_starts_from_the_encoders_weights_with_fresh_2d_tables() -> None:
    import torch
    from transformers import BertModel

    from batch_jobs.text.model import packaged_encoder
    from batch_jobs.visual.model import build_layout_model

    encoder = packaged_encoder("minilm-l6-en")
    model = build_layout_model(encoder, labels=["O", "B-X", "I-X"], dropout=0.1, vocab_size=1)
    bert = BertModel.from_pretrained(str(encoder.weights_path), add_pooling_layer=False)
    layout = model.layoutlm  # type: ignore[attr-defined]
    for name, tensor in bert.state_dict().items():
        assert torch.equal(layout.state_dict()[name], tensor), name
    assert layout.embeddings.x_position_embeddings.weight.shape[0] == 1024


def _target() -> Any:
    from batch_jobs.text.data import text_target

    return text_target(SPEC, LABELING_CONFIG)


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the refusal on a machine without CUDA"
)
def test_use_gpu_without_cuda_is_refused_saying_to_train_on_the_cpu(tmp_path: Path) -> None:
    from dataclasses import replace

    from batch_jobs.text.errors import GpuUnavailableError

    ocr_record = _word_page([("Total", 100, 100, 0), ("12.50", 200, 100, 0)])
    examples = [Example("1", Part.TRAIN, {}, (), ocr_record)]
    with pytest.raises(GpuUnavailableError, match="use_gpu false"):
        _tiny_trainer()(replace(_snapshot(examples), use_gpu=True), tmp_path)
