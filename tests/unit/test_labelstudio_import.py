"""Label Studio JSON in: what is read, what is refused and why, what comes back out."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from annotrain.domain.config import ProjectSchema, parse_labeling_config
from annotrain.domain.errors import ImportProblem, TaskImportError
from annotrain.domain.labelstudio import (
    MAX_PROBLEMS,
    load_tasks,
    parse_tasks,
    task_to_json,
    tasks_to_json,
)
from annotrain.domain.tasks import CompletionState, ReviewVerdict

CONFIG = """\
<View>
  <Text name="text" value="$text"/>
  <Labels name="label" toName="text">
    <Label value="PER"/>
    <Label value="ORG"/>
    <Label value="Date" alias="DATE"/>
  </Labels>
  <Relations>
    <Relation value="works_for"/>
  </Relations>
  <Choices name="sentiment" toName="text">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
  <Taxonomy name="topic" toName="text">
    <Choice value="Health"><Choice value="Cardiology"/></Choice>
  </Taxonomy>
  <TextArea name="comment" toName="text"/>
  <Rating name="quality" toName="text"/>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Cat"/>
  </RectangleLabels>
  <PolygonLabels name="outline" toName="image">
    <Label value="Cat"/>
  </PolygonLabels>
</View>
"""
TEXT = "Ada Lovelace worked with Charles Babbage in London."


@pytest.fixture(scope="module")
def schema() -> ProjectSchema:
    return parse_labeling_config(CONFIG)


def span(start: int, end: int, label: str = "PER", rid: str = "r1", **value: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "type": "labels",
        "from_name": "label",
        "to_name": "text",
        "value": {"start": start, "end": end, "labels": [label], **value},
    }


def box(rid: str = "b1", **value: Any) -> dict[str, Any]:
    geometry = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 40.0, "rectanglelabels": ["Cat"]}
    return {
        "id": rid,
        "type": "rectanglelabels",
        "from_name": "box",
        "to_name": "image",
        "value": {**geometry, **value},
    }


def task(*result: dict[str, Any], text: str = TEXT, **fields: Any) -> dict[str, Any]:
    return {
        "id": 1,
        "data": {"text": text, "image": "https://example.invalid/cat.jpg"},
        "annotations": [{"id": 7, "result": list(result)}],
        **fields,
    }


def problems_of(payload: Any, schema: ProjectSchema) -> tuple[ImportProblem, ...]:
    with pytest.raises(TaskImportError) as caught:
        parse_tasks(payload, schema)
    return caught.value.problems


def only_problem(payload: Any, schema: ProjectSchema) -> ImportProblem:
    problems = problems_of(payload, schema)
    assert len(problems) == 1, problems
    return problems[0]


# --- results against the config -------------------------------------------------


def test_valid_span_is_read_with_its_completion(schema: ProjectSchema) -> None:
    (imported,) = parse_tasks([task(span(0, 12, text="Ada Lovelace"))], schema)

    (completion,) = imported.completions
    (item,) = completion.result
    assert (imported.id, completion.id, completion.state) == (1, 7, CompletionState.SUBMITTED)
    assert (item.id, item.type, item.from_name, item.to_name) == ("r1", "labels", "label", "text")
    assert item.value == {"start": 0, "end": 12, "labels": ["PER"], "text": "Ada Lovelace"}


def test_from_name_not_in_the_config_is_refused(schema: ProjectSchema) -> None:
    result = {**span(0, 3), "from_name": "ner"}

    problem = only_problem([task(result)], schema)

    assert (problem.task_index, problem.result_id, problem.source) == (0, "r1", "completion 7")
    assert "from_name 'ner' is not a control of the labeling config" in problem.reason
    assert "label" in problem.reason  # the controls to choose from


def test_to_name_the_control_does_not_annotate_is_refused(schema: ProjectSchema) -> None:
    result = {**span(0, 3), "to_name": "image"}

    problem = only_problem([task(result)], schema)

    assert problem.result_id == "r1"
    assert "to_name 'image' is not what <Labels name='label'> annotates (text)" in problem.reason


def test_span_naming_its_own_control_as_to_name_is_refused(schema: ProjectSchema) -> None:
    # Were it accepted, its offsets would never be checked.
    result = {**span(0, 999), "to_name": "label"}

    problem = only_problem([task(result)], schema)

    assert "to_name 'label' is not what <Labels name='label'> annotates" in problem.reason


def test_type_other_than_the_controls_is_refused(schema: ProjectSchema) -> None:
    result = {**span(0, 3), "type": "choices"}

    problem = only_problem([task(result)], schema)

    assert "type 'choices' does not match <Labels name='label'>" in problem.reason
    assert "'labels'" in problem.reason


def test_label_not_declared_is_refused_listing_those_declared(schema: ProjectSchema) -> None:
    problem = only_problem([task(span(0, 3, label="LOC"))], schema)

    assert (problem.task_index, problem.result_id) == (0, "r1")
    assert "'LOC' not declared in <Labels name='label'>" in problem.reason
    assert "declared: DATE, Date, ORG, PER" in problem.reason


def test_label_alias_is_accepted_like_its_value(schema: ProjectSchema) -> None:
    (imported,) = parse_tasks([task(span(37, 43, label="DATE"))], schema)

    assert imported.completions[0].result[0].value["labels"] == ["DATE"]


def test_choice_not_declared_is_refused(schema: ProjectSchema) -> None:
    result = {
        "id": "c1",
        "type": "choices",
        "from_name": "sentiment",
        "to_name": "text",
        "value": {"choices": ["Neutral"]},
    }

    problem = only_problem([task(result)], schema)

    assert "'Neutral' not declared in <Choices name='sentiment'>" in problem.reason


def test_taxonomy_paths_are_checked_step_by_step(schema: ProjectSchema) -> None:
    def taxonomy(paths: Any) -> dict[str, Any]:
        return {
            "id": "t1",
            "type": "taxonomy",
            "from_name": "topic",
            "to_name": "text",
            "value": {"taxonomy": paths},
        }

    assert parse_tasks([task(taxonomy([["Health", "Cardiology"]]))], schema)
    unknown = only_problem([task(taxonomy([["Health", "Oncology"]]))], schema)
    assert "'Oncology' not declared in <Taxonomy name='topic'>" in unknown.reason
    # A path given as text, or as a number, is the wrong shape, not a crash.
    for malformed in (["Health"], [1]):
        problem = only_problem([task(taxonomy(malformed))], schema)
        assert "value.taxonomy must be a list of paths" in problem.reason


@pytest.mark.parametrize(
    ("start", "end"),
    [(-1, 3), (5, 5), (6, 5), (0, len(TEXT) + 1)],
    ids=["negative", "empty", "reversed", "past-the-end"],
)
def test_span_outside_the_text_is_refused(schema: ProjectSchema, start: int, end: int) -> None:
    problem = only_problem([task(span(start, end))], schema)

    assert problem.reason == f"span {start}..{end} is outside the text (0..{len(TEXT)}) or empty"


def test_span_reaching_the_end_of_the_text_is_accepted(schema: ProjectSchema) -> None:
    assert parse_tasks([task(span(44, len(TEXT), text="London."))], schema)


def test_span_text_differing_from_the_slice_is_refused(schema: ProjectSchema) -> None:
    problem = only_problem([task(span(0, 3, text="Bob"))], schema)

    assert problem.reason == "value.text 'Bob' differs from the text at 0..3: 'Ada'"


@pytest.mark.parametrize("start", [1.0, "1", True, None])
def test_span_offsets_that_are_not_whole_numbers_are_refused(
    schema: ProjectSchema, start: Any
) -> None:
    problem = only_problem([task(span(0, 3) | {"value": {"start": start, "end": 3}})], schema)

    assert "start and end must be whole numbers" in problem.reason


def test_span_on_a_task_without_the_text_field_is_refused(schema: ProjectSchema) -> None:
    payload = task(span(0, 3))
    del payload["data"]["text"]

    problem = only_problem([payload], schema)

    assert "the task has no text field 'text'" in problem.reason


def test_span_on_literal_text_is_checked_against_that_text() -> None:
    schema = parse_labeling_config(
        '<View><Text name="text" value="Just some text"/>'
        '<Labels name="label" toName="text"><Label value="A"/></Labels></View>'
    )

    assert parse_tasks([task(span(5, 9, label="A", text="some"))], schema)
    problem = only_problem([task(span(5, 9, label="A", text="text"))], schema)
    assert "differs from the text at 5..9: 'some'" in problem.reason


def test_box_is_read_with_its_geometry(schema: ProjectSchema) -> None:
    (imported,) = parse_tasks([task(box())], schema)

    assert imported.completions[0].result[0].value["x"] == 10.0


@pytest.mark.parametrize(("key", "value"), [("x", 100.5), ("x", -1), ("y", 101), ("y", "5")])
def test_box_corner_outside_the_image_is_refused(
    schema: ProjectSchema, key: str, value: Any
) -> None:
    problem = only_problem([task(box(**{key: value}))], schema)

    assert problem.result_id == "b1"
    assert problem.reason == f"{key}={value!r} must be a percentage of the image, 0 to 100"


def test_box_with_negative_size_is_refused(schema: ProjectSchema) -> None:
    problem = only_problem([task(box(width=-2))], schema)

    assert problem.reason == "width=-2 must be a non-negative percentage"


def test_box_reaching_past_the_border_is_kept_unchanged(schema: ProjectSchema) -> None:
    # Real Label Studio data (three_tasks_two_gts.json): x + width = 100.38.
    result = box(x=64.92, y=0, width=35.46, height=62.11, rotation=0)

    (imported,) = parse_tasks([task(result)], schema)

    assert task_to_json(imported)["annotations"][0]["result"] == [result]


def test_relation_between_regions_of_the_completion_is_read(schema: ProjectSchema) -> None:
    relation = {
        "type": "relation",
        "from_id": "r1",
        "to_id": "r2",
        "direction": "right",
        "labels": ["works_for"],
    }
    payload = task(span(0, 3), span(25, 32, rid="r2"), relation)

    (imported,) = parse_tasks([payload], schema)

    item = imported.completions[0].result[2]
    assert (item.type, item.from_name, item.to_name) == ("relation", None, None)
    # Exported as given: no "value" invented for it.
    assert task_to_json(imported)["annotations"][0]["result"][2] == relation


def test_relation_to_a_region_of_another_completion_is_refused(schema: ProjectSchema) -> None:
    payload = task(span(0, 3), {"type": "relation", "from_id": "r1", "to_id": "elsewhere"})
    payload["annotations"].append({"id": 8, "result": [span(25, 32, rid="elsewhere")]})

    problem = only_problem([payload], schema)

    assert problem.source == "completion 7"
    assert problem.reason == "relation to_id='elsewhere' names no region of this completion"


def test_relation_label_not_declared_is_refused(schema: ProjectSchema) -> None:
    relation = {"type": "relation", "from_id": "r1", "to_id": "r1", "labels": ["married"]}

    problem = only_problem([task(span(0, 3), relation)], schema)

    assert problem.reason == "relation labels ['married'] not declared in <Relations>"


@pytest.mark.parametrize(
    "result",
    [
        {"type": "polygonlabels", "from_name": "outline", "to_name": "image",
         "value": {"points": [[1, 2], [3.5, 4], [5, 1]], "polygonlabels": ["Cat"],
                   "closed": True}},
        {"type": "textarea", "from_name": "comment", "to_name": "text",
         "value": {"text": ["Looks right.\tChecked twice."]}},
        {"type": "rating", "from_name": "quality", "to_name": "text",
         "value": {"rating": 4}},
    ],
    ids=["polygonlabels", "textarea", "rating"],
)  # fmt: skip
def test_result_types_the_lab_does_not_train_on_are_exported_unchanged(
    schema: ProjectSchema, result: dict[str, Any]
) -> None:
    result = {"id": "x1", **result, "origin": "manual", "readonly": False}

    (imported,) = parse_tasks([task(result)], schema)

    assert task_to_json(imported)["annotations"][0]["result"] == [result]


def test_label_meta_text_keeps_its_spaces_and_tabs_through_import_and_export(
    schema: ProjectSchema,
) -> None:
    note = "  leading spaces,\ttab,\t\ttwo tabs, trailing  \n"
    result = span(0, 3) | {"meta": {"text": [note]}}

    (imported,) = parse_tasks([task(result)], schema)
    exported = json.loads(json.dumps(tasks_to_json([imported])))

    assert exported[0]["annotations"][0]["result"][0]["meta"] == {"text": [note]}


def test_repeater_copies_are_accepted_by_their_numbered_names() -> None:
    schema = parse_labeling_config(
        """\
