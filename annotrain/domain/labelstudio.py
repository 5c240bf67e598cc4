"""Label Studio JSON in and out, checked against the project's labeling config.

Both spellings come in: ``annotations`` (Label Studio 1.x) and ``completions``
(Label Studio 0.x and Generative AI Lab, with ``created_username``, ``honeypot``
and ``review_status``). Out is always the 1.x spelling. A batch is all or
nothing: every problem of every task is collected, and one bad task refuses the
batch.

A task without ``"data"`` is, as in Label Studio, the data itself, unless it
carries annotations, completions, drafts or predictions: then it is a task whose
data is missing (Label Studio's frontend examples ship such annotation files),
and its results are checked like any other.

Offsets are Python string indices. Label Studio's editor counts in UTF-16 code
units, so for text with characters outside the Basic Multilingual Plane (emoji)
its offsets run ahead; a span whose ``value.text`` matches only when read as
UTF-16 offsets is converted to Python indices on the way in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from annotrain.domain.config import ControlTag, ObjectTag, ProjectSchema
from annotrain.domain.errors import ImportProblem, TaskImportError
from annotrain.domain.tasks import (
    Completion,
    CompletionState,
    JsonId,
    Prediction,
    ResultItem,
    Review,
    ReviewVerdict,
    Task,
)

MAX_PROBLEMS = 1000

_TASK_KEYS = frozenset(
    {"id", "data", "annotations", "completions", "drafts", "predictions", "tags"}
)
# Keys that make an object without "data" a task rather than the data itself.
_TASK_CONTENT_KEYS = frozenset({"annotations", "completions", "drafts", "predictions"})
# Where a completion's author may be, in the order they are looked for: Label
# Studio 1.x ``completed_by`` (a user id or record), Generative AI Lab and Label
# Studio 0.x ``created_username``, drafts' ``user``.
_AUTHOR_KEYS = ("completed_by", "created_username", "user")
_COMPLETION_KEYS = frozenset({
    "id", "result", *_AUTHOR_KEYS, "was_cancelled", "ground_truth", "honeypot", "lead_time",
    "created_at", "updated_at", "reviews", "review_status", "draft",
})  # fmt: skip
_PREDICTION_KEYS = frozenset({"id", "result", "model_version", "score"})
_ITEM_KEYS = frozenset({"id", "type", "from_name", "to_name", "value", "score"})
# Result types whose value holds a box in percent of the image.
_GEOMETRY_KEYS = ("x", "y")


class _Problems:
    """Collects problems for one batch, up to a bound, with the task index in scope."""

    def __init__(self) -> None:
        self.items: list[ImportProblem] = []
        self.task_index = 0

    def add(self, reason: str, *, result_id: Any = None, source: str | None = None) -> None:
        if len(self.items) < MAX_PROBLEMS:
            rid = None if result_id is None else str(result_id)
            self.items.append(ImportProblem(self.task_index, reason, rid, source))


def load_tasks(raw: str | bytes, schema: ProjectSchema) -> list[Task]:
    """Decode a Label Studio JSON file and import its tasks.

    Args:
        raw: The file's content, as text or bytes (UTF-8, -16 or -32).
        schema: The project's labeling config; results must agree with it.

    Returns:
        The tasks, in the order given.

    Raises:
        TaskImportError: When the file is not JSON (malformed, nested too deep,
            numbers too long) or any task is inconsistent with the schema.
    """
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers too long to convert;
        # RecursionError, arrays nested too deep to decode. All are bad files.
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        raise TaskImportError(
            [ImportProblem(0, f"the file is not valid JSON ({reason}); export it from Label "
                           "Studio as JSON")]
        ) from None  # fmt: skip
    return parse_tasks(payload, schema)


def parse_tasks(payload: Any, schema: ProjectSchema) -> list[Task]:
    """Import decoded Label Studio JSON: a list of tasks, or one task.

    Args:
        payload: The decoded JSON.
        schema: The project's labeling config; results must agree with it.

    Returns:
        The tasks, in the order given.

    Raises:
        TaskImportError: Listing, for every bad task, its index, the result id and
            the reason. No task is returned when any is bad.
    """
    items = [payload] if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise TaskImportError(
            [ImportProblem(0, "expected a list of tasks (or one task object), "
                           f"got {type(payload).__name__}")]
        )  # fmt: skip
    problems = _Problems()
    tasks: list[Task] = []
    for index, item in enumerate(items):
        problems.task_index = index
        task = _parse_task(item, schema, problems)
        if task is not None:
            tasks.append(task)
    if problems.items:
        raise TaskImportError(problems.items)
    return tasks


def _parse_task(item: Any, schema: ProjectSchema, problems: _Problems) -> Task | None:
    if not isinstance(item, dict):
        problems.add(f"a task must be a JSON object, got {type(item).__name__}")
        return None
    is_task = "data" in item or not _TASK_CONTENT_KEYS.isdisjoint(item)
    if not is_task:
        # Label Studio takes a task without "data" as the data itself.
        return Task(None, item)
    data = item.get("data", {})
    if not isinstance(data, dict):
        problems.add('"data" must be an object of the fields the config shows')
        return None
    extra = {k: v for k, v in item.items() if k not in _TASK_KEYS}
    raw_completions = _as_list(item.get("annotations"), "annotations", problems)
    raw_completions += _as_list(item.get("completions"), "completions", problems)
    raw_drafts = _as_list(item.get("drafts"), "drafts", problems)
    raw_predictions = _as_list(item.get("predictions"), "predictions", problems)
    task_id = _json_id(item.get("id"), "task id", problems)
    tags = item.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.add('"tags" must be a list of strings')
        tags = []

    parsed = [
        c
        for n, raw in enumerate(raw_completions)
        if (c := _parse_completion(raw, n, data, schema, problems, draft=False)) is not None
    ]
    # Drafts go after the completions they were listed among, as an export lists
    # them apart ("drafts"): importing an export gives the same order.
    completions = [c for c in parsed if c.state is not CompletionState.DRAFT]
    completions += [c for c in parsed if c.state is CompletionState.DRAFT]
    completions += [
        c
        for n, raw in enumerate(raw_drafts)
        if (c := _parse_completion(raw, n, data, schema, problems, draft=True)) is not None
    ]
    predictions = [
        p
        for n, raw in enumerate(raw_predictions)
        if (p := _parse_prediction(raw, n, data, schema, problems)) is not None
    ]
    return Task(task_id, data, tuple(completions), tuple(predictions), tuple(tags), extra)


def _as_list(value: Any, key: str, problems: _Problems) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(f'"{key}" must be a list')
        return []
    return value


def _json_id(value: Any, what: str, problems: _Problems) -> JsonId | None:
    if value is None or (isinstance(value, int | str) and not isinstance(value, bool)):
        return value
    problems.add(f"{what} must be a number or a string, got {json.dumps(value)[:40]}")
    return None


def _number(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _author(raw: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Who made a completion, and under which key it was found."""
    for key in _AUTHOR_KEYS:
        who = raw.get(key)
        if isinstance(who, dict):
            who = who.get("email") or who.get("username") or who.get("id")
        if who is not None and not isinstance(who, bool):
            return str(who), key
    return None, None


