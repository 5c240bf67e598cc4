"""Tesseract through pytesseract: one page image in, its words with boxes and confidences out.

``image_to_data`` is called once per page. Pages run in parallel over a process
pool, one Tesseract per core with ``OMP_THREAD_LIMIT=1``: Tesseract's own OpenMP
threads slow it down when several run at once (measured: docs/visual-ner.md).
The pool's processes are started with ``forkserver``, so they do not inherit the
job's threads (heartbeat, log flusher) mid-lock.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from annotrain.domain.errors import AnnotrainError
from annotrain.domain.ocr import OcrWord, TesseractLanguage, missing_language_message


class OcrEngineError(AnnotrainError):
    """Tesseract is missing, lacks a language, or could not read a page."""


@dataclass(frozen=True, slots=True)
class PageWords:
    """What Tesseract read on one page.

    Attributes:
        width: The image's width in pixels.
        height: Its height in pixels.
        words: The words in reading order.
    """

    width: int
    height: int
    words: tuple[OcrWord, ...]


#: Reads one page image (a path) in a Tesseract language (``eng``).
PageReader = Callable[[str, str], PageWords]


def limit_tesseract_threads() -> None:
    """One OpenMP thread per Tesseract: pages run one process per core instead."""
    os.environ["OMP_THREAD_LIMIT"] = "1"


def tesseract_version() -> str:
    """The installed Tesseract's version (``5.3.0``).

    Raises:
        OcrEngineError: Tesseract is not installed.
    """
    import pytesseract

    try:
        return str(pytesseract.get_tesseract_version()).split()[0]
    except pytesseract.TesseractNotFoundError:
        raise OcrEngineError(
            "Tesseract is not installed: install the Debian package tesseract-ocr (and the "
            "language packs, tesseract-ocr-eng…) on the machine or image that runs OCR"
        ) from None


def check_language(language: TesseractLanguage) -> None:
    """Refuse a language whose traineddata Tesseract lacks, naming the Debian package.

    Raises:
        OcrEngineError: The language is not installed.
    """
    import pytesseract

    installed = [lang for lang in pytesseract.get_languages(config="") if lang != "osd"]
    if language.code not in installed:
        raise OcrEngineError(missing_language_message(language, installed))


def read_page(path: str, language: str) -> PageWords:
    """OCR one page image: ``image_to_data`` once, the non-empty words kept.

    Args:
        path: The image file.
        language: Tesseract's language code (``eng``).
    """
    import pytesseract
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        width, height = image.size
        data: dict[str, list[Any]] = pytesseract.image_to_data(
            image, lang=language, output_type=pytesseract.Output.DICT
        )
    return PageWords(width, height, tuple(words_of_data(data)))


def words_of_data(data: dict[str, list[Any]]) -> list[OcrWord]:
    """The words of ``image_to_data``'s table: level-5 rows with text, lines numbered in order."""
    words: list[OcrWord] = []
    lines: dict[tuple[int, int, int, int], int] = {}
    for i, level in enumerate(data["level"]):
        text = str(data["text"][i]).strip()
        if int(level) != 5 or not text:
            continue
        line_key = (
            int(data["page_num"][i]),
            int(data["block_num"][i]),
            int(data["par_num"][i]),
            int(data["line_num"][i]),
        )
        line = lines.setdefault(line_key, len(lines))
        words.append(
            OcrWord(
                text=text,
                left=int(data["left"][i]),
                top=int(data["top"][i]),
                width=int(data["width"][i]),
                height=int(data["height"][i]),
                confidence=max(0.0, float(data["conf"][i])),
                line=line,
            )
        )
    return words


def read_pages(
    paths: Sequence[str],
    language: str,
    *,
    workers: int,
    reader: PageReader = read_page,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[int, PageWords | Exception]]:
    """OCR pages, ``workers`` at a time; yields ``(index, words or the page's error)`` as done.

    With one worker the pages are read in this process, in order. With more, a
    process pool reads them (``OMP_THREAD_LIMIT=1`` in each); when ``should_stop``
    turns true, pages not started are dropped and the iteration ends.
    """
    limit_tesseract_threads()
    if workers <= 1 or len(paths) <= 1:
        for index, path in enumerate(paths):
            if should_stop():
                return
            try:
                yield index, reader(path, language)
            except Exception as exc:  # noqa: BLE001 - one bad page is reported, the rest go on
                yield index, exc
        return
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        max_workers=min(workers, len(paths)),
        mp_context=context,
        initializer=limit_tesseract_threads,
    ) as pool:
        pending: dict[Future[PageWords], int] = {
            pool.submit(reader, path, language): index for index, path in enumerate(paths)
        }
        while pending:
            done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                error = future.exception()
                yield index, (error if isinstance(error, Exception) else future.result())
            if should_stop():
                pool.shutdown(wait=True, cancel_futures=True)
                return
