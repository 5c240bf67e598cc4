"""Micro F1 of predictions against completions, entity level."""

from __future__ import annotations

from annotrain.domain.scoring import micro_f1


def span(start: int, end: int, label: str) -> dict[str, object]:
    return {"from_name": "label", "type": "labels",
            "value": {"start": start, "end": end, "labels": [label]}}  # fmt: skip


def test_exact_spans_count_and_a_shifted_one_is_a_miss_and_a_false_alarm() -> None:
    gold = [[span(0, 5, "Drug"), span(10, 15, "Drug")]]
    predicted = [[span(0, 5, "Drug"), span(10, 14, "Drug")]]

    assert micro_f1(gold, predicted, {"Drug"}) == 0.5


def test_labels_outside_the_model_are_not_scored() -> None:
    gold = [[span(0, 5, "Drug"), span(6, 9, "Present")]]
    assert micro_f1(gold, [[span(0, 5, "Drug")]], {"Drug"}) == 1.0


def test_choices_score_by_class() -> None:
    choice = {"from_name": "urgency", "type": "choices", "value": {"choices": ["Urgent"]}}
    other = {"from_name": "urgency", "type": "choices", "value": {"choices": ["Routine"]}}
    labels = {"Urgent", "Routine"}
    assert micro_f1([[choice], [choice]], [[choice], [other]], labels) == 0.5


def test_nothing_expected_and_nothing_predicted_scores_zero() -> None:
    assert micro_f1([[]], [[]], {"Drug"}) == 0.0


def test_rectangles_are_scored_on_the_words_they_hold_not_on_their_exact_edges() -> None:
    from annotrain.domain.ocr import OcrPage, OcrWord
    from annotrain.domain.scoring import rectangles_micro_f1

    words = tuple(
        OcrWord(text, left, 100, 80, 20, 90.0)
        for text, left in (("Total:", 100), ("12.50", 200), ("EUR", 300), ("Thanks", 500))
    )
    page = OcrPage(1000, 500, words, "eng", "5.3.0", "0" * 64)

    def box(label: str, x: float, width: float) -> dict[str, object]:
        return {"from_name": "label", "to_name": "image", "type": "rectanglelabels",
                "value": {"x": x, "y": 19.0, "width": width, "height": 6.0,
                          "rectanglelabels": [label]}}  # fmt: skip

    gold = [[box("Total", 19.5, 19.0)]]  # "12.50 EUR", drawn loosely
    assert rectangles_micro_f1(gold, [[box("Total", 20.0, 18.0)]], [page], {"Total"}) == 1.0
    assert rectangles_micro_f1(gold, [[box("Total", 20.0, 8.0)]], [page], {"Total"}) == 0.0
    partly = [[box("Total", 19.5, 19.0), box("Total", 50.0, 8.0)]]  # and a wrong one
    assert rectangles_micro_f1(gold, partly, [page], {"Total"}) == 2 / 3
    assert rectangles_micro_f1(gold, [[]], [None], {"Total"}) == 0.0