def _completion_extra(raw: Mapping[str, Any], author_key: str | None) -> dict[str, Any]:
    extra = {k: v for k, v in raw.items() if k not in _COMPLETION_KEYS}
    for key in _AUTHOR_KEYS:
        who = raw.get(key)
        if who is None or isinstance(who, bool):
            continue
        # The author is exported as "completed_by" text; a user id or user record
        # is kept as given so Label Studio reads it back, and a second identity
        # (a created_username beside a completed_by id) is kept too.
        if key != author_key or not isinstance(who, str):
            extra[key] = who
    return extra


def _parse_completion(
    raw: Any, n: int, data: Mapping[str, Any], schema: ProjectSchema, problems: _Problems,
    *, draft: bool,
) -> Completion | None:  # fmt: skip
    kind = "draft" if draft else "completion"
    if not isinstance(raw, dict):
        problems.add(f"a {kind} must be a JSON object, got {type(raw).__name__}")
        return None
    cid = _json_id(raw.get("id"), f"{kind} id", problems)
    source = f"{kind} #{n}" if cid is None else f"{kind} {cid}"
    result = _parse_result(raw.get("result"), data, schema, problems, source)
    if draft or raw.get("draft") is True:
        state = CompletionState.DRAFT
    elif raw.get("was_cancelled") is True:
        state = CompletionState.CANCELLED
    else:
        state = CompletionState.SUBMITTED
    author, author_key = _author(raw)
    return Completion(
        id=cid,
        result=result,
        author=author,
        state=state,
        ground_truth=raw.get("ground_truth") is True or raw.get("honeypot") is True,
        lead_time=_number(raw.get("lead_time")),
        created_at=_optional_str(raw.get("created_at")),
        updated_at=_optional_str(raw.get("updated_at")),
        reviews=_parse_reviews(raw, problems, source),
        extra=_completion_extra(raw, author_key),
    )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _parse_reviews(raw: Mapping[str, Any], problems: _Problems, source: str) -> tuple[Review, ...]:
    entries: list[Any] = []
    if "reviews" in raw:
        # A copy: the review_status appended below must not change the caller's data.
        entries = list(_as_list(raw["reviews"], "reviews", problems))
    if isinstance(raw.get("review_status"), dict):
        # Generative AI Lab: one review, {"approved": bool, "reviewer", "comment"}.
        status = raw["review_status"]
        entries.append({**status, "accepted": status.get("approved")})
    reviews: list[Review] = []
    for entry in entries:
        accepted = entry.get("accepted") if isinstance(entry, dict) else None
        if not isinstance(accepted, bool):
            problems.add('a review needs "accepted": true or false', source=source)
            continue
        reviews.append(
            Review(
                ReviewVerdict.ACCEPTED if accepted else ReviewVerdict.REJECTED,
                _author({"completed_by": entry.get("reviewer", entry.get("created_by"))})[0],
                entry.get("comment") if isinstance(entry.get("comment"), str) else "",
                _optional_str(entry.get("created_at", entry.get("reviewed_at"))),
            )
        )
    return tuple(reviews)


