"""From snapshot examples to model inputs: NER windows, assertion mentions, classifier texts.

Two steps, kept apart so that prediction reuses the second one:

1. *Extraction* reads Label Studio result items (``labels`` spans with
   ``value.start/end/labels``, ``choices`` with ``value.choices``) into plain
   records: a document's words and BIO tags, an entity mention and its
   assertion label, a text and its classes.
2. *Encoding* turns records into :class:`Feature` rows of token ids and labels
   for a fast tokenizer.

The ``-100`` policy (``IGNORE``): a NER label sits on the *first* sub-word of
each word; special tokens, padding and the continuation sub-words of a word get
``-100`` so that the loss counts each word once, and a word's prediction is read
back from the same first sub-word. Labelling continuations too would weigh long
words (``adenomatous`` → 4 pieces) more than short ones and make the decoder
reconcile disagreeing pieces.

Long NER documents are never cut: they are read in overlapping windows of at
most ``max_length`` tokens that start on word boundaries; each word's prediction
comes from the window where it sits most centrally, so every word is predicted
with at least half the overlap of context on both sides, and an entity that
straddles one window's edge lies inside the next one. In training, an entity
cut by a window edge has its labels set to ``-100`` in that window (it is whole
in the neighbouring one), so no window teaches an ``I-`` without its ``B-``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.conll import Token, spans_to_bio, tokenize
from annotrain.domain.snapshot import Example
from annotrain.domain.training_plan import ModelSpec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE = -100
"""The label the loss skips: special tokens, padding, sub-word continuations, cut entities."""

#: LayoutLM's boxes for the special tokens: ``[CLS]`` at the origin, ``[SEP]`` at the far corner.
BOX_BEFORE = (0, 0, 0, 0)
BOX_AFTER = (1000, 1000, 1000, 1000)
ENTITY_START = "[E]"
ENTITY_END = "[/E]"
"""Markers put around the entity an assertion model classifies; added to the tokenizer."""


# --- where the text is and which control a label belongs to ---------------------------


@dataclass(frozen=True, slots=True)
class TextTarget:
    """Where a model reads its text and where its results go.

    Attributes:
        to_name: The text object the model reads (the spec's first one).
        data_key: The task data field that object shows (``$text`` → ``text``).
        control_of: For each label, the control (``from_name``) that offers it.
    """

    to_name: str
    data_key: str
    control_of: Mapping[str, str] = field(default_factory=dict)

    def control(self, label: str, default: str) -> str:
        """The control that offers ``label``, or ``default`` when the config did not say."""
        return self.control_of.get(label, default)

    def to_json(self) -> dict[str, Any]:
        """As stored in an artifact's ``annotrain.json``."""
        return {
            "to_name": self.to_name,
            "data_key": self.data_key,
            "control_of": dict(self.control_of),
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> TextTarget:
        """Read what :meth:`to_json` wrote."""
        return cls(str(value["to_name"]), str(value["data_key"]), dict(value["control_of"]))


def text_target(spec: ModelSpec, label_config: str) -> TextTarget:
    """Where ``spec``'s model reads text, from the labeling config (``text`` when it has none)."""
    to_name = spec.to_names[0] if spec.to_names else "text"
    data_key = "text"
    control_of: dict[str, str] = {}
    if label_config.strip():
        schema = parse_labeling_config(label_config)
        obj = schema.objects.get(to_name)
        if obj is not None and obj.data_key:
            data_key = obj.data_key
        for name in spec.from_names:
            control = schema.controls.get(name)
            if control is None:
                continue
            for option in control.options:
                for value in (option.value, option.alias):
                    if value:
                        control_of.setdefault(value, name)
    else:
        control_of = dict.fromkeys(spec.labels, spec.from_names[0] if spec.from_names else "label")
    return TextTarget(to_name, data_key, control_of)


def text_of(data: Mapping[str, Any], target: TextTarget) -> str | None:
    """The task's text for ``target``, or None when the field is missing or not text."""
    value = data.get(target.data_key)
    return value if isinstance(value, str) else None


# --- extraction ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NerDocument:
    """A text cut into words, with a BIO tag per word (empty tags when predicting)."""

    task_id: str
    text: str
    words: list[Token]
    tags: list[str]


@dataclass(frozen=True, slots=True)
class Mention:
    """An entity mention in its text, with its assertion label (None when predicting)."""

    task_id: str
    text: str
    start: int
    end: int
    label: str | None


@dataclass(frozen=True, slots=True)
class LabelledText:
    """A text and the classes chosen for it (empty when predicting)."""

    task_id: str
    text: str
    labels: tuple[str, ...]


def _span_labels(
    example: Example, target: TextTarget, from_names: Iterable[str]
) -> dict[tuple[int, int], list[str]]:
    """Labels by span, of the ``labels`` items of the chosen controls on the target text.

    Items on the same span are merged: Label Studio may store an entity and its
    assertion status as one item or as two on the same offsets.
    """
    controls = set(from_names)
    spans: dict[tuple[int, int], list[str]] = {}
    for item in example.result:
        if item.get("type") != "labels" or item.get("to_name") != target.to_name:
            continue
        if controls and item.get("from_name") not in controls:
            continue
        value = item.get("value") or {}
        start, end, labels = value.get("start"), value.get("end"), value.get("labels")
        if type(start) is not int or type(end) is not int or not isinstance(labels, list):
            continue
        spans.setdefault((start, end), []).extend(v for v in labels if isinstance(v, str))
    return spans


def ner_documents(
    examples: Sequence[Example], spec: ModelSpec, target: TextTarget
) -> list[NerDocument]:
    """Each example's words and BIO tags for the labels of ``spec`` (others ignored)."""
    wanted = set(spec.labels)
    documents = []
    for example in examples:
        text = text_of(example.data, target)
        if text is None:
            continue
        spans = []
        for (start, end), labels in _span_labels(example, target, spec.from_names).items():
            label = next((v for v in labels if v in wanted), None)
            if label is not None:
                spans.append((start, end, label))
        tagging = spans_to_bio(text, spans)
        documents.append(NerDocument(example.task_id, text, tagging.tokens, tagging.tags))
    return documents


def words_of(task_id: str, text: str) -> NerDocument:
    """A text to predict on, cut into words as training cut them."""
    return NerDocument(task_id, text, tokenize(text), [])


def assertion_mentions(
    examples: Sequence[Example], spec: ModelSpec, target: TextTarget
) -> list[Mention]:
    """Every span that carries one of ``spec``'s assertion labels, with that label."""
    wanted = spec.labels
    mentions = []
    for example in examples:
        text = text_of(example.data, target)
        if text is None:
            continue
        for (start, end), labels in sorted(_span_labels(example, target, ()).items()):
            label = next((v for v in labels if v in wanted), None)
            if label is not None and 0 <= start < end <= len(text):
                mentions.append(Mention(example.task_id, text, start, end, label))
    return mentions


def classification_texts(
    examples: Sequence[Example], spec: ModelSpec, target: TextTarget
) -> list[LabelledText]:
    """Each example that has a choice of ``spec``'s control, with the classes chosen.

    Examples without one are left out: Label Studio stores nothing when an
    annotator chose nothing, so they are not known to be negative.
    """
    controls = set(spec.from_names) or {spec.name}
    wanted = set(spec.labels)
    texts = []
    for example in examples:
        text = text_of(example.data, target)
        if text is None:
            continue
        chosen: list[str] = []
        found = False
        for item in example.result:
            if item.get("type") != "choices" or item.get("from_name") not in controls:
                continue
            found = True
            values = (item.get("value") or {}).get("choices") or []
            chosen += [v for v in values if isinstance(v, str) and v in wanted and v not in chosen]
        if found and chosen:
            if not spec.multi_label:
                chosen = chosen[:1]
            texts.append(LabelledText(example.task_id, text, tuple(chosen)))
    return texts


def ner_label_counts(documents: Iterable[NerDocument], labels: Iterable[str]) -> dict[str, int]:
    """Entity mentions per label."""
    counts = dict.fromkeys(labels, 0)
    for document in documents:
        for tag in document.tags:
            if tag.startswith("B-") and tag[2:] in counts:
                counts[tag[2:]] += 1
    return counts


def class_counts(labels: Iterable[Iterable[str]], classes: Iterable[str]) -> dict[str, int]:
    """Examples per class (a multi-label example counts for each of its classes)."""
    counts = dict.fromkeys(classes, 0)
    counts.update(
        (k, v + counts[k])
        for k, v in Counter(c for cs in labels for c in cs).items()
        if k in counts
    )
    return counts


def bio_tags(labels: Sequence[str]) -> list[str]:
    """The tag set of a NER model: ``O``, then ``B-`` and ``I-`` of each label."""
    return ["O"] + [f"{prefix}-{label}" for label in labels for prefix in ("B", "I")]


# --- encoding --------------------------------------------------------------------------


@dataclass(slots=True)
class Feature:
    """One model input row.

    Attributes:
        input_ids: Token ids, special tokens included.
        labels: Per token (NER, ``IGNORE`` where not learned), a class id
            (single label) or a multi-hot vector (multi-label); None when predicting.
        source: Index of the document, mention or text it comes from.
        bbox: For a layout model, each token's box on the 0-1000 grid
            ``(x0, y0, x1, y1)`` (its word's box; zeros before the text, 1000s after);
            None for a text model.
    """

    input_ids: list[int]
    labels: list[int] | int | list[float] | None
    source: int
    bbox: list[tuple[int, int, int, int]] | None = None


@dataclass(frozen=True, slots=True)
class SpecialTokens:
    """What a tokenizer puts around a single sequence (``[CLS] … [SEP]``)."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> SpecialTokens:
        """Read them off the tokenizer by encoding a word with and without them."""
        bare = tokenizer("a", add_special_tokens=False)["input_ids"]
        full = tokenizer("a")["input_ids"]
        for at in range(len(full) - len(bare) + 1):
            if full[at : at + len(bare)] == bare:
                return cls(tuple(full[:at]), tuple(full[at + len(bare) :]))
        raise ValueError("cannot find the special tokens this tokenizer adds")

    def wrap(self, ids: Sequence[int]) -> list[int]:
        """``ids`` with the special tokens around them."""
        return [*self.prefix, *ids, *self.suffix]

    @property
    def count(self) -> int:
        """How many special tokens a sequence gets."""
        return len(self.prefix) + len(self.suffix)


@dataclass(slots=True)
class EncodedDocument:
    """Where each word of a NER document is read from.

    Attributes:
        word_position: Per word, ``(feature index, token position)`` of its first
            sub-word in the window where it is most central; None for a word the
            tokenizer turned into nothing (a control character).
    """

    word_position: list[tuple[int, int] | None]


def default_overlap(max_length: int) -> int:
    """Tokens two neighbouring windows share: a quarter of a window."""
    return max(1, (max_length - 2) // 4)


def windows(word_ids: Sequence[int], body: int, overlap: int) -> list[tuple[int, int]]:
    """Sub-word ranges ``[start, end)`` of at most ``body`` tokens covering a document.

    Windows start on a word's first sub-word and, where they can, end on one, and
    neighbours share about ``overlap`` tokens.
    """
    count = len(word_ids)
    if count <= body:
        return [(0, count)]
    ranges = []
    start = 0
    while True:
        end = min(start + body, count)
        if end < count:
            # End before the word cut by the limit, unless that word fills the window.
            cut = end
            while cut > start + 1 and word_ids[cut] == word_ids[cut - 1]:
                cut -= 1
            end = cut if cut > start + 1 else end
        ranges.append((start, end))
        if end >= count:
            return ranges
        following = max(end - overlap, start + 1)
        while following < end and word_ids[following] == word_ids[following - 1]:
            following += 1
        start = following


def encode_ner(
    documents: Sequence[NerDocument],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int,
    overlap: int,
    tag_ids: Mapping[str, int] | None,
    boxes: Sequence[Sequence[tuple[int, int, int, int]]] | None = None,
) -> tuple[list[Feature], list[EncodedDocument]]:
    """Windows of token ids (and labels, when ``tag_ids`` is given) for NER documents.

    Args:
        boxes: For a layout model, per document one 0-1000 box per word; every
            sub-word of a word gets its word's box (:attr:`Feature.bbox`).

    Returns:
        The features, and per document where each word's prediction is read.
    """
    specials = SpecialTokens.of(tokenizer)
    body = max_length - specials.count
    if body < 2:
        raise ValueError(f"max_length {max_length} leaves no room for text")
    features: list[Feature] = []
    encoded: list[EncodedDocument] = []
    with_words = [i for i, d in enumerate(documents) if d.words]
    batch = (
        tokenizer(
            [[w.text for w in documents[i].words] for i in with_words],
            is_split_into_words=True,
            add_special_tokens=False,
        )
        if with_words
        else None
    )
    row_of = {doc: row for row, doc in enumerate(with_words)}
    for index, document in enumerate(documents):
        row = row_of.get(index)
        if row is None or batch is None:
            encoded.append(EncodedDocument([None] * len(document.words)))
            continue
        ids: list[int] = batch["input_ids"][row]
        word_ids: list[int] = batch.word_ids(row)  # no specials, so no None
        first = [-1] * len(document.words)
        for position, word in enumerate(word_ids):
            if position == 0 or word_ids[position - 1] != word:
                first[word] = position
        spans = windows(word_ids, body, overlap)
        positions: list[tuple[int, int] | None] = [None] * len(document.words)
        centrality = [-1] * len(document.words)
        offset = len(specials.prefix)
        for start, end in spans:
            feature_index = len(features)
            labels: list[int] | None = None
            if tag_ids is not None:
                labels = [IGNORE] * (end - start + specials.count)
            for word, sub in enumerate(first):
                if not start <= sub < end:
                    continue
                central = min(sub - start, end - 1 - sub)
                if central > centrality[word]:
                    centrality[word] = central
                    positions[word] = (feature_index, offset + sub - start)
                if labels is not None and tag_ids is not None:
                    labels[offset + sub - start] = tag_ids[document.tags[word]]
            if labels is not None:
                _ignore_cut_entities(labels, document.tags, word_ids, first, start, end, offset)
            bbox = None
            if boxes is not None:
                page = boxes[index]
                bbox = [
                    *[BOX_BEFORE] * len(specials.prefix),
                    *(page[word] for word in word_ids[start:end]),
                    *[BOX_AFTER] * len(specials.suffix),
                ]
            features.append(Feature(specials.wrap(ids[start:end]), labels, index, bbox))
        encoded.append(EncodedDocument(positions))
    return features, encoded


def _ignore_cut_entities(
    labels: list[int],
    tags: Sequence[str],
    word_ids: Sequence[int],
    first: Sequence[int],
    start: int,
    end: int,
    offset: int,
) -> None:
    """Set ``IGNORE`` on the words of an entity that a window edge cuts."""
    count = len(word_ids)
    if start > 0 and tags[word_ids[start]].startswith("I-"):
        word = word_ids[start]
        while word < len(tags) and tags[word].startswith("I-") and first[word] < end:
            if first[word] >= start:
                labels[offset + first[word] - start] = IGNORE
            word += 1
    if end < count:
        # The first word that starts at or after the edge: an I- there continues an
        # entity the window holds only the beginning of.
        following = word_ids[end] if first[word_ids[end]] == end else word_ids[end] + 1
        if following < len(tags) and tags[following].startswith("I-"):
            word = following - 1
            while word >= 0 and first[word] >= start:
                labels[offset + first[word] - start] = IGNORE
                if tags[word].startswith("B-"):
                    break
                word -= 1


def encode_mentions(
    mentions: Sequence[Mention],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int,
    label_ids: Mapping[str, int] | None,
) -> list[Feature]:
    """The mention between ``[E]`` and ``[/E]`` with as much context as fits, centred on it."""
    specials = SpecialTokens.of(tokenizer)
    body = max_length - specials.count
    if not mentions:
        return []
    marker_start = int(tokenizer.convert_tokens_to_ids(ENTITY_START))  # type: ignore[arg-type]
    marker_end = int(tokenizer.convert_tokens_to_ids(ENTITY_END))  # type: ignore[arg-type]
    pieces = tokenizer(
        [m.text[: m.start] for m in mentions]
        + [m.text[m.start : m.end] for m in mentions]
        + [m.text[m.end :] for m in mentions],
        add_special_tokens=False,
    )["input_ids"]
    count = len(mentions)
    features = []
    for index, mention in enumerate(mentions):
        left, inside, right = pieces[index], pieces[count + index], pieces[2 * count + index]
        inside = inside[: max(0, body - 2)]
        room = body - len(inside) - 2
        keep_left = min(len(left), max(room // 2, room - len(right)))
        keep_right = min(len(right), room - keep_left)
        ids = [
            *(left[len(left) - keep_left :] if keep_left else []),
            marker_start,
            *inside,
            marker_end,
            *right[:keep_right],
        ]
        label = None
        if label_ids is not None and mention.label is not None:
            label = label_ids[mention.label]
        features.append(Feature(specials.wrap(ids), label, index))
    return features


def encode_texts(
    texts: Sequence[LabelledText],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int,
    label_ids: Mapping[str, int] | None,
    multi_label: bool,
) -> tuple[list[Feature], int]:
    """Token ids of each text, read up to ``max_length`` tokens.

    Returns:
        The features, and how many texts were longer than ``max_length`` (the
        caller says so in the log: a classifier reads a text's beginning).
    """
    if not texts:
        return [], 0
    batch = tokenizer([t.text for t in texts], truncation=False)["input_ids"]
    features = []
    truncated = 0
    specials = SpecialTokens.of(tokenizer)
    for index, (text, ids) in enumerate(zip(texts, batch, strict=True)):
        if len(ids) > max_length:
            truncated += 1
            ids = [*ids[: max_length - len(specials.suffix)], *specials.suffix]
        labels: list[int] | int | list[float] | None = None
        if label_ids is not None:
            if multi_label:
                hot = [0.0] * len(label_ids)
                for label in text.labels:
                    hot[label_ids[label]] = 1.0
                labels = hot
            else:
                labels = label_ids[text.labels[0]]
        features.append(Feature(list(ids), labels, index))
    return features, truncated
