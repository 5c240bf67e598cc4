"""From Label Studio results to model inputs: the -100 policy, windows, markers."""

from __future__ import annotations

from typing import Any

import pytest

from annotrain.domain.snapshot import Example, Part
from annotrain.domain.training_plan import ModelKind, ModelSpec


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from batch_jobs.text.data import ENTITY_END, ENTITY_START
    from batch_jobs.text.model import load_tokenizer, tiny_encoder

    return load_tokenizer(tiny_encoder().tokenizer_path, (ENTITY_START, ENTITY_END))


NER = ModelSpec(ModelKind.NER, "ner", ("Disease",), ("label",), ("text",))
TARGET_ARGS = {"to_name": "text", "data_key": "text"}


def _example(text: str, spans: list[tuple[int, int, list[str]]]) -> Example:
    result = [
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": s, "end": e, "labels": labels}}
        for s, e, labels in spans
    ]  # fmt: skip
    return Example("1", Part.TRAIN, {"text": text}, tuple(result))


def test_a_word_is_labelled_on_its_first_sub_word_and_the_rest_is_ignored(tokenizer: Any) -> None:
    from batch_jobs.text.data import IGNORE, TextTarget, encode_ner, ner_documents

    text = "adenomatous polyposis is rare"
    documents = ner_documents(
        [_example(text, [(0, 21, ["Disease"])])], NER, TextTarget(**TARGET_ARGS)
    )
    assert documents[0].tags == ["B-Disease", "I-Disease", "O", "O"]
    [feature], _ = encode_ner(
        documents,
        tokenizer,
        max_length=64,
        overlap=8,
        tag_ids={"O": 0, "B-Disease": 1, "I-Disease": 2},
    )
    pieces = tokenizer.convert_ids_to_tokens(feature.input_ids)
    assert pieces[0] == "[CLS]"
    assert pieces[-1] == "[SEP]"
    assert isinstance(feature.labels, list)
    labelled = [
        (p, label) for p, label in zip(pieces, feature.labels, strict=True) if label != IGNORE
    ]
    assert [label for _, label in labelled] == [1, 2, 0, 0]
    assert [p for p, _ in labelled] == [
        pieces[1],
        "pol" if "pol" in pieces else labelled[1][0],
        "is",
        "rare",
    ]
    assert len(pieces) > 6  # sub-words exist, and they were ignored
    assert feature.labels[0] == feature.labels[-1] == IGNORE


def test_entity_and_assertion_in_one_item_or_two_on_the_same_span(tokenizer: Any) -> None:
    from batch_jobs.text.data import TextTarget, assertion_mentions, ner_documents

    assertion = ModelSpec(
        ModelKind.ASSERTION, "assertion", ("Present", "Absent"), ("label",), ("text",)
    )
    target = TextTarget(**TARGET_ARGS)
    text = "no fever but cough"
    example = _example(text, [(3, 8, ["Disease", "Absent"]), (13, 18, ["Disease"]),
                              (13, 18, ["Present"])])  # fmt: skip
    mentions = assertion_mentions([example], assertion, target)
    assert [(m.start, m.end, m.label) for m in mentions] == [(3, 8, "Absent"), (13, 18, "Present")]
    [document] = ner_documents([example], NER, target)
    assert document.tags == ["O", "B-Disease", "O", "B-Disease"]


def test_a_long_document_is_read_in_overlapping_windows_that_cover_every_word(
    tokenizer: Any,
) -> None:
    from batch_jobs.text.data import encode_ner, words_of

    text = " ".join(f"word{i} adenomatous" for i in range(200))
    document = words_of("1", text)
    features, [encoded] = encode_ner([document], tokenizer, max_length=32, overlap=8, tag_ids=None)
    assert len(features) > 10
    assert all(len(f.input_ids) <= 32 for f in features)
    assert all(p is not None for p in encoded.word_position)
    # Each word is read where it is most central: never at a window's first or last token
    # unless it is the document's first or last word.
    for word, (feature, position) in enumerate(encoded.word_position[1:-1], start=1):
        assert 1 < position < len(features[feature].input_ids) - 2, word


def test_an_entity_cut_by_a_window_edge_is_ignored_there_and_whole_in_the_next(
    tokenizer: Any,
) -> None:
    from batch_jobs.text.data import IGNORE, TextTarget, encode_ner, ner_documents

    filler = "the " * 25
    entity = "chronic kidney disease"
    text = filler + entity + " " + filler
    start = len(filler)
    documents = ner_documents(
        [_example(text, [(start, start + len(entity), ["Disease"])])],
        NER,
        TextTarget(**TARGET_ARGS),
    )
    tags = {"O": 0, "B-Disease": 1, "I-Disease": 2}
    features, _ = encode_ner(documents, tokenizer, max_length=28, overlap=10, tag_ids=tags)
    whole = [f for f in features if isinstance(f.labels, list) and f.labels.count(1) == 1
             and f.labels.count(2) == 2]  # fmt: skip
    assert whole, "some window holds the entity whole"
    for feature in features:
        assert isinstance(feature.labels, list)
        learned = [label for label in feature.labels if label != IGNORE]
        # No window teaches an I- without its B-.
        if 2 in learned:
            assert 1 in learned
            assert learned.index(1) < learned.index(2)
    cut = []
    for feature in features:
        pieces = set(tokenizer.convert_ids_to_tokens(feature.input_ids))
        if ("chronic" in pieces) != ("disease" in pieces):
            cut.append(feature)
    assert cut, "the entity straddles some window's edge"
    for feature in cut:
        assert isinstance(feature.labels, list)
        assert set(feature.labels) <= {IGNORE, 0}, "a cut entity is not learned in that window"


def test_an_assertion_mention_is_marked_and_centred_in_a_long_text(tokenizer: Any) -> None:
    from batch_jobs.text.data import Mention, encode_mentions

    text = "left " * 100 + "fever" + " right" * 100
    start = text.index("fever")
    [feature] = encode_mentions(
        [Mention("1", text, start, start + 5, "Present")], tokenizer, max_length=21,
        label_ids={"Present": 0},
    )  # fmt: skip
    pieces = tokenizer.convert_ids_to_tokens(feature.input_ids)
    assert len(pieces) == 21
    assert pieces[9:12] == ["[E]", "fever", "[/E]"]
    assert pieces.count("left") == pieces.count("right") == 8
    assert feature.labels == 0


def test_classifier_examples_without_its_choice_are_left_out() -> None:
    from batch_jobs.text.data import TextTarget, classification_texts

    spec = ModelSpec(ModelKind.CLASSIFICATION, "topic", ("a", "b"), ("topic",), ("text",))
    chosen = Example("1", Part.TRAIN, {"text": "x"}, ({"from_name": "topic", "to_name": "text",
                     "type": "choices", "value": {"choices": ["b", "a"]}},))  # fmt: skip
    unchosen = Example("2", Part.TRAIN, {"text": "y"}, ())
    texts = classification_texts([chosen, unchosen], spec, TextTarget(**TARGET_ARGS))
    assert [(t.task_id, t.labels) for t in texts] == [("1", ("b",))]