def _parse_prediction(
    raw: Any, n: int, data: Mapping[str, Any], schema: ProjectSchema, problems: _Problems
) -> Prediction | None:
    if not isinstance(raw, dict):
        problems.add(f"a prediction must be a JSON object, got {type(raw).__name__}")
        return None
    pid = _json_id(raw.get("id"), "prediction id", problems)
    version = raw.get("model_version")
    source = f"prediction #{n}" if pid is None else f"prediction {pid}"
    if version is not None:
        source += f" ({version})"
    return Prediction(
        id=pid,
        result=_parse_result(raw.get("result"), data, schema, problems, source),
        model_version=None if version is None else str(version),
        score=_number(raw.get("score")),
        extra={k: v for k, v in raw.items() if k not in _PREDICTION_KEYS},
    )


def _parse_result(
    raw: Any, data: Mapping[str, Any], schema: ProjectSchema, problems: _Problems, source: str
) -> tuple[ResultItem, ...]:
    if not isinstance(raw, list):
        problems.add('"result" must be a list of regions', source=source)
        return ()
    items: list[ResultItem] = []
    for entry in raw:
        item = _parse_item(entry, data, schema, problems, source)
        if item is not None:
            items.append(item)
    region_ids = {item.id for item in items if item.type != "relation"}
    for item in items:
        if item.type == "relation":
            _check_relation(item, region_ids, schema, _Reporter(problems, item.id, source))
    return tuple(items)


