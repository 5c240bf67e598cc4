"""Properties of tokens, BIO tags and CoNLL files, over texts with every kind of whitespace."""

from __future__ import annotations

from itertools import pairwise
from xml.sax.saxutils import quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.conll import (
    ConllSentence,
    DropReason,
    Span,
    bio_to_spans,
    read_conll,
    spans_to_bio,
    to_conll,
    tokenize,
)
from annotrain.domain.tasks import Completion, ResultItem, Task

_LABELS = ("Disease", "Family history", "Gene\tsymbol", "B-cell")
_SCHEMA = parse_labeling_config(
    '<View><Labels name="label" toName="text">'
    + "".join(f"<Label value={quoteattr(label)}/>" for label in _LABELS)
    + '</Labels><Text name="text" value="$text"/></View>'
)
_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x85\u00a0\u2003\u2028\u3000"
# Words (``_`` and digits are word characters, a combining accent is not),
# punctuation, and any character at all.
_WORDS = ("fever", "HER2neu", "a_b", "19", "café", "e\u0301", "ßЖ", "中文", "😀", "\u200d")
_PUNCTUATION = ".,;:()[]-/+%°'\""
# Texts are built from pieces: an alphabet of every character would hide the line
# breaks and words that the interesting cases need among a million code points.
_texts = st.lists(
    st.one_of(
        st.sampled_from(_WORDS),
        st.sampled_from(" \n"),
        st.sampled_from(_WHITESPACE),
        st.sampled_from(_PUNCTUATION),
        st.characters(),
    ),
    max_size=30,
).map("".join)
_fast = settings(max_examples=200, deadline=None)


@st.composite
def _text_and_spans(draw: st.DrawFn) -> tuple[str, list[Span]]:
    """A text, often of several lines, and spans that do not overlap, some empty or
    all whitespace."""
    text = draw(st.one_of(_texts, st.lists(_texts, min_size=2, max_size=4).map("\n".join)))
    edges = sorted(draw(st.lists(st.integers(0, len(text)), max_size=6)))
    labels = draw(st.lists(st.sampled_from(_LABELS), min_size=len(edges), max_size=len(edges)))
    spans = [(edges[i], edges[i + 1], labels[i]) for i in range(0, len(edges) - 1, 2)]
    return text, draw(st.permutations(spans))


def _trimmed(text: str, span: Span) -> Span:
    start, end, label = span
    stripped = text[start:end].strip()
    if not stripped:
        return (start, start, label)
    start += text[start:end].index(stripped)
    return (start, start + len(stripped), label)


@_fast
@given(_texts, st.lists(st.integers(-2, 70), max_size=6))
def test_tokens_are_the_text_they_cover_and_hold_no_whitespace(
    text: str, boundaries: list[int]
) -> None:
    tokens = tokenize(text, boundaries)

    assert all(text[t.start : t.end] == t.text for t in tokens)
    assert not any(char.isspace() for t in tokens for char in t.text)
    assert all(a.end <= b.start for a, b in pairwise(tokens))
    # Every character but whitespace is in exactly one token.
    assert "".join(t.text for t in tokens) == "".join(text.split())


@_fast
@given(_texts, st.lists(st.integers(0, 60), max_size=6))
def test_no_boundary_falls_inside_a_token(text: str, boundaries: list[int]) -> None:
    tokens = tokenize(text, boundaries)

    assert not any(t.start < b < t.end for t in tokens for b in boundaries)


@_fast
@given(_text_and_spans())
def test_bio_tags_give_back_the_spans_trimmed_of_whitespace(
    text_and_spans: tuple[str, list[Span]],
) -> None:
    text, spans = text_and_spans
    trimmed = [_trimmed(text, span) for span in spans]

    tokens, tags, dropped = spans_to_bio(text, spans)

    assert bio_to_spans(tokens, tags) == sorted(s for s in trimmed if s[0] < s[1])
    assert sorted((d.start, d.end, d.label) for d in dropped) == sorted(
        span for span, trim in zip(spans, trimmed, strict=True) if trim[0] == trim[1]
    )
    assert all(d.reason is DropReason.EMPTY for d in dropped)


@_fast
@given(_texts, st.lists(st.tuples(st.integers(-2, 62), st.integers(-2, 62)), max_size=6))
def test_any_spans_are_tagged_or_reported_and_kept_ones_do_not_overlap(
    text: str, offsets: list[tuple[int, int]]
) -> None:
    spans = [(start, end, "Disease") for start, end in offsets]

    tokens, tags, dropped = spans_to_bio(text, spans)

    kept = bio_to_spans(tokens, tags)
    assert len(kept) + len(dropped) == len(spans)  # adjacent kept spans never merge
    assert all(a[1] <= b[0] for a, b in pairwise(kept))


@_fast
@given(_text_and_spans())
def test_conll_read_back_gives_the_tokens_and_tags_sentence_by_sentence(
    text_and_spans: tuple[str, list[Span]],
) -> None:
    text, spans = text_and_spans
    regions = tuple(
        ResultItem(f"r{n}", "labels", "label", "text", {"start": s, "end": e, "labels": [label]})
        for n, (s, e, label) in enumerate(spans)
    )

    documents = read_conll(to_conll([(Task(1, {"text": text}), Completion(1, regions))], _SCHEMA))

    assert documents == [_expected_sentences(text, spans)]


def _expected_sentences(text: str, spans: list[Span]) -> list[ConllSentence]:
    """What spans_to_bio says, cut into sentences at line breaks, each starting an
    entity afresh."""
    tokens, tags, _ = spans_to_bio(text, spans)
    sentences: list[ConllSentence] = []
    previous_end: int | None = None
    for token, tag in zip(tokens, tags, strict=True):
        if previous_end is None or "\n" in text[previous_end : token.start]:
            sentences.append(ConllSentence([], []))
            if tag.startswith("I-"):
                tag = "B-" + tag[2:]
        sentences[-1].tokens.append(token.text)
        sentences[-1].tags.append(tag)
        previous_end = token.end
    return sentences
