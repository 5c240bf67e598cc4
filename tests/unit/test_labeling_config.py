"""Labeling configs: what parses, what is refused, and how a refusal names its fix."""

from __future__ import annotations

import time

import pytest

from annotrain.domain.config import (
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    TagKind,
    parse_labeling_config,
)
from annotrain.domain.errors import ConfigIssue, LabelingConfigError

NER = """\
<View>
  <Labels name="label" toName="text">
    <Label value="PER"/>
    <Label value="ORG"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>
"""


def refusal(xml: str | bytes) -> LabelingConfigError:
    with pytest.raises(LabelingConfigError) as caught:
        parse_labeling_config(xml)
    return caught.value


def only_issue(error: LabelingConfigError) -> ConfigIssue:
    assert len(error.issues) == 1, error.issues
    return error.issues[0]


# --- what parses ---------------------------------------------------------------


def test_ner_config_declares_its_object_control_and_labels() -> None:
    schema = parse_labeling_config(NER)

    assert schema.objects["text"].data_key == "text"
    label = schema.controls["label"]
    assert label.to_names == ("text",)
    assert [o.value for o in label.options] == ["PER", "ORG"]
    assert label.result_type == "labels"
    assert schema.warnings == ()
    assert schema.xml == NER


def test_config_given_as_utf8_bytes_parses_like_text() -> None:
    xml = NER.replace("PER", "Personne née")

    assert parse_labeling_config(xml.encode("utf-8")).controls == (
        parse_labeling_config(xml).controls
    )


def test_encoding_declaration_does_not_garble_a_config_given_as_text() -> None:
    # The text was decoded already; re-reading it as Latin-1 would turn "é" into "Ã©".
    xml = '<?xml version="1.0" encoding="ISO-8859-1"?>\n' + NER.replace("PER", "Café")

    schema = parse_labeling_config(xml)

    assert [o.value for o in schema.controls["label"].options] == ["Café", "ORG"]


def test_tag_and_attribute_names_are_case_insensitive() -> None:
    xml = """\
<view>
  <header value="Entities"/>
  <text NAME="text" Value="$text"/>
  <labels name="label" toname="text">
    <label value="PER"/>
  </labels>
  <CHOICES name="sentiment" TONAME="text" Choice="Multiple">
    <choice value="Positive"/>
  </CHOICES>
</view>
"""
    schema = parse_labeling_config(xml)

    assert schema.objects["text"].tag == "Text"
    assert schema.controls["label"].tag == "Labels"
    assert schema.controls["label"].to_names == ("text",)
    assert schema.controls["sentiment"].multiple
    assert [(t.tag, t.kind) for t in schema.other_tags] == [
        ("View", TagKind.LAYOUT),
        ("Header", TagKind.LAYOUT),
    ]
    assert schema.warnings == ()


def test_unknown_tag_is_kept_and_reported_as_a_warning_not_an_error() -> None:
    xml = """\
<View>
  <Pdf name="pdf" value="$pdf"/>
  <OcrLabels name="ocr" toName="pdf">
    <Label value="Typo"/>
  </OcrLabels>
</View>
"""
    schema = parse_labeling_config(xml)

    assert [(t.tag, t.attrs["name"], t.line) for t in schema.unknown_tags] == [
        ("OcrLabels", "ocr", 3)
    ]
    warning = only_issue(LabelingConfigError(schema.warnings))
    assert (warning.tag, warning.line) == ("OcrLabels", 3)
    assert "unknown tag" in warning.message
    # What an unknown tag holds is its own: no control, no stray-option warning.
    assert "ocr" not in schema.controls


def test_textarea_without_to_name_is_accepted_with_a_warning() -> None:
    # Label Studio ships templates with such a <TextArea> (and <Rating>): the
    # answer concerns the task as a whole. Label Studio's own validator refuses it.
    xml = '<View><Text name="t" value="$t"/><TextArea name="answer"/></View>'

    schema = parse_labeling_config(xml)

    assert schema.controls["answer"].to_names == ()
    warning = only_issue(LabelingConfigError(schema.warnings))
    assert (warning.tag, warning.attribute, warning.name) == ("TextArea", "toName", "answer")


def test_repeated_choice_is_a_warning_and_kept_once_in_config_order() -> None:
    # Label Studio ships ranking-and-scoring__document-retrieval.xml with one.
    xml = """\
<View>
  <Text name="t" value="$t"/>
  <Choices name="selection" toName="t">
    <Choice value="One"/>
    <Choice value="Two"/>
    <Choice value="One"/>
    <Choice value="Three"/>
  </Choices>
</View>
"""
    schema = parse_labeling_config(xml)

    assert [o.value for o in schema.controls["selection"].options] == ["One", "Two", "Three"]
    warning = only_issue(LabelingConfigError(schema.warnings))
    assert (warning.tag, warning.attribute, warning.name) == ("Choices", "value", "selection")
    assert "'One' is declared twice" in warning.message