def _parse_item(
    entry: Any, data: Mapping[str, Any], schema: ProjectSchema, problems: _Problems, source: str
) -> ResultItem | None:
    if not isinstance(entry, dict):
        problems.add("a result item must be a JSON object", source=source)
        return None
    rid = entry.get("id")
    rtype = entry.get("type")
    if not isinstance(rtype, str):
        problems.add('the result has no "type"', result_id=rid, source=source)
        return None
    value = entry.get("value", {})
    if not isinstance(value, dict):
        problems.add('"value" must be an object', result_id=rid, source=source)
        return None
    item = ResultItem(
        id=None if rid is None else str(rid),
        type=rtype,
        from_name=entry.get("from_name"),
        to_name=entry.get("to_name"),
        value=value,
        score=_number(entry.get("score")),
        extra={k: v for k, v in entry.items() if k not in _ITEM_KEYS},
    )
    if rtype == "relation":
        return item
    report = _Reporter(problems, rid, source)
    control = schema.control(item.from_name) if isinstance(item.from_name, str) else None
    if control is None:
        report(f"from_name {item.from_name!r} is not a control of the labeling config "
               f"(controls: {', '.join(sorted(schema.controls)) or 'none'})")  # fmt: skip
        return None
    if not isinstance(item.to_name, str) or not schema.accepts_target(control, item.to_name):
        report(f"to_name {item.to_name!r} is not what <{control.tag} name={control.name!r}> "
               f"annotates ({', '.join(control.to_names) or 'no object named'})")  # fmt: skip
        return None
    if rtype != control.result_type:
        report(f"type {rtype!r} does not match <{control.tag} name={control.name!r}>, whose "
               f"results are {control.result_type!r}")  # fmt: skip
        return None
    _check_options(item, control, report)
    obj = schema.object(item.to_name)
    if obj is None:
        return item
    if obj.is_text and ("start" in value or "end" in value):
        value = _check_span(value, obj, data, report)
        if value is not item.value:
            item = ResultItem(item.id, item.type, item.from_name, item.to_name, value,
                              item.score, item.extra)  # fmt: skip
    elif obj.tag == "Image" and all(k in value for k in _GEOMETRY_KEYS):
        _check_box(value, report)
    return item


class _Reporter:
    def __init__(self, problems: _Problems, rid: Any, source: str) -> None:
        self._problems, self._rid, self._source = problems, rid, source

    def __call__(self, reason: str) -> None:
        self._problems.add(reason, result_id=self._rid, source=self._source)


def _check_options(item: ResultItem, control: ControlTag, report: _Reporter) -> None:
    if not control.options or control.dynamic_options:
        return
    given = item.value.get(item.type)
    if given is None:
        return
    if not isinstance(given, list):
        report(f'value.{item.type} must be a list of values of <{control.tag} '
               f'name={control.name!r}>')  # fmt: skip
        return
    allowed = control.allowed_values()
    # Taxonomy answers are paths through nested choices; each step must be declared.
    if item.type == "taxonomy":
        if not all(isinstance(path, list) for path in given):
            report(f"value.taxonomy must be a list of paths, each a list of values of "
                   f"<{control.tag} name={control.name!r}>")  # fmt: skip
            return
        values = [v for path in given for v in path]
    else:
        values = given
    unknown = [v for v in values if not isinstance(v, str) or v not in allowed]
    if unknown:
        report(f"{', '.join(map(repr, unknown))} not declared in <{control.tag} "
               f"name={control.name!r}>; declared: {', '.join(sorted(allowed))}")  # fmt: skip


def _check_span(
    value: Mapping[str, Any], obj: ObjectTag, data: Mapping[str, Any], report: _Reporter
) -> Mapping[str, Any]:
    key = obj.data_key
    if key is not None and not key.isidentifier():
        # A path into nested data ($dialog[{{idx}}].text): Label Studio resolves it
        # in the editor; the offsets are checked where the text is read.
        return value
    text = data.get(key) if key is not None else obj.value
    if not isinstance(text, str):
        report(f"the task has no text field {key!r} for <Text name={obj.name!r}>")
        return value
    start, end = value.get("start"), value.get("end")
    if not (_is_index(start) and _is_index(end)):
        report(f"start and end must be whole numbers, got {start!r} and {end!r}")
        return value
    claimed = value.get("text")
    if isinstance(claimed, str) and text[start:end] != claimed:
        converted = _from_utf16(text, start, end)
        if converted is not None and text[converted[0] : converted[1]] == claimed:
            return {**value, "start": converted[0], "end": converted[1]}
    if not 0 <= start < end <= len(text):
        report(f"span {start}..{end} is outside the text (0..{len(text)}) or empty")
    elif isinstance(claimed, str) and text[start:end] != claimed:
        report(f"value.text {claimed!r} differs from the text at {start}..{end}: "
               f"{text[start:end]!r}")  # fmt: skip
    return value


