"""Label Studio's own configs and files: they parse and import, or are refused for cause.

Reads the real data (see tests/shared_data.py); skips where it is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shared_data import shared_data_files, shared_data_id

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.errors import TaskImportError
from annotrain.domain.labelstudio import load_tasks, parse_tasks, tasks_to_json
from annotrain.domain.training_plan import ModelKind, implied_models

LS = "label_studio"
TEMPLATES = shared_data_files(f"{LS}/templates_xml/*.xml")
EXAMPLES = f"{LS}/label-studio-frontend_examples/examples"
EXAMPLE_CONFIGS = shared_data_files(f"{EXAMPLES}/*/config*.xml")
EXAMPLE_FILES = shared_data_files(f"{EXAMPLES}/*/tasks.json") + shared_data_files(
    f"{EXAMPLES}/*/annotations/*.json"
)
LS_TESTS = f"{LS}/pypi_label_studio_1.23.2/label_studio/tests"


def result_count(payload: Any) -> int:
    """Result items in a Label Studio file, wherever they sit."""
    tasks = payload if isinstance(payload, list) else [payload]
    keys = ("annotations", "completions", "drafts", "predictions")
    return sum(
        len(entry.get("result", []))
        for task in tasks
        for key in keys
        for entry in task.get(key) or []
    )


# --- the 69 templates Label Studio ships ---------------------------------------------


def test_all_69_templates_are_there(shared_data: Path) -> None:
    assert len(list((shared_data / LS / "templates_xml").glob("*.xml"))) == 69


@pytest.mark.parametrize("path", TEMPLATES, ids=shared_data_id)
def test_template_parses(path: Path) -> None:
    schema = parse_labeling_config(path.read_bytes())

    assert schema.objects or schema.controls


# What the templates are warned about, and nothing else: an unexpected warning on a
# template Label Studio ships means the parser misreads it.
TEMPLATE_WARNINGS = {
    "computer-vision__pdf_ocr.xml": [("OcrLabels", None, "unknown tag")],
    "generative-ai__chatbot-assessment.xml": [("Rating", "toName", "which object")],
    "ranking-and-scoring__document-retrieval.xml": [("Choices", "value", "'Two' is declared")],
}


@pytest.mark.parametrize("path", TEMPLATES, ids=shared_data_id)
def test_template_warnings_are_the_known_ones(path: Path) -> None:
    schema = parse_labeling_config(path.read_bytes())

    expected = TEMPLATE_WARNINGS.get(path.name, [])
    assert [(w.tag, w.attribute) for w in schema.warnings] == [(t, a) for t, a, _ in expected]
    for warning, (_, _, words) in zip(schema.warnings, expected, strict=True):
        assert words in warning.message


def test_pdf_ocr_template_keeps_its_unknown_tag(shared_data: Path) -> None:
    xml = (shared_data / LS / "templates_xml" / "computer-vision__pdf_ocr.xml").read_text()

    schema = parse_labeling_config(xml)

    assert [t.tag for t in schema.unknown_tags] == ["OcrLabels"]
    assert "pdf" in schema.objects


def test_document_retrieval_template_offers_its_repeated_choice_once(shared_data: Path) -> None:
    xml = shared_data / LS / "templates_xml" / "ranking-and-scoring__document-retrieval.xml"

    control = parse_labeling_config(xml.read_text()).controls["selection"]

    assert [o.value for o in control.options] == ["One", "Two"]


@pytest.mark.parametrize(
    ("template", "kinds"),
    [
        ("natural-language-processing__named-entity-recognition.xml", [ModelKind.NER]),
        ("natural-language-processing__text-classification.xml", [ModelKind.CLASSIFICATION]),
        ("computer-vision__optical-character-recognition.xml", [ModelKind.VISUAL_NER]),
        ("computer-vision__object-detection-with-bounding-boxes.xml", [ModelKind.VISUAL_NER]),
        ("computer-vision__image-classification.xml", []),
    ],
)
def test_templates_imply_the_models_they_are_for(
    shared_data: Path, template: str, kinds: list[ModelKind]
) -> None:
    schema = parse_labeling_config((shared_data / LS / "templates_xml" / template).read_text())

    assert [m.kind for m in implied_models(schema)] == kinds


# --- Label Studio frontend examples ---------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=shared_data_id)
def test_frontend_example_config_parses(path: Path) -> None:
    assert parse_labeling_config(path.read_bytes()).controls


# The real inconsistencies in the examples, as (task, source, result id, reason).
NAMES_TAG = "from_name 'tag' is not a control of the labeling config (controls: {})"
OCR_NAMES_TAG = NAMES_TAG.format("bbox, label, poly, transcription")
MIXED_NAMES_TAG = NAMES_TAG.format("choices, dt, label, num, taxonomy, txt, txt2")
DATE_NOT_DECLARED = "'Date' not declared in <Labels name='label'>; declared: LOC, MISC, ORG, PER"
DATE_TEXT_DIFFERS = "value.text 'February 22' differs from the text at 343..354: ' supporters'"
REFUSED_EXAMPLES = {
    # Its annotation and predictions name a tag 'tag' (and 'img') its config lacks.
    "image_ocr/tasks.json": [
        (0, "prediction #0 (model 1)", "t5sp3TyXPo", OCR_NAMES_TAG),
        (0, "prediction #1 (model 2)", "t5sp3TyXPo", OCR_NAMES_TAG),
    ],
    "image_ocr/annotations/1.json": [
        (0, "completion 1001", "Dx_aB91ISN", OCR_NAMES_TAG),
        (0, "prediction #0 (model 1)", "t5sp3TyXPo", OCR_NAMES_TAG),
        (0, "prediction #1 (model 2)", "t5sp3TyXPo", OCR_NAMES_TAG),
    ],
    # The span is labelled 'Date', which the config does not declare, and its
    # offsets do not hold the text it claims.
    "rich_text_plain/tasks.json": [
        (0, "prediction #0 (model 1)", "beFiQTT1cU", DATE_NOT_DECLARED),
        (0, "prediction #0 (model 1)", "beFiQTT1cU", DATE_TEXT_DIFFERS),
    ],
    "rich_text_plain/annotations/1.json": [
        (0, "completion 1001", "beFiQTT1cU", DATE_NOT_DECLARED),
        (0, "completion 1001", "beFiQTT1cU", DATE_TEXT_DIFFERS),
    ],
    # Predictions copied from image_ocr: checked like completions, so refused.
    "classification_mixed/annotations/1.json": [
        (0, "prediction #0 (model 1)", "t5sp3TyXPo", MIXED_NAMES_TAG),
        (0, "prediction #1 (model 2)", "t5sp3TyXPo", MIXED_NAMES_TAG),
    ],
    # Copied from the "table" example, whose table is named 'menu'; here it is
    # 'csv-table'. The file has no "data", so only reading its annotations as
    # annotations (not as data) finds this.
    "table_csv/annotations/0.json": [
        (0, "completion #0", "55NfiU7T4t",
         "to_name 'menu' is not what <Choices name='sub'> annotates (csv-table)"),
    ],
}  # fmt: skip


def example_key(path: Path) -> str:
    return "/".join(path.parts[path.parts.index("examples") + 2 :])


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=shared_data_id)
def test_frontend_example_imports_against_its_config_or_is_refused_for_cause(
    path: Path,
) -> None:
    example = path.parent.parent if path.parent.name == "annotations" else path.parent
    schema = parse_labeling_config((example / "config.xml").read_bytes())
    raw = path.read_bytes()
    expected = REFUSED_EXAMPLES.get(f"{example.name}/{example_key(path)}")

    if expected is not None:
        with pytest.raises(TaskImportError) as caught:
            load_tasks(raw, schema)
        assert [(p.task_index, p.source, p.result_id, p.reason) for p in caught.value.problems] == [
            *expected
        ]
        return
    tasks = load_tasks(raw, schema)
    assert tasks
    # Nothing is dropped on the way in: every result of the file is in a task.
    items = sum(len(c.result) for t in tasks for c in (*t.completions, *t.predictions))
    assert items == result_count(json.loads(raw))
    assert parse_tasks(tasks_to_json(tasks), schema) == tasks


def test_every_refused_example_exists(shared_data: Path) -> None:
    examples = shared_data / EXAMPLES
    for key in REFUSED_EXAMPLES:
        assert (examples / key).is_file(), key


# --- Label Studio's own test fixtures, with a config written for each -------------------

IMAGE_BOXES = """\
<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car"/><Label value="Cat"/><Label value="Dog"/>
  </RectangleLabels>
