"""Tasks from files: CSV and TSV with a header row, plain text, and uploaded images.

Pure: the caller reads the bytes; this module decodes them, checks them against the
project's labeling config and turns them into tasks, or refuses them whole with
every problem named by file and line. Images are recognised here by their first
bytes (magic numbers), never by their names; decoding them is the service's job.

- **CSV / TSV**: the first row names the data fields (``text``, ``title``…); each
  further row is one task whose data maps those names to the row's cells (strings,
  as written). Every ``$field`` an object of the config shows must be a column.
  Quoting is the ``csv`` module's (RFC 4180): fields with the delimiter, quotes or
  line breaks inside are quoted, ``""`` is a quote. Blank lines are skipped.
  Optionally one column (``tags_column``) holds the task's tags, comma-separated,
  instead of data.
- **Plain text**: one task per non-blank line (as Label Studio does), or the whole
  file as one task; the text goes into the config's one text field.
- Files are UTF-8 (a byte-order mark is dropped), or UTF-16 with its byte-order mark
  (what spreadsheets save as "Unicode text").
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from annotrain.domain.config import ObjectTag, ProjectSchema
from annotrain.domain.errors import FileImportError, FileProblem
from annotrain.domain.tasks import Task

MAX_PROBLEMS = 1000
#: How many leading bytes :func:`sniff_image` and :func:`describe_content` look at.
SNIFF_BYTES = 16
#: An image id: 128 random bits as lower-case hex (what ``uuid4().hex`` gives).
IMAGE_ID_PATTERN = r"^[0-9a-f]{32}$"
_IMAGE_ID = re.compile(IMAGE_ID_PATTERN)
_API_IMAGE_PATH = re.compile(r"^/api/v1/projects/(\d+)/images/([0-9a-f]{32})$")


class TextSplit(StrEnum):
    """How a plain-text file becomes tasks."""

    LINE = "line"  # one task per non-blank line, as Label Studio imports .txt
    FILE = "file"  # the whole file is one task (a note, a report)


@dataclass(frozen=True, slots=True)
class ImageKind:
    """An image format the lab accepts.

    Attributes:
        name: Its name, as Pillow spells it (``PNG``, ``JPEG``, ``TIFF``).
        content_type: Its media type.
    """

    name: str
    content_type: str


PNG = ImageKind("PNG", "image/png")
JPEG = ImageKind("JPEG", "image/jpeg")
TIFF = ImageKind("TIFF", "image/tiff")
IMAGE_KINDS = (PNG, JPEG, TIFF)
ACCEPTED_IMAGES = "PNG, JPEG or TIFF"

_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
)
# What other files start with, to say what a refused file is.
_OTHER_MAGIC = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"BM", "a BMP image"),
    (b"II+\x00", "a BigTIFF image"),
    (b"MM\x00+", "a BigTIFF image"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "an ELF executable"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"<svg", "an SVG image"),
    (b"<?xml", "an XML document"),
)


def sniff_image(head: bytes) -> ImageKind | None:
    """The accepted image format ``head`` (a file's first bytes) starts, or None."""
    for magic, kind in _IMAGE_MAGIC:
        if head.startswith(magic):
            return kind
    return None


def describe_content(head: bytes) -> str | None:
    """What a file whose first bytes are ``head`` is, when it is a known format."""
    kind = sniff_image(head)
    if kind is not None:
        return f"a {kind.name} image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:12] in (b"ftypavif", b"ftypheic", b"ftypmif1"):
        return "an AVIF or HEIC image"
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            return what
    return None


def image_key(project_id: int, image_id: str) -> str:
    """The blob key of a project's verified image."""
    return f"projects/{project_id}/images/{_checked_image_id(image_id)}"


# Where presigned uploads land until confirmed: one top-level prefix, so the bucket's
# lifecycle rule (a prefix filter, not a glob) expires those never confirmed.
UPLOADS_PREFIX = "uploads/"


def upload_key(project_id: int, upload_id: str) -> str:
    """The blob key a presigned upload lands at, before it is checked.

    Under :data:`UPLOADS_PREFIX`, not under the project's folder: S3 expires the
    uploads nobody confirmed by that prefix (infra/storage.py).
    """
    return f"{UPLOADS_PREFIX}{project_id}/{_checked_image_id(upload_id)}"


def image_reference(project_id: int, image_id: str) -> str:
    """What a task's image field holds: the API path that serves the image."""
    return f"/api/v1/projects/{project_id}/images/{_checked_image_id(image_id)}"


def image_key_of_reference(reference: str) -> str | None:
    """The blob key an image field made by :func:`image_reference` points at, else None.

    For jobs that read task images from the blob store rather than through the API.
    """
    match = _API_IMAGE_PATH.fullmatch(reference)
    if match is None:
        return None
    return image_key(int(match.group(1)), match.group(2))


def image_id_of_reference(reference: object) -> tuple[int, str] | None:
    """The project id and image id an image field made by :func:`image_reference` names."""
    if not isinstance(reference, str):
        return None
    match = _API_IMAGE_PATH.fullmatch(reference)
    if match is None:
        return None
    return int(match.group(1)), match.group(2)


def image_fields(schema: ProjectSchema) -> list[str]:
    """The data fields the config's ``<Image>`` objects show, in order."""
    return [
        key
        for key, objects in data_fields(schema).items()
        if any(o.tag == "Image" for o in objects)
    ]


def task_image_ids(data: Mapping[str, Any], schema: ProjectSchema, project_id: int) -> list[str]:
    """The ids of the project's uploaded images a task's image fields show.

    A reference to another project's image is not the task's: jobs of this project
    never read it (a JSON import may name any path).
    """
    found: list[str] = []
    for field in image_fields(schema):
        parsed = image_id_of_reference(data.get(field))
        if parsed is not None and parsed[0] == project_id and parsed[1] not in found:
            found.append(parsed[1])
    return found


def is_image_id(value: str) -> bool:
    """Whether ``value`` can be an image or upload id."""
    return _IMAGE_ID.fullmatch(value) is not None


def _checked_image_id(image_id: str) -> str:
    if not is_image_id(image_id):
        raise ValueError(f"{image_id!r} is not an image id (32 lower-case hex digits)")
    return image_id


def data_fields(schema: ProjectSchema) -> dict[str, list[ObjectTag]]:
    """The task data fields the config's objects show (``$text`` → ``text``), in order."""
    fields: dict[str, list[ObjectTag]] = {}
    for obj in schema.objects.values():
        key = obj.data_key
        if key is not None:
            fields.setdefault(key, []).append(obj)
    return fields


def image_field(schema: ProjectSchema) -> str:
    """The data field an uploaded image goes into: the config's one ``<Image value="$…">``.

    Raises:
        FileImportError: The config shows no image, or other fields an image alone
            cannot fill (then the fix is a JSON or CSV import naming every field).
    """
    fields = data_fields(schema)
    images = [key for key, objects in fields.items() if any(o.tag == "Image" for o in objects)]
    if len(images) == 1 and len(fields) == 1:
        return images[0]
    shown = _describe_fields(fields)
    if not images:
        reason = (
            f'the labeling config shows no <Image value="$…"> for an image to go into '
            f"(it shows {shown}); add one, or import these tasks as JSON or CSV"
        )
    else:
        reason = (
            f"the labeling config shows several fields ({shown}), and an image upload fills "
            "only one; import JSON or CSV rows naming every field (with image URLs), or "
            'use a config with one <Image value="$image">'
        )
    raise FileImportError([FileProblem("(labeling config)", reason)])


def decode_text(raw: bytes, filename: str) -> str:
    """A text file's content: UTF-8 (its BOM dropped) or UTF-16 with a BOM.

    Raises:
        FileImportError: The bytes are not text in those encodings, or hold a NUL
            (a binary file); names the line and byte.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding, body = "utf-16", raw
    else:
        encoding, body = "utf-8", raw.removeprefix(b"\xef\xbb\xbf")
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1 if encoding == "utf-8" else None
        raise FileImportError(
            [
                FileProblem(
                    filename,
                    f"is not valid {encoding.upper()} text (byte {exc.start}: {exc.reason}); "
                    "save it as UTF-8 (in a spreadsheet: CSV UTF-8) and upload it again",
                    line,
                )
            ]
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        raise FileImportError(
            [
                FileProblem(
                    filename,
                    "holds a NUL character, so it is a binary file rather than text; "
                    "upload CSV, TSV or plain text saved as UTF-8",
                    text.count("\n", 0, nul) + 1,
                )
            ]
        )
    return text


def tasks_from_delimited(
    text: str,
    schema: ProjectSchema,
    *,
    filename: str,
    delimiter: str = ",",
    tags_column: str | None = None,
) -> list[Task]:
    """Tasks from CSV (``delimiter=","``) or TSV (``"\\t"``) text with a header row.

    Args:
        text: The decoded file.
        schema: The project's labeling config: every ``$field`` its objects show
            must be a column.
        filename: The file's name, for the errors.
        delimiter: The field separator.
        tags_column: A column that holds the task's tags (comma-separated) rather
            than data, or None.

    Returns:
        One task per row, in file order.

    Raises:
        FileImportError: Every problem, by line: no header, an empty or repeated
            column name, a missing column, a row with too many or too few cells,
            broken quoting.
    """
    kind = "TSV" if delimiter == "\t" else "CSV"
    problems: list[FileProblem] = []

    def refuse(reason: str, line: int | None) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(FileProblem(filename, reason, line))

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    header_line = 1
    start = 1
    try:
        for row in reader:
            if row:  # the csv module gives [] for a blank line
                if header is None:
                    header, header_line = [name.strip() for name in row], start
                else:
                    rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        if "field limit" in str(exc):
            reason = (
                f"has a field over {csv.field_size_limit()} characters, more than a {kind} "
                "cell may hold; import long texts as .txt files (text_split=file) or JSON"
            )
        else:
            reason = (
                f"is not valid {kind} here ({exc}); quote fields that hold the delimiter, "
                'quotes or line breaks, and double quotes inside them ("")'
            )
        refuse(reason, start)
        raise FileImportError(problems) from None
    if header is None:
        raise FileImportError(
            [
                FileProblem(
                    filename, f"is empty: a {kind} file needs a header row, then a row per task", 1
                )
            ]
        )

    columns = _check_header(header, schema, tags_column, kind, lambda r: refuse(r, header_line))
    tasks: list[Task] = []
    for line, row in rows:
        if len(row) != len(header):
            refuse(
                f"has {len(row)} fields but the header has {len(header)}; "
                f"quote fields that hold the delimiter ({_delimiter_name(delimiter)}) and "
                "give every row one cell per column (empty cells are fine)",
                line,
            )
            continue
        data = {name: value for name, value in zip(header, row, strict=True) if name in columns}
        tags: tuple[str, ...] = ()
        if tags_column is not None and tags_column in header:
            raw_tags = row[header.index(tags_column)]
            tags = tuple(t.strip() for t in raw_tags.split(",") if t.strip())
        tasks.append(Task(None, data, tags=tags))
    if problems:
        raise FileImportError(problems)
    if not tasks:
        raise FileImportError(
            [FileProblem(filename, "has a header but no rows: add a row per task", header_line)]
        )
    return tasks


def _check_header(
    header: list[str],
    schema: ProjectSchema,
    tags_column: str | None,
    kind: str,
    refuse: Callable[[str], None],
) -> frozenset[str]:
    """The data columns; reports empty, repeated and missing column names."""
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if not name:
            refuse(f"column {position} of the header has no name; name every column")
        elif name in seen:
            refuse(f"the header names column {name!r} twice; give each column its own name")
        seen.add(name)
    if tags_column is not None and tags_column not in seen:
        refuse(
            f"tags_column {tags_column!r} is not a column; the header has "
            f"{', '.join(map(repr, header))}"
        )
    columns = frozenset(seen - {tags_column})
    for key, objects in data_fields(schema).items():
        if key not in columns:
            obj = objects[0]
            refuse(
                f'the labeling config\'s <{obj.tag} name="{obj.name}" value="${key}"> '
                f"needs a column {key!r}, and the header has "
                f"{', '.join(map(repr, header))}; name a column {key!r} in the first row "
                f"of the {kind} (or change the config's value to one of the columns)"
            )
    return columns


def tasks_from_text(
    text: str, schema: ProjectSchema, *, filename: str, split: TextSplit = TextSplit.LINE
) -> list[Task]:
    """Tasks from plain text: a task per non-blank line, or the file as one task.

    Lines are taken as written, without their line break (``\\n`` or ``\\r\\n``);
    lines of only whitespace are skipped.

    Raises:
        FileImportError: The config has no text field, or fields a line alone
            cannot fill; the file holds no text.
    """
    field = _text_field(schema)
    if split is TextSplit.FILE:
        if not text.strip():
            raise FileImportError(
                [FileProblem(filename, "holds no text; upload a file with the task's text")]
            )
        return [Task(None, {field: text})]
    tasks = [
        Task(None, {field: line.removesuffix("\r")}) for line in text.split("\n") if line.strip()
    ]
    if not tasks:
        raise FileImportError(
            [
                FileProblem(
                    filename,
                    "holds no text: every line is blank; upload a file with a task per line",
                )
            ]
        )
    return tasks


def _text_field(schema: ProjectSchema) -> str:
    fields = data_fields(schema)
    texts = [key for key, objects in fields.items() if all(o.is_text for o in objects)]
    if len(fields) == 1 and len(texts) == 1:
        return texts[0]
    shown = _describe_fields(fields)
    if not texts:
        reason = (
            f'the labeling config shows no <Text value="$…"> for the text to go into '
            f"(it shows {shown}); import images, or JSON or CSV naming the fields"
        )
    else:
        reason = (
            f"the labeling config shows several fields ({shown}), and a line of text can "
            "fill only one; upload CSV or TSV with a header row naming each field "
            "(or JSON)"
        )
    raise FileImportError([FileProblem("(labeling config)", reason)])


def _describe_fields(fields: dict[str, list[ObjectTag]]) -> str:
    if not fields:
        return "no $field at all"
    return ", ".join(f'<{objs[0].tag} value="${key}">' for key, objs in fields.items())


def _delimiter_name(delimiter: str) -> str:
    return "a tab" if delimiter == "\t" else repr(delimiter)
