"""Deploying a model into a project: its labeling config names the model on its labels.

Label Studio marks which model predicts a label with ``model="…"`` on the
``<Label>`` (or ``<Choice>``). Deploying rewrites those attributes in the config
text itself, tag by tag, so everything else (layout, comments, spacing, attribute
order) stays byte for byte as the user wrote it; the result is parsed again (safe
parsing, every check) before it is used.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection
from dataclasses import dataclass

from annotrain.domain.config import ProjectSchema, parse_labeling_config
from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.training_plan import ModelKind, implied_models

# Comments, CDATA, processing instructions and declarations pass through untouched;
# start and end tags are read with their attributes.
_TOKEN = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|<![^>]*>"
    r"|<(?P<close>/?)(?P<tag>[A-Za-z_][\w.:-]*)(?P<attrs>(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)"
    r"(?P<space>\s*)(?P<end>/?)>",
    re.DOTALL,
)
_ATTRIBUTE = re.compile(r"(?P<name>[^\s=/>]+)\s*=\s*(?P<quoted>\"[^\"]*\"|'[^']*')")
# A model name is written into an attribute as it is: keep it to safe characters.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_OPTION_OF = {"labels": "label", "choices": "choice", "rectanglelabels": "label"}
# The control tags whose options a model of each kind may be named on.
_CONTROLS_OF_KIND = {
    ModelKind.NER: ("labels",),
    ModelKind.ASSERTION: ("labels",),
    ModelKind.CLASSIFICATION: ("choices",),
    ModelKind.VISUAL_NER: ("rectanglelabels", "labels"),
}


@dataclass(frozen=True, slots=True)
class Deployment:
    """A config rewritten to name a model.

    Attributes:
        labeling_config: The new config text.
        labels: The labels (or classes) that now name the model, in config order.
    """

    labeling_config: str
    labels: tuple[str, ...]


def point_labels_at_model(
    xml: str, kind: ModelKind, labels: Collection[str], model_name: str
) -> Deployment:
    """Name ``model_name`` on every label of the config the model predicts.

    NER models take the ``<Label>``s of ``<Labels>`` controls on text that are
    not assertion labels, assertion models those marked ``assertion="true"``,
    Visual NER models the ``<Label>``s of ``<RectangleLabels>`` controls and of
    ``<Labels>`` on an image (Label Studio's OCR template, beside a
    ``<Rectangle>``); a
    classifier takes the ``<Choice>``s of the ``<Choices>`` controls whose choices
    are all among its classes. A label that named another model names this one now.

    Args:
        xml: The project's labeling config.
        kind: What the model does.
        labels: The labels (or classes) it predicts, as results store them.
        model_name: The registry name of the model.

    Returns:
        The rewritten config and the labels that now name the model.

    Raises:
        InvalidRequestError: ``model`` when the model's kind cannot be deployed into a
            text config, or none of the config's labels is one the model predicts.
        LabelingConfigError: The config (before or after) does not pass the checks.
    """
    if not _MODEL_NAME.fullmatch(model_name):
        raise InvalidRequestError("model", f"{model_name!r} cannot be named in a config")
    control_tags = _CONTROLS_OF_KIND.get(kind)
    if control_tags is None:
        raise InvalidRequestError("model", f"a {kind} model cannot be deployed by this lab yet")
    # The config as it is must pass before anything changes.
    schema = parse_labeling_config(xml)
    wanted = set(labels)
    takes = _controls_taken(schema, kind, wanted)
    out: list[str] = []
    named: list[str] = []
    controls: list[tuple[str, str]] = []  # (tag, name) of the open control tags
    position = 0
    for match in _TOKEN.finditer(xml):
        tag = match.group("tag")
        if tag is None:
            continue
        low = tag.lower()
        if match.group("close"):
            if controls and controls[-1][0] == low:
                controls.pop()
            continue
        attributes = _attributes(match.group("attrs"))
        if low in _OPTION_OF and not match.group("end"):
            controls.append((low, attributes.get("name", "")))
        elif controls and low == _OPTION_OF[controls[-1][0]] and controls[-1][1] in takes:
            value = attributes.get("alias") or attributes.get("value", "")
            if value in wanted and _kind_takes(kind, attributes):
                out.append(xml[position : match.start()])
                out.append(_with_model(match, model_name))
                position = match.end()
                named.append(value)
    out.append(xml[position:])
    if not named:
        raise InvalidRequestError(
            "model",
            f"the labeling config has no {control_tags[0][:-1]} this {kind} model predicts "
            f"({', '.join(sorted(wanted)) or 'no labels'}); add them to the config, or deploy "
            "a model trained on it",
        )
    rewritten = "".join(out)
    parse_labeling_config(rewritten)
    return Deployment(rewritten, tuple(dict.fromkeys(named)))


def _kind_takes(kind: ModelKind, attributes: dict[str, str]) -> bool:
    """Whether a label of a control the kind takes is the kind's (assertion or not)."""
    if kind in (ModelKind.CLASSIFICATION, ModelKind.VISUAL_NER):
        return True
    is_assertion = attributes.get("assertion", "").strip().lower() == "true"
    return is_assertion == (kind is ModelKind.ASSERTION)


def _controls_taken(schema: ProjectSchema, kind: ModelKind, classes: set[str]) -> set[str]:
    """The names of the controls whose options a model of ``kind`` may be named on.

    A classifier: every ``Choices`` whose choices are all among its classes. The
    other kinds: the controls the training plan reads for that kind
    (:func:`implied_models`: ``Labels`` on text for NER and assertion, labelled
    rectangles on an image for Visual NER), so a model is named where its kind
    learns from.
    """
    if kind is not ModelKind.CLASSIFICATION:
        return {name for s in implied_models(schema) if s.kind is kind for name in s.from_names}
    taken: set[str] = set()
    for name, control in schema.controls.items():
        options = [o for o in control.options if not o.path]
        if (
            control.result_type == "choices"
            and options
            and all((o.alias or o.value) in classes for o in options)
        ):
            taken.add(name)
    return taken


def _attributes(text: str) -> dict[str, str]:
    return {
        m.group("name").lower(): html.unescape(m.group("quoted")[1:-1])
        for m in _ATTRIBUTE.finditer(text)
    }


def _with_model(match: re.Match[str], model_name: str) -> str:
    """The start tag with ``model`` set: its value replaced where present, else appended."""
    start, end = match.span()
    tag_text = match.string[start:end]
    attrs_start = match.start("attrs") - start
    attrs = match.group("attrs")
    for attribute in _ATTRIBUTE.finditer(attrs):
        if attribute.group("name").lower() == "model":
            quote = attribute.group("quoted")[0]
            a, b = attribute.span("quoted")
            return (
                tag_text[: attrs_start + a]
                + f"{quote}{model_name}{quote}"
                + tag_text[attrs_start + b :]
            )
    cut = match.end("attrs") - start
    return f'{tag_text[:cut]} model="{model_name}"{tag_text[cut:]}'
