"""Rectangles on a page and labels on its OCR words, both ways.

Pure geometry for Visual NER. A completion draws rectangles in Label Studio's
percent coordinates (``x``, ``y``, ``width``, ``height`` as percentages of the
image's width and height, ``rotation`` in degrees); a token model reads OCR words
with a label each. The rule between the two:

- **Rectangles → word labels.** A word belongs to a rectangle when more than half
  of its box's area lies inside it; a word inside several belongs to the one that
  holds most of it (the first drawn on a tie). Over the words in reading order,
  a word's tag is ``B-<label>`` when the word before it is not in the same
  rectangle, ``I-<label>`` when it is, ``O`` outside every rectangle. Only
  rectangles with rotation 0 are used; rotated ones are skipped with the reason,
  as are rectangles that hold no word at all (a box drawn beside the text).
- **Word labels → rectangles.** Runs of ``B-X I-X…`` (an ``I-X`` after anything
  but ``X`` starts a run too) become one rectangle each: the union of its words'
  boxes, in percent, its text the words joined by spaces, its score the mean of
  the words' scores. This is what pre-annotation proposes.

Labels → rectangles → labels gives the labels back whenever each run's words
lie on one line (the union box then covers no other word).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from annotrain.domain.ocr import OcrWord
from annotrain.domain.tasks import ResultItem

OUTSIDE = "O"
#: Result types whose value carries a rectangle and its labels.
LABELLED_REGION_TYPES = ("rectanglelabels", "labels")


@dataclass(frozen=True, slots=True)
class Region:
    """A labelled rectangle in percent of the image's size.

    Attributes:
        label: What it marks.
        x: Left edge, percent of the width.
        y: Top edge, percent of the height.
        width: Width, percent of the width.
        height: Height, percent of the height.
        rotation: Degrees clockwise around the top-left corner (only 0 is used).
        id: The region id of the result items it came from.
        text: The words inside (or the transcription a person typed).
        score: The model's confidence, for predictions.
    """

    label: str
    x: float
    y: float
    width: float
    height: float
    rotation: float = 0.0
    id: str | None = None
    text: str | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class SkippedRegion:
    """A rectangle that gives no word label, and why.

    Attributes:
        region: The rectangle.
        reason: Why it was skipped, with the fix.
    """

    region: Region
    reason: str


@dataclass(frozen=True, slots=True)
class WordLabels:
    """Word tags of a page and the rectangles that gave none.

    Attributes:
        tags: One BIO tag per word, in the words' order.
        skipped: Rectangles not used (rotated, or with no word inside), with reasons.
    """

    tags: tuple[str, ...]
    skipped: tuple[SkippedRegion, ...]


def regions_of_result(
    result: Sequence[ResultItem], *, from_names: Sequence[str] | None = None
) -> list[Region]:
    """The labelled rectangles of a completion's (or prediction's) result.

    Items of type ``rectanglelabels`` (or ``labels`` with a rectangle, Label Studio's
    OCR template) make a region each; a ``textarea`` item with the same id gives its
    text. A rectangle with several labels makes one region per label.

    Args:
        result: The result items.
        from_names: Only items of these controls; None for all.
    """
    texts: dict[str, str] = {}
    for item in result:
        if item.type == "textarea" and item.id is not None:
            raw = item.value.get("text")
            if isinstance(raw, list):
                texts[item.id] = " ".join(str(t) for t in raw)
            elif isinstance(raw, str):
                texts[item.id] = raw
    regions: list[Region] = []
    for item in result:
        if item.type not in LABELLED_REGION_TYPES:
            continue
        if from_names is not None and item.from_name not in from_names:
            continue
        value = item.value
        if not all(isinstance(value.get(k), int | float) for k in ("x", "y", "width", "height")):
            continue  # a text span's labels (start/end), not a rectangle
        for label in value.get(item.type) or ():
            regions.append(
                Region(
                    label=str(label),
                    x=float(value["x"]),
                    y=float(value["y"]),
                    width=float(value["width"]),
                    height=float(value["height"]),
                    rotation=float(value.get("rotation") or 0.0),
                    id=item.id,
                    text=texts.get(item.id) if item.id is not None else None,
                    score=item.score,
                )
            )
    return regions


def regions_of_json(
    result: Sequence[Mapping[str, Any]], *, from_names: Sequence[str] | None = None
) -> list[Region]:
    """:func:`regions_of_result` for result items as Label Studio JSON dicts (snapshots, jobs)."""
    items = []
    for raw in result:
        value = raw.get("value")
        items.append(
            ResultItem(
                id=None if raw.get("id") is None else str(raw["id"]),
                type=str(raw.get("type", "")),
                from_name=raw.get("from_name"),
                to_name=raw.get("to_name"),
                value=value if isinstance(value, Mapping) else {},
            )
        )
    return regions_of_result(items, from_names=from_names)


def label_words(
    words: Sequence[OcrWord], regions: Sequence[Region], width: int, height: int
) -> WordLabels:
    """Tag each word with the rectangle most of it lies in (BIO, in the words' order).

    Args:
        words: The page's OCR words in reading order.
        regions: The labelled rectangles, in percent.
        width: The page's width in pixels.
        height: The page's height in pixels.
    """
    skipped: list[SkippedRegion] = []
    usable: list[tuple[int, Region]] = []
    for index, region in enumerate(regions):
        if region.rotation % 360 != 0:
            skipped.append(
                SkippedRegion(
                    region,
                    f"is rotated by {region.rotation:g}°; only unrotated rectangles label "
                    "words: redraw it with rotation 0",
                )
            )
        else:
            usable.append((index, region))
    boxes = [(index, region, _pixels(region, width, height)) for index, region in usable]
    owner: list[int | None] = []
    for word in words:
        best: tuple[float, int] | None = None
        for index, _region, box in boxes:
            share = _share_inside(word, box)
            if share > 0.5 and (best is None or share > best[0]):
                best = (share, index)
        owner.append(None if best is None else best[1])
    tags: list[str] = []
    previous: int | None = None
    for region_index in owner:
        if region_index is None:
            tags.append(OUTSIDE)
        else:
            prefix = "I" if region_index == previous else "B"
            tags.append(f"{prefix}-{regions[region_index].label}")
        previous = region_index
    used = set(owner)
    for index, region in usable:
        if index not in used:
            skipped.append(
                SkippedRegion(
                    region,
                    "holds no OCR word (no word has most of its box inside); draw the "
                    "rectangle around the words it labels",
                )
            )
    return WordLabels(tuple(tags), tuple(skipped))


def regions_from_word_labels(
    words: Sequence[OcrWord],
    tags: Sequence[str],
    width: int,
    height: int,
    *,
    scores: Sequence[float] | None = None,
    split_lines: bool = False,
) -> list[Region]:
    """Merge runs of tagged words into one rectangle each (union of their boxes).

    Args:
        words: The page's OCR words in reading order.
        tags: One BIO tag per word.
        width: The page's width in pixels.
        height: The page's height in pixels.
        scores: One confidence per word (the tag's probability), or None.
        split_lines: Start a new rectangle where a run goes on to another OCR line,
            so no rectangle spans lines (a union over two lines would cover words
            of neither entity).

    Raises:
        ValueError: ``tags`` (or ``scores``) and ``words`` differ in length.
    """
    if len(tags) != len(words) or (scores is not None and len(scores) != len(words)):
        raise ValueError("give one tag (and one score) per word")
    runs: list[tuple[str, list[int]]] = []
    for index, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if tag == OUTSIDE or not label or prefix not in ("B", "I"):
            continue
        continues = prefix == "I" and runs and runs[-1][0] == label and runs[-1][1][-1] == index - 1
        if continues and split_lines and words[index].line != words[index - 1].line:
            continues = False
        if continues:
            runs[-1][1].append(index)
        else:
            runs.append((label, [index]))
    regions = []
    for label, members in runs:
        chosen = [words[i] for i in members]
        left = min(w.left for w in chosen)
        top = min(w.top for w in chosen)
        right = max(w.right for w in chosen)
        bottom = max(w.bottom for w in chosen)
        score = None if scores is None else sum(scores[i] for i in members) / len(members)
        regions.append(
            Region(
                label=label,
                x=100.0 * left / width,
                y=100.0 * top / height,
                width=100.0 * (right - left) / width,
                height=100.0 * (bottom - top) / height,
                text=" ".join(w.text for w in chosen),
                score=score,
            )
        )
    return regions


def region_result_items(
    region: Region,
    *,
    region_id: str,
    from_name: str,
    to_name: str,
    width: int,
    height: int,
    result_type: str = "rectanglelabels",
    text_from_name: str | None = None,
) -> list[dict[str, Any]]:
    """A region as Label Studio result items: the labelled rectangle, and its text.

    Args:
        region: The region.
        region_id: The id its items share.
        from_name: The ``RectangleLabels`` (or ``Labels``) control.
        to_name: The ``Image`` object.
        width: The image's width in pixels (Label Studio's ``original_width``).
        height: Its height in pixels.
        result_type: ``rectanglelabels``, or ``labels`` for the OCR template.
        text_from_name: A per-region ``TextArea`` control to put the text in, or None.
    """
    geometry: dict[str, Any] = {
        "x": region.x,
        "y": region.y,
        "width": region.width,
        "height": region.height,
        "rotation": region.rotation,
    }
    common: dict[str, Any] = {
        "id": region_id,
        "to_name": to_name,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
    }
    labelled: dict[str, Any] = {
        **common,
        "from_name": from_name,
        "type": result_type,
        "value": {**geometry, result_type: [region.label]},
    }
    if region.score is not None:
        labelled["score"] = region.score
    items = [labelled]
    if text_from_name is not None and region.text is not None:
        items.append(
            {
                **common,
                "from_name": text_from_name,
                "type": "textarea",
                "value": {**geometry, "text": [region.text]},
            }
        )
    return items


def words_in_region(
    words: Sequence[OcrWord], region: Region, width: int, height: int
) -> list[OcrWord]:
    """The words more than half of whose box lies inside the rectangle, in reading order."""
    box = _pixels(region, width, height)
    return [word for word in words if _share_inside(word, box) > 0.5]


def transcribe_regions(
    result: Sequence[Mapping[str, Any]],
    words: Sequence[OcrWord],
    width: int,
    height: int,
    text_controls: Mapping[str, str],
) -> list[dict[str, Any]]:
    """The result with a ``textarea`` item for each labelled rectangle: the words it holds.

    Label Studio's per-region ``<TextArea>`` shows a transcription beside each
    region; a pre-annotation that fills it saves the annotator from typing what
    the OCR already read. Rectangles on an image with no such control
    (``text_controls`` maps an image's name to its control's), ones that already
    have a transcription, and ones holding no word are left as they are.

    Args:
        result: Label Studio result items (JSON), as predicted.
        words: The image's OCR words in reading order.
        width: The image's width in pixels.
        height: Its height in pixels.
        text_controls: Per-region ``TextArea`` control by image name
            (:meth:`annotrain.domain.config.ProjectSchema.region_text_controls`).
    """
    items = [dict(item) for item in result]
    transcribed = {item.get("id") for item in items if item.get("type") == "textarea"}
    added: list[dict[str, Any]] = []
    for item in items:
        control = text_controls.get(str(item.get("to_name")))
        if control is None or item.get("type") not in LABELLED_REGION_TYPES:
            continue
        if item.get("id") is None or item.get("id") in transcribed:
            continue
        regions = regions_of_json([item])  # one per label, all of the same rectangle
        if not regions:
            continue  # a text span's labels, not a rectangle
        inside = words_in_region(words, regions[0], width, height)
        if not inside:
            continue
        transcribed.add(item["id"])
        geometry = {k: item["value"][k] for k in ("x", "y", "width", "height", "rotation")
                    if k in item["value"]}  # fmt: skip
        added.append({
            "id": item["id"], "from_name": control, "to_name": item["to_name"],
            "type": "textarea", "value": {**geometry, "text": [" ".join(w.text for w in inside)]},
            **{k: item[k] for k in ("original_width", "original_height", "image_rotation")
               if k in item},
        })  # fmt: skip
    return items + added


def as_image_labels(
    result: Sequence[Mapping[str, Any]], controls: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """Predicted rectangles whose control is a ``<Labels>`` on an image, as Label Studio keeps them.

    The predictor writes ``rectanglelabels`` items; where the config labels image
    regions with ``<Labels>`` beside a ``<Rectangle>`` (the OCR template) such an
    item becomes a ``labels`` item and, when the image has a ``<Rectangle>``, a
    ``rectangle`` item of the same id and geometry. Other items stay as they are.

    Args:
        result: Label Studio result items (JSON), as predicted.
        controls: ``<Labels>`` controls on images by name, each with its image's
            ``<Rectangle>`` control or None
            (:meth:`annotrain.domain.config.ProjectSchema.image_label_controls`).
    """
    out: list[dict[str, Any]] = []
    for raw in result:
        item = dict(raw)
        if item.get("type") != "rectanglelabels" or item.get("from_name") not in controls:
            out.append(item)
            continue
        value = dict(item["value"])
        labels = value.pop("rectanglelabels")
        rectangle = controls[item["from_name"]]
        if rectangle is not None:
            shape = {k: v for k, v in item.items() if k != "score"}
            out.append({**shape, "from_name": rectangle, "type": "rectangle", "value": value})
        out.append({**item, "type": "labels", "value": {**value, "labels": labels}})
    return out


def _pixels(region: Region, width: int, height: int) -> tuple[float, float, float, float]:
    left = region.x * width / 100.0
    top = region.y * height / 100.0
    return left, top, left + region.width * width / 100.0, top + region.height * height / 100.0


def _share_inside(word: OcrWord, box: tuple[float, float, float, float]) -> float:
    """The share of the word's box area inside ``box`` (its centre, for a box of no area)."""
    left, top, right, bottom = box
    if word.width <= 0 or word.height <= 0:
        cx, cy = word.left + word.width / 2, word.top + word.height / 2
        return 1.0 if left <= cx <= right and top <= cy <= bottom else 0.0
    overlap_w = min(word.right, right) - max(word.left, left)
    overlap_h = min(word.bottom, bottom) - max(word.top, top)
    if overlap_w <= 0 or overlap_h <= 0:
        return 0.0
    return (overlap_w * overlap_h) / (word.width * word.height)
