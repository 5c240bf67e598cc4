"""Synthetic invoices: PNG pages drawn with PIL and their gold rectangles, for tests and benchmarks.

Our own forms, so tests and benchmarks need no downloaded data set: each page is an
invoice with a vendor, a customer, an invoice number, dates, line items, a total
and an IBAN, laid out at random but deterministically for a seed. The fields a
Visual NER model learns are returned with their boxes, as Label Studio
completions for :data:`LABELING_CONFIG` (Image + RectangleLabels + a per-region
TextArea transcription: Label Studio's OCR template shape), in percent coordinates.

The font is Pillow's own scalable default (``ImageFont.load_default(size=…)``,
Pillow ≥ 10.1 with FreeType), so a page looks the same wherever the same Pillow
draws it; no system font is needed.

It lives under ``batch_jobs/visual`` (not ``tests/``) because three places use it:
the tests, ``benchmarks/visual_ner.py`` and the Visual NER training code's own
checks. It needs Pillow only (the ``ml`` and ``api`` extras both have it).
"""

from __future__ import annotations

import hashlib
import io
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from annotrain.domain.layout import Region, region_result_items
from annotrain.domain.ocr import OcrPage, OcrWord

#: The entity labels a form's gold rectangles carry.
LABELS = ("Vendor", "Customer", "InvoiceNumber", "InvoiceDate", "DueDate", "Total", "IBAN")
#: A labeling config for these forms: Label Studio's OCR template, with RectangleLabels.
LABELING_CONFIG = (
    "<View>\n"
    '  <Image name="image" value="$image" zoom="true"/>\n'
    '  <RectangleLabels name="label" toName="image">\n'
    + "".join(f'    <Label value="{label}"/>\n' for label in LABELS)
    + "  </RectangleLabels>\n"
    '  <TextArea name="transcription" toName="image" editable="true" perRegion="true"'
    ' displayMode="region-list" placeholder="Recognized text"/>\n'
    "</View>\n"
)
#: A page at 150 dpi on A4 (what the lab renders PDFs at).
A4_150_DPI = (1240, 1754)
_BOX_PADDING = 4

_FIRST = ("Nordwind", "Alpen", "Blue Harbor", "Kestrel", "Meridian", "Oakfield", "Solaris",
          "Tidewater", "Granite", "Lumen", "Vesta", "Copperline", "Brightwater",
          "Falkner")  # fmt: skip
_SECOND = ("Logistics", "Consulting", "Software", "Trading", "Engineering", "Print Works",
           "Foods", "Analytics", "Textiles", "Medical Supply")  # fmt: skip
_FORMS = ("GmbH", "Ltd", "S.A.", "S.p.A.", "ApS", "SRL", "Inc.", "Lda")
_PEOPLE = ("Anna Berger", "Lucas Moreau", "Sofia Rossi", "Mads Jensen", "Ioana Popescu",
           "Joao Almeida", "Carmen Ortega", "Henry Walsh", "Greta Lindqvist",
           "Pavel Novak")  # fmt: skip
_ITEMS = ("Consulting hours", "Cloud hosting", "Office chairs", "Printer toner",
          "Annual support", "Training day", "Freight", "Laptop stand", "Licence fee")  # fmt: skip
_IBAN_COUNTRIES = (("DE", 18), ("ES", 20), ("PT", 21), ("IT", 23), ("DK", 14), ("RO", 20))
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip


