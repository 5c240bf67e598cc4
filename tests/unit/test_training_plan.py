"""Which models a labeling config implies, and with which labels."""

from __future__ import annotations

import pytest

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.training_plan import ModelKind, ModelSpec, implied_models

MIXED = """\
<View>
  <Text name="text" value="$text"/>
  <Labels name="ner" toName="text">
    <Label value="Problem" model="ner_clinical"/>
    <Label value="Drug"/>
    <Label value="absent" assertion="true" model="assertion_dl"/>
    <Label value="possible" assertion="true"/>
  </Labels>
  <Choices name="sentiment" toName="text">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
  <Choices name="topics" toName="text" choice="multiple" train="true">
    <Choice value="Cardiology"/>
    <Choice value="Oncology"/>
  </Choices>
</View>
"""


def models(xml: str, classifiers: list[str] | None = None) -> dict[str, ModelSpec]:
    return {m.name: m for m in implied_models(parse_labeling_config(xml), classifiers)}


def choices_config(*controls: str) -> str:
    return '<View><Text name="text" value="$text"/>' + "".join(controls) + "</View>"


def choices(name: str, *values: str, attrs: str = "") -> str:
    options = "".join(f'<Choice value="{v}"/>' for v in values)
    return f'<Choices name="{name}" toName="text" {attrs}>{options}</Choices>'


def test_ner_comes_from_labels_on_text_without_assertion_labels() -> None:
    ner = models(MIXED)["ner"]

    assert ner.kind is ModelKind.NER
    assert ner.labels == ("Problem", "Drug")
    assert (ner.from_names, ner.to_names) == (("ner",), ("text",))
    assert ner.pretrained == (("ner_clinical", ("Problem",)),)


def test_assertion_comes_from_labels_marked_assertion() -> None:
    assertion = models(MIXED)["assertion"]

    assert assertion.kind is ModelKind.ASSERTION
    assert assertion.labels == ("absent", "possible")
    assert assertion.pretrained == (("assertion_dl", ("absent",)),)


def test_no_assertion_model_without_assertion_labels() -> None:
    xml = choices_config('<Labels name="ner" toName="text"><Label value="PER"/></Labels>')

    assert [m.kind for m in implied_models(parse_labeling_config(xml))] == [ModelKind.NER]


def test_labels_alias_is_what_the_model_learns() -> None:
    xml = choices_config(
        '<Labels name="ner" toName="text"><Label value="Person" alias="PER"/></Labels>'
    )

    assert models(xml)["ner"].labels == ("PER",)


def test_mixed_project_implies_ner_assertion_and_the_marked_classifier() -> None:
    specs = implied_models(parse_labeling_config(MIXED))

    assert [(m.kind, m.name) for m in specs] == [
        (ModelKind.NER, "ner"),
        (ModelKind.ASSERTION, "assertion"),
        (ModelKind.CLASSIFICATION, "topics"),
    ]


def test_mixed_project_trains_every_classifier_asked_for() -> None:
    specs = implied_models(parse_labeling_config(MIXED), ["sentiment", "topics"])

    assert [(m.kind, m.name) for m in specs] == [
        (ModelKind.NER, "ner"),
        (ModelKind.ASSERTION, "assertion"),
        (ModelKind.CLASSIFICATION, "sentiment"),
        (ModelKind.CLASSIFICATION, "topics"),
    ]


def test_single_choice_classifier_is_not_multi_label() -> None:
    spec = models(MIXED, ["sentiment"])["sentiment"]

    assert spec.kind is ModelKind.CLASSIFICATION
    assert spec.labels == ("Positive", "Negative")
    assert (spec.from_names, spec.to_names) == (("sentiment",), ("text",))
    assert not spec.multi_label


def test_multiple_choice_classifier_is_multi_label() -> None:
    assert models(MIXED, ["topics"])["topics"].multi_label


def test_default_classifier_is_the_first_name_alphabetically_when_none_is_marked() -> None:
    xml = choices_config(choices("zeta", "a"), choices("alpha", "b"), choices("mid", "c"))

    assert list(models(xml)) == ["alpha"]


