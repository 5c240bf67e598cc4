"""Task imports from files: CSV, TSV, plain text, Label Studio JSON files, and images.

Importing is for Owners, Managers and admins, as the JSON import is. Every import
is all or nothing: every file is read and checked first (text parsed against the
labeling config; images recognised by their first bytes, then opened and verified
by Pillow within pixel and byte limits), then the images are written to the blob
store and the tasks to the task store in one batch. When any write fails, the
images already written are deleted again, so a refused or failed request leaves
neither tasks nor files behind.

Images live at ``projects/<project id>/images/<image id>`` (128 random bits as hex)
and a task's image field holds the API path that serves them
(:func:`annotrain.domain.task_files.image_reference`). A presigned upload lands at
``uploads/<project id>/<upload id>`` and is copied to the image key only
once confirmed and checked, so the API never serves what it has not checked.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, BinaryIO, Protocol, cast

from annotrain.domain.config import ProjectSchema, parse_labeling_config
from annotrain.domain.errors import (
    AnnotrainError,
    FileImportError,
    FileProblem,
    ImageCheckUnavailableError,
    InvalidRequestError,
    NotFoundError,
    PresignUnavailableError,
    TaskImportError,
)
from annotrain.domain.labelstudio import load_tasks
from annotrain.domain.task_files import (
    ACCEPTED_IMAGES,
    IMAGE_KINDS,
    PNG,
    SNIFF_BYTES,
    ImageKind,
    TextSplit,
    decode_text,
    describe_content,
    image_field,
    image_key,
    image_reference,
    sniff_image,
    tasks_from_delimited,
    tasks_from_text,
    upload_key,
)
from annotrain.domain.tasks import Task
from annotrain.ports import BlobInfo, BlobStore, PresignedUrls, ProjectStore, TaskStore
from annotrain.services.access import ANY_MEMBER, MANAGERS, Principal, authorize
from annotrain.services.pdf_pages import PDF_MAGIC, PdfFile, PdfLimits

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "ImportLimits",
    "PresignedUpload",
    "UploadedFile",
    "confirm_image_uploads",
    "import_files",
    "open_image",
    "presign_image_upload",
    "upload_pages",
]

_log = logging.getLogger(__name__)

#: Pillow's own decompression-bomb threshold (``Image.MAX_IMAGE_PIXELS``): about a
#: quarter of a gigabyte of pixels at 24 bits, far beyond any scanned page.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
_COPY_CHUNK = 1024 * 1024
_TEXT_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "text", ".json": "json"}
_TEXT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
    "text/plain": "text",
    "application/json": "json",
}
_IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".gif", ".bmp", ".webp", ".heic", ".avif"}
)


class _Stores(ProjectStore, TaskStore, Protocol):
    """What these use cases need: a project store that keeps tasks too."""


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file from a form upload.

    Attributes:
        name: Its name as the client gave it (only for messages and ``file_upload``).
        content_type: The media type the client declared, if any (only a hint
            for text formats; images are recognised by content).
        stream: Its bytes: readable and seekable.
    """

    name: str
    content_type: str | None
    stream: BinaryIO


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """How big what an import reads may be.

    Attributes:
        max_text_bytes: The largest CSV, TSV, text or JSON file.
        max_image_bytes: The largest image file.
        max_image_pixels: The most pixels an image may have (width x height).
    """

    max_text_bytes: int
    max_image_bytes: int
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass(frozen=True, slots=True)
class PresignedUpload:
    """Where and how a client uploads one image directly to the bucket.

    Attributes:
        upload_id: What to confirm once the upload is done.
        url: Where to POST the form.
        fields: The form fields to send, before the file (as ``file``).
        content_type: The media type the upload must declare.
        max_bytes: The largest file the URL accepts.
        expires_in: Seconds the URL works for.
    """

    upload_id: str
    url: str
    fields: dict[str, str]
    content_type: str
    max_bytes: int
    expires_in: int


@dataclass(frozen=True, slots=True)
class _Image:
    """A checked image, ready to be written."""

    image_id: str
    kind: ImageKind
    stream: IO[bytes]


