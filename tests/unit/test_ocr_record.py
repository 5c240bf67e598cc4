"""OCR records, their keys and Tesseract languages (annotrain.domain.ocr); synthetic forms."""

from __future__ import annotations

import pytest

from annotrain.adapters.blob_keys import check_key
from annotrain.domain.config import parse_labeling_config
from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.labelstudio import parse_tasks
from annotrain.domain.layout import regions_of_result
from annotrain.domain.ocr import (
    OcrPage,
    OcrWord,
    missing_language_message,
    ocr_cache_key,
    ocr_key,
    page_from_json,
    page_to_json,
    tesseract_language,
)
from annotrain.domain.training_plan import ModelKind, implied_models
from batch_jobs.visual.synthetic import LABELING_CONFIG, LABELS, generate_form

IMAGE_ID = "0123456789abcdef0123456789abcdef"


def test_every_project_language_maps_to_its_tesseract_code_and_debian_pack() -> None:
    pairs = {iso: tesseract_language(iso) for iso in ("en", "de", "es", "pt", "it", "da", "ro")}
    assert {iso: lang.code for iso, lang in pairs.items()} == {
        "en": "eng", "de": "deu", "es": "spa", "pt": "por", "it": "ita", "da": "dan", "ro": "ron",
    }  # fmt: skip
    assert pairs["da"].package == "tesseract-ocr-dan"


def test_a_language_ocr_does_not_read_is_refused_naming_those_it_reads() -> None:
    with pytest.raises(InvalidRequestError, match="one of da, de, en, es, it, pt, ro") as caught:
        tesseract_language("fi")
    assert caught.value.field == "language"


def test_a_missing_language_pack_is_named_by_its_debian_package() -> None:
    message = missing_language_message(tesseract_language("ro"), ["eng", "deu"])
    assert "apt-get install tesseract-ocr-ron" in message
    assert "installed: deu, eng" in message


def test_an_ocr_record_survives_json_with_pixel_and_normalised_boxes() -> None:
    page = OcrPage(
        2000, 1000, (OcrWord("Total", 100, 50, 300, 40, 96.5, 3),), "eng", "5.3.0", "ab" * 32
    )
    stored = page_to_json(page)
    assert stored["words"][0]["box"] == [100, 50, 300, 40]
    assert stored["words"][0]["bbox"] == [50, 50, 200, 90]
    assert stored["engine"] == "tesseract 5.3.0"
    assert page_from_json(stored) == page


def test_a_record_of_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        page_from_json({"format": 99})


def test_ocr_keys_lie_beside_the_image_and_are_valid_blob_keys() -> None:
    assert ocr_key(3, IMAGE_ID) == f"projects/3/ocr/{IMAGE_ID}.json"
    cache = ocr_cache_key(3, "f" * 64, "eng+deu", "5.3.0-1")
    assert cache == f"projects/3/ocr-cache/{'f' * 64}-eng_deu-5.3.0-1.json"
    assert check_key(cache) == cache
    with pytest.raises(ValueError, match="image id"):
        ocr_key(3, "../x")


def test_a_seed_draws_the_same_form_and_another_seed_another() -> None:
    first, again, other = generate_form(7), generate_form(7), generate_form(8)
    assert first.png() == again.png()
    assert first.fields == again.fields
    assert first.fields != other.fields
    assert {f.label for f in first.fields} == set(LABELS)


def test_synthetic_forms_import_as_visual_ner_completions_with_their_gold_boxes() -> None:
    schema = parse_labeling_config(LABELING_CONFIG)
    assert [m.kind for m in implied_models(schema)] == [ModelKind.VISUAL_NER]
    form = generate_form(3, size=(1000, 1400))
    (task,) = parse_tasks([form.task("/api/v1/projects/1/images/" + IMAGE_ID)], schema)
    regions = regions_of_result(task.completions[0].result)
    assert [(r.label, r.text) for r in regions] == [(f.label, f.text) for f in form.fields]
    width, height = form.size
    for region, gold in zip(regions, form.fields, strict=True):
        assert round(region.x * width / 100) == gold.box[0]
        assert round((region.y + region.height) * height / 100) == gold.box[3]