def _is_index(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _from_utf16(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Map UTF-16 code-unit offsets to Python indices, when the text needs it."""
    if text.isascii():
        return None
    units = 0
    mapping: dict[int, int] = {}
    for index, char in enumerate(text):
        mapping[units] = index
        units += 2 if ord(char) > 0xFFFF else 1
    mapping[units] = len(text)
    if start in mapping and end in mapping and mapping[start] < mapping[end]:
        return mapping[start], mapping[end]
    return None


def _check_box(value: Mapping[str, Any], report: _Reporter) -> None:
    # A box dragged past the border is stored reaching past 100: kept, clipped where used.
    for key in _GEOMETRY_KEYS:
        number = _number(value.get(key))
        if number is None or not 0 <= number <= 100:
            report(f"{key}={value.get(key)!r} must be a percentage of the image, 0 to 100")
    for key in ("width", "height"):
        if key in value and ((n := _number(value[key])) is None or n < 0):
            report(f"{key}={value[key]!r} must be a non-negative percentage")


def _check_relation(
    item: ResultItem, region_ids: set[str | None], schema: ProjectSchema, report: _Reporter
) -> None:
    for end in ("from_id", "to_id"):
        ref = item.extra.get(end)
        if ref is None or str(ref) not in region_ids:
            report(f"relation {end}={ref!r} names no region of this completion")
    labels = item.extra.get("labels", [])
    if schema.relation_labels and isinstance(labels, list):
        unknown = [v for v in labels if v not in schema.relation_labels]
        if unknown:
            report(f"relation labels {unknown} not declared in <Relations>")


# --- out -------------------------------------------------------------------------


def task_to_json(task: Task) -> dict[str, Any]:
    """A task in Label Studio 1.x JSON; importing it again gives the same task."""
    out: dict[str, Any] = {}
    if task.id is not None:
        out["id"] = task.id
    out["data"] = dict(task.data)
    out["annotations"] = [
        completion_to_json(c) for c in task.completions if c.state is not CompletionState.DRAFT
    ]
    drafts = [completion_to_json(c) for c in task.completions if c.state is CompletionState.DRAFT]
    if drafts:
        out["drafts"] = drafts
    out["predictions"] = [_prediction_to_json(p) for p in task.predictions]
    if task.tags:
        out["tags"] = list(task.tags)
    out.update(task.extra)
    return out


def tasks_to_json(tasks: Iterable[Task]) -> list[dict[str, Any]]:
    """Tasks in Label Studio 1.x JSON."""
    return [task_to_json(t) for t in tasks]


def completion_to_json(completion: Completion) -> dict[str, Any]:
    """One completion in Label Studio 1.x JSON (an ``annotation``)."""
    out: dict[str, Any] = {}
    if completion.id is not None:
        out["id"] = completion.id
    if completion.author is not None:
        out["completed_by"] = completion.author
    out["result"] = result_to_json(completion.result)
    out["was_cancelled"] = completion.state is CompletionState.CANCELLED
    out["ground_truth"] = completion.ground_truth
    for key in ("lead_time", "created_at", "updated_at"):
        if (value := getattr(completion, key)) is not None:
            out[key] = value
    if completion.reviews:
        out["reviews"] = [
            {"accepted": r.verdict is ReviewVerdict.ACCEPTED, "reviewer": r.reviewer,
             "comment": r.comment, "created_at": r.created_at}
            for r in completion.reviews
        ]  # fmt: skip
    out.update(completion.extra)
    return out


def _prediction_to_json(prediction: Prediction) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if prediction.id is not None:
        out["id"] = prediction.id
    if prediction.model_version is not None:
        out["model_version"] = prediction.model_version
    if prediction.score is not None:
        out["score"] = prediction.score
    out["result"] = result_to_json(prediction.result)
    out.update(prediction.extra)
    return out


def result_to_json(items: Sequence[ResultItem]) -> list[dict[str, Any]]:
    """Result items in Label Studio JSON."""
    out = []
    for item in items:
        entry: dict[str, Any] = {}
        if item.id is not None:
            entry["id"] = item.id
        entry["type"] = item.type
        if item.from_name is not None:
            entry["from_name"] = item.from_name
        if item.to_name is not None:
            entry["to_name"] = item.to_name
        # A relation carries no value; one is not invented for it.
        if item.value or item.type != "relation":
            entry["value"] = dict(item.value)
        if item.score is not None:
            entry["score"] = item.score
        entry.update(item.extra)
        out.append(entry)
    return out
