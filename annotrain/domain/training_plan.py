"""Which models a labeling config implies, and with which labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from annotrain.domain.config import ControlTag, ProjectSchema
from annotrain.domain.errors import InvalidRequestError

# Object tags whose text a text model can read.
_TEXT_OBJECTS = frozenset({"Text", "HyperText", "Paragraphs"})
# Controls that draw regions on an image for Visual NER to label.
_IMAGE_REGION_CONTROLS = frozenset({"Rectangle", "RectangleLabels"})


class ModelKind(StrEnum):
    """The kinds of model the lab trains."""

    NER = "ner"
    ASSERTION = "assertion"
    CLASSIFICATION = "classification"
    VISUAL_NER = "visual_ner"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model a project can train.

    Attributes:
        kind: What the model does.
        name: Stable name within the project: the kind for NER, assertion and
            Visual NER, the ``Choices`` name for a classifier.
        labels: The labels (or classes) it predicts, in config order.
        from_names: Controls whose results it learns from.
        to_names: Objects those results annotate.
        multi_label: For classifiers, True when several classes may apply.
        pretrained: Models named on labels (``model="…"``), with the labels each provides.
    """

    kind: ModelKind
    name: str
    labels: tuple[str, ...]
    from_names: tuple[str, ...]
    to_names: tuple[str, ...]
    multi_label: bool = False
    pretrained: tuple[tuple[str, tuple[str, ...]], ...] = ()


def implied_models(
    schema: ProjectSchema, classifiers: Sequence[str] | None = None
) -> tuple[ModelSpec, ...]:
    """List the models a project's labeling config implies.

    NER and assertion status come from ``Labels`` on text (assertion labels are
    those marked ``assertion="true"``), a classifier from each chosen ``Choices``
    on text, Visual NER from labelled rectangles on an image.

    Args:
        schema: The parsed labeling config.
        classifiers: ``Choices`` names to train. By default, as in the seed
            product, one classifier: those marked ``train="true"``, else the
            first name in alphabetical order.

    Returns:
        The models, in the order NER, assertion, classification, Visual NER.

    Raises:
        InvalidRequestError: When a name in ``classifiers`` is not a ``Choices``
            on text.
    """
    text_controls = [c for c in schema.controls.values() if _targets(schema, c, _TEXT_OBJECTS)]
    specs: list[ModelSpec] = []
    labels_on_text = [c for c in text_controls if c.tag == "Labels"]
    for kind, assertion in ((ModelKind.NER, False), (ModelKind.ASSERTION, True)):
        spec = _span_model(kind, labels_on_text, assertion=assertion)
        if spec is not None:
            specs.append(spec)

    choices = {c.name: c for c in text_controls if c.tag == "Choices"}
    for name in _chosen_classifiers(choices, classifiers):
        control = choices[name]
        specs.append(
            ModelSpec(ModelKind.CLASSIFICATION, name, _values(control), (name,),
                      control.to_names, multi_label=control.multiple)
        )  # fmt: skip

    visual = _visual_ner(schema)
    if visual is not None:
        specs.append(visual)
    return tuple(specs)


def _targets(schema: ProjectSchema, control: ControlTag, kinds: frozenset[str]) -> bool:
    return any(schema.objects[t].tag in kinds for t in control.to_names if t in schema.objects)


def _values(control: ControlTag) -> tuple[str, ...]:
    # Results store the alias when a label has one, so that is what a model learns.
    return tuple(o.alias or o.value for o in control.options if not o.path)


def _span_model(
    kind: ModelKind, controls: Sequence[ControlTag], *, assertion: bool
) -> ModelSpec | None:
    labels: dict[str, None] = {}
    from_names: dict[str, None] = {}
    to_names: dict[str, None] = {}
    pretrained: dict[str, list[str]] = {}
    for control in controls:
        for option in control.options:
            if option.assertion != assertion:
                continue
            value = option.alias or option.value
            labels[value] = None
            from_names[control.name] = None
            to_names.update(dict.fromkeys(control.to_names))
            if option.model:
                pretrained.setdefault(option.model, []).append(value)
    if not labels:
        return None
    return ModelSpec(
        kind, kind.value, tuple(labels), tuple(from_names), tuple(to_names),
        pretrained=tuple((m, tuple(v)) for m, v in pretrained.items()),
    )  # fmt: skip


def _chosen_classifiers(
    choices: dict[str, ControlTag], requested: Sequence[str] | None
) -> list[str]:
    if requested is not None:
        unknown = [name for name in requested if name not in choices]
        if unknown:
            raise InvalidRequestError(
                "classifiers",
                f"{', '.join(map(repr, unknown))} is not a <Choices> on text; "
                f"choose from: {', '.join(sorted(choices)) or 'none in this config'}",
            )
        return list(dict.fromkeys(requested))
    marked = sorted(name for name, control in choices.items() if control.train)
    if marked:
        return marked
    return sorted(choices)[:1]


def _visual_ner(schema: ProjectSchema) -> ModelSpec | None:
    """Rectangles with labels on an image: ``RectangleLabels``, or ``Labels`` beside a
    ``Rectangle`` on the same image (Label Studio's OCR template)."""
    images = {name for name, obj in schema.objects.items() if obj.tag == "Image"}
    boxed = {
        t for c in schema.controls.values() if c.tag in _IMAGE_REGION_CONTROLS
        for t in c.to_names if t in images
    }  # fmt: skip
    controls = [
        c for c in schema.controls.values()
        if (c.tag == "RectangleLabels" and set(c.to_names) & images)
        or (c.tag == "Labels" and set(c.to_names) & boxed)
    ]  # fmt: skip
    labels = tuple(dict.fromkeys(v for c in controls for v in _values(c)))
    if not labels:
        return None
    to_names = tuple(dict.fromkeys(t for c in controls for t in c.to_names if t in images))
    return ModelSpec(
        ModelKind.VISUAL_NER, ModelKind.VISUAL_NER.value, labels,
        tuple(c.name for c in controls), to_names,
    )  # fmt: skip
