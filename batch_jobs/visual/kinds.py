"""Visual NER as a kind of NER: OCR words with their boxes, tagged from the rectangles.

A page is a NER document whose words are the OCR words in reading order, joined
by spaces, each with its box on the 0-1000 grid. Everything after that is the
text NER path: sub-word alignment (the first sub-word of a word carries its tag,
the rest ``-100``), overlapping windows for long pages, decoding per word and
seqeval entity scores. What differs is where the tags come from (rectangles, by
:func:`annotrain.domain.layout.label_words`), the extra ``bbox`` input, and the
model (:func:`batch_jobs.visual.model.build_layout_model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from annotrain.domain.conll import Token
from annotrain.domain.layout import label_words, regions_of_json
from annotrain.domain.ocr import OcrPage, page_from_json
from annotrain.domain.snapshot import Example
from batch_jobs.text.data import NerDocument
from batch_jobs.text.kinds import NerHandler
from batch_jobs.text.model import Encoder
from batch_jobs.visual.errors import OcrMissingError, PoorBoxesError
from batch_jobs.visual.model import build_layout_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True, slots=True)
class PageDocument(NerDocument):
    """A page's OCR words as a NER document, with each word's box.

    Attributes:
        page: The OCR of the page (words with pixel boxes, page size).
        boxes: Per word, its box on the 0-1000 grid ``(x0, y0, x1, y1)``.
    """

    page: OcrPage
    boxes: list[tuple[int, int, int, int]]


def page_document(task_id: str, page: OcrPage, tags: Sequence[str] = ()) -> PageDocument:
    """A page as a document: its words joined by single spaces, with their boxes.

    Words that are empty or all whitespace carry nothing to read and are left out
    of the page (Tesseract reports some for ruled lines and speckles).
    """
    kept = [i for i, w in enumerate(page.words) if w.text.strip()]
    words = tuple(page.words[i] for i in kept)
    tokens: list[Token] = []
    offset = 0
    for word in words:
        text = word.text.strip()
        tokens.append(Token(text, offset, offset + len(text)))
        offset += len(text) + 1
    kept_page = OcrPage(page.width, page.height, words, page.language, page.engine, page.sha256)
    return PageDocument(
        task_id=task_id,
        text=" ".join(t.text for t in tokens),
        words=tokens,
        tags=[tags[i] for i in kept] if tags else [],
        page=kept_page,
        boxes=[kept_page.normalised_box(w) for w in words],
    )


class VisualNerHandler(NerHandler):
    """Token classification over a page's OCR words, with their boxes as a second input.

    After :meth:`records`, :attr:`warnings` says which rectangles were not used
    (rotated, or holding no word in a completion that has other, usable ones).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warnings: list[str] = []

    def records(self, examples: Sequence[Example]) -> list[NerDocument]:
        """The examples' pages, tagged from their rectangles.

        Raises:
            OcrMissingError: Examples that carry no OCR (naming their tasks).
            PoorBoxesError: Completions with rectangles none of which holds a word.
        """
        wanted = set(self.spec.labels)
        from_names = list(self.spec.from_names) or None
        missing: list[str] = []
        poor: list[str] = []
        documents: list[NerDocument] = []
        for example in examples:
            if example.ocr is None:
                missing.append(example.task_id)
                continue
            page = page_from_json(example.ocr)
            regions = [
                r
                for r in regions_of_json(example.result, from_names=from_names)
                if r.label in wanted
            ]
            labelled = label_words(page.words, regions, page.width, page.height)
            usable = [r for r in regions if r.rotation % 360 == 0]
            if usable and all(tag == "O" for tag in labelled.tags):
                poor.append(example.task_id)
                continue
            for skipped in labelled.skipped:
                self.warnings.append(
                    f"task {example.task_id}: rectangle {skipped.region.label!r} {skipped.reason}"
                )
            documents.append(page_document(example.task_id, page, labelled.tags))
        if missing:
            raise OcrMissingError(self.spec.name, missing)
        if poor:
            raise PoorBoxesError(self.spec.name, poor)
        return documents

    def word_boxes(
        self, records: Sequence[NerDocument]
    ) -> Sequence[Sequence[tuple[int, int, int, int]]]:
        return [r.boxes if isinstance(r, PageDocument) else [] for r in records]

    def build(
        self, encoder: Encoder, *, vocab_size: int, dropout: float, seed: int
    ) -> PreTrainedModel:
        return build_layout_model(
            encoder, labels=self.model_labels, dropout=dropout, vocab_size=vocab_size, seed=seed
        )

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "layout": "layoutlm", "box_scale": 1000}
