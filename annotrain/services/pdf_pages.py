"""PDF documents as page images: opened, counted and rendered with PDFium (pypdfium2).

Uploads render PDFs in the API (the Lambda function too): each page becomes a PNG
at ``dpi`` (150 by default, what OCR timings in docs/visual-ner.md assume), one
task per page. Rendering happens before anything is stored, so a PDF that cannot
be opened (damaged, password-protected) or has too many pages refuses the whole
upload. pypdfium2 is imported on first use: a cold start that imports no PDF pays
nothing.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from annotrain.domain.errors import FileImportError, FileProblem

PDF_MAGIC = b"%PDF-"
_POINTS_PER_INCH = 72.0
_SPOOL_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PdfLimits:
    """What a PDF upload may hold.

    Attributes:
        max_pages: The most pages one request may render, over all its PDFs.
        dpi: Dots per inch pages are rendered at.
        max_pixels: The most pixels one rendered page may have.
    """

    max_pages: int = 50
    dpi: int = 150
    max_pixels: int = 89_478_485


class PdfFile:
    """An opened PDF; use as a context manager (it closes the document).

    Args:
        data: The file's bytes.
        name: Its name, for the errors.

    Raises:
        FileImportError: PDFium cannot open it: damaged, password-protected, not a PDF.
    """

    def __init__(self, data: bytes, name: str) -> None:
        import pypdfium2 as pdfium

        self.name = name
        try:
            self._document: Any = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise _refused(name, _why_not_opened(str(exc))) from None
        self.pages = len(self._document)
        if self.pages == 0:
            self.close()
            raise _refused(name, "is a PDF without pages; export the document again")

    def __enter__(self) -> PdfFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release PDFium's document."""
        self._document.close()

    def render(self, limits: PdfLimits) -> Iterator[tuple[int, IO[bytes]]]:
        """Each page as PNG (1-based number, a spooled file the caller closes).

        Raises:
            FileImportError: A page too big at ``limits.dpi``, or one PDFium cannot draw.
        """
        import pypdfium2 as pdfium

        scale = limits.dpi / _POINTS_PER_INCH
        for index in range(self.pages):
            page = self._document[index]
            try:
                width_pt, height_pt = page.get_size()
                width, height = round(width_pt * scale), round(height_pt * scale)
                if width * height > limits.max_pixels:
                    raise _refused(
                        self.name,
                        f"page {index + 1} is {width_pt / 72:.1f} x {height_pt / 72:.1f} "
                        f"inches: {width}x{height} pixels at {limits.dpi} dpi, more than the "
                        f"{limits.max_pixels} a page may have; scale the page down (A4 or "
                        "Letter) and export the PDF again",
                    )
                try:
                    bitmap = page.render(scale=scale)
                    image = bitmap.to_pil()
                except pdfium.PdfiumError as exc:
                    raise _refused(
                        self.name, f"page {index + 1} cannot be drawn ({exc}); export it again"
                    ) from None
                spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - handed to the caller
                with contextlib.ExitStack() as on_error:
                    on_error.callback(spool.close)
                    image.convert("RGB").save(spool, format="PNG", compress_level=3)
                    spool.seek(0)
                    on_error.pop_all()
                yield index + 1, spool
            finally:
                page.close()


def _why_not_opened(message: str) -> str:
    lowered = message.lower()
    if "password" in lowered or "security" in lowered:
        return (
            "is password-protected (encrypted), so its pages cannot be read; save it "
            "without a password (print to PDF) and upload it again"
        )
    return (
        f"starts like a PDF but cannot be opened ({message}); it is damaged or "
        "truncated: export it again"
    )


def _refused(name: str, reason: str) -> FileImportError:
    return FileImportError([FileProblem(name, reason)])
