"""Label Studio labeling configs: safe parsing into a typed project schema.

A labeling config is XML written by users, so it is parsed as hostile input:
no DTD, no entities, no external references (defusedxml), with bounds on size,
nesting depth and element count that are checked while parsing, before a tree
is built. Label Studio reads tag and attribute names case-insensitively
(``<header>``, ``showInLine``), and so does this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeVar

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from annotrain.domain.errors import ConfigIssue, LabelingConfigError

MAX_CONFIG_BYTES: Final = 512 * 1024
MAX_DEPTH: Final = 64
MAX_ELEMENTS: Final = 50_000

_T = TypeVar("_T")


class TagKind(StrEnum):
    """What role a tag plays in a labeling config."""

    OBJECT = "object"
    CONTROL = "control"
    LAYOUT = "layout"
    OPTION = "option"
    UNKNOWN = "unknown"


# Canonical spellings, keyed by the lower-case name Label Studio matches on.
_OBJECT_TAGS: Final = {
    t.lower(): t
    for t in (
        "Text", "HyperText", "Image", "Audio", "AudioPlus", "Video", "TimeSeries",
        "Paragraphs", "Table", "List", "Pdf", "Chat", "Markdown", "Bitmask",
    )
}  # fmt: skip
_CONTROL_TAGS: Final = {
    t.lower(): t
    for t in (
        "Labels", "Choices", "Taxonomy", "RectangleLabels", "Rectangle", "PolygonLabels",
        "Polygon", "KeyPointLabels", "KeyPoint", "EllipseLabels", "Ellipse", "BrushLabels",
        "Brush", "BitmaskLabels", "MagicWand", "TextArea", "Rating", "Number", "DateTime",
        "Pairwise", "Ranker", "HyperTextLabels", "ParagraphLabels", "TimeSeriesLabels",
        "TimelineLabels", "VideoRectangle", "VectorLabels", "Vector", "Relations",
    )
}  # fmt: skip
_LAYOUT_TAGS: Final = {
    t.lower(): t
    for t in ("View", "Header", "Style", "Collapse", "Panel", "Filter", "Shortcut", "Repeater")
}
# Children that declare what a control offers.
_OPTION_TAGS: Final = {t.lower(): t for t in ("Label", "Choice", "Relation", "Channel", "Bucket")}

# Controls whose children are the values a result may carry, and the child tag.
_OPTION_OF_CONTROL: Final = {
    "labels": "label",
    "rectanglelabels": "label",
    "polygonlabels": "label",
    "keypointlabels": "label",
    "ellipselabels": "label",
    "brushlabels": "label",
    "bitmasklabels": "label",
    "hypertextlabels": "label",
    "paragraphlabels": "label",
    "timeserieslabels": "label",
    "timelinelabels": "label",
    "vectorlabels": "label",
    "choices": "choice",
    "taxonomy": "choice",
}
# Objects that need no ``value`` (their data comes from children or elsewhere).
_OBJECTS_WITHOUT_VALUE: Final = frozenset({"bitmask"})
# Controls that may name no object: Label Studio ships templates with a <TextArea>
# or <Rating> without ``toName``, whose answers belong to the task as a whole.
# Every other control draws on, or chooses about, one object and must name it.
_CONTROLS_WITHOUT_TARGET: Final = frozenset({"textarea", "rating"})
# Controls whose answers concern the task as a whole rather than a region of it;
# Label Studio may store them with the control's own name as ``to_name``
# (``<Pairwise>``, a transcription ``<TextArea>``). Region controls may not: a
# span that names no object would escape the offset checks.
_WHOLE_TASK_CONTROLS: Final = frozenset(
    {"textarea", "rating", "number", "datetime", "pairwise", "ranker", "choices", "taxonomy"}
)


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"true", "1", "yes"}


@dataclass(frozen=True, slots=True)
class Option:
    """A ``Label`` or ``Choice`` a control offers.

    Attributes:
        value: What results store.
        alias: An alternative value results may store instead (Label Studio's ``alias``).
        assertion: True for assertion-status labels (``assertion="true"``).
        model: The model that predicts this label (``model="…"``), if named.
        path: Values of enclosing choices, for nested ``Taxonomy`` choices.
    """

    value: str
    alias: str | None = None
    assertion: bool = False
    model: str | None = None
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectTag:
    """A tag that shows task data (``Text``, ``Image``…)."""

    tag: str
    name: str
    value: str
    attrs: Mapping[str, str]
    line: int | None = None

    @property
    def data_key(self) -> str | None:
        """The task data field this object shows (``$text`` → ``text``), or None if literal."""
        if self.value.startswith("$") and len(self.value) > 1:
            return self.value[1:]
        return None

    @property
    def is_text(self) -> bool:
        """True for plain text whose characters result offsets index into."""
        return self.tag == "Text" and self.attrs.get("valuetype", "text").lower() != "url"


@dataclass(frozen=True, slots=True)
class ControlTag:
    """A tag that produces results (``Labels``, ``Choices``, ``RectangleLabels``…)."""

    tag: str
    name: str
    to_names: tuple[str, ...]
    options: tuple[Option, ...]
    attrs: Mapping[str, str]
    line: int | None = None

    @property
    def result_type(self) -> str:
        """The ``type`` of the result items this control produces."""
        return self.tag.lower()

    @property
    def dynamic_options(self) -> bool:
        """True when the options come from task data (``value="$labels"``)."""
        return self.attrs.get("value", "").startswith("$")

    @property
    def multiple(self) -> bool:
        """True for choices that allow several values (``choice="multiple"``)."""
        return self.attrs.get("choice", "single").strip().lower() == "multiple"

    @property
    def train(self) -> bool:
        """True when the config asks to train a classifier on this control."""
        return _is_true(self.attrs.get("train"))

    def allowed_values(self) -> frozenset[str]:
        """Every value a result of this control may carry (values and aliases)."""
        values = {o.value for o in self.options}
        values.update(o.alias for o in self.options if o.alias)
        return frozenset(values)


@dataclass(frozen=True, slots=True)
class OtherTag:
    """A tag kept as written: a layout tag or one annotrain does not know."""

    tag: str
    kind: TagKind
    attrs: Mapping[str, str]
    line: int | None = None


@dataclass(frozen=True, slots=True)
class ProjectSchema:
    """What a labeling config declares, by name.

    Attributes:
        objects: Object tags by name.
        controls: Control tags by name.
        relation_labels: Values of ``Relation`` options under ``Relations``.
        other_tags: Layout and unknown tags, in document order.
        warnings: What is worth telling the user but does not stop the config
            from working (unknown tags, a duplicate choice…).
        xml: The config as given.
    """

    objects: Mapping[str, ObjectTag]
    controls: Mapping[str, ControlTag]
    relation_labels: tuple[str, ...] = ()
    other_tags: tuple[OtherTag, ...] = ()
    warnings: tuple[ConfigIssue, ...] = ()
    xml: str = field(default="", repr=False)

    @property
    def unknown_tags(self) -> tuple[OtherTag, ...]:
        """Tags annotrain does not know; kept, reported, never fatal."""
        return tuple(t for t in self.other_tags if t.kind is TagKind.UNKNOWN)

    def control(self, name: str) -> ControlTag | None:
        """The control a result's ``from_name`` names, ``<Repeater>`` copies included
        (``choice_{{idx}}`` answers to ``choice_0``, ``choice_1``…)."""
        return self.controls.get(name) or _by_template(self.controls, name)

    def object(self, name: str) -> ObjectTag | None:
        """The object a result's ``to_name`` names, ``<Repeater>`` copies included."""
        return self.objects.get(name) or _by_template(self.objects, name)

    def image_label_controls(self) -> dict[str, str | None]:
        """``<Labels>`` controls on an image, each with that image's ``<Rectangle>`` (or None).

        Label Studio's OCR template labels regions this way, not with
        ``<RectangleLabels>``: a region is a ``rectangle`` item of the
        ``<Rectangle>`` and a ``labels`` item with the same id and geometry.
        """
        found: dict[str, str | None] = {}
        for control in self.controls.values():
            if control.result_type != "labels" or not control.to_names:
                continue
            targets = [self.objects.get(name) for name in control.to_names]
            if not all(t is not None and t.tag == "Image" for t in targets):
                continue
            found[control.name] = next(
                (
                    other.name
                    for other in self.controls.values()
                    if other.result_type == "rectangle" and control.to_names[0] in other.to_names
                ),
                None,
            )
        return found

    def region_text_controls(self) -> dict[str, str]:
        """Per-region ``<TextArea>`` controls by the image they transcribe regions of.

        ``{"image": "transcription"}`` for ``<TextArea name="transcription"
        toName="image" perRegion="true"/>``: Label Studio shows such a text area
        for each region drawn on the image, its answer a ``textarea`` item sharing
        the region's id. The first such control of an image wins.
        """
        found: dict[str, str] = {}
        for control in self.controls.values():
            if control.result_type != "textarea" or not _is_true(control.attrs.get("perregion")):
                continue
            for to_name in control.to_names:
                target = self.objects.get(to_name)
                if target is not None and target.tag == "Image":
                    found.setdefault(to_name, control.name)
        return found

    def accepts_target(self, control: ControlTag, to_name: str) -> bool:
        """Whether a result of ``control`` may annotate ``to_name``.

        Label Studio stores answers about the task as a whole (a ``<Pairwise>``, a
        ``<TextArea>`` with no ``toName``) with the control's own name, or any
        object's, as ``to_name``. Region controls (``<Labels>``, ``<Rectangle>``…)
        must name one of their objects.
        """
        if any(t == to_name or _template_matches(t, to_name) for t in control.to_names):
            return True
        if control.result_type not in _WHOLE_TASK_CONTROLS:
            return False
        return to_name == control.name or (not control.to_names and to_name in self.objects)


_TEMPLATE_FLAG = re.compile(r"\{\{\s*\w+\s*\}\}")


def _template_matches(template: str, name: str) -> bool:
    if "{{" not in template:
        return False
    parts = [re.escape(p) for p in _TEMPLATE_FLAG.split(template)]
    return re.fullmatch(r"\d+".join(parts), name) is not None


def _by_template(tags: Mapping[str, _T], name: str) -> _T | None:
    return next((tag for key, tag in tags.items() if _template_matches(key, name)), None)


# --- parsing -------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[_Node] = field(default_factory=list)


class _LimitExceededError(Exception):
    def __init__(self, issue: ConfigIssue) -> None:
        self.issue = issue


class _BoundedTreeBuilder:
    """An ElementTree parser target that builds `_Node`s and enforces the bounds as it goes."""

    def __init__(self) -> None:
        self.parser: DefusedXMLParser | None = None
        self.root: _Node | None = None
        self._stack: list[_Node] = []
        self._count = 0

    def _line(self) -> int:
        assert self.parser is not None
        line: int = self.parser.parser.CurrentLineNumber
        return line

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self._count += 1
        if self._count > MAX_ELEMENTS:
            raise _LimitExceededError(
                ConfigIssue(tag, None, f"the config has more than {MAX_ELEMENTS} tags",
                            "split the project or use fewer options", self._line())
            )  # fmt: skip
        if len(self._stack) >= MAX_DEPTH:
            raise _LimitExceededError(
                ConfigIssue(tag, None, f"tags are nested more than {MAX_DEPTH} deep",
                            "flatten the nested <View> tags", self._line())
            )  # fmt: skip
        node = _Node(tag, {k.lower(): v for k, v in attrs.items()}, self._line())
        if self._stack:
            self._stack[-1].children.append(node)
        else:
            self.root = node
        self._stack.append(node)

    def end(self, tag: str) -> None:
        self._stack.pop()

    def data(self, data: str) -> None:
        """Text between tags is layout (CSS in ``<Style>``, words in ``<Header>``): not kept."""

    def close(self) -> _Node | None:
        return self.root


def _parse_xml(xml: str | bytes) -> _Node:
    raw = xml.encode("utf-8") if isinstance(xml, str) else xml
    if len(raw) > MAX_CONFIG_BYTES:
        raise LabelingConfigError(
            [ConfigIssue("View", None, f"the config is {len(raw)} bytes, over the "
                         f"{MAX_CONFIG_BYTES} byte limit", "shorten the config")]
        )  # fmt: skip
    builder = _BoundedTreeBuilder()
    parser = DefusedXMLParser(
        target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    builder.parser = parser
    try:
        # Text is fed as text: expat then ignores an ``encoding="…"`` declaration
        # that no longer describes it (the bytes it was decoded from are gone).
        parser.feed(xml)
        parser.close()
    except DefusedXmlException as exc:
        raise LabelingConfigError(
            [ConfigIssue("!DOCTYPE", None, "DTDs, entities and external references are "
                         f"refused ({type(exc).__name__})",
                         "remove the <!DOCTYPE …> and <!ENTITY …> declarations")]
        ) from None  # fmt: skip
    except _LimitExceededError as exc:
        raise LabelingConfigError([exc.issue]) from None
    except ParseError as exc:
        line = exc.position[0] if exc.position else None
        detail = exc.msg if hasattr(exc, "msg") else exc
        raise LabelingConfigError(
            [ConfigIssue("View", None, f"not well-formed XML ({detail})",
                         "fix the XML syntax (one root <View>, every tag closed, "
                         "& written as &amp;)", line)]
        ) from None  # fmt: skip
    root = builder.root
    if root is None:
        raise LabelingConfigError(
            [ConfigIssue("View", None, "the config is empty", "give a <View> with tags")]
        )
    return root


def parse_labeling_config(xml: str | bytes) -> ProjectSchema:
    """Parse and validate a Label Studio labeling config.

    Args:
        xml: The config, as text or UTF-8 bytes.

    Returns:
        The project schema the config declares.

    Raises:
        LabelingConfigError: With every problem found, each naming the tag,
            attribute and fix.
    """
    root = _parse_xml(xml)
    builder = _SchemaBuilder()
    if root.tag.lower() != "view":
        builder.issues.append(
            ConfigIssue(root.tag, None, "the root tag must be <View>",
                        "wrap the config in <View>…</View>", root.line)
        )  # fmt: skip
    builder.walk(root)
    builder.check_targets()
    schema = ProjectSchema(
        objects=builder.objects,
        controls=builder.controls,
        relation_labels=tuple(builder.relation_labels),
        other_tags=tuple(builder.other),
        warnings=tuple(builder.warnings),
        xml=xml if isinstance(xml, str) else xml.decode("utf-8", errors="replace"),
    )
    issues = [*builder.issues, *_check_assertion_models(schema)]
    if issues:
        raise LabelingConfigError(issues)
    return schema


class _SchemaBuilder:
    """Walks the parsed tree once, collecting tags by name and every problem on the way."""

    def __init__(self) -> None:
        self.objects: dict[str, ObjectTag] = {}
        self.controls: dict[str, ControlTag] = {}
        self.relation_labels: list[str] = []
        self.other: list[OtherTag] = []
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self._names_seen: dict[str, int] = {}

    def walk(self, node: _Node, *, parent_is_object: bool = False) -> None:
        low = node.tag.lower()
        if low in _OBJECT_TAGS:
            self._read_object(node, _OBJECT_TAGS[low])
        elif low in _CONTROL_TAGS:
            self._read_control(node, _CONTROL_TAGS[low])
            return
        elif low in _LAYOUT_TAGS:
            self.other.append(OtherTag(_LAYOUT_TAGS[low], TagKind.LAYOUT, node.attrs, node.line))
        elif low in _OPTION_TAGS:
            # <Channel> in <TimeSeries> is how series are declared; a <Label> out
            # here offers nothing to any control.
            self.other.append(OtherTag(_OPTION_TAGS[low], TagKind.OPTION, node.attrs, node.line))
            if not parent_is_object:
                self.warnings.append(
                    ConfigIssue(node.tag, None, "an option outside any control is ignored",
                                f"move <{node.tag}> inside the control it belongs to", node.line)
                )  # fmt: skip
            return
        else:
            self.other.append(OtherTag(node.tag, TagKind.UNKNOWN, node.attrs, node.line))
            self.warnings.append(
                ConfigIssue(node.tag, None, "unknown tag, kept as written and ignored",
                            "check the spelling if this tag should produce results", node.line)
            )  # fmt: skip
            # What an unknown tag holds belongs to it: kept, not read.
            return
        for child in node.children:
            self.walk(child, parent_is_object=low in _OBJECT_TAGS)

    def _claim_name(self, node: _Node, tag: str) -> str | None:
        name = node.attrs.get("name", "").strip()
        if not name:
            self.issues.append(
                ConfigIssue(tag, "name", "the tag has no name",
                            f'add name="…" to <{tag}>, unique in the config', node.line)
            )  # fmt: skip
            return None
        if name in self._names_seen:
            self.issues.append(
                ConfigIssue(tag, "name", f"the name {name!r} is already used on line "
                            f"{self._names_seen[name]}", "give every tag a unique name",
                            node.line, name)
            )  # fmt: skip
            return None
        self._names_seen[name] = node.line
        return name

    def _read_object(self, node: _Node, tag: str) -> None:
        name = self._claim_name(node, tag)
        # <Image valueList="$pages"> shows a list of images instead of one.
        value = node.attrs.get("value") or node.attrs.get("valuelist", "")
        if not value and tag.lower() not in _OBJECTS_WITHOUT_VALUE:
            self.issues.append(
                ConfigIssue(tag, "value", "the object shows no data",
                            'add value="$field" naming the task data field', node.line, name)
            )  # fmt: skip
        if name is not None:
            self.objects[name] = ObjectTag(tag, name, value, node.attrs, node.line)

    def _read_control(self, node: _Node, tag: str) -> None:
        low = tag.lower()
        if low == "relations":
            self.relation_labels.extend(
                child.attrs["value"]
                for child in node.children
                if child.tag.lower() == "relation" and child.attrs.get("value")
            )
            return
        name = self._claim_name(node, tag)
        to_names = tuple(t.strip() for t in node.attrs.get("toname", "").split(",") if t.strip())
        if not to_names:
            missing = ConfigIssue(tag, "toName", "the control does not say which object it "
                                  "annotates", 'add toName="…" naming an object tag such as <Text>',
                                  node.line, name)  # fmt: skip
            (self.warnings if low in _CONTROLS_WITHOUT_TARGET else self.issues).append(missing)
        options: list[Option] = []
        option_tag = _OPTION_OF_CONTROL.get(low)
        if option_tag is not None:
            self._collect_options(node, tag, option_tag, (), options, name)
            self._check_options(node, tag, option_tag, options, name)
            # A repeated option is kept once, where it first appears, so the options
            # (and the labels a model predicts) stay in config order.
            unique: dict[tuple[str, ...], Option] = {}
            for option in options:
                unique.setdefault((*option.path, option.value), option)
            options = list(unique.values())
        if name is not None:
            self.controls[name] = ControlTag(tag, name, to_names, tuple(options), node.attrs,
                                             node.line)  # fmt: skip

    def _collect_options(
        self,
        node: _Node,
        tag: str,
        option_tag: str,
        path: tuple[str, ...],
        out: list[Option],
        control_name: str | None,
    ) -> None:
        for child in node.children:
            low = child.tag.lower()
            if low == option_tag:
                value = child.attrs.get("value", "")
                if not value:
                    self.issues.append(
                        ConfigIssue(child.tag, "value",
                                    f"an option of <{tag} name={control_name!r}> has no value",
                                    f'add value="…" to <{child.tag}>', child.line)
                    )  # fmt: skip
                    continue
                model = child.attrs.get("model", "").strip() or None
                out.append(
                    Option(value, child.attrs.get("alias") or None,
                           _is_true(child.attrs.get("assertion")), model, path)
                )  # fmt: skip
                # Taxonomy nests choices; a nested choice is known by its path.
                self._collect_options(child, tag, option_tag, (*path, value), out, control_name)
            elif low in _CONTROL_TAGS or low in _OBJECT_TAGS:
                # Label Studio accepts a control or object placed among another
                # control's options: it is a tag of its own, not an option.
                self.walk(child)
            elif low not in _OPTION_TAGS:
                # Label Studio allows <View>, <Header>… between options, for layout.
                self._collect_options(child, tag, option_tag, path, out, control_name)

    def _check_options(
        self, node: _Node, tag: str, option_tag: str, options: list[Option], name: str | None
    ) -> None:
        option_title = _OPTION_TAGS[option_tag]
        seen: set[tuple[str, ...]] = set()
        for option in options:
            key = (*option.path, option.value)
            if key in seen:
                duplicate = ConfigIssue(tag, "value", f"the value {option.value!r} is declared "
                                        "twice", f"remove the duplicate <{option_title}>",
                                        node.line, name)  # fmt: skip
                # Two labels with one value make spans ambiguous; a repeated choice
                # (Label Studio ships one) is the same answer twice, kept once.
                (self.warnings if option_tag == "choice" else self.issues).append(duplicate)
            seen.add(key)
        if not options and not node.attrs.get("value", "").startswith("$"):
            self.issues.append(
                ConfigIssue(tag, None, f"the control offers no <{option_title}>",
                            f'add <{option_title} value="…"/> children, or value="$field" '
                            "for options taken from the task", node.line, name)
            )  # fmt: skip

    def check_targets(self) -> None:
        for control in self.controls.values():
            for target in control.to_names:
                if target in self.objects:
                    continue
                what = "another control" if target in self.controls else "no tag"
                self.issues.append(
                    ConfigIssue(control.tag, "toName", f"toName={target!r} names {what}",
                                "point toName at the name of an object tag: "
                                + (", ".join(sorted(self.objects)) or "add one, such as <Text>"),
                                control.line, control.name)
                )  # fmt: skip


def _check_assertion_models(schema: ProjectSchema) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    ner_models: set[str] = set()
    assertion_models: dict[str, ControlTag] = {}
    for control in schema.controls.values():
        for option in control.options:
            if option.model is None:
                continue
            if option.assertion:
                assertion_models.setdefault(option.model, control)
            else:
                ner_models.add(option.model)
    for model, control in assertion_models.items():
        if model in ner_models:
            issues.append(
                ConfigIssue(control.tag, "model", f"assertion labels name {model!r}, which other "
                            "labels of this config use as a NER model",
                            'name an assertion model on labels with assertion="true"',
                            control.line, control.name)
            )  # fmt: skip
    if len(assertion_models) > 1:
        first = next(iter(assertion_models.values()))
        issues.append(
            ConfigIssue(first.tag, "model", "assertion labels name more than one model: "
                        + ", ".join(sorted(assertion_models)),
                        "use one assertion model per project", first.line, first.name)
        )  # fmt: skip
    return issues