<View>
  <Repeater on="$utterances" indexFlag="{{idx}}">
    <Text name="user_{{idx}}" value="$utterances[{{idx}}].text"/>
    <Choices name="utterance_action_{{idx}}" toName="user_{{idx}}">
      <Choice value="Training"/>
    </Choices>
  </Repeater>
</View>
"""
    )
    result = {
        "id": "u0",
        "type": "choices",
        "from_name": "utterance_action_0",
        "to_name": "user_0",
        "value": {"choices": ["Training"]},
    }
    payload = {"data": {"utterances": [{"text": "hi"}]}, "annotations": [{"result": [result]}]}

    (imported,) = parse_tasks([payload], schema)

    assert imported.completions[0].result[0].from_name == "utterance_action_0"
    wrong = {**result, "from_name": "utterance_action_x"}
    assert "not a control" in only_problem([payload | {"annotations": [{"result": [wrong]}]}],
                                           schema).reason  # fmt: skip


# --- UTF-16 offsets from the Label Studio editor ---------------------------------

EMOJI_TEXT = "I 😀 love Paris 🇫🇷 and Rome."


def test_utf16_offsets_over_emoji_are_converted_to_python_indices(schema: ProjectSchema) -> None:
    # The editor counts "😀" as two code units, so "Paris" starts at 10, not 9.
    assert EMOJI_TEXT.index("Paris") == 9
    utf16_start = len(EMOJI_TEXT[:9].encode("utf-16-le")) // 2
    utf16_end = utf16_start + 5
    assert EMOJI_TEXT[utf16_start:utf16_end] != "Paris"

    payload = task(span(utf16_start, utf16_end, label="ORG", text="Paris"), text=EMOJI_TEXT)
    (imported,) = parse_tasks([payload], schema)

    value = imported.completions[0].result[0].value
    assert (value["start"], value["end"]) == (9, 14)
    assert EMOJI_TEXT[value["start"] : value["end"]] == "Paris"


def test_span_after_flag_emoji_is_converted_too(schema: ProjectSchema) -> None:
    start = EMOJI_TEXT.index("Rome")
    utf16_start = len(EMOJI_TEXT[:start].encode("utf-16-le")) // 2

    payload = task(span(utf16_start, utf16_start + 4, text="Rome"), text=EMOJI_TEXT)
    (imported,) = parse_tasks([payload], schema)

    assert imported.completions[0].result[0].value["start"] == start


def test_python_offsets_over_emoji_are_kept(schema: ProjectSchema) -> None:
    payload = task(span(9, 14, label="ORG", text="Paris"), text=EMOJI_TEXT)

    (imported,) = parse_tasks([payload], schema)

    assert imported.completions[0].result[0].value["start"] == 9


def test_offsets_matching_neither_way_are_refused(schema: ProjectSchema) -> None:
    payload = task(span(0, 1, text="Paris"), text=EMOJI_TEXT)

    problem = only_problem([payload], schema)

    assert "value.text 'Paris' differs from the text at 0..1" in problem.reason


# --- batches ---------------------------------------------------------------------


def test_one_bad_task_refuses_the_whole_batch(schema: ProjectSchema) -> None:
    batch = [task(span(0, 3)), task(span(0, 3, label="LOC")), task(span(4, 12))]

    problem = only_problem(batch, schema)

    assert problem.task_index == 1


def test_every_problem_of_every_task_is_listed_with_where_it_is(schema: ProjectSchema) -> None:
    bad_prediction = {"model_version": "ner-v2", "result": [span(0, 99, rid="p1")]}
    batch = [
        task(span(0, 3)),
        task(span(0, 3, label="LOC"), box(rid="b9", x=200)),
        task(span(0, 3), predictions=[bad_prediction]),
    ]

    with pytest.raises(TaskImportError) as caught:
        parse_tasks(batch, schema)

    assert [(p.task_index, p.source, p.result_id) for p in caught.value.problems] == [
        (1, "completion 7", "r1"),
        (1, "completion 7", "b9"),
        (2, "prediction #0 (ner-v2)", "p1"),
    ]
    assert str(caught.value).startswith("task 1, completion 7, result r1: 'LOC' not declared")


def test_problems_are_bounded(schema: ProjectSchema) -> None:
    batch = [task(span(0, 3, label="LOC"))] * (MAX_PROBLEMS + 50)

    problems = problems_of(batch, schema)

    assert len(problems) == MAX_PROBLEMS


def test_predictions_are_checked_like_completions(schema: ProjectSchema) -> None:
    prediction = {"id": 3, "model_version": "m1", "score": 0.5, "result": [span(0, 3, "LOC")]}

    problem = only_problem([task(predictions=[prediction])], schema)

    assert problem.source == "prediction 3 (m1)"
    assert "'LOC' not declared" in problem.reason


def test_single_task_object_is_read_as_a_batch_of_one(schema: ProjectSchema) -> None:
    (imported,) = parse_tasks(task(span(0, 3)), schema)

    assert imported.id == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("tasks", "expected a list of tasks"),
        (["text"], "a task must be a JSON object"),
        ([{"data": "text"}], '"data" must be an object'),
        ([{"data": {}, "annotations": {}}], '"annotations" must be a list'),
        ([{"data": {}, "id": [1]}], "task id must be a number or a string"),
        ([{"data": {}, "tags": "Train"}], '"tags" must be a list of strings'),
        ([{"data": {}, "annotations": [{"result": {}}]}], '"result" must be a list'),
        ([{"data": {}, "annotations": [{"result": [{"id": "a"}]}]}], 'the result has no "type"'),
    ],
)
def test_malformed_tasks_are_refused_with_the_reason(
    schema: ProjectSchema, payload: Any, reason: str
) -> None:
    assert reason in only_problem(payload, schema).reason


# --- flat tasks and tasks without data -----------------------------------------------


def test_task_without_data_key_is_the_data_itself(schema: ProjectSchema) -> None:
    flat = {"text": TEXT, "image": "cat.jpg", "id": 5}

    (imported,) = parse_tasks([flat], schema)

    assert (imported.id, imported.data, imported.completions) == (None, flat, ())
    assert task_to_json(imported) == {"data": flat, "annotations": [], "predictions": []}


def test_annotations_without_data_are_read_and_checked_not_taken_for_data(
    schema: ProjectSchema,
) -> None:
    # Label Studio's frontend examples ship annotation files like this one.
    choice = {
        "id": "c1",
        "type": "choices",
        "from_name": "sentiment",
        "to_name": "text",
        "value": {"choices": ["Positive"]},
    }

    (imported,) = parse_tasks([{"id": 4, "annotations": [{"result": [choice]}]}], schema)

    assert (imported.id, imported.data) == (4, {})
    assert imported.completions[0].result[0].value == {"choices": ["Positive"]}
    wrong = {**choice, "to_name": "menu"}
    problem = only_problem([{"annotations": [{"result": [wrong]}]}], schema)
    assert "to_name 'menu' is not what <Choices name='sentiment'> annotates" in problem.reason


# --- completions: both spellings, states, authors, reviews -----------------------------


def test_annotations_and_completions_are_both_read(schema: ProjectSchema) -> None:
    payload = {
        "data": {"text": TEXT},
        "annotations": [{"id": 1, "result": [span(0, 3)]}],
        "completions": [{"id": 2, "result": []}],
    }

    (imported,) = parse_tasks([payload], schema)

    assert [c.id for c in imported.completions] == [1, 2]
    assert [c["id"] for c in task_to_json(imported)["annotations"]] == [1, 2]
    assert "completions" not in task_to_json(imported)


def test_generative_ai_lab_completion_is_read(schema: ProjectSchema) -> None:
    completion = {
        "id": 11,
        "created_username": "alice",
        "created_ago": "2024-01-02T03:04:05Z",
        "honeypot": True,
        "lead_time": 12,
        "result": [span(0, 3)],
        "review_status": {"approved": False, "comment": "Wrong span", "reviewer": "bob"},
    }

    (imported,) = parse_tasks([{"data": {"text": TEXT}, "completions": [completion]}], schema)

    (read,) = imported.completions
    assert (read.author, read.ground_truth, read.lead_time) == ("alice", True, 12.0)
    assert read.verdict is ReviewVerdict.REJECTED
    assert (read.reviews[0].reviewer, read.reviews[0].comment) == ("bob", "Wrong span")
    assert read.extra == {"created_ago": "2024-01-02T03:04:05Z"}


def test_approved_review_status_is_an_accepted_review(schema: ProjectSchema) -> None:
    completion = {"result": [], "review_status": {"approved": True, "reviewer": "bob"}}

    (imported,) = parse_tasks([{"data": {}, "completions": [completion]}], schema)

    assert imported.completions[0].verdict is ReviewVerdict.ACCEPTED


def test_review_without_a_verdict_is_refused(schema: ProjectSchema) -> None:
    completion = {"id": 3, "result": [], "reviews": [{"comment": "?"}]}

    problem = only_problem([{"data": {}, "annotations": [completion]}], schema)

    assert (problem.source, problem.reason) == (
        "completion 3",
        'a review needs "accepted": true or false',
    )


def test_reviews_are_read_in_order_and_the_last_one_stands(schema: ProjectSchema) -> None:
    completion = {
        "result": [],
        "reviews": [
            {"accepted": False, "reviewer": {"email": "bob@lab"}, "created_at": "t1"},
            {"accepted": True, "reviewer": "carol", "comment": "fixed"},
        ],
        "review_status": {"approved": True, "reviewer": "dave"},
    }
    payload = {"data": {}, "annotations": [completion]}
    before = copy.deepcopy(payload)

    (imported,) = parse_tasks([payload], schema)

    reviews = imported.completions[0].reviews
    assert [(r.verdict, r.reviewer) for r in reviews] == [
        (ReviewVerdict.REJECTED, "bob@lab"),
        (ReviewVerdict.ACCEPTED, "carol"),
        (ReviewVerdict.ACCEPTED, "dave"),
    ]
    assert reviews[0].created_at == "t1"
    assert payload == before  # the caller's data is read, never changed


def test_drafts_and_cancelled_completions_map_to_their_state(schema: ProjectSchema) -> None:
    payload = {
        "data": {"text": TEXT},
        "annotations": [
            {"id": 1, "result": [], "draft": True},
            {"id": 2, "result": [], "was_cancelled": True},
            {"id": 3, "result": [span(0, 3)], "was_cancelled": False},
        ],
        "drafts": [{"id": 4, "user": "erin@lab", "result": [span(0, 3)]}],
    }

    (imported,) = parse_tasks([payload], schema)

    # Drafts follow the other completions, as an export lists them apart.
    assert [(c.id, c.state) for c in imported.completions] == [
        (2, CompletionState.CANCELLED),
        (3, CompletionState.SUBMITTED),
        (1, CompletionState.DRAFT),
        (4, CompletionState.DRAFT),
    ]
    assert imported.completions[3].author == "erin@lab"
    exported = task_to_json(imported)
    assert [c["id"] for c in exported["annotations"]] == [2, 3]
    assert [c["id"] for c in exported["drafts"]] == [1, 4]
    assert exported["annotations"][0]["was_cancelled"] is True
    assert parse_tasks([exported], schema) == [imported]


def test_problem_in_a_draft_names_the_draft(schema: ProjectSchema) -> None:
    payload = {"data": {"text": TEXT}, "drafts": [{"result": [span(0, 3, "LOC")]}]}

    assert only_problem([payload], schema).source == "draft #0"


def test_label_studio_user_id_is_the_author_and_exported_as_given(schema: ProjectSchema) -> None:
    # Label Studio reads "completed_by" back as a user id: it must stay a number.
    completion = {"id": 5678, "completed_by": 99999, "result": []}

    (imported,) = parse_tasks([{"data": {}, "annotations": [completion]}], schema)

    assert imported.completions[0].author == "99999"
    assert task_to_json(imported)["annotations"][0]["completed_by"] == 99999


def test_label_studio_user_record_gives_its_email_and_is_exported_whole(
    schema: ProjectSchema,
) -> None:
    user = {"id": 42, "email": "annotator@project.com", "first_name": "", "last_name": ""}
    completion = {"completed_by": user, "result": []}

    (imported,) = parse_tasks([{"data": {}, "annotations": [completion]}], schema)

    assert imported.completions[0].author == "annotator@project.com"
    assert task_to_json(imported)["annotations"][0]["completed_by"] == user


def test_user_name_beside_a_user_id_is_kept(schema: ProjectSchema) -> None:
    completion = {"completed_by": 3, "created_username": "alice, 3", "result": []}

    (imported,) = parse_tasks([{"data": {}, "annotations": [completion]}], schema)

    exported = task_to_json(imported)["annotations"][0]
    assert (exported["completed_by"], exported["created_username"]) == (3, "alice, 3")


def test_missing_user_id_falls_back_to_the_user_name(schema: ProjectSchema) -> None:
    completion = {"completed_by": None, "created_username": "alice", "result": []}

    (imported,) = parse_tasks([{"data": {}, "completions": [completion]}], schema)

    assert imported.completions[0].author == "alice"
    assert task_to_json(imported)["annotations"][0]["completed_by"] == "alice"


def test_prediction_scores_and_version_are_read(schema: ProjectSchema) -> None:
    prediction = {"model_version": "ner-v1", "score": 0.7, "result": [span(0, 3) | {"score": 0.9}]}

    (imported,) = parse_tasks([task(predictions=[prediction])], schema)

    (read,) = imported.predictions
    assert (read.model_version, read.score, read.result[0].score) == ("ner-v1", 0.7, 0.9)


def test_prediction_without_model_version_is_exported_without_one(schema: ProjectSchema) -> None:
    (imported,) = parse_tasks([task(predictions=[{"result": []}])], schema)

    assert task_to_json(imported)["predictions"] == [{"result": []}]


def test_extra_keys_at_every_level_are_exported_unchanged(schema: ProjectSchema) -> None:
    payload = {
        "id": 9,
        "data": {"text": TEXT},
        "meta": {"batch": 3},
        "project": 49,
        "annotations": [
            {"id": 1, "result": [span(0, 3) | {"origin": "manual"}], "task": 9, "prediction": {}}
        ],
        "predictions": [{"id": 2, "model_version": "m", "result": [], "cluster": None}],
    }

    (imported,) = parse_tasks([payload], schema)
    exported = task_to_json(imported)

    assert (exported["meta"], exported["project"]) == ({"batch": 3}, 49)
    assert exported["annotations"][0]["task"] == 9
    assert exported["annotations"][0]["result"][0]["origin"] == "manual"
    assert exported["predictions"][0]["cluster"] is None


# --- files --------------------------------------------------------------------------


def test_load_tasks_reads_json_text_and_bytes(schema: ProjectSchema) -> None:
    raw = json.dumps([task(span(0, 3))])

    assert load_tasks(raw, schema) == load_tasks(raw.encode(), schema)


@pytest.mark.parametrize(
    "raw",
    [b"[{", b"\xff\xfe\x00", "[" * 100_000 + "]" * 100_000, "[" + "9" * 5000 + "]"],
    ids=["truncated", "not-utf8", "nested-too-deep", "integer-too-long"],
)
def test_file_that_is_not_json_is_refused_not_crashed_on(
    schema: ProjectSchema, raw: str | bytes
) -> None:
    with pytest.raises(TaskImportError) as caught:
        load_tasks(raw, schema)

    (problem,) = caught.value.problems
    assert problem.task_index == 0
    assert "the file is not valid JSON" in problem.reason


def test_numbers_too_large_for_a_float_are_ignored_not_crashed_on(schema: ProjectSchema) -> None:
    raw = '[{"data": {}, "annotations": [{"result": [], "lead_time": 1' + "0" * 400 + "}]}]"

    (imported,) = load_tasks(raw, schema)

    assert imported.completions[0].lead_time is None