def import_files(
    store: _Stores,
    blobs: BlobStore,
    principal: Principal,
    project_id: int,
    files: Sequence[UploadedFile],
    *,
    limits: ImportLimits,
    text_split: TextSplit = TextSplit.LINE,
    tags_column: str | None = None,
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> list[Task]:
    """Import tasks from uploaded files, all or none (Owner, Manager, admin).

    Each file is an image (PNG, JPEG or TIFF, recognised by its content: one task
    each, its image field pointing at the stored image), or, by its name or
    declared type, CSV, TSV, plain text or Label Studio JSON.

    Raises:
        FileImportError: Some files were refused; lists every problem by file
            and line, stores nothing.
        InvalidRequestError: No file, or files without a single task.
    """
    project = authorize(store, principal, project_id, MANAGERS, "importing tasks")
    if not files:
        raise InvalidRequestError("files", "upload at least one file")
    schema = parse_labeling_config(project.label_config)
    problems: list[FileProblem] = []
    tasks: list[Task] = []
    images: list[_Image] = []
    for upload in files:
        try:
            found, image = _read_file(upload, schema, limits, text_split, tags_column, new_id)
        except FileImportError as exc:
            # A config problem (no image field) is the same for every image: once.
            problems.extend(p for p in exc.problems if p not in problems)
            continue
        if image is not None:
            found = [_image_task(project_id, schema, image, upload.name)]
            images.append(image)
        tasks.extend(found)
    if problems:
        raise FileImportError(problems)
    if not tasks:
        raise InvalidRequestError("files", "the files hold no task")
    return _store_all(store, blobs, project_id, tasks, images)


def upload_pages(
    store: _Stores,
    blobs: BlobStore,
    principal: Principal,
    project_id: int,
    files: Sequence[UploadedFile],
    *,
    limits: ImportLimits,
    pdf: PdfLimits,
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> list[Task]:
    """Images and PDFs as image tasks, all or none (Owner, Manager, admin).

    Each image (PNG, JPEG, TIFF by content) is one task, checked as an import's
    images are; each PDF (``%PDF-``) is opened and every page rendered to a PNG at
    ``pdf.dpi``, one task per page whose data keeps the ``document`` name and the
    ``page`` number. Everything is read and rendered before anything is written.

    Raises:
        FileImportError: Files refused (not an image or PDF, damaged, encrypted, too
            big, too many pages); names each and the fix, stores nothing.
        InvalidRequestError: No file.
    """
    project = authorize(store, principal, project_id, MANAGERS, "uploading images")
    if not files:
        raise InvalidRequestError("files", "upload at least one image or PDF")
    schema = parse_labeling_config(project.label_config)
    field_problem = _image_field_problem(schema)
    if field_problem is not None:
        raise FileImportError([field_problem])
    field = image_field(schema)
    problems: list[FileProblem] = []
    pages = 0
    with contextlib.ExitStack() as cleanup:
        entries: list[tuple[UploadedFile, _Image | PdfFile]] = []
        for upload in files:
            try:
                entry = _read_page_file(upload, limits, new_id)
            except FileImportError as exc:
                problems.extend(exc.problems)
                continue
            if isinstance(entry, PdfFile):
                cleanup.enter_context(entry)
                pages += entry.pages
                if pages > pdf.max_pages:
                    problems.append(
                        FileProblem(
                            upload.name,
                            f"has {entry.pages} page(s), which brings this upload to {pages}, "
                            f"more than the {pdf.max_pages} one upload may render "
                            "(ANNOTRAIN_MAX_PDF_PAGES); split the PDF, or upload it in "
                            "requests of its own",
                        )
                    )
                    continue
            entries.append((upload, entry))
        if problems:
            raise FileImportError(problems)
        tasks: list[Task] = []
        images: list[_Image] = []
        for upload, entry in entries:
            if isinstance(entry, _Image):
                tasks.append(_image_task(project_id, schema, entry, upload.name))
                images.append(entry)
                continue
            try:
                for number, stream in entry.render(pdf):
                    cleanup.callback(stream.close)
                    image = _Image(new_id(), PNG, stream)
                    data = {
                        field: image_reference(project_id, image.image_id),
                        "document": upload.name,
                        "page": number,
                    }
                    tasks.append(Task(None, data, extra={"file_upload": upload.name}))
                    images.append(image)
            except FileImportError as exc:
                problems.extend(exc.problems)
        if problems:
            raise FileImportError(problems)
        return _store_all(store, blobs, project_id, tasks, images)


def _read_page_file(
    upload: UploadedFile, limits: ImportLimits, new_id: Callable[[], str]
) -> _Image | PdfFile:
    """A checked image, or an opened PDF; else refused with what the file is."""
    stream = upload.stream
    head = _head(stream)
    size = _size(stream)
    kind = "a PDF" if head.startswith(PDF_MAGIC) else "an image"
    if size > limits.max_image_bytes:
        raise _refuse(
            upload.name,
            f"is {size} bytes, more than the {limits.max_image_bytes} {kind} may have "
            "(ANNOTRAIN_MAX_IMAGE_BYTES); split or compress it",
        )
    if sniff_image(head) is not None:
        return _Image(new_id(), _check_image(stream, upload.name, limits), stream)
    if head.startswith(PDF_MAGIC):
        return PdfFile(stream.read(), upload.name)
    what = describe_content(head) or "of no format the upload takes"
    raise _refuse(
        upload.name,
        f"is {what}; upload {ACCEPTED_IMAGES} images or PDF documents (recognised by "
        "their content), one task per image or PDF page",
    )


def presign_image_upload(
    store: _Stores,
    blobs: BlobStore,
    principal: Principal,
    project_id: int,
    content_type: str,
    *,
    limits: ImportLimits,
    expires_in: int = 900,
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> PresignedUpload:
    """A presigned form for a client to upload one image to the bucket (Owner, Manager, admin).

    Raises:
        PresignUnavailableError: The blob store cannot presign (a folder).
        InvalidRequestError: The content type is not an accepted image type.
    """
    authorize(store, principal, project_id, MANAGERS, "importing tasks")
    if content_type not in {kind.content_type for kind in IMAGE_KINDS}:
        accepted = ", ".join(kind.content_type for kind in IMAGE_KINDS)
        raise InvalidRequestError(
            "content_type", f"{content_type!r} is not an image type the lab takes: give {accepted}"
        )
    if not isinstance(blobs, PresignedUrls):
        raise PresignUnavailableError(
            "presign an upload",
            f"upload the images in a form to POST /api/v1/projects/{project_id}/tasks/import/files",
        )
    upload_id = new_id()
    url, fields = blobs.upload_url(
        upload_key(project_id, upload_id),
        content_type=content_type,
        max_bytes=limits.max_image_bytes,
        expires_in=expires_in,
    )
    return PresignedUpload(upload_id, url, fields, content_type, limits.max_image_bytes, expires_in)


def confirm_image_uploads(
    store: _Stores,
    blobs: BlobStore,
    principal: Principal,
    project_id: int,
    upload_ids: Sequence[str],
    *,
    limits: ImportLimits,
) -> list[Task]:
    """Check presigned uploads and make a task of each, all or none (Owner, Manager, admin).

    Each upload is read back and checked as a form upload is (content, size,
    pixels, Pillow), and must be of the type it was presigned for. Uploads whose
    content is refused are deleted (they can never be confirmed); the others stay,
    to confirm again without the refused ones. Confirmed uploads are moved to
    their image key.

    Raises:
        FileImportError: An upload is missing or refused; stores nothing.
        InvalidRequestError: No upload id, or one given twice.
    """
    project = authorize(store, principal, project_id, MANAGERS, "importing tasks")
    if not upload_ids:
        raise InvalidRequestError("upload_ids", "give at least one upload id")
    if len(set(upload_ids)) != len(upload_ids):
        raise InvalidRequestError("upload_ids", "an upload id is given twice; give each once")
    schema = parse_labeling_config(project.label_config)
    field_problem = _image_field_problem(schema)
    if field_problem is not None:
        raise FileImportError([field_problem])
    problems: list[FileProblem] = []
    refused: list[str] = []
    images: list[_Image] = []
    with contextlib.ExitStack() as cleanup:
        for upload_id in upload_ids:
            key = upload_key(project_id, upload_id)
            try:
                info = blobs.head(key)
            except NotFoundError:
                problems.append(
                    FileProblem(
                        upload_id,
                        "was not uploaded, or not to this "
                        "project; POST the file with the presigned URL and "
                        "fields first, then confirm",
                    )
                )
                continue
            spool = cleanup.enter_context(tempfile.SpooledTemporaryFile(max_size=_COPY_CHUNK))
            try:
                _copy_bounded(blobs, key, spool, limits.max_image_bytes, upload_id)
                kind = _check_image(spool, upload_id, limits)
                if kind.content_type != info.content_type.partition(";")[0].strip():
                    raise _refuse(
                        upload_id,
                        f"is a {kind.name} image but was presigned as "
                        f"{info.content_type}; presign it as {kind.content_type}",
                    )
            except FileImportError as exc:
                problems.extend(exc.problems)
                refused.append(key)
                continue
            images.append(_Image(upload_id, kind, spool))
        if problems:
            for key in refused:
                blobs.delete(key)
            raise FileImportError(problems)
        tasks = [_image_task(project_id, schema, image, None) for image in images]
        stored = _store_all(store, blobs, project_id, tasks, images)
    for upload_id in upload_ids:
        _delete_quietly(blobs, upload_key(project_id, upload_id))
    return stored


def open_image(
    store: _Stores, blobs: BlobStore, principal: Principal, project_id: int, image_id: str
) -> tuple[BinaryIO, BlobInfo]:
    """A project's image and its size and type (any member, admin); the caller closes it.

    Raises:
        NotFoundError: No such image in this project.
    """
    authorize(store, principal, project_id, ANY_MEMBER, "reading images")
    try:
        key = image_key(project_id, image_id)
    except ValueError:
        raise NotFoundError("image", image_id) from None
    try:
        info = blobs.head(key)
        return blobs.open(key), info
    except NotFoundError:
        raise NotFoundError("image", image_id) from None


def _read_file(
    upload: UploadedFile,
    schema: ProjectSchema,
    limits: ImportLimits,
    text_split: TextSplit,
    tags_column: str | None,
    new_id: Callable[[], str],
) -> tuple[list[Task], _Image | None]:
    """The tasks a file holds, or the checked image it is."""
    name = upload.name
    stream = upload.stream
    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    stream.seek(0)
    if sniff_image(head) is not None:
        field_problem = _image_field_problem(schema)
        if field_problem is not None:
            raise FileImportError([field_problem])
        size = _size(stream)
        if size > limits.max_image_bytes:
            raise _refuse(
                name,
                f"is {size} bytes, more than the {limits.max_image_bytes} an "
                "image may have (ANNOTRAIN_MAX_IMAGE_BYTES); downscale or compress "
                "it",
            )
        kind = _check_image(stream, name, limits)
        return [], _Image(new_id(), kind, stream)
    text_format = _text_format(upload)
    what = describe_content(head)
    suffix = PurePosixPath(name).suffix.lower()
    if text_format is None or what is not None:
        if what is None and suffix in _IMAGE_SUFFIXES:
            what = "not an image by its content"
        shown = f"is {what}" if what else "is of no format the import takes"
        pdf_hint = (
            " (PDFs become a task per page through POST …/tasks/upload)"
            if head.startswith(PDF_MAGIC)
            else ""
        )
        raise _refuse(
            name,
            f"{shown}; upload {ACCEPTED_IMAGES} images (recognised by their "
            "content), or CSV (.csv), TSV (.tsv), plain text (.txt) or Label Studio "
            f"JSON (.json){pdf_hint}",
        )
    size = _size(stream)
    if size > limits.max_text_bytes:
        raise _refuse(
            name,
            f"is {size} bytes, more than the {limits.max_text_bytes} a "
            f"{text_format.upper()} file may have (ANNOTRAIN_MAX_JSON_BYTES); split "
            "it into smaller files",
        )
    raw = stream.read()
    if text_format == "json":
        try:
            return load_tasks(raw, schema), None
        except TaskImportError as exc:
            raise FileImportError([FileProblem(name, str(p)) for p in exc.problems]) from None
    text = decode_text(raw, name)
    if text_format == "text":
        return tasks_from_text(text, schema, filename=name, split=text_split), None
    delimiter = "\t" if text_format == "tsv" else ","
    found = tasks_from_delimited(
        text, schema, filename=name, delimiter=delimiter, tags_column=tags_column
    )
    return found, None


def _text_format(upload: UploadedFile) -> str | None:
    by_name = _TEXT_SUFFIXES.get(PurePosixPath(upload.name).suffix.lower())
    if by_name is not None:
        return by_name
    declared = (upload.content_type or "").partition(";")[0].strip().lower()
    return _TEXT_TYPES.get(declared)


def _image_field_problem(schema: ProjectSchema) -> FileProblem | None:
    try:
        image_field(schema)
    except FileImportError as exc:
        return exc.problems[0]
    return None


def _image_task(
    project_id: int, schema: ProjectSchema, image: _Image, filename: str | None
) -> Task:
    extra = {"file_upload": filename} if filename else {}
    data = {image_field(schema): image_reference(project_id, image.image_id)}
    return Task(None, data, extra=extra)


def _check_image(stream: IO[bytes], name: str, limits: ImportLimits) -> ImageKind:
    """The image's format, once Pillow has opened and verified it within the limits.

    Raises:
        FileImportError: Not an accepted image by content, too many pixels, or
            broken (truncated, bad checksums).
        ImageCheckUnavailableError: Pillow is not installed.
    """
    stream.seek(0)
    kind = sniff_image(stream.read(SNIFF_BYTES))
    if kind is None:
        what = describe_content(_head(stream)) or "not an image by its content"
        raise _refuse(name, f"is {what}; upload {ACCEPTED_IMAGES} images")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImageCheckUnavailableError() from None
    stream.seek(0)
    try:
        # Only the format recognised above: Pillow never tries another decoder. The
        # pixel limit bounds the memory the full decode below takes.
        with Image.open(stream, formats=[kind.name]) as image:
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise _too_many_pixels(name, width, height, limits.max_image_pixels)
            image.verify()  # structure and checksums (PNG chunks' CRCs)
        stream.seek(0)
        with Image.open(stream, formats=[kind.name]) as image:
            image.load()  # every pixel decoded: truncated or corrupt data shows here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (over its threshold) before it reports a size.
        raise _refuse(
            name,
            f"has more pixels than the {limits.max_image_pixels} an image may "
            "have (a decompression bomb, or a huge scan); downscale it",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports broken files as any of these (SyntaxError for bad headers).
        raise _refuse(
            name,
            f"looks like {kind.name} but cannot be read ({exc}); it is "
            "truncated or damaged: export it again",
        ) from None
    stream.seek(0)
    return kind


def _head(stream: IO[bytes]) -> bytes:
    stream.seek(0)
    return stream.read(SNIFF_BYTES)


def _too_many_pixels(name: str, width: int, height: int, limit: int) -> FileImportError:
    return _refuse(
        name,
        f"is {width}x{height} = {width * height} pixels, more than the "
        f"{limit} an image may have; downscale it (300 dpi is plenty for OCR)",
    )


def _refuse(name: str, reason: str) -> FileImportError:
    return FileImportError([FileProblem(name, reason)])


def _size(stream: IO[bytes]) -> int:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    return size


def _copy_bounded(blobs: BlobStore, key: str, out: IO[bytes], max_bytes: int, name: str) -> None:
    """Copy a blob into ``out``, refusing it past ``max_bytes``."""
    copied = 0
    with blobs.open(key) as source:
        for chunk in iter(lambda: source.read(_COPY_CHUNK), b""):
            copied += len(chunk)
            if copied > max_bytes:
                raise _refuse(
                    name,
                    f"is more than the {max_bytes} bytes an image may have "
                    "(ANNOTRAIN_MAX_IMAGE_BYTES); downscale or compress it",
                )
            out.write(chunk)
    out.seek(0)


def _store_all(
    store: _Stores,
    blobs: BlobStore,
    project_id: int,
    tasks: list[Task],
    images: Sequence[_Image],
) -> list[Task]:
    """Write the images, then the tasks; on any failure delete the images written."""
    written: list[str] = []
    try:
        for image in images:
            key = image_key(project_id, image.image_id)
            image.stream.seek(0)
            blobs.put(key, cast(BinaryIO, image.stream), content_type=image.kind.content_type)
            written.append(key)
        return store.add_tasks(project_id, tasks)
    except BaseException:
        for key in written:
            _delete_quietly(blobs, key)
        raise


def _delete_quietly(blobs: BlobStore, key: str) -> None:
    # Cleanup after a failure: the failure is what the caller must see, so a
    # delete that fails too is logged (the file is an orphan), not raised.
    try:
        blobs.delete(key)
    except (AnnotrainError, OSError):
        _log.exception("could not delete %s, now left over; delete it by hand", key)