def test_control_placed_among_another_controls_options_is_its_own_control() -> None:
    # Label Studio accepts this (its config matrix: several_views_with_several_components).
    xml = """\
<View>
  <Text name="t" value="$t"/>
  <Labels name="label" toName="t">
    <View><Label value="A"/></View>
    <View>
      <Choices name="kind" toName="t"><Choice value="x"/><Choice value="y"/></Choices>
    </View>
    <Label value="B"/>
  </Labels>
</View>
"""
    schema = parse_labeling_config(xml)

    assert [o.value for o in schema.controls["label"].options] == ["A", "B"]
    assert [o.value for o in schema.controls["kind"].options] == ["x", "y"]


def test_taxonomy_options_are_known_by_their_path() -> None:
    xml = """\
<View>
  <Text name="t" value="$t"/>
  <Taxonomy name="tax" toName="t">
    <Choice value="Animal"><Choice value="Cat"/><Choice value="Dog"/></Choice>
    <Choice value="Plant"><Choice value="Cat"/></Choice>
  </Taxonomy>
</View>
"""
    options = parse_labeling_config(xml).controls["tax"].options

    assert [(*o.path, o.value) for o in options] == [
        ("Animal",),
        ("Animal", "Cat"),
        ("Animal", "Dog"),
        ("Plant",),
        ("Plant", "Cat"),
    ]


def test_label_attributes_alias_assertion_and_model_are_read() -> None:
    xml = """\
<View>
  <Text name="t" value="$t"/>
  <Labels name="label" toName="t">
    <Label value="Problem" model="ner_clinical"/>
    <Label value="absent" alias="ABS" assertion="True" model="assertion_dl"/>
  </Labels>
</View>
"""
    problem, absent = parse_labeling_config(xml).controls["label"].options

    assert (problem.model, problem.assertion, problem.alias) == ("ner_clinical", False, None)
    assert (absent.model, absent.assertion, absent.alias) == ("assertion_dl", True, "ABS")
    assert parse_labeling_config(xml).controls["label"].allowed_values() == {
        "Problem",
        "absent",
        "ABS",
    }


def test_options_taken_from_task_data_need_no_children() -> None:
    xml = '<View><Text name="t" value="$t"/><Labels name="l" toName="t" value="$labels"/></View>'

    control = parse_labeling_config(xml).controls["l"]

    assert control.dynamic_options
    assert control.options == ()


def test_repeater_copies_answer_to_their_templated_names() -> None:
    xml = """\
<View>
  <Repeater on="$utterances" indexFlag="{{idx}}">
    <Text name="user_{{idx}}" value="$utterances[{{idx}}].text"/>
    <Choices name="utterance_action_{{idx}}" toName="user_{{idx}}">
      <Choice value="Training"/>
    </Choices>
  </Repeater>
</View>
"""
    schema = parse_labeling_config(xml)

    control = schema.control("utterance_action_12")
    assert control is not None
    assert control.name == "utterance_action_{{idx}}"
    assert schema.accepts_target(control, "user_12")
    assert schema.control("utterance_action_x") is None
    assert schema.object("user_3") is schema.objects["user_{{idx}}"]


def test_region_control_must_name_its_object_in_results() -> None:
    xml = """\
<View>
  <Text name="text" value="$text"/>
  <Text name="text2" value="$text2"/>
  <Pairwise name="pw" toName="text,text2"/>
  <Labels name="label" toName="text"><Label value="PER"/></Labels>
</View>
"""
    schema = parse_labeling_config(xml)

    # A whole-task answer may carry its own name as to_name; a span may not,
    # or it would escape the checks of its offsets.
    assert schema.accepts_target(schema.controls["pw"], "pw")
    assert not schema.accepts_target(schema.controls["label"], "label")
    assert schema.accepts_target(schema.controls["label"], "text")


# --- what is refused, and how the refusal reads ----------------------------------


def test_to_name_pointing_nowhere_names_the_tag_attribute_and_the_objects_to_choose() -> None:
    issue = only_issue(refusal(NER.replace('toName="text"', 'toName="txt"')))

    assert (issue.tag, issue.attribute, issue.name, issue.line) == ("Labels", "toName", "label", 2)
    assert "toName='txt' names no tag" in issue.message
    assert "text" in issue.fix
    assert str(issue).startswith("line 2: <Labels name=\"label\"> attribute 'toName'")


