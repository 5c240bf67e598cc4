"""Spans, tokens and BIO tags, and CoNLL-2003 files of them."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from annotrain.domain.config import ProjectSchema, parse_labeling_config
from annotrain.domain.conll import (
    ConllExportReport,
    ConllSentence,
    DroppedSpan,
    DropReason,
    Span,
    bio_to_spans,
    read_conll,
    spans_to_bio,
    to_conll,
    tokenize,
    write_conll,
)
from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.tasks import Completion, ResultItem, Task

_CONFIG = """
<View>
  <Labels name="label" toName="text">
    <Label value="Disease"/>
    <Label value="Gene"/>
    <Label value="Family history"/>
    <Label value="Drug" alias="DRUG"/>
    <Label value="Negated" assertion="true"/>
  </Labels>
  <Choices name="urgency" toName="text">
    <Choice value="Urgent"/>
  </Choices>
  <Text name="text" value="$text"/>
</View>
"""


@pytest.fixture(scope="module")
def schema() -> ProjectSchema:
    return parse_labeling_config(_CONFIG)


def _region(start: int, end: int, *labels: str, region_id: str = "r") -> ResultItem:
    return ResultItem(
        region_id, "labels", "label", "text", {"start": start, "end": end, "labels": list(labels)}
    )


def _pair(text: Any, *regions: ResultItem, task_id: int = 1) -> tuple[Task, Completion]:
    return Task(task_id, {"text": text}), Completion(task_id * 10, regions)


def _export(schema: ProjectSchema, text: str, *regions: ResultItem) -> str:
    return "".join(to_conll([_pair(text, *regions)], schema))


def _read_one(conll: str) -> list[ConllSentence]:
    [document] = read_conll(conll.splitlines())
    return document


def _tagged(text: str, spans: Sequence[Span]) -> list[tuple[str, str]]:
    tokens, tags, _ = spans_to_bio(text, spans)
    return [(token.text, tag) for token, tag in zip(tokens, tags, strict=True)]


# --- tokens ----------------------------------------------------------------------


def test_tokens_are_word_runs_and_single_punctuation_with_their_offsets() -> None:
    text = "Fever, (cough) 38.5°C"

    tokens = tokenize(text)

    assert [t.text for t in tokens] == ["Fever", ",", "(", "cough", ")", "38", ".", "5", "°", "C"]
    assert all(text[t.start : t.end] == t.text for t in tokens)


def test_whitespace_of_every_kind_separates_tokens_and_is_never_in_one() -> None:
    text = "a\tb\nc\u00a0d\u2003e\r\nf\u3000g\x0bh\u2028i"

    assert [t.text for t in tokenize(text)] == list("abcdefghi")


def test_a_boundary_inside_a_token_splits_it() -> None:
    tokens = tokenize("HER2neu positive", boundaries=[4, 7])

    assert [(t.text, t.start, t.end) for t in tokens] == [
        ("HER2", 0, 4),
        ("neu", 4, 7),
        ("positive", 8, 16),
    ]


def test_boundaries_at_token_edges_or_in_whitespace_change_nothing() -> None:
    text = "breast  cancer."

    assert tokenize(text, boundaries=[0, 6, 7, 8, 14, 15]) == tokenize(text)


# --- spans to BIO and back -------------------------------------------------------


def test_whitespace_around_a_span_is_not_labelled() -> None:
    text = "Has  fever\t today"

    tagging = spans_to_bio(text, [(4, 12, "Disease")])

    assert _tagged(text, [(4, 12, "Disease")]) == [
        ("Has", "O"),
        ("fever", "B-Disease"),
        ("today", "O"),
    ]
    assert bio_to_spans(tagging.tokens, tagging.tags) == [(5, 10, "Disease")]
    assert tagging.dropped == []


def test_a_span_covering_part_of_a_token_keeps_its_label_and_shifts_none() -> None:
    text = "HER2neu positive"
    spans = [(0, 4, "Gene"), (4, 7, "Family history")]

    assert _tagged(text, spans) == [
        ("HER2", "B-Gene"),
        ("neu", "B-Family history"),
        ("positive", "O"),
    ]
    assert bio_to_spans(*spans_to_bio(text, spans)[:2]) == spans


def test_punctuation_next_to_a_span_stays_outside_it() -> None:
    text = "Denies fever, (cough)."

    assert _tagged(text, [(7, 12, "Disease"), (15, 20, "Disease")]) == [
        ("Denies", "O"),
        ("fever", "B-Disease"),
        (",", "O"),
        ("(", "O"),
        ("cough", "B-Disease"),
        (")", "O"),
        (".", "O"),
    ]


def test_punctuation_inside_a_span_is_part_of_the_entity() -> None:
    text = "Denies (cough)."

    assert _tagged(text, [(7, 14, "Disease")])[1:] == [
        ("(", "B-Disease"),
        ("cough", "I-Disease"),
        (")", "I-Disease"),
        (".", "O"),
    ]


def test_a_span_next_to_tabs_and_newlines_covers_only_its_words() -> None:
    text = "fever\tcough\nnausea"
    spans = [(5, 12, "Disease")]

    assert _tagged(text, spans) == [("fever", "O"), ("cough", "B-Disease"), ("nausea", "O")]
    assert bio_to_spans(*spans_to_bio(text, spans)[:2]) == [(6, 11, "Disease")]


def test_labels_are_kept_as_written_spaces_included() -> None:
    text = "Mother had breast cancer"

    assert _tagged(text, [(11, 24, "Family history")])[2:] == [
        ("breast", "B-Family history"),
        ("cancer", "I-Family history"),
    ]


def test_offsets_in_unicode_text_are_python_string_indices() -> None:
    text = "Café 😀 naïve: fièvre"
    start = text.index("fièvre")
    spans = [(start, start + 6, "Disease"), (0, 4, "Gene")]

    assert _tagged(text, spans) == [
        ("Café", "B-Gene"),
        ("😀", "O"),
        ("naïve", "O"),
        (":", "O"),
        ("fièvre", "B-Disease"),
    ]
    assert bio_to_spans(*spans_to_bio(text, spans)[:2]) == sorted(spans)


def test_adjacent_spans_of_one_label_stay_two_entities() -> None:
    text = "breast cancer"
    spans = [(0, 6, "Disease"), (7, 13, "Disease")]

    assert _tagged(text, spans) == [("breast", "B-Disease"), ("cancer", "B-Disease")]
    assert bio_to_spans(*spans_to_bio(text, spans)[:2]) == spans


def test_of_overlapping_spans_the_earliest_then_the_longest_is_kept() -> None:
    text = "breast cancer screening"
    spans = [(7, 13, "Gene"), (0, 6, "Drug"), (0, 13, "Disease"), (7, 23, "Drug")]

    tokens, tags, dropped = spans_to_bio(text, spans)

    assert bio_to_spans(tokens, tags) == [(0, 13, "Disease")]
    assert dropped == [
        DroppedSpan(0, 6, "Drug", DropReason.OVERLAP, (0, 13, "Disease")),
        DroppedSpan(7, 23, "Drug", DropReason.OVERLAP, (0, 13, "Disease")),
        DroppedSpan(7, 13, "Gene", DropReason.OVERLAP, (0, 13, "Disease")),
    ]


def test_of_identical_spans_the_first_given_is_kept() -> None:
    tokens, tags, dropped = spans_to_bio("fever", [(0, 5, "Gene"), (0, 5, "Disease")])

    assert bio_to_spans(tokens, tags) == [(0, 5, "Gene")]
    assert [d.label for d in dropped] == ["Disease"]


def test_spans_overlapping_only_in_whitespace_are_both_kept() -> None:
    text = "fever  cough"

    assert bio_to_spans(*spans_to_bio(text, [(0, 7, "A"), (5, 12, "B")])[:2]) == [
        (0, 5, "A"),
        (7, 12, "B"),
    ]


def test_empty_and_whitespace_only_spans_are_dropped_and_reported() -> None:
    _, tags, dropped = spans_to_bio("fever \t\n cough", [(5, 9, "A"), (3, 3, "B")])

    assert tags == ["O", "O"]
    assert dropped == [
        DroppedSpan(5, 9, "A", DropReason.EMPTY),
        DroppedSpan(3, 3, "B", DropReason.EMPTY),
    ]


def test_spans_outside_the_text_are_dropped_and_reported() -> None:
    _, tags, dropped = spans_to_bio("fever", [(-1, 3, "A"), (2, 9, "B"), (4, 2, "C")])

    assert tags == ["O"]
    assert [d.reason for d in dropped] == [DropReason.OUT_OF_RANGE] * 3


def test_an_inside_tag_without_an_entity_to_continue_starts_one() -> None:
    tokens = tokenize("no fever today")

    assert bio_to_spans(tokens, ["O", "I-Disease", "I-Disease"]) == [(3, 14, "Disease")]


def test_an_inside_tag_of_another_label_starts_a_new_entity() -> None:
    tokens = tokenize("breast cancer")

    assert bio_to_spans(tokens, ["B-Gene", "I-Disease"]) == [(0, 6, "Gene"), (7, 13, "Disease")]


def test_a_tag_that_is_not_bio_is_refused() -> None:
    with pytest.raises(ValueError, match="tag 1 is 'Disease'"):
        bio_to_spans(tokenize("no fever"), ["O", "Disease"])


def test_tags_must_be_one_per_token() -> None:
    with pytest.raises(ValueError, match="2 tokens but 1 tags"):
        bio_to_spans(tokenize("no fever"), ["O"])


# --- CoNLL out -------------------------------------------------------------------


def test_a_completion_is_a_document_of_token_lines(schema: ProjectSchema) -> None:
    text = "Mother had breast cancer."

    conll = _export(schema, text, _region(11, 24, "Family history"))

    assert conll == (
        "-DOCSTART- -X- -X- O\n"
        "\n"
        "Mother -X- _ O\n"
        "had -X- _ O\n"
        "breast -X- _ B-Family history\n"
        "cancer -X- _ I-Family history\n"
        ". -X- _ O\n"
        "\n"
    )


def test_each_line_of_text_is_a_sentence_and_empty_lines_add_none(
    schema: ProjectSchema,
) -> None:
    text = "Fever.\n\n \t\nCough and\r\nnausea\n"

    sentences = _read_one(_export(schema, text, _region(11, 16, "Disease")))

    assert sentences == [
        ConllSentence(["Fever", "."], ["O", "O"]),
        ConllSentence(["Cough", "and"], ["B-Disease", "O"]),
        ConllSentence(["nausea"], ["O"]),
    ]


def test_tabs_and_newlines_in_text_never_reach_a_token_or_column(
    schema: ProjectSchema,
) -> None:
    text = "fever\tcough\n\tnausea \t\n\n vomiting\u2028pain"

    conll = _export(schema, text, _region(6, 13, "Disease"), _region(13, 32, "Disease"))

    token_lines = [line for line in conll.split("\n") if line and "DOCSTART" not in line]
    assert [line.split(" ") for line in token_lines] == [
        ["fever", "-X-", "_", "O"],
        ["cough", "-X-", "_", "B-Disease"],
        ["nausea", "-X-", "_", "B-Disease"],
        ["vomiting", "-X-", "_", "B-Disease"],
        ["pain", "-X-", "_", "O"],
    ]


def test_a_span_across_a_line_break_starts_again_in_the_next_sentence(
    schema: ProjectSchema,
) -> None:
    text = "breast\ncancer screening"

    sentences = _read_one(_export(schema, text, _region(0, 13, "Disease")))

    assert sentences == [
        ConllSentence(["breast"], ["B-Disease"]),
        ConllSentence(["cancer", "screening"], ["B-Disease", "O"]),
    ]


def test_export_splits_tokens_at_span_edges_as_spans_to_bio_does(
    schema: ProjectSchema,
) -> None:
    text = "HER2neu+ (cough), fever_x."
    spans = [(0, 4, "Gene"), (4, 7, "Family history"), (9, 15, "Disease"), (18, 23, "Disease")]

    [sentence] = _read_one(_export(schema, text, *(_region(*s) for s in spans)))

    assert list(zip(*sentence, strict=True)) == _tagged(text, spans)


def test_assertion_labels_are_not_exported(schema: ProjectSchema) -> None:
    text = "no fever or cough"

    [sentence] = _read_one(
        _export(schema, text, _region(3, 8, "Negated"), _region(12, 17, "Negated", "Disease"))
    )

    assert sentence.tags == ["O", "O", "O", "B-Disease"]


def test_a_region_with_several_labels_gives_its_first(schema: ProjectSchema) -> None:
    [sentence] = _read_one(_export(schema, "fever", _region(0, 5, "Gene", "Disease")))

    assert sentence.tags == ["B-Gene"]


def test_a_label_with_an_alias_is_exported_as_the_alias(schema: ProjectSchema) -> None:
    text = "aspirin daily"

    conll = _export(schema, text, _region(0, 7, "Drug"), _region(8, 13, "DRUG"))

    assert _read_one(conll)[0].tags == ["B-DRUG", "B-DRUG"]


def test_results_of_other_controls_are_ignored(schema: ProjectSchema) -> None:
    choice = ResultItem("c", "choices", "urgency", "text", {"choices": ["Urgent"]})
    undeclared = ResultItem("u", "labels", "other", "text", {"start": 0, "end": 5, "labels": ["X"]})

    assert _read_one(_export(schema, "fever", choice, undeclared))[0].tags == ["O"]


def test_overlapping_and_empty_regions_are_reported_with_their_ids(
    schema: ProjectSchema,
) -> None:
    report = ConllExportReport()
    pair = _pair(
        "breast cancer  ",
        _region(7, 13, "Disease", region_id="cancer"),
        _region(0, 13, "Disease", region_id="whole"),
        _region(13, 15, "Gene", region_id="blank"),
        _region(10, 99, "Gene", region_id="outside"),
    )

    [document] = read_conll(to_conll([pair], schema, report=report))

    assert document[0].tags == ["B-Disease", "I-Disease"]
    assert [(d.task_id, d.completion_id, d.result_id, d.span.reason) for d in report.dropped] == [
        (1, 10, "blank", DropReason.EMPTY),
        (1, 10, "outside", DropReason.OUT_OF_RANGE),
        (1, 10, "cancer", DropReason.OVERLAP),
    ]
    assert report.dropped[2].span == DroppedSpan(
        7, 13, "Disease", DropReason.OVERLAP, (0, 13, "Disease")
    )


def test_a_task_without_its_text_is_skipped_and_reported(schema: ProjectSchema) -> None:
    report = ConllExportReport()
    pairs = [_pair(None, task_id=1), _pair("fever", task_id=2), _pair(["x"], task_id=3)]

    documents = list(to_conll(pairs, schema, report=report))

    assert len(documents) == 1
    assert report.documents == 1
    assert report.skipped_tasks == [1, 3]


def test_a_config_without_ner_labels_is_refused_at_once() -> None:
    schema = parse_labeling_config(
        '<View><Choices name="c" toName="t"><Choice value="A"/></Choices>'
        '<Text name="t" value="$text"/></View>'
    )

    with pytest.raises(InvalidRequestError, match="no <Labels> on text"):
        to_conll([], schema)


def test_export_reads_completions_one_at_a_time(schema: ProjectSchema) -> None:
    read = 0

    def pairs() -> Iterator[tuple[Task, Completion]]:
        nonlocal read
        for n in range(1, 1_000_000):
            read += 1
            yield _pair("fever", task_id=n)

    documents = to_conll(pairs(), schema)
    next(documents)

    assert read == 1


def test_write_conll_writes_every_document_and_reports(schema: ProjectSchema) -> None:
    out = io.StringIO()
    pairs = [_pair(f"fever {n}", _region(0, 5, "Disease"), task_id=n) for n in range(1, 601)]

    report = write_conll(pairs, schema, out)

    documents = read_conll(out.getvalue().splitlines(keepends=True))
    assert report.documents == len(documents) == 600
    assert documents[599] == [ConllSentence(["fever", "600"], ["B-Disease", "O"])]


# --- CoNLL in --------------------------------------------------------------------


def test_reader_gives_back_what_the_writer_wrote(schema: ProjectSchema) -> None:
    text = "Mother: breast cancer.\nFather: none"

    conll = _export(schema, text, _region(8, 21, "Family history"))

    assert read_conll([conll]) == [
        [
            ConllSentence(
                ["Mother", ":", "breast", "cancer", "."],
                ["O", "O", "B-Family history", "I-Family history", "O"],
            ),
            ConllSentence(["Father", ":", "none"], ["O", "O", "O"]),
        ]
    ]


def test_reader_takes_file_lines_with_windows_line_ends() -> None:
    lines = [
        "-DOCSTART- -X- -X- O\r\n",
        "\r\n",
        "EU NNP B-NP B-ORG\r\n",
        "rejects VBZ B-VP O\r\n",
        "\r\n",
        "-DOCSTART- -X- -X- O\r\n",
        "Peter NNP B-NP B-PER",
    ]

    assert read_conll(lines) == [
        [ConllSentence(["EU", "rejects"], ["B-ORG", "O"])],
        [ConllSentence(["Peter"], ["B-PER"])],
    ]


def test_reader_puts_sentences_before_any_docstart_in_a_document_of_their_own() -> None:
    assert read_conll(["fever -X- _ B-Disease", "", "cough -X- _ O"]) == [
        [ConllSentence(["fever"], ["B-Disease"]), ConllSentence(["cough"], ["O"])]
    ]


def test_reader_refuses_a_line_without_four_columns() -> None:
    with pytest.raises(ValueError, match="line 3"):
        read_conll(["-DOCSTART- -X- -X- O", "", "fever B-Disease"])
