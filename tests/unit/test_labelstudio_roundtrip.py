"""Import, export, import again: the same tasks, whatever Label Studio JSON they came from."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.labelstudio import parse_tasks, tasks_to_json

SCHEMA = parse_labeling_config(
    """\
<View>
  <Text name="text" value="$text"/>
  <Labels name="label" toName="text">
    <Label value="PER"/><Label value="ORG"/><Label value="Date" alias="DATE"/>
  </Labels>
  <Relations><Relation value="works_for"/></Relations>
  <Choices name="topics" toName="text" choice="multiple">
    <Choice value="sport"/><Choice value="politics"/><Choice value="science"/>
  </Choices>
  <TextArea name="note" toName="text"/>
</View>
"""
)
LABELS = ["PER", "ORG", "Date", "DATE"]
TOPICS = ["sport", "politics", "science"]

# Keys the importer reads, at each level; generated extra keys avoid them.
TASK_KEYS = {"id", "data", "annotations", "completions", "drafts", "predictions", "tags"}
COMPLETION_KEYS = {
    "id", "result", "completed_by", "created_username", "user", "was_cancelled",
    "ground_truth", "honeypot", "lead_time", "created_at", "updated_at", "reviews",
    "review_status", "draft",
}  # fmt: skip
PREDICTION_KEYS = {"id", "result", "model_version", "score"}
ITEM_KEYS = {"id", "type", "from_name", "to_name", "value", "score", "from_id", "to_id", "labels"}

# Text as people write it: any script, emoji, spaces, tabs and line breaks.
texts = st.text(
    st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.sampled_from(" \t\n\u00a0😀🇫🇷é中"),
    ),
    max_size=30,
)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | texts
json_values = (
    json_scalars
    | st.lists(json_scalars, max_size=3)
    | st.dictionaries(st.text("abc", max_size=3), json_scalars, max_size=2)
)
ids = st.integers(0, 10**9) | st.text("abcdefXYZ_-0123456789", min_size=1, max_size=10)
emails = st.builds("{}@lab.example".format, st.text("abcdefgh.", min_size=1, max_size=8))
users = (
    emails
    | st.integers(1, 10**6)
    | st.fixed_dictionaries({"id": st.integers(1, 10**6), "email": emails})
)
# Keys Label Studio and Generative AI Lab write that the importer keeps as given,
# and made-up ones ("x_…", never a key the importer reads), at whatever level.
KNOWN_EXTRA_KEYS = ["meta", "project", "created_ago", "origin", "task", "inner_id", "cluster"]
made_up_keys = st.builds("x_{}".format, st.text(max_size=6))


def extras(reserved: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from([k for k in KNOWN_EXTRA_KEYS if k not in reserved]) | made_up_keys
    return st.dictionaries(keys, json_values, max_size=2)


TASK_EXTRAS = extras(TASK_KEYS)
COMPLETION_EXTRAS = extras(COMPLETION_KEYS)
PREDICTION_EXTRAS = extras(PREDICTION_KEYS)
ITEM_EXTRAS = extras(ITEM_KEYS)

# What a result item will be; offsets are placed in the task's text when it is known.
item_plans = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["span", "span", "choices", "textarea"]),
        "offsets": st.tuples(st.integers(0, 10**4), st.integers(0, 10**4)),
        "label": st.sampled_from(LABELS),
        "quote_text": st.booleans(),
        "choices": st.lists(st.sampled_from(TOPICS), min_size=1, unique=True),
        "answers": st.lists(texts, min_size=1, max_size=2),
        "extra": ITEM_EXTRAS,
    },
    optional={
        "meta": texts,
        "origin": st.sampled_from(["manual", "prediction", "prediction-changed"]),
        "score": st.floats(0, 1),
    },
)
relation_plans = st.none() | st.fixed_dictionaries(
    {"ends": st.tuples(st.integers(0, 9), st.integers(0, 9)), "labelled": st.booleans()}
)
result_plans = st.tuples(st.lists(item_plans, max_size=3), relation_plans)


def build_result(plan: tuple[list[dict[str, Any]], Any], text: str) -> list[dict[str, Any]]:
    item_plans, relation_plan = plan
    items: list[dict[str, Any]] = []
    for n, p in enumerate(item_plans):
        item: dict[str, Any] = {"id": f"r{n}"}
        if p["kind"] == "span" and text:
            start = p["offsets"][0] % len(text)
            end = start + 1 + p["offsets"][1] % (len(text) - start)
            value: dict[str, Any] = {"start": start, "end": end, "labels": [p["label"]]}
            if p["quote_text"]:
                value["text"] = text[start:end]
            item |= {"type": "labels", "from_name": "label", "to_name": "text", "value": value}
        elif p["kind"] == "choices":
            value = {"choices": p["choices"]}
            item |= {"type": "choices", "from_name": "topics", "to_name": "text", "value": value}
        else:
            value = {"text": p["answers"]}
            item |= {"type": "textarea", "from_name": "note", "to_name": "text", "value": value}
        if "meta" in p:
            item["meta"] = {"text": [p["meta"]]}
        for key in ("origin", "score"):
            if key in p:
                item[key] = p[key]
        items.append(item | p["extra"])
    if relation_plan is not None and len(items) >= 2:
        from_n, to_n = (n % len(items) for n in relation_plan["ends"])
        relation = {"type": "relation", "from_id": f"r{from_n}", "to_id": f"r{to_n}",
                    "direction": "right"}  # fmt: skip
        if relation_plan["labelled"]:
            relation["labels"] = ["works_for"]
        items.append(relation)
    return items


reviews = st.fixed_dictionaries(
    {"accepted": st.booleans()},
    optional={
        "reviewer": users | st.none(),
        "comment": texts,
        "created_at": st.sampled_from(["2024-05-01T10:00:00Z", None]),
    },
)
# Generative AI Lab's single review.
review_statuses = st.fixed_dictionaries(
    {"approved": st.booleans(), "comment": texts, "reviewer": emails}
)
completion_plans = st.fixed_dictionaries(
    {"result": result_plans, "extra": COMPLETION_EXTRAS},
    optional={
        "id": ids,
        "completed_by": users,
        "created_username": emails | texts,
        "user": emails,
        "was_cancelled": st.booleans(),
        "ground_truth": st.booleans(),
        "honeypot": st.booleans(),
        "draft": st.booleans(),
        "lead_time": st.floats(0, 10**6) | st.integers(0, 10**6),
        "reviews": st.lists(reviews, max_size=2),
        "review_status": review_statuses,
    },
)
prediction_plans = st.fixed_dictionaries(
    {"result": result_plans, "extra": PREDICTION_EXTRAS},
    optional={"id": ids, "model_version": texts, "score": finite},
)
task_plans = st.fixed_dictionaries(
    {
        "text": texts,
        "flat": st.integers(0, 9).map(lambda n: n == 0),
        "spelling": st.sampled_from(["annotations", "completions"]),
        "completions": st.lists(completion_plans, max_size=2),
        "data_extra": extras({"text"}),
        "extra": TASK_EXTRAS,
    },
    optional={
        "id": ids,
        "drafts": st.lists(completion_plans, max_size=1),
        "predictions": st.lists(prediction_plans, max_size=1),
        "tags": st.lists(st.sampled_from(["Train", "Test", "Gold"]), unique=True),
    },
)


def build_entry(plan: dict[str, Any], text: str) -> dict[str, Any]:
    """A completion or prediction from its plan."""
    entry = {k: v for k, v in plan.items() if k not in ("result", "extra")}
    return entry | {"result": build_result(plan["result"], text)} | plan["extra"]


def build_task(plan: dict[str, Any]) -> dict[str, Any]:
    text = plan["text"]
    if plan["flat"]:
        # A flat task: the object is the data.
        return {"text": text} | plan["extra"]
    task: dict[str, Any] = {"data": {"text": text} | plan["data_extra"]}
    if "id" in plan:
        task["id"] = plan["id"]
    task[plan["spelling"]] = [build_entry(c, text) for c in plan["completions"]]
    for key in ("drafts", "predictions"):
        if key in plan:
            task[key] = [build_entry(c, text) for c in plan[key]]
    if "tags" in plan:
        task["tags"] = plan["tags"]
    return task | plan["extra"]


batches = st.lists(task_plans.map(build_task), min_size=1, max_size=2)


@settings(max_examples=150, deadline=None)
@given(batches)
def test_importing_an_export_gives_the_same_tasks(batch: list[dict[str, Any]]) -> None:
    imported = parse_tasks(batch, SCHEMA)

    exported = tasks_to_json(imported)

    assert parse_tasks(exported, SCHEMA) == imported
    assert parse_tasks(json.loads(json.dumps(exported)), SCHEMA) == imported
    # And the export is stable: exporting the re-import writes the same JSON.
    assert tasks_to_json(parse_tasks(exported, SCHEMA)) == exported
