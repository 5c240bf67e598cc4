"""Tasks from files, pure: sniffing images by content, CSV/TSV and text against a config."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.errors import FileImportError
from annotrain.domain.task_files import (
    JPEG,
    PNG,
    TIFF,
    describe_content,
    image_key,
    image_key_of_reference,
    image_reference,
    sniff_image,
    tasks_from_delimited,
    tasks_from_text,
)

SCHEMA = parse_labeling_config(
    '<View><Text name="text" value="$text"/>'
    '<Labels name="l" toName="text"><Label value="X"/></Labels></View>'
)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", PNG),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", JPEG),
        (b"II*\x00\x08\x00", TIFF),
        (b"MM\x00*\x00\x00", TIFF),
        (b"GIF89a", None),
        (b"%PDF-1.4", None),
        (b"\x89PNG", None),  # too short to be a PNG signature
        (b"", None),
    ],
)
def test_images_are_recognised_by_their_first_bytes(head: bytes, kind: object) -> None:
    assert sniff_image(head) == kind


def test_refused_formats_are_named() -> None:
    assert describe_content(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "a WebP image"
    assert describe_content(b"MZ\x90\x00") == "a Windows executable"
    assert describe_content(b"hello") is None


def test_an_image_reference_leads_back_to_its_key_and_nothing_else_does() -> None:
    ref = image_reference(7, "a" * 32)
    assert image_key_of_reference(ref) == image_key(7, "a" * 32) == "projects/7/images/" + "a" * 32
    assert image_key_of_reference("/api/v1/projects/7/images/../../x") is None
    assert image_key_of_reference("https://example.com/x.png") is None
    with pytest.raises(ValueError, match="not an image id"):
        image_key(7, "../x")


def test_a_row_spanning_lines_is_reported_at_its_first_line() -> None:
    text = 'text\n"a\nb\nc"\n\n"x","y"\n'
    with pytest.raises(FileImportError) as caught:
        tasks_from_delimited(text, SCHEMA, filename="f.csv")
    (problem,) = caught.value.problems
    assert problem.line == 6


def test_a_cell_over_the_csv_field_limit_says_where_long_texts_go() -> None:
    text = "text\nshort\n" + "x" * (csv.field_size_limit() + 1) + "\n"
    with pytest.raises(FileImportError) as caught:
        tasks_from_delimited(text, SCHEMA, filename="f.csv")
    (problem,) = caught.value.problems
    assert (problem.line, "text_split=file" in problem.reason) == (3, True)


def test_text_lines_keep_their_spaces_and_lose_their_line_breaks() -> None:
    tasks = tasks_from_text(" a \r\nb\n\n", SCHEMA, filename="f.txt")
    assert [t.data["text"] for t in tasks] == [" a ", "b"]


_CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(_CELL, _CELL), min_size=1, max_size=5), tsv=st.booleans())
def test_csv_written_by_the_csv_module_reads_back_as_written(
    rows: list[tuple[str, str]], tsv: bool
) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter="\t" if tsv else ",")
    writer.writerow(["text", "other"])
    writer.writerows(rows)
    tasks = tasks_from_delimited(
        out.getvalue(), SCHEMA, filename="f", delimiter="\t" if tsv else ","
    )
    assert [(t.data["text"], t.data["other"]) for t in tasks] == rows
