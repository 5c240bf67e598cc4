"""OCR results as the lab keeps them: words, boxes, confidences, the page size; languages.

Pure: the OCR job (``batch_jobs.ocr``) runs Tesseract and fills an :class:`OcrPage`;
this module says what one holds, how it is written to and read from JSON, where it
lies in the blob store and which Tesseract language a project's language needs.

Storage (see docs/visual-ner.md):

- ``projects/<project id>/ocr/<image id>.json``: the OCR of a task's image, beside
  the image (``projects/<project id>/images/<image id>``). What the task read
  summarises and training reads.
- ``projects/<project id>/ocr-cache/<sha256>-<lang>-<tesseract version>.json``: the
  same record keyed by the image's content, so an image imported twice is OCR'd
  once. It is kept per project, so no project reads another's records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.task_files import is_image_id

#: The version of the record's JSON shape; a reader refuses others.
OCR_FORMAT = 1
#: Box coordinates normalised to this range (LayoutLM's 0-1000 grid).
NORMALISED_SCALE = 1000


@dataclass(frozen=True, slots=True)
class TesseractLanguage:
    """A Tesseract language and the Debian package that ships its traineddata.

    Attributes:
        code: Tesseract's code (``eng``).
        package: The Debian package (``tesseract-ocr-eng``).
    """

    code: str
    package: str


#: Project language (ISO 639-1) → Tesseract language.
TESSERACT_LANGUAGES: Mapping[str, TesseractLanguage] = {
    iso: TesseractLanguage(code, f"tesseract-ocr-{code}")
    for iso, code in (
        ("en", "eng"),
        ("de", "deu"),
        ("es", "spa"),
        ("pt", "por"),
        ("it", "ita"),
        ("da", "dan"),
        ("ro", "ron"),
    )
}


def tesseract_language(language: str) -> TesseractLanguage:
    """The Tesseract language a project's language is read with.

    Raises:
        InvalidRequestError: On ``language``: OCR serves no such language.
    """
    found = TESSERACT_LANGUAGES.get(language.lower())
    if found is None:
        served = ", ".join(sorted(TESSERACT_LANGUAGES))
        raise InvalidRequestError(
            "language",
            f"OCR reads no {language!r} text: a project's language must be one of {served} "
            "to OCR its images (change it with PATCH /api/v1/projects/{id})",
        )
    return found


def missing_language_message(language: TesseractLanguage, installed: Sequence[str]) -> str:
    """What a job says when Tesseract lacks a language's traineddata."""
    shown = ", ".join(sorted(installed)) or "none"
    return (
        f"Tesseract has no {language.code!r} language data (installed: {shown}); install "
        f"the Debian package {language.package} (apt-get install {language.package}) "
        "on the machine or image that runs OCR"
    )


@dataclass(frozen=True, slots=True)
class OcrWord:
    """One word Tesseract read.

    Attributes:
        text: The word.
        left: Its box in pixels: left edge.
        top: Top edge.
        width: Width in pixels.
        height: Height in pixels.
        confidence: Tesseract's confidence, 0 to 100.
        line: Its line, numbered in reading order across the page (0-based).
    """

    text: str
    left: int
    top: int
    width: int
    height: int
    confidence: float
    line: int = 0

    @property
    def right(self) -> int:
        """The right edge in pixels."""
        return self.left + self.width

    @property
    def bottom(self) -> int:
        """The bottom edge in pixels."""
        return self.top + self.height


@dataclass(frozen=True, slots=True)
class OcrPage:
    """The OCR of one image: its words in reading order and what it was read with.

    Attributes:
        width: The image's width in pixels.
        height: Its height in pixels.
        words: The words in Tesseract's reading order (blocks, lines, words).
        language: The Tesseract language(s) (``eng``).
        engine: The Tesseract version that read it (``5.3.0``).
        sha256: The image's content hash (hex).
    """

    width: int
    height: int
    words: tuple[OcrWord, ...]
    language: str
    engine: str
    sha256: str

    def normalised_box(self, word: OcrWord) -> tuple[int, int, int, int]:
        """A word's box on the 0-1000 grid: ``(x0, y0, x1, y1)``, clamped to the page."""
        return normalise_box(word, self.width, self.height)


def normalise_box(word: OcrWord, width: int, height: int) -> tuple[int, int, int, int]:
    """A word's pixel box scaled to 0-1000 on each axis (LayoutLM's convention)."""

    def scale(value: int, size: int) -> int:
        return max(0, min(NORMALISED_SCALE, round(NORMALISED_SCALE * value / max(size, 1))))

    return (
        scale(word.left, width),
        scale(word.top, height),
        scale(word.right, width),
        scale(word.bottom, height),
    )


def page_to_json(page: OcrPage) -> dict[str, Any]:
    """An OCR record as stored: compact word arrays, pixel and normalised boxes."""
    return {
        "format": OCR_FORMAT,
        "width": page.width,
        "height": page.height,
        "language": page.language,
        "engine": f"tesseract {page.engine}",
        "sha256": page.sha256,
        "words": [
            {
                "text": w.text,
                "box": [w.left, w.top, w.width, w.height],
                "bbox": list(page.normalised_box(w)),
                "conf": round(w.confidence, 2),
                "line": w.line,
            }
            for w in page.words
        ],
    }


def page_from_json(value: Mapping[str, Any]) -> OcrPage:
    """Read a stored OCR record.

    Raises:
        ValueError: Not a record of this format.
    """
    if value.get("format") != OCR_FORMAT:
        raise ValueError(f"not an OCR record of format {OCR_FORMAT}: {value.get('format')!r}")
    words = tuple(
        OcrWord(
            text=str(w["text"]),
            left=int(w["box"][0]),
            top=int(w["box"][1]),
            width=int(w["box"][2]),
            height=int(w["box"][3]),
            confidence=float(w["conf"]),
            line=int(w.get("line", 0)),
        )
        for w in value["words"]
    )
    engine = str(value["engine"]).removeprefix("tesseract ")
    return OcrPage(
        int(value["width"]),
        int(value["height"]),
        words,
        str(value["language"]),
        engine,
        str(value["sha256"]),
    )


def ocr_key(project_id: int, image_id: str) -> str:
    """Where the OCR of a project's image lies: beside the image."""
    if not is_image_id(image_id):
        raise ValueError(f"{image_id!r} is not an image id (32 lower-case hex digits)")
    return f"projects/{project_id}/ocr/{image_id}.json"


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def ocr_cache_key(project_id: int, sha256: str, language: str, engine: str) -> str:
    """Where the OCR of an image's content, in a language, by a Tesseract version is cached."""
    if re.fullmatch(r"[0-9a-f]{64}", sha256) is None:
        raise ValueError(f"{sha256!r} is not a SHA-256 in hex")
    lang = _SAFE.sub("_", language)
    version = _SAFE.sub("_", engine)
    return f"projects/{project_id}/ocr-cache/{sha256}-{lang}-{version}.json"
