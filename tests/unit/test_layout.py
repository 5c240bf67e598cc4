"""Rectangles in percent ↔ BIO labels on OCR words, both ways (annotrain.domain.layout)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from annotrain.domain.layout import (
    Region,
    as_image_labels,
    label_words,
    region_result_items,
    regions_from_word_labels,
    regions_of_result,
    transcribe_regions,
    words_in_region,
)
from annotrain.domain.ocr import OcrWord
from annotrain.domain.tasks import ResultItem

WIDTH, HEIGHT = 1000, 500


def _word(text: str, left: int, top: int, width: int = 80, height: int = 20) -> OcrWord:
    return OcrWord(text, left, top, width, height, 90.0)


def _percent(left: float, top: float, right: float, bottom: float, label: str) -> Region:
    return Region(
        label,
        100 * left / WIDTH,
        100 * top / HEIGHT,
        100 * (right - left) / WIDTH,
        100 * (bottom - top) / HEIGHT,
    )


def test_a_word_belongs_to_a_rectangle_when_most_of_it_lies_inside() -> None:
    words = [_word("mostly", 100, 100), _word("half", 300, 100), _word("little", 500, 100)]
    rectangles = [
        _percent(90, 90, 170, 130, "A"),  # 70 of 80 px of "mostly"
        _percent(340, 90, 400, 130, "B"),  # exactly half of "half": not more than half
        _percent(560, 90, 700, 130, "C"),  # a quarter of "little"
    ]
    labels = label_words(words, rectangles, WIDTH, HEIGHT)
    assert labels.tags == ("B-A", "O", "O")
    assert [s.region.label for s in labels.skipped] == ["B", "C"]
    assert all("holds no OCR word" in s.reason for s in labels.skipped)


def test_a_word_inside_two_rectangles_goes_to_the_one_holding_more_of_it() -> None:
    words = [_word("total", 100, 100)]
    rectangles = [_percent(90, 90, 160, 130, "Small"), _percent(100, 90, 200, 130, "Big")]
    assert label_words(words, rectangles, WIDTH, HEIGHT).tags == ("B-Big",)


def test_bio_follows_the_words_order_and_the_rectangle_they_lie_in() -> None:
    words = [
        _word("Acme", 100, 100),
        _word("Ltd", 200, 100),
        _word("Date:", 100, 200),
        _word("IT61", 100, 300),
        _word("7840", 200, 300),
    ]
    rectangles = [_percent(95, 95, 290, 125, "Vendor"), _percent(95, 295, 290, 325, "IBAN")]
    labels = label_words(words, rectangles, WIDTH, HEIGHT)
    assert labels.tags == ("B-Vendor", "I-Vendor", "O", "B-IBAN", "I-IBAN")
    assert labels.skipped == ()


def test_two_touching_rectangles_of_one_label_make_two_entities() -> None:
    words = [_word("one", 100, 100), _word("two", 200, 100)]
    rectangles = [_percent(95, 95, 185, 125, "X"), _percent(195, 95, 285, 125, "X")]
    assert label_words(words, rectangles, WIDTH, HEIGHT).tags == ("B-X", "B-X")


def test_a_rotated_rectangle_is_skipped_with_its_reason() -> None:
    words = [_word("word", 100, 100)]
    rotated = Region("A", 9, 18, 10, 8, rotation=30)
    labels = label_words(words, [rotated], WIDTH, HEIGHT)
    assert labels.tags == ("O",)
    (skipped,) = labels.skipped
    assert "rotated by 30°" in skipped.reason
    assert "rotation 0" in skipped.reason


def test_word_labels_merge_into_one_rectangle_per_entity_with_the_mean_score() -> None:
    words = [_word("Acme", 100, 100), _word("Ltd", 200, 110), _word("x", 400, 100)]
    (region,) = regions_from_word_labels(
        words, ["B-Vendor", "I-Vendor", "O"], WIDTH, HEIGHT, scores=[0.9, 0.7, 0.99]
    )
    assert region.label == "Vendor"
    assert region.text == "Acme Ltd"
    assert region.score is not None
    assert abs(region.score - 0.8) < 1e-9
    assert (region.x, region.y) == (10.0, 20.0)
    assert (region.width, region.height) == (18.0, 6.0)  # 100..280 px wide, 100..130 px tall


def test_an_inside_tag_without_its_beginning_still_starts_an_entity() -> None:
    words = [_word("a", 100, 100), _word("b", 200, 100), _word("c", 300, 100)]
    regions = regions_from_word_labels(words, ["I-X", "I-Y", "I-Y"], WIDTH, HEIGHT)
    assert [(r.label, r.text) for r in regions] == [("X", "a"), ("Y", "b c")]


def test_regions_read_from_rectanglelabels_and_the_ocr_template_with_their_text() -> None:
    geometry = {"x": 10.0, "y": 20.0, "width": 5.0, "height": 2.0, "rotation": 0}
    result = [
        ResultItem("r1", "rectanglelabels", "box", "image", {**geometry, "rectanglelabels": ["A"]}),
        ResultItem("r1", "textarea", "text", "image", {**geometry, "text": ["Acme Ltd"]}),
        ResultItem("r2", "rectangle", "bbox", "image", geometry),
        ResultItem("r2", "labels", "label", "image", {**geometry, "labels": ["B"]}),
        ResultItem("s", "labels", "ner", "text", {"start": 0, "end": 3, "labels": ["C"]}),
    ]
    regions = regions_of_result(result)
    assert [(r.label, r.id, r.text) for r in regions] == [
        ("A", "r1", "Acme Ltd"),
        ("B", "r2", None),
    ]
    assert regions_of_result(result, from_names=["label"])[0].label == "B"


def test_region_result_items_are_label_studio_rectangles_with_their_transcription() -> None:
    region = Region("Total", 1.5, 2.5, 3.0, 4.0, text="12.00 EUR", score=0.75)
    labelled, text = region_result_items(
        region, region_id="p1", from_name="label", to_name="image",
        width=800, height=600, text_from_name="transcription",
    )  # fmt: skip
    assert labelled["type"] == "rectanglelabels"
    assert labelled["value"]["rectanglelabels"] == ["Total"]
    assert labelled["score"] == 0.75
    assert (labelled["original_width"], labelled["original_height"]) == (800, 600)
    assert text["type"] == "textarea"
    assert text["value"]["text"] == ["12.00 EUR"]
    assert text["id"] == labelled["id"] == "p1"
    assert regions_of_result(
        [
            ResultItem(i["id"], i["type"], i["from_name"], i["to_name"], i["value"])
            for i in (labelled, text)
        ]
    ) == [Region("Total", 1.5, 2.5, 3.0, 4.0, rotation=0.0, id="p1", text="12.00 EUR")]


# A page of lines of words (left to right, with gaps), each word tagged; entities never
# cross a line, so each one's union box covers its own words only.
_LABELS = st.sampled_from(["Vendor", "Total", "IBAN"])


@st.composite
def _tagged_page(draw: st.DrawFn) -> tuple[list[OcrWord], list[str]]:
    words: list[OcrWord] = []
    tags: list[str] = []
    for line in range(draw(st.integers(1, 6))):
        top = 20 + line * 60
        left = 10
        previous: str | None = None
        for _ in range(draw(st.integers(1, 8))):
            width = draw(st.integers(1, 90))
            height = draw(st.integers(1, 40))
            words.append(OcrWord("w", left, top, width, height, 50.0, line))
            left += width + draw(st.integers(1, 30))
            label = draw(st.one_of(st.none(), _LABELS))
            if label is None:
                tags.append("O")
                previous = None
            elif previous == label and draw(st.booleans()):
                tags.append(f"I-{label}")
            else:
                tags.append(f"B-{label}")
                previous = label
    return words, tags


@given(_tagged_page(), st.sampled_from([(1240, 1754), (1000, 1000), (2480, 3508)]))
def test_labels_to_rectangles_to_labels_gives_the_labels_back(
    page: tuple[list[OcrWord], list[str]], size: tuple[int, int]
) -> None:
    words, tags = page
    width, height = size
    regions = regions_from_word_labels(words, tags, width, height)
    labels = label_words(words, regions, width, height)
    assert list(labels.tags) == tags
    assert labels.skipped == ()


@given(_tagged_page())
def test_rectangles_to_labels_to_rectangles_gives_the_rectangles_back(
    page: tuple[list[OcrWord], list[str]],
) -> None:
    words, tags = page
    regions = regions_from_word_labels(words, tags, WIDTH, 1000)
    again = regions_from_word_labels(
        words, label_words(words, regions, WIDTH, 1000).tags, WIDTH, 1000
    )
    assert again == regions


def test_split_lines_gives_an_entity_over_two_lines_a_rectangle_per_line() -> None:
    words = [
        OcrWord("Blue", 100, 100, 80, 20, 90.0, 0),
        OcrWord("Harbor", 200, 100, 80, 20, 90.0, 0),
        OcrWord("Foods", 100, 130, 80, 20, 90.0, 1),
    ]
    tags = ["B-Vendor", "I-Vendor", "I-Vendor"]
    joined = regions_from_word_labels(words, tags, WIDTH, HEIGHT)
    split = regions_from_word_labels(words, tags, WIDTH, HEIGHT, split_lines=True)
    assert [r.text for r in joined] == ["Blue Harbor Foods"]
    assert [(r.label, r.text) for r in split] == [("Vendor", "Blue Harbor"), ("Vendor", "Foods")]
    assert (split[0].x, split[0].y, split[0].width, split[0].height) == (10.0, 20.0, 18.0, 4.0)


def _rectangle(region_id: str, region: Region, to_name: str = "image") -> dict[str, Any]:
    (item,) = region_result_items(
        region, region_id=region_id, from_name="label", to_name=to_name, width=WIDTH, height=HEIGHT
    )
    return item


def test_a_rectangle_holds_the_words_mostly_inside_it_in_reading_order() -> None:
    words = [_word("Total:", 100, 100), _word("1,250.00", 200, 100), _word("EUR", 300, 100)]
    # All of the first two, a quarter of "EUR".
    region = _percent(95, 95, 320, 125, "Total")

    assert [w.text for w in words_in_region(words, region, WIDTH, HEIGHT)] == ["Total:", "1,250.00"]


def test_each_predicted_rectangle_gets_the_transcription_of_the_words_it_holds() -> None:
    words = [_word("Invoice", 100, 50), _word("2024-117", 200, 50), _word("IBAN", 100, 300)]
    number = _rectangle("r1", _percent(190, 45, 290, 75, "InvoiceNumber"))
    empty = _rectangle("r2", _percent(600, 400, 700, 450, "Total"))  # no word inside
    typed = _rectangle("r3", _percent(95, 295, 185, 325, "IBAN"))
    already = {"id": "r3", "from_name": "transcription", "to_name": "image", "type": "textarea",
               "value": {**typed["value"], "text": ["typed by hand"]}}  # fmt: skip
    elsewhere = _rectangle("r4", _percent(95, 45, 185, 75, "Vendor"), to_name="back")
    span = {"id": "s1", "from_name": "ner", "to_name": "text", "type": "labels",
            "value": {"start": 0, "end": 7, "labels": ["Vendor"]}}  # fmt: skip
    result = [number, empty, typed, already, elsewhere, span]

    out = transcribe_regions(result, words, WIDTH, HEIGHT, {"image": "transcription"})

    assert out[: len(result)] == result  # what was predicted stays as it was
    (added,) = out[len(result) :]
    assert added["id"] == "r1"
    assert (added["from_name"], added["to_name"], added["type"]) == (
        "transcription", "image", "textarea",
    )  # fmt: skip
    assert added["value"] == {**{k: v for k, v in number["value"].items()
                                 if k != "rectanglelabels"}, "text": ["2024-117"]}  # fmt: skip
    assert added["original_width"] == WIDTH
    assert transcribe_regions(result, words, WIDTH, HEIGHT, {}) == result


def test_rectangles_of_a_labels_control_on_an_image_become_a_rectangle_and_its_labels() -> None:
    rectangle = _rectangle("r1", _percent(100, 100, 200, 150, "Total"))
    rectangle["score"] = 0.7
    other = _rectangle("r2", _percent(300, 100, 400, 150, "Date"))
    other["from_name"] = "boxes"  # a RectangleLabels control: stays as it is

    shape, labels, kept = as_image_labels([rectangle, other], {"label": "bbox"})

    geometry = {k: v for k, v in rectangle["value"].items() if k != "rectanglelabels"}
    assert (shape["type"], shape["from_name"], shape["value"]) == ("rectangle", "bbox", geometry)
    assert "score" not in shape
    assert (labels["type"], labels["from_name"]) == ("labels", "label")
    assert labels["value"] == {**geometry, "labels": ["Total"]}
    assert labels["score"] == 0.7
    assert shape["id"] == labels["id"] == "r1"
    assert kept == other
    # Without a Rectangle control on the image, only the labels item.
    assert [i["type"] for i in as_image_labels([rectangle], {"label": None})] == ["labels"]