</View>
"""
IMAGE_CHOICE = """\
<View>
  <Image name="image" value="$image"/>
  <Choices name="label" toName="image"><Choice value="Cat"/><Choice value="Dog"/></Choices>
</View>
"""
TEXT_CHOICE = """\
<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text"><Choice value="pos"/><Choice value="neg"/></Choices>
</View>
"""
TEXT_CLASS = """\
<View>
  <Text name="text" value="$text"/>
  <Choices name="text_class" toName="text">
    <Choice value="class_A"/>
    <Choice value="class_TESTING"/>
    <Choice value="class_PREDICTIONS_TESTING"/>
  </Choices>
</View>
"""
TIME_SERIES = """\
<View>
  <TimeSeries name="ts" value="$csv" valueType="url">
    <Channel column="sensor"/>
  </TimeSeries>
  <TimeSeriesLabels name="label" toName="ts">
    <Label value="Run"/><Label value="Walk"/>
  </TimeSeriesLabels>
</View>
"""
REPEATER = """\
<View>
  <Repeater on="$work_2.i" indexFlag="{{idx}}">
    <Text name="item_{{idx}}" value="$work_2.i[{{idx}}].value"/>
  </Repeater>
</View>
"""
FLAT_FIELDS = '<View><Text name="a" value="$a"/><Text name="d" value="$d"/></View>'

# file → (its config, tasks, result items in completions and predictions)
LS_FIXTURES = {
    "test_suites/samples/three_tasks_two_gts.json": (IMAGE_BOXES, 3, 10),
    "test_suites/samples/image_urls_with_bboxes_gt.json": (IMAGE_BOXES, 2, 2),
    "test_suites/samples/image_urls_with_bboxes.json": (IMAGE_BOXES, 2, 0),
    "test_suites/samples/random-with-predictions.json": (TIME_SERIES, 1, 2),
    "test_suites/samples/example_repeater.json": (REPEATER, 1, 0),
    "test_suites/samples/previous_export.json": (IMAGE_CHOICE, 1, 1),
    "test_suites/samples/previous_export_unknown_completed_by.json": (IMAGE_CHOICE, 1, 1),
    "test_suites/samples/text_with_2_tasks.json": (TEXT_CHOICE, 2, 0),
    "test_suites/samples/text_with_2_predictions.json": (TEXT_CHOICE, 1, 2),
    "data_manager/tasks_annotations_predictions.json": (TEXT_CLASS, 6, 7),
    "data_manager/filters/int_tasks.json": (TEXT_CHOICE, 6, 1),
    "data_manager/filters/str_tasks.json": (TEXT_CHOICE, 4, 0),
    "data_manager/filters/float_tasks.json": (FLAT_FIELDS, 3, 0),
}


def test_every_label_studio_fixture_has_a_config(shared_data: Path) -> None:
    tests = shared_data / LS_TESTS
    found = {
        str(p.relative_to(tests))
        for pattern in (
            "test_suites/samples/*.json",
            "data_manager/*.json",
            "data_manager/*/*.json",
        )
        for p in tests.glob(pattern)
    }

    assert found == set(LS_FIXTURES)


@pytest.mark.parametrize(("fixture", "spec"), LS_FIXTURES.items(), ids=list(LS_FIXTURES))
def test_label_studio_fixture_imports(
    shared_data: Path, fixture: str, spec: tuple[str, int, int]
) -> None:
    config, task_count, item_count = spec
    schema = parse_labeling_config(config)
    raw = (shared_data / LS_TESTS / fixture).read_bytes()

    tasks = load_tasks(raw, schema)

    assert len(tasks) == task_count
    items = sum(len(c.result) for t in tasks for c in (*t.completions, *t.predictions))
    assert items == item_count == result_count(json.loads(raw))
    assert parse_tasks(tasks_to_json(tasks), schema) == tasks


def test_flat_tasks_are_their_own_data(shared_data: Path) -> None:
    raw = (shared_data / LS_TESTS / "test_suites/samples/image_urls_with_bboxes.json").read_bytes()

    first, second = load_tasks(raw, parse_labeling_config(IMAGE_BOXES))

    assert first.data["image"] == "https://pytest.heartex.com/image1.jpg"
    assert first.data["bbox"]["rectanglelabels"] == ["Cat", "Dog"]
    assert second.data["bbox"]["rectanglelabels"] == ["Dog"]
    assert (first.id, first.completions, first.predictions) == (None, (), ())


def test_ground_truth_and_user_ids_of_label_studio_exports_are_read(shared_data: Path) -> None:
    samples = shared_data / LS_TESTS / "test_suites/samples"
    schema = parse_labeling_config(IMAGE_BOXES)

    gts = load_tasks((samples / "three_tasks_two_gts.json").read_bytes(), schema)
    unknown = load_tasks(
        (samples / "previous_export_unknown_completed_by.json").read_bytes(),
        parse_labeling_config(IMAGE_CHOICE),
    )
    (previous,) = load_tasks(
        (samples / "previous_export.json").read_bytes(), parse_labeling_config(IMAGE_CHOICE)
    )

    assert [c.ground_truth for t in gts for c in t.completions].count(True) == 2
    assert unknown[0].completions[0].author == "99999"
    assert tasks_to_json(unknown)[0]["annotations"][0]["completed_by"] == 99999
    assert previous.completions[0].author == "annotator_from_past@project.com"
    assert previous.extra["project"] == 49


def test_box_reaching_past_the_border_in_label_studio_data_is_kept(shared_data: Path) -> None:
    raw = (shared_data / LS_TESTS / "test_suites/samples/three_tasks_two_gts.json").read_bytes()

    tasks = load_tasks(raw, parse_labeling_config(IMAGE_BOXES))

    (value,) = [
        item.value
        for t in tasks
        for c in (*t.completions, *t.predictions)
        for item in c.result
        if item.id == "oid19"
    ]
    assert value["x"] + value["width"] > 100
    assert (value["x"], value["width"]) == (64.92, 35.46)


def test_the_ocr_template_transcribes_each_region_of_its_image(shared_data: Path) -> None:
    xml = shared_data / LS / "templates_xml" / "computer-vision__optical-character-recognition.xml"

    schema = parse_labeling_config(xml.read_text())

    assert schema.region_text_controls() == {"image": "transcription"}


def test_predicted_rectangles_fit_the_ocr_template_as_label_studio_stores_its_regions(
    shared_data: Path,
) -> None:
    """What the pre-annotation job does to a Visual NER prediction for this config."""
    from annotrain.domain.labelstudio import parse_tasks
    from annotrain.domain.layout import as_image_labels, transcribe_regions
    from annotrain.domain.ocr import OcrWord

    xml = shared_data / LS / "templates_xml" / "computer-vision__optical-character-recognition.xml"
    schema = parse_labeling_config(xml.read_text())
    words = [OcrWord("Dear", 100, 100, 80, 20, 95.0), OcrWord("Sir", 200, 100, 60, 20, 95.0)]
    geometry = {"x": 9.0, "y": 19.0, "width": 17.0, "height": 6.0, "rotation": 0}
    predicted = [{
        "id": "r1", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
        "original_width": 1000, "original_height": 500, "image_rotation": 0,
        "value": {**geometry, "rectanglelabels": ["Handwriting"]}, "score": 0.8,
    }]  # fmt: skip

    assert schema.image_label_controls() == {"label": "bbox"}
    result = as_image_labels(predicted, schema.image_label_controls())
    result = transcribe_regions(result, words, 1000, 500, schema.region_text_controls())

    by_type = {item["type"]: item for item in result}
    assert [item["id"] for item in result] == ["r1"] * 3
    assert by_type["rectangle"]["from_name"] == "bbox"
    assert by_type["rectangle"]["value"] == geometry
    assert by_type["labels"]["value"] == {**geometry, "labels": ["Handwriting"]}
    assert by_type["labels"]["score"] == 0.8
    assert by_type["textarea"]["value"] == {**geometry, "text": ["Dear Sir"]}
    # The job's own check: the prediction imports against the config.
    payload = {"data": {"ocr": "page.png"}, "predictions": [{"result": result}]}
    (task,) = parse_tasks([payload], schema)
    assert len(task.predictions[0].result) == 3
