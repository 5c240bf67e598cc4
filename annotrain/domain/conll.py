"""NER spans as tokens and BIO tags, and CoNLL-2003 files of them.

Offsets are Python string indices, as everywhere in annotrain. A token is a run
of word characters or one other character that is not whitespace, so every
character that is not whitespace belongs to exactly one token and no token holds
whitespace: a tab or newline in a text never ends up inside a token or a CoNLL
column. Span edges split the token they fall inside ("HER2" in "HER2neu"), so a
span always covers whole tokens and its BIO tags give it back exactly, trimmed of
the whitespace at its edges.

In a CoNLL file each line of a task's text is a sentence, and each exported
completion a document::

    -DOCSTART- -X- -X- O

    Mother -X- _ O
    had -X- _ O
    breast -X- _ B-Family history
    cancer -X- _ I-Family history
    . -X- _ O

"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, NamedTuple, TextIO, TypeAlias

from annotrain.domain.config import ProjectSchema
from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.tasks import Completion, JsonId, ResultItem, Task
from annotrain.domain.training_plan import ModelKind, implied_models

Span: TypeAlias = tuple[int, int, str]
"""A labelled stretch of text: ``(start, end, label)``, ``text[start:end]`` being labelled."""

# \s is exactly str.isspace(), which trimming uses: both agree on what whitespace is.
_TOKEN: Final = re.compile(r"\w+|[^\w\s]")
_OUTSIDE_LINE: Final = " -X- _ O\n"
_DOCSTART: Final = "-DOCSTART- -X- -X- O\n\n"
_DOCSTART_WORD: Final = "-DOCSTART-"
# ASCII characters that are word characters (\w) or whitespace (\s): the others are
# tokens of their own.
_ASCII_WORD_OR_SPACE: Final = bytes(
    c for c in range(128) if chr(c).isalnum() or chr(c) == "_" or chr(c).isspace()
)
_SET_APART: Final = {chr(c): f" {chr(c)} " for c in range(128)}
# How many documents write_conll joins into one write.
_DOCUMENTS_PER_WRITE: Final = 256


@dataclass(frozen=True, slots=True)
class Token:
    """A token and where it sits in the text it was cut from.

    Attributes:
        text: The token: ``text[start:end]`` of its text, never holding whitespace.
        start: Offset of its first character.
        end: Offset just past its last character.
    """

    text: str
    start: int
    end: int


class DropReason(StrEnum):
    """Why a span could not be tagged."""

    OUT_OF_RANGE = "out_of_range"
    """Its offsets are not whole numbers within the text."""
    EMPTY = "empty"
    """It covers nothing but whitespace, or nothing at all."""
    OVERLAP = "overlap"
    """It overlaps a span that was kept: BIO tags give a token one label only."""


@dataclass(frozen=True, slots=True)
class DroppedSpan:
    """A span left out of the tags, and why.

    Attributes:
        start: Its start, as given (in an export, whatever the region held).
        end: Its end, as given.
        label: Its label.
        reason: Why it was left out.
        overlapped: For an overlap, the span kept in its place (trimmed).
    """

    start: int
    end: int
    label: str
    reason: DropReason
    overlapped: Span | None = None


class BioTagging(NamedTuple):
    """A text's tokens with a BIO tag each, and the spans that could not be tagged.

    Attributes:
        tokens: The tokens, in text order.
        tags: ``O``, ``B-label`` or ``I-label`` for each token.
        dropped: Spans left out: empty, out of range, or overlapping a kept one.
    """

    tokens: list[Token]
    tags: list[str]
    dropped: list[DroppedSpan]


class ConllSentence(NamedTuple):
    """One sentence read from a CoNLL file: its tokens and their tags."""

    tokens: list[str]
    tags: list[str]


ConllDocument: TypeAlias = list[ConllSentence]


@dataclass(frozen=True, slots=True)
class DroppedRegion:
    """A region of a completion that a CoNLL export left out.

    Attributes:
        task_id: The task's id.
        completion_id: The completion's id.
        result_id: The region's id.
        span: The span and why it was left out.
    """

    task_id: JsonId | None
    completion_id: JsonId | None
    result_id: str | None
    span: DroppedSpan


@dataclass(slots=True)
class ConllExportReport:
    """What a CoNLL export wrote and what it left out; filled in as it goes.

    Attributes:
        documents: Documents written, one per exported completion.
        skipped_tasks: Ids of tasks left out because they hold no text for the NER
            model (the field is missing or not a string), one per completion.
        dropped: Regions left out of the documents that were written.
    """

    documents: int = 0
    skipped_tasks: list[JsonId | None] = field(default_factory=list)
    dropped: list[DroppedRegion] = field(default_factory=list)


# --- tokens and tags -----------------------------------------------------------


def tokenize(text: str, boundaries: Iterable[int] = ()) -> list[Token]:
    """Cut a text into tokens that know their offsets.

    Args:
        text: The text.
        boundaries: Offsets that must fall between tokens, such as span starts
            and ends: a token with one strictly inside it is split there.

    Returns:
        The tokens, in text order: runs of word characters and single other
        characters, whitespace never included.
    """
    # One pass of the regular expression; boundaries only cost a bisect each, and
    # only the tokens they fall inside are cut again.
    bounds = [m.span() for m in _TOKEN.finditer(text)]
    cuts = _cuts_inside(bounds, boundaries)
    if not cuts:
        return [Token(text[start:end], start, end) for start, end in bounds]
    tokens: list[Token] = []
    for index, (start, end) in enumerate(bounds):
        for cut in cuts.get(index, ()):
            tokens.append(Token(text[start:cut], start, cut))
            start = cut
        tokens.append(Token(text[start:end], start, end))
    return tokens


def _cuts_inside(
    bounds: Sequence[tuple[int, int]], boundaries: Iterable[int]
) -> dict[int, list[int]]:
    """The boundaries that fall strictly inside a token, by token index, in order."""
    cuts: dict[int, list[int]] = {}
    starts: list[int] | None = None
    for boundary in sorted(set(boundaries)):
        if starts is None:
            starts = [start for start, _ in bounds]
        index = bisect_right(starts, boundary) - 1
        if index >= 0 and starts[index] < boundary < bounds[index][1]:
            cuts.setdefault(index, []).append(boundary)
    return cuts


def spans_to_bio(text: str, spans: Iterable[Span]) -> BioTagging:
    """Tag a text's tokens with BIO tags from labelled character spans.

    Whitespace at a span's edges is not part of it (``" fever "`` labels the token
    ``fever``). A span that starts or ends inside a token splits that token, so
    no label spills onto a neighbour. Tokens hold one tag each, so of spans that
    overlap, the one that starts first, then the longest, then the one given
    first is kept and the others are reported as dropped.

    Args:
        text: The text.
        spans: ``(start, end, label)`` triples, in any order; labels are kept as
            written, spaces included.

    Returns:
        The tokens, their tags, and the spans that could not be tagged.
    """
    kept, dropped = _representable_spans(text, spans)
    tokens = tokenize(text, [offset for start, end, _ in kept for offset in (start, end)])
    tags = ["O"] * len(tokens)
    starts = [token.start for token in tokens]
    for start, end, label in kept:
        # A kept span starts on a character that is not whitespace, and its start
        # is a boundary, so some token starts exactly there.
        index = bisect_right(starts, start) - 1
        tags[index] = "B-" + label
        index += 1
        while index < len(tokens) and tokens[index].end <= end:
            tags[index] = "I-" + label
            index += 1
    return BioTagging(tokens, tags, dropped)


def _representable_spans(text: str, spans: Iterable[Span]) -> tuple[list[Span], list[DroppedSpan]]:
    """Trimmed spans that BIO tags can hold, in text order, and the others."""
    length = len(text)
    dropped: list[DroppedSpan] = []
    candidates: list[tuple[int, int, int, str, int, int]] = []
    for order, (start, end, label) in enumerate(spans):
        if not 0 <= start <= end <= length:
            dropped.append(DroppedSpan(start, end, label, DropReason.OUT_OF_RANGE))
            continue
        trimmed_start, trimmed_end = _trim(text, start, end)
        if trimmed_start == trimmed_end:
            dropped.append(DroppedSpan(start, end, label, DropReason.EMPTY))
            continue
        candidates.append((trimmed_start, -trimmed_end, order, label, start, end))
    candidates.sort()
    kept: list[Span] = []
    reach = 0
    for start, negated_end, _, label, given_start, given_end in candidates:
        if start < reach:
            dropped.append(DroppedSpan(given_start, given_end, label, DropReason.OVERLAP, kept[-1]))
            continue
        kept.append((start, -negated_end, label))
        reach = -negated_end
    return kept, dropped


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def bio_to_spans(tokens: Sequence[Token], tags: Sequence[str]) -> list[Span]:
    """Read labelled character spans back from BIO tags.

    Lenient like seqeval's default mode: an ``I-X`` that does not continue an
    ``X`` entity starts a new one.

    Args:
        tokens: The tokens, in text order.
        tags: ``O``, ``B-label`` or ``I-label`` for each token.

    Returns:
        ``(start, end, label)`` for each entity, in text order, from the start of
        its first token to the end of its last.

    Raises:
        ValueError: When the lengths differ or a tag is none of the three forms.
    """
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags: give one tag per token")
    spans: list[Span] = []
    label: str | None = None
    start = end = 0
    for index, (token, tag) in enumerate(zip(tokens, tags, strict=True)):
        prefix = tag[:2]
        if tag == "O":
            tag_label = None
        elif prefix in ("B-", "I-"):
            tag_label = tag[2:]
        else:
            raise ValueError(f"tag {index} is {tag!r}: expected 'O', 'B-label' or 'I-label'")
        if prefix == "I-" and tag_label == label:
            end = token.end
            continue
        if label is not None:
            spans.append((start, end, label))
        label, start, end = tag_label, token.start, token.end
    if label is not None:
        spans.append((start, end, label))
    return spans


# --- CoNLL-2003 out --------------------------------------------------------------


# A result label's entry: the label as exported, and the tails of its B- and I- lines.
_LabelLines: TypeAlias = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class _ConllPlan:
    """What an export reads, worked out once from the schema.

    Attributes:
        texts: ``(object name, data key)`` of each plain-text object the NER model
            reads, in config order.
        labels_by_control: For each NER control, its NER labels as results store
            them (value or alias), each with how it is written.
    """

    texts: tuple[tuple[str, str], ...]
    labels_by_control: Mapping[str | None, Mapping[str, _LabelLines]]


def _conll_plan(schema: ProjectSchema) -> _ConllPlan:
    ner = next((m for m in implied_models(schema) if m.kind is ModelKind.NER), None)
    if ner is None:
        raise InvalidRequestError(
            "format", "CoNLL holds NER spans, and the labeling config has no <Labels> on text"
        )
    labels_by_control: dict[str | None, dict[str, _LabelLines]] = {}
    for name in ner.from_names:
        lines: dict[str, _LabelLines] = {}
        for option in schema.controls[name].options:
            if option.assertion:
                continue  # assertion status is another model's, not an entity
            # The model learns the alias when there is one (see implied_models);
            # a line break would end the CoNLL line, so it becomes a space.
            label = " ".join((option.alias or option.value).splitlines())
            entry = (label, f" -X- _ B-{label}\n", f" -X- _ I-{label}\n")
            lines.setdefault(option.value, entry)
            if option.alias:
                lines.setdefault(option.alias, entry)
        labels_by_control[name] = lines
    texts = tuple(
        (name, obj.data_key)
        for name in ner.to_names
        if (obj := schema.objects.get(name)) is not None
        and obj.is_text
        and obj.data_key is not None
        and obj.data_key.isidentifier()
    )
    if not texts:
        raise InvalidRequestError(
            "format", 'CoNLL needs plain text: the NER labels annotate no <Text value="$field">'
        )
    return _ConllPlan(texts, labels_by_control)


def to_conll(
    pairs: Iterable[tuple[Task, Completion]],
    schema: ProjectSchema,
    *,
    report: ConllExportReport | None = None,
) -> Iterator[str]:
    """Write completions' NER spans as CoNLL-2003, one document at a time.

    Each completion is a document (``-DOCSTART-``), each line of its task's text a
    sentence, each token a line ``TOKEN -X- _ TAG``. Only the NER model's labels
    go in: ``Labels`` on text, assertion labels left out. A region with several
    labels gives its first NER label. Regions that BIO cannot hold (empty,
    out of range, overlapping one kept) are left out and reported, as are tasks
    without the text; see `spans_to_bio` for which of overlapping spans is kept.
    A span running across a line break is one entity per sentence.

    Args:
        pairs: Each task with the completion to export for it; read lazily.
        schema: The project's labeling config.
        report: Filled in with what was written and left out, as documents are
            yielded.

    Returns:
        The documents, each a string of whole lines.

    Raises:
        InvalidRequestError: At once, when the config has no NER labels on text.
    """
    plan = _conll_plan(schema)
    return _conll_documents(pairs, plan, ConllExportReport() if report is None else report)


def write_conll(
    pairs: Iterable[tuple[Task, Completion]], schema: ProjectSchema, out: TextIO
) -> ConllExportReport:
    """Write completions' NER spans to ``out`` as CoNLL-2003 (see `to_conll`).

    Args:
        pairs: Each task with the completion to export for it; read lazily.
        schema: The project's labeling config.
        out: Where the file goes, written in batches of documents.

    Returns:
        What was written and what was left out.
    """
    report = ConllExportReport()
    batch: list[str] = []
    for document in to_conll(pairs, schema, report=report):
        batch.append(document)
        if len(batch) == _DOCUMENTS_PER_WRITE:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))
    return report


def _conll_documents(
    pairs: Iterable[tuple[Task, Completion]], plan: _ConllPlan, report: ConllExportReport
) -> Iterator[str]:
    # The hot path of an export: a million completions should take seconds, so
    # no token objects, and rare cases (overlaps, line breaks) kept off it.
    texts = plan.texts
    labels_by_control = plan.labels_by_control
    for task, completion in pairs:
        pieces = [_DOCSTART]
        has_text = False
        for object_name, key in texts:
            text = task.data.get(key)
            if not isinstance(text, str):
                continue
            has_text = True
            spans = _region_spans(text, object_name, task, completion, labels_by_control, report)
            if len(spans) > 1:
                spans.sort()
                if _overlapping(spans):
                    spans = _without_overlaps(spans, task, completion, report)
            punctuation = _ascii_punctuation(text)
            if "\n" in text:
                _append_sentences(text, spans, punctuation, pieces)
            else:
                _append_sentence(text, 0, len(text), spans, 0, punctuation, pieces)
        if has_text:
            report.documents += 1
            yield "".join(pieces)
        else:
            report.skipped_tasks.append(task.id)


# (trimmed start, -trimmed end, order, lines, region): tuples sort by start, then
# longest, then given order, and never compare further.
_RegionSpan: TypeAlias = tuple[int, int, int, _LabelLines, ResultItem]


def _region_spans(
    text: str,
    object_name: str,
    task: Task,
    completion: Completion,
    labels_by_control: Mapping[str | None, Mapping[str, _LabelLines]],
    report: ConllExportReport,
) -> list[_RegionSpan]:
    """The NER regions of a completion on one text, trimmed; empty ones reported."""
    spans: list[_RegionSpan] = []
    length = len(text)
    for order, item in enumerate(completion.result):
        if item.type != "labels" or item.to_name != object_name:
            continue
        lines_of = labels_by_control.get(item.from_name)
        if lines_of is None:
            continue
        value = item.value
        given = value.get("labels")
        if not isinstance(given, list) or not given:
            continue
        lines = lines_of.get(given[0]) if isinstance(given[0], str) else None
        if lines is None:
            # Not a NER label first (an assertion one, say): the first NER label, if any.
            lines = next((lines_of[v] for v in given if isinstance(v, str) and v in lines_of), None)
            if lines is None:
                continue
        start: Any = value.get("start")
        end: Any = value.get("end")
        # type() rather than isinstance: True is not an offset.
        if (
            type(start) is int
            and type(end) is int
            and 0 <= start < end <= length
            and not text[start].isspace()
            and not text[end - 1].isspace()
        ):
            spans.append((start, -end, order, lines, item))
            continue
        trimmed = _trimmed_region(text, start, end)
        if isinstance(trimmed, DropReason):
            dropped = DroppedSpan(start, end, lines[0], trimmed)
            report.dropped.append(DroppedRegion(task.id, completion.id, item.id, dropped))
        else:
            spans.append((trimmed[0], -trimmed[1], order, lines, item))
    return spans


def _trimmed_region(text: str, start: Any, end: Any) -> tuple[int, int] | DropReason:
    if type(start) is not int or type(end) is not int or not 0 <= start <= end <= len(text):
        return DropReason.OUT_OF_RANGE
    start, end = _trim(text, start, end)
    return DropReason.EMPTY if start == end else (start, end)


def _overlapping(spans: Sequence[_RegionSpan]) -> bool:
    """Whether any of these spans, sorted, overlap."""
    reach = 0
    for span in spans:
        if span[0] < reach:
            return True
        reach = -span[1]
    return False


def _without_overlaps(
    spans: list[_RegionSpan], task: Task, completion: Completion, report: ConllExportReport
) -> list[_RegionSpan]:
    kept: list[_RegionSpan] = []
    reach = 0
    for span in spans:
        if span[0] < reach:
            winner = kept[-1]
            value = span[4].value
            dropped = DroppedSpan(value["start"], value["end"], span[3][0], DropReason.OVERLAP,
                                  (winner[0], -winner[1], winner[3][0]))  # fmt: skip
            report.dropped.append(DroppedRegion(task.id, completion.id, span[4].id, dropped))
            continue
        kept.append(span)
        reach = -span[1]
    return kept


def _append_sentences(
    text: str,
    spans: Sequence[_RegionSpan],
    punctuation: Collection[str] | None,
    pieces: list[str],
) -> None:
    """Append the CoNLL lines of one text to ``pieces``, a sentence per line of text.

    ``spans`` are sorted and do not overlap; ``punctuation`` is as `_words` takes it.
    """
    length = len(text)
    line_start = next_span = 0
    while True:
        line_end = text.find("\n", line_start)
        if line_end < 0:
            line_end = length
        next_span = _append_sentence(
            text, line_start, line_end, spans, next_span, punctuation, pieces
        )
        if line_end == length:
            return
        line_start = line_end + 1


def _append_sentence(
    text: str,
    line_start: int,
    line_end: int,
    spans: Sequence[_RegionSpan],
    next_span: int,
    punctuation: Collection[str] | None,
    pieces: list[str],
) -> int:
    """Append the CoNLL lines of ``text[line_start:line_end]`` and a blank line after
    them, unless it holds no token.

    Tokens are cut between span edges, so a span edge inside a token splits it, as
    `tokenize` does, with no token object per token.

    Returns:
        The index of the first span that does not end on this line.
    """
    sentence_start = len(pieces)
    position = line_start
    count = len(spans)
    while next_span < count:
        start, negated_end, _, (_, b_line, i_line), _ = spans[next_span]
        if start >= line_end:
            break
        # A span that began on an earlier line goes on here as a new entity.
        if start < position:
            start = position
        end = -negated_end
        if start > position and (outside := _words(text[position:start], punctuation)):
            pieces.append(_OUTSIDE_LINE.join(outside))
            pieces.append(_OUTSIDE_LINE)
        inside_end = end if end < line_end else line_end
        if inside := _words(text[start:inside_end], punctuation):
            pieces.append(inside[0])
            pieces.append(b_line)
            if len(inside) > 1:
                pieces.append(i_line.join(inside[1:]))
                pieces.append(i_line)
        position = inside_end
        if end > line_end:
            break
        next_span += 1
    if position < line_end and (outside := _words(text[position:line_end], punctuation)):
        pieces.append(_OUTSIDE_LINE.join(outside))
        pieces.append(_OUTSIDE_LINE)
    if len(pieces) > sentence_start:
        pieces.append("\n")
    return next_span


def _ascii_punctuation(text: str) -> set[str] | None:
    """The characters of an ASCII text that are neither word characters nor whitespace,
    or None for a text beyond ASCII."""
    if not text.isascii():
        return None
    return set(text.encode("ascii").translate(None, _ASCII_WORD_OR_SPACE).decode("ascii"))


def _words(segment: str, punctuation: Collection[str] | None) -> list[str]:
    """The tokens of a piece of text, as `tokenize` cuts them but without offsets.

    The regular expression costs about 0.2 µs a token, several times what
    splitting on whitespace costs, so it is kept for what splitting cannot do.

    Args:
        segment: The text.
        punctuation: For ASCII text, the characters that are neither word
            characters nor whitespace (`_ascii_punctuation`); None otherwise.
    """
    if punctuation is not None:
        # Each of these is a token of its own: set apart by spaces, splitting on
        # whitespace cuts every token out, and the runs of word characters between.
        for mark in punctuation:
            if mark in segment:
                segment = segment.replace(mark, _SET_APART[mark])
        return segment.split()
    chunks = segment.split()
    # str.isalnum() is what \w matches, "_" aside, and a single character is a token.
    if not chunks or "".join(chunks).isalnum():
        return chunks
    tokens: list[str] = []
    for chunk in chunks:
        if len(chunk) == 1 or chunk.isalnum():
            tokens.append(chunk)
        else:
            tokens += _TOKEN.findall(chunk)
    return tokens


# --- CoNLL-2003 in ---------------------------------------------------------------


def read_conll(lines: Iterable[str]) -> list[ConllDocument]:
    """Read a CoNLL-2003 file: documents of sentences of tokens and tags.

    The token is what comes before the first space and the tag is everything
    after the third, so tags keep the spaces of labels such as ``Family history``.
    Sentences before any ``-DOCSTART-`` make a document of their own.

    Args:
        lines: The file's lines, with or without their line ends, or chunks of
            whole lines such as `to_conll` yields.

    Returns:
        The documents, in file order.

    Raises:
        ValueError: When a line that is not blank has fewer than four columns.
    """
    documents: list[ConllDocument] = []
    document: ConllDocument | None = None
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(_split_lines(lines), start=1):
        if not line or line.isspace():
            if tokens:
                assert document is not None
                document.append(ConllSentence(tokens, tags))
                tokens, tags = [], []
            continue
        token, _, rest = line.partition(" ")
        if token == _DOCSTART_WORD:
            if tokens:
                assert document is not None
                document.append(ConllSentence(tokens, tags))
                tokens, tags = [], []
            document = []
            documents.append(document)
            continue
        columns = rest.split(" ", 2)
        if len(columns) < 3:
            raise ValueError(f"line {number} is {line!r}: expected 'TOKEN POS CHUNK TAG'")
        if document is None:
            document = []
            documents.append(document)
        tokens.append(token)
        tags.append(columns[2])
    if tokens:
        assert document is not None
        document.append(ConllSentence(tokens, tags))
    return documents


def _split_lines(chunks: Iterable[str]) -> Iterator[str]:
    for chunk in chunks:
        lines = chunk.split("\n")
        if len(lines) > 1 and not lines[-1]:
            lines.pop()  # what follows the chunk's last line end
        for line in lines:
            yield line[:-1] if line.endswith("\r") else line