def test_to_name_pointing_at_a_control_says_so() -> None:
    xml = NER.replace("</View>", '<Choices name="c" toName="label"><Choice value="x"/></Choices>')
    issue = only_issue(refusal(xml + "</View>"))

    assert (issue.tag, issue.attribute, issue.name) == ("Choices", "toName", "c")
    assert "names another control" in issue.message


def test_duplicate_names_are_refused_naming_the_first_use() -> None:
    xml = NER.replace("</View>", '<Text name="text" value="$other"/></View>')

    issue = only_issue(refusal(xml))

    assert (issue.tag, issue.attribute, issue.name, issue.line) == ("Text", "name", "text", 7)
    assert "already used on line 6" in issue.message
    assert "unique" in issue.fix


def test_duplicate_label_in_one_labels_control_is_an_error() -> None:
    issue = only_issue(refusal(NER.replace('"ORG"', '"PER"')))

    assert (issue.tag, issue.attribute, issue.name) == ("Labels", "value", "label")
    assert "'PER' is declared twice" in issue.message
    assert "remove the duplicate <Label>" in issue.fix


def test_same_label_in_two_labels_controls_is_allowed() -> None:
    xml = NER.replace(
        "</View>",
        '<Text name="t2" value="$t2"/><Labels name="l2" toName="t2"><Label value="PER"/>'
        "</Labels></View>",
    )

    assert parse_labeling_config(xml).controls["l2"].options[0].value == "PER"


def test_assertion_label_may_not_name_a_model_that_ner_labels_use() -> None:
    xml = """\
<View>
  <Text name="t" value="$t"/>
  <Labels name="ner" toName="t">
    <Label value="Problem" model="ner_clinical"/>
  </Labels>
  <Labels name="status" toName="t">
    <Label value="absent" assertion="true" model="ner_clinical"/>
  </Labels>
</View>
"""
    issue = only_issue(refusal(xml))

    assert (issue.tag, issue.attribute, issue.name, issue.line) == ("Labels", "model", "status", 6)
    assert "'ner_clinical'" in issue.message
    assert 'assertion="true"' in issue.fix


def test_more_than_one_assertion_model_in_a_project_is_refused() -> None:
    xml = """\
<View>
  <Text name="t" value="$t"/>
  <Labels name="status" toName="t">
    <Label value="absent" assertion="true" model="assertion_a"/>
    <Label value="possible" assertion="true" model="assertion_b"/>
    <Label value="present" assertion="true"/>
  </Labels>
</View>
"""
    issue = only_issue(refusal(xml))

    assert (issue.tag, issue.attribute, issue.name) == ("Labels", "model", "status")
    assert "assertion_a, assertion_b" in issue.message
    assert "one assertion model per project" in issue.fix


def test_labels_without_any_label_are_refused() -> None:
    issue = only_issue(
        refusal('<View><Text name="t" value="$t"/><Labels name="l" toName="t"/></View>')
    )

    assert (issue.tag, issue.attribute, issue.name) == ("Labels", None, "l")
    assert "offers no <Label>" in issue.message
    assert '<Label value="…"/>' in issue.fix


def test_choice_without_value_is_refused() -> None:
    xml = (
        '<View><Text name="t" value="$t"/>'
        '<Choices name="c" toName="t"><Choice value="a"/><Choice/></Choices></View>'
    )
    issue = only_issue(refusal(xml))

    assert (issue.tag, issue.attribute) == ("Choice", "value")
    assert "<Choices name='c'>" in issue.message
    assert 'add value="…" to <Choice>' in issue.fix


@pytest.mark.parametrize(
    ("tag", "attribute"),
    [
        ('<Text value="$t"/>', "name"),
        ('<Text name="t"/>', "value"),
        ('<Image name="t" value=""/>', "value"),
    ],
)
def test_object_without_name_or_value_is_refused(tag: str, attribute: str) -> None:
    issue = only_issue(refusal(f"<View>{tag}</View>"))

    assert issue.attribute == attribute
    assert f'{attribute}="' in issue.fix


def test_root_other_than_view_is_refused() -> None:
    issue = only_issue(refusal('<Panel><Text name="t" value="$t"/></Panel>'))

    assert (issue.tag, issue.attribute) == ("Panel", None)
    assert "root tag must be <View>" in issue.message
    assert "<View>" in issue.fix


def test_control_without_name_is_refused() -> None:
    issue = only_issue(refusal(NER.replace('name="label" ', "")))

    assert (issue.tag, issue.attribute) == ("Labels", "name")