@dataclass(frozen=True, slots=True)
class GoldField:
    """One labelled field on a page.

    Attributes:
        label: Its entity label (one of :data:`LABELS`).
        text: The words drawn.
        box: Its box in pixels: ``(left, top, right, bottom)``, padded a little.
    """

    label: str
    text: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class SyntheticForm:
    """A drawn invoice and its gold fields.

    Attributes:
        image: The page (RGB).
        fields: The labelled fields, top to bottom.
        seed: The seed it was drawn from.
    """

    image: Image.Image
    fields: tuple[GoldField, ...]
    seed: int
    drawn: tuple[OcrWord, ...] = ()

    def drawn_page(self) -> OcrPage:
        """What a perfect OCR would read: every drawn word with its exact box, line by line.

        For GPU tests and benchmarks on machines without Tesseract; it is labelled
        ``engine="synthetic"`` so it is never mistaken for a Tesseract record.
        """
        width, height = self.size
        digest = hashlib.sha256(self.png()).hexdigest()
        return OcrPage(width, height, self.drawn, "eng", "synthetic", digest)

    @property
    def size(self) -> tuple[int, int]:
        """The page's width and height in pixels."""
        width, height = self.image.size
        return width, height

    def png(self) -> bytes:
        """The page as PNG bytes."""
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()

    def regions(self) -> list[Region]:
        """The gold rectangles in percent, with their text."""
        width, height = self.size
        return [
            Region(
                label=f.label,
                x=100.0 * f.box[0] / width,
                y=100.0 * f.box[1] / height,
                width=100.0 * (f.box[2] - f.box[0]) / width,
                height=100.0 * (f.box[3] - f.box[1]) / height,
                text=f.text,
            )
            for f in self.fields
        ]

    def result(self) -> list[dict[str, Any]]:
        """The gold completion's Label Studio result: a rectangle and a transcription per field."""
        width, height = self.size
        items: list[dict[str, Any]] = []
        for number, region in enumerate(self.regions(), start=1):
            items.extend(
                region_result_items(
                    region,
                    region_id=f"s{self.seed}r{number}",
                    from_name="label",
                    to_name="image",
                    width=width,
                    height=height,
                    text_from_name="transcription",
                )
            )
        return items

    def task(self, image_reference: str) -> dict[str, Any]:
        """A Label Studio task showing this page at ``image_reference``, with its completion."""
        return {"data": {"image": image_reference}, "annotations": [{"result": self.result()}]}


