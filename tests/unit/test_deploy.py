"""Deploying rewrites only the model attributes of the labels a model predicts."""

from __future__ import annotations

import pytest

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.deploy import point_labels_at_model
from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.training_plan import ModelKind

CONFIG = """<View>
  <!-- <Label value="Drug"/> in a comment stays as it is -->
  <Labels name="label" toName="text">
    <Label value="Drug" background="red"/>
    <Label value='Dose' model="old-model"></Label>
    <Label value="Absent" assertion="true"/>
  </Labels>
  <Text name="text" value="$text"/>
  <Choices name="urgency" toName="text">
    <Choice value="Routine"/><Choice value="Urgent"/>
  </Choices>
</View>"""


def test_ner_labels_name_the_model_and_nothing_else_changes() -> None:
    deployed = point_labels_at_model(CONFIG, ModelKind.NER, ("Drug", "Dose"), "p1-ner")

    expected = CONFIG.replace(
        '<Label value="Drug" background="red"/>',
        '<Label value="Drug" background="red" model="p1-ner"/>',
    ).replace(
        """<Label value='Dose' model="old-model">""", """<Label value='Dose' model="p1-ner">"""
    )
    assert deployed.labeling_config == expected
    assert deployed.labels == ("Drug", "Dose")
    schema = parse_labeling_config(deployed.labeling_config)
    assert {o.value: o.model for o in schema.controls["label"].options} == {
        "Drug": "p1-ner", "Dose": "p1-ner", "Absent": None,
    }  # fmt: skip


def test_assertion_models_take_only_assertion_labels() -> None:
    deployed = point_labels_at_model(CONFIG, ModelKind.ASSERTION, ("Absent", "Drug"), "p1-as")

    assert deployed.labels == ("Absent",)
    assert '<Label value="Absent" assertion="true" model="p1-as"/>' in deployed.labeling_config
    assert '<Label value="Drug" background="red"/>' in deployed.labeling_config


def test_a_classifier_takes_the_choices_whose_classes_it_predicts() -> None:
    deployed = point_labels_at_model(
        CONFIG, ModelKind.CLASSIFICATION, ("Routine", "Urgent"), "p1-urgency"
    )

    assert (
        '<Choice value="Routine" model="p1-urgency"/><Choice value="Urgent" model="p1-urgency"/>'
        in deployed.labeling_config
    )


def test_a_model_whose_labels_the_config_lacks_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="no label this ner model predicts"):
        point_labels_at_model(CONFIG, ModelKind.NER, ("Symptom",), "p1-ner")


@pytest.mark.parametrize("name", ['bad"name', "", "a b", "../x"])
def test_a_model_name_that_cannot_sit_in_an_attribute_is_refused(name: str) -> None:
    with pytest.raises(InvalidRequestError):
        point_labels_at_model(CONFIG, ModelKind.NER, ("Drug",), name)


def test_visual_ner_cannot_be_deployed_into_a_text_config_yet() -> None:
    with pytest.raises(InvalidRequestError, match="visual_ner"):
        point_labels_at_model(CONFIG, ModelKind.VISUAL_NER, ("Drug",), "p1-vis")


def test_visual_ner_is_named_on_the_labels_of_rectangle_labels() -> None:
    from batch_jobs.visual.synthetic import LABELING_CONFIG

    deployment = point_labels_at_model(
        LABELING_CONFIG, ModelKind.VISUAL_NER, ("IBAN", "Total"), "p1-vis"
    )
    assert deployment.labels == ("Total", "IBAN")
    assert '<Label value="IBAN" model="p1-vis"/>' in deployment.labeling_config
    assert '<Label value="Vendor"/>' in deployment.labeling_config


OCR_BESIDE_TEXT = """<View>
  <Image name="image" value="$ocr"/>
  <Labels name="region" toName="image"><Label value="Total"/><Label value="Date"/></Labels>
  <Rectangle name="bbox" toName="image"/>
  <TextArea name="transcription" toName="image" perRegion="true"/>
  <Text name="note" value="$note"/>
  <Labels name="span" toName="note"><Label value="Total"/></Labels>
</View>"""


def test_visual_ner_is_named_on_labels_drawn_on_an_image_as_in_the_ocr_template() -> None:
    deployment = point_labels_at_model(OCR_BESIDE_TEXT, ModelKind.VISUAL_NER, ("Total",), "p1-vis")

    assert deployment.labels == ("Total",)
    # The image's label names the model; the text's label of the same value does not.
    assert deployment.labeling_config.count('model="p1-vis"') == 1
    assert '<Labels name="region" toName="image"><Label value="Total" model="p1-vis"/>' in (
        deployment.labeling_config
    )


def test_a_ner_model_is_not_named_on_labels_drawn_on_an_image() -> None:
    deployment = point_labels_at_model(OCR_BESIDE_TEXT, ModelKind.NER, ("Total",), "p1-ner")

    assert '<Label value="Total" model="p1-ner"/></Labels>\n</View>' in deployment.labeling_config
    assert deployment.labeling_config.count('model="p1-ner"') == 1