@pytest.mark.parametrize("control", ["Labels", "Choices", "Rectangle", "Number", "Pairwise"])
def test_control_other_than_textarea_or_rating_without_to_name_is_refused(control: str) -> None:
    options = {"Labels": '<Label value="A"/>', "Choices": '<Choice value="A"/>'}.get(control, "")
    xml = f'<View><Image name="i" value="$i"/><{control} name="c">{options}</{control}></View>'

    issue = only_issue(refusal(xml))

    assert (issue.tag, issue.attribute, issue.name) == (control, "toName", "c")


def test_every_problem_of_a_config_is_reported_at_once() -> None:
    xml = """\
<View>
  <Text name="t"/>
  <Labels name="l" toName="nowhere"/>
  <Choices name="l" toName="t"><Choice value="a"/></Choices>
</View>
"""
    issues = refusal(xml).issues

    assert {(i.tag, i.attribute) for i in issues} == {
        ("Text", "value"),
        ("Labels", None),
        ("Labels", "toName"),
        ("Choices", "name"),
    }


def test_malformed_xml_is_refused_with_its_line() -> None:
    issue = only_issue(refusal("<View>\n  <Text name='t' value='$t'>\n</View>"))

    assert "not well-formed XML" in issue.message
    assert issue.line == 3


def test_empty_config_is_refused() -> None:
    assert "not well-formed XML" in only_issue(refusal("")).message


# --- hostile input ------------------------------------------------------------

XXE = """<?xml version="1.0"?>
<!DOCTYPE View [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<View><Header value="&xxe;"/><Text name="t" value="$t"/></View>
"""
BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE View [\n<!ENTITY lol0 "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    + ']>\n<View><Header value="&lol9;"/></View>\n'
)
EXTERNAL_DTD = '<!DOCTYPE View SYSTEM "http://example.invalid/evil.dtd"><View/>'


@pytest.mark.parametrize(
    "xml",
    [XXE, XXE.encode(), BILLION_LAUGHS, EXTERNAL_DTD],
    ids=["xxe", "xxe-bytes", "billion-laughs", "external-dtd"],
)
def test_dtd_and_entities_are_refused_quickly(xml: str | bytes) -> None:
    started = time.perf_counter()
    error = refusal(xml)
    elapsed = time.perf_counter() - started

    issue = only_issue(error)
    assert "DTDs, entities and external references are refused" in issue.message
    assert "<!DOCTYPE" in issue.fix
    assert "root:" not in str(error)  # nothing of /etc/passwd was read
    # A security bound, not a benchmark: the parser must refuse before expanding.
    assert elapsed < 1.0


def test_config_over_the_size_bound_is_refused_before_parsing() -> None:
    filler = "<!-- padding -->" * (MAX_CONFIG_BYTES // 16 + 1)
    xml = NER.replace("</View>", filler + "</View>")

    issue = only_issue(refusal(xml))

    assert f"over the {MAX_CONFIG_BYTES} byte limit" in issue.message
    assert issue.fix == "shorten the config"


def test_config_just_under_the_size_bound_parses() -> None:
    padding = MAX_CONFIG_BYTES - len(NER.encode())
    xml = NER.replace("</View>", "<!--" + "x" * (padding - 7) + "--></View>")
    assert len(xml.encode()) == MAX_CONFIG_BYTES

    assert "label" in parse_labeling_config(xml).controls


def test_config_nested_deeper_than_the_depth_bound_is_refused() -> None:
    depth = MAX_DEPTH + 1
    xml = "<View>" * depth + "</View>" * depth

    issue = only_issue(refusal(xml))

    assert f"nested more than {MAX_DEPTH} deep" in issue.message
    assert "flatten" in issue.fix


def test_config_nested_to_the_depth_bound_parses() -> None:
    xml = "<View>" * (MAX_DEPTH - 1) + '<Text name="t" value="$t"/>' + "</View>" * (MAX_DEPTH - 1)

    assert "t" in parse_labeling_config(xml).objects


def test_only_a_per_region_text_area_on_an_image_transcribes_its_regions() -> None:
    xml = """<View>
      <Image name="page" value="$image"/>
      <Image name="back" value="$back"/>
      <Text name="note" value="$text"/>
      <RectangleLabels name="label" toName="page,back"><Label value="Total"/></RectangleLabels>
      <TextArea name="summary" toName="page"/>
      <TextArea name="per_page" toName="page" perRegion="TRUE"/>
      <TextArea name="per_span" toName="note" perRegion="true"/>
      <TextArea name="again" toName="page" perRegion="true"/>
    </View>"""

    schema = parse_labeling_config(xml)

    # Not a whole-task text area, not one on text; the first one of an image wins.
    assert schema.region_text_controls() == {"page": "per_page"}