def generate_form(seed: int, *, size: tuple[int, int] = A4_150_DPI) -> SyntheticForm:
    """Draw one invoice; the same seed (and Pillow) draws the same page.

    Args:
        seed: Chooses the content and the layout.
        size: The page's width and height in pixels (A4 at 150 dpi by default).
    """
    rng = random.Random(seed)  # noqa: S311 - layouts, not secrets
    width, height = size
    scale = width / A4_150_DPI[0]
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    body_size = max(10, round(rng.randint(22, 28) * scale))
    title_size = max(14, round(rng.randint(44, 56) * scale))
    body = ImageFont.load_default(size=body_size)
    title = ImageFont.load_default(size=title_size)
    line_gap = round(rng.uniform(1.6, 2.0) * body_size)
    margin = round(rng.uniform(0.06, 0.1) * width)
    fields: list[GoldField] = []

    lines: dict[int, list[tuple[int, str, tuple[int, int, int, int]]]] = {}

    def write(x: int, y: int, text: str, font: Any = body) -> tuple[int, int, int, int]:
        draw.text((x, y), text, fill="black", font=font)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        at = 0
        for word in text.split(" "):
            if word:
                start = x + round(font.getlength(text[:at]))
                w_left, w_top, w_right, w_bottom = draw.textbbox((start, y), word, font=font)
                box = (int(w_left), int(w_top), int(w_right), int(w_bottom))
                lines.setdefault(y, []).append((box[0], word, box))
            at += len(word) + 1
        return int(left), int(top), int(right), int(bottom)

    def field(x: int, y: int, label: str, text: str) -> int:
        left, top, right, bottom = write(x, y, text)
        p = _BOX_PADDING
        box = (max(0, left - p), max(0, top - p), min(width, right + p), min(height, bottom + p))
        fields.append(GoldField(label, text, box))
        return right

    vendor = _company(rng)
    customer = rng.choice((_company(rng), rng.choice(_PEOPLE)))
    issued = date(2020, 1, 1) + timedelta(days=rng.randrange(6 * 365))
    due = issued + timedelta(days=rng.choice((14, 30, 45, 60)))
    date_style = rng.randrange(3)
    number = f"{rng.choice(('INV', 'RE', 'F', 'FAT'))}-{issued.year}-{rng.randint(1, 99999):05d}"

    y = margin
    vendor_right = rng.random() < 0.5
    vendor_x = width - margin - round(body.getlength(vendor)) if vendor_right else margin
    field(vendor_x, y, "Vendor", vendor)
    street = f"{rng.randint(1, 250)} {rng.choice(('Harbour', 'Station', 'Mill', 'Linden'))} Road"
    write(vendor_x if not vendor_right else width - margin - round(body.getlength(street)),
          y + line_gap, street)  # fmt: skip
    y += 3 * line_gap
    write(margin, y, "INVOICE", title)
    y += round(title_size * 1.8)

    label_x = margin
    value_x = margin + round(rng.uniform(0.22, 0.3) * width)
    meta = [("Invoice number:", "InvoiceNumber", number),
            ("Invoice date:", "InvoiceDate", _date(issued, date_style)),
            ("Due date:", "DueDate", _date(due, date_style))]  # fmt: skip
    rng.shuffle(meta)
    for caption, label, value in meta:
        write(label_x, y, caption)
        field(value_x, y, label, value)
        y += line_gap
    y += line_gap
    write(margin, y, "Bill to:")
    field(value_x, y, "Customer", customer)
    y += 2 * line_gap

    total = 0.0
    write(margin, y, "Description")
    qty_x, price_x = round(width * 0.55), round(width * 0.72)
    write(qty_x, y, "Qty")
    write(price_x, y, "Amount")
    y += line_gap
    for _ in range(rng.randint(2, 5)):
        quantity = rng.randint(1, 20)
        price = rng.randint(500, 50000) / 100
        total += quantity * price
        write(margin, y, rng.choice(_ITEMS))
        write(qty_x, y, str(quantity))
        write(price_x, y, f"{quantity * price:,.2f}")
        y += line_gap
    y += line_gap
    write(qty_x, y, "Total:")
    field(price_x, y, "Total", f"{total:,.2f} {rng.choice(('EUR', 'DKK', 'RON'))}")
    y += 2 * line_gap
    write(margin, y, "IBAN:")
    field(value_x, y, "IBAN", _iban(rng))
    y += line_gap
    write(margin, y, f"Please pay within {(due - issued).days} days. Thank you!")
    if y + line_gap > height:
        raise ValueError(f"a {width}x{height} page is too small for this form; make it taller")
    drawn = tuple(
        OcrWord(word, box[0], box[1], box[2] - box[0], box[3] - box[1], 100.0, number)
        for number, y_line in enumerate(sorted(lines))
        for _, word, box in sorted(lines[y_line])
    )
    ordered = tuple(sorted(fields, key=lambda f: (f.box[1], f.box[0])))
    return SyntheticForm(image, ordered, seed, drawn)


def generate_forms(
    count: int, *, seed: int = 0, size: tuple[int, int] = A4_150_DPI
) -> list[SyntheticForm]:
    """``count`` forms drawn from seeds ``seed``, ``seed + 1``…"""
    return [generate_form(seed + n, size=size) for n in range(count)]


def form_words(form: SyntheticForm) -> Sequence[str]:
    """The words of the form's gold fields (what OCR must find)."""
    return [word for f in form.fields for word in f.text.split()]


def _company(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {rng.choice(_FORMS)}"


def _date(day: date, style: int) -> str:
    if style == 0:
        return day.isoformat()
    if style == 1:
        return day.strftime("%d.%m.%Y")
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"


def _iban(rng: random.Random) -> str:
    """A well-formed IBAN (mod-97 check digits) for a random account, in groups of four."""
    country, length = rng.choice(_IBAN_COUNTRIES)
    account = "".join(rng.choice(string.digits) for _ in range(length))
    digits = "".join(str(int(c, 36)) for c in account + country + "00")
    check = 98 - int(digits) % 97
    iban = f"{country}{check:02d}{account}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