def test_default_classifiers_are_all_those_marked_train() -> None:
    xml = choices_config(
        choices("zeta", "a", attrs='train="true"'),
        choices("alpha", "b"),
        choices("mid", "c", attrs='train="TRUE"'),
    )

    assert list(models(xml)) == ["mid", "zeta"]


def test_classifiers_named_explicitly_are_trained_in_the_order_given_once() -> None:
    xml = choices_config(choices("a", "x"), choices("b", "y"), choices("c", "z"))

    assert list(models(xml, ["c", "a", "c"])) == ["c", "a"]


def test_no_classifier_when_an_empty_list_is_asked_for() -> None:
    assert list(models(MIXED, [])) == ["ner", "assertion"]


def test_unknown_classifier_name_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        implied_models(parse_labeling_config(MIXED), ["sentiment", "mood"])

    assert caught.value.field == "classifiers"
    assert "'mood'" in str(caught.value)
    assert "sentiment, topics" in str(caught.value)


def test_choices_on_an_image_are_no_text_classifier() -> None:
    xml = (
        '<View><Image name="img" value="$img"/>'
        '<Choices name="kind" toName="img"><Choice value="cat"/></Choices></View>'
    )

    assert implied_models(parse_labeling_config(xml)) == ()
    with pytest.raises(InvalidRequestError, match="none in this config"):
        implied_models(parse_labeling_config(xml), ["kind"])


def test_visual_ner_comes_from_rectangle_labels_on_an_image() -> None:
    xml = """\
<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="boxes" toName="image">
    <Label value="Invoice number"/>
    <Label value="Total"/>
  </RectangleLabels>
</View>
"""
    (spec,) = implied_models(parse_labeling_config(xml))

    assert spec.kind is ModelKind.VISUAL_NER
    assert spec.labels == ("Invoice number", "Total")
    assert (spec.from_names, spec.to_names) == (("boxes",), ("image",))


def test_visual_ner_comes_from_labels_beside_a_rectangle_on_the_same_image() -> None:
    # Label Studio's OCR template: <Labels> + <Rectangle> + per-region <TextArea>.
    xml = """\
<View>
  <Image name="image" value="$ocr"/>
  <Labels name="label" toName="image">
    <Label value="Text"/>
    <Label value="Handwriting"/>
  </Labels>
  <Rectangle name="bbox" toName="image"/>
  <Polygon name="poly" toName="image"/>
  <TextArea name="transcription" toName="image" perRegion="true"/>
</View>
"""
    (spec,) = implied_models(parse_labeling_config(xml))

    assert spec.kind is ModelKind.VISUAL_NER
    assert spec.labels == ("Text", "Handwriting")
    assert (spec.from_names, spec.to_names) == (("label",), ("image",))


def test_labels_on_an_image_without_a_rectangle_are_no_visual_ner() -> None:
    xml = """\
<View>
  <Image name="image" value="$image"/>
  <Labels name="label" toName="image"><Label value="Text"/></Labels>
  <Polygon name="poly" toName="image"/>
</View>
"""
    assert implied_models(parse_labeling_config(xml)) == ()


def test_mixed_text_and_image_project_implies_every_kind() -> None:
    xml = MIXED.replace(
        "</View>",
        '<Image name="scan" value="$scan"/>'
        '<RectangleLabels name="boxes" toName="scan"><Label value="Stamp"/></RectangleLabels>'
        "</View>",
    )

    assert [m.kind for m in implied_models(parse_labeling_config(xml))] == [
        ModelKind.NER,
        ModelKind.ASSERTION,
        ModelKind.CLASSIFICATION,
        ModelKind.VISUAL_NER,
    ]


def test_repeated_choice_gives_each_class_once_in_config_order() -> None:
    xml = choices_config(choices("selection", "One", "Two", "One", "Three"))

    assert models(xml)["selection"].labels == ("One", "Two", "Three")
