"""Label Studio's own config-validity matrix: we accept what it accepts, refuse what it refuses.

Except where our documented rules deliberately differ, listed in ``DIFFERENCES``
with the reason. Reads the real data (see tests/shared_data.py); skips where absent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from shared_data import shared_data_dir

from annotrain.domain.config import parse_labeling_config
from annotrain.domain.errors import LabelingConfigError

MATRIX = (
    "label_studio/pypi_label_studio_1.23.2/label_studio/tests/test_data/"
    "data_for_test_label_config_matrix.yml"
)

# Case → why we decide otherwise than Label Studio's validator.
DIFFERENCES = {
    "textarea_in_view_without_toName": (
        "Label Studio ships templates with a <TextArea> or <Rating> without toName; "
        "we accept it, with a warning, as an answer about the whole task"
    ),
}


def read_matrix_without_yaml(text: str) -> dict[str, dict[str, Any]]:
    """Read the matrix file without PyYAML: it is regular enough.

    Each case is ``name:``, then ``  label_config: '…'`` (a single-quoted scalar
    over several lines, folded as YAML folds it: line breaks become spaces and
    each line's surrounding blanks go), then ``  status_code: N``.
    """
    cases: dict[str, dict[str, Any]] = {}
    pattern = re.compile(
        r"^(?P<name>\w+):\n"
        r"  label_config: '(?P<config>(?:[^']|'')*)'\n"
        r"  status_code: (?P<code>\d+)$",
        re.MULTILINE,
    )
    for match in pattern.finditer(text):
        first, *lines = match["config"].split("\n")
        folded, blank_lines = first.rstrip(), 0
        for n, line in enumerate(lines, start=1):
            # The last line keeps its trailing blanks, up to the closing quote.
            line = line.lstrip() if n == len(lines) else line.strip()
            if not line and n < len(lines):
                blank_lines += 1
                continue
            # A break before blank lines is dropped; each blank line is a newline.
            folded += "\n" * blank_lines if blank_lines else " "
            folded += line
            blank_lines = 0
        config = folded.replace("''", "'")
        cases[match["name"]] = {"label_config": config, "status_code": int(match["code"])}
    return cases


def read_matrix(path: Path) -> dict[str, dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:  # PyYAML is no declared dependency; the file reads without it
        return read_matrix_without_yaml(text)
    cases: dict[str, dict[str, Any]] = yaml.safe_load(text)
    return cases


def matrix_cases() -> list[tuple[str, str, int]]:
    root = shared_data_dir()
    if root is None or not (root / MATRIX).is_file():
        return []
    cases = read_matrix(root / MATRIX)
    return [(name, case["label_config"], case["status_code"]) for name, case in cases.items()]


CASES = matrix_cases()


def accepts(config: str) -> bool:
    try:
        parse_labeling_config(config)
    except LabelingConfigError:
        return False
    return True


@pytest.mark.parametrize(("name", "config", "status"), CASES, ids=[c[0] for c in CASES])
def test_we_decide_as_label_studio_does(name: str, config: str, status: int) -> None:
    assert status in (200, 400)
    label_studio_accepts = status == 200
    if name in DIFFERENCES:
        assert accepts(config) is not label_studio_accepts, DIFFERENCES[name]
    else:
        assert accepts(config) is label_studio_accepts


def test_matrix_has_its_cases_and_every_difference_is_one_of_them(shared_data: Path) -> None:
    names = {name for name, _, _ in CASES}

    assert len(names) >= 40
    assert set(DIFFERENCES) <= names


def test_textarea_without_to_name_from_the_matrix_is_accepted_with_a_warning(
    shared_data: Path,
) -> None:
    (config,) = [c for n, c, _ in CASES if n == "textarea_in_view_without_toName"]

    schema = parse_labeling_config(config)

    assert [(w.tag, w.attribute, w.name) for w in schema.warnings] == [
        ("TextArea", "toName", "mytext")
    ]


def test_choices_nested_among_labels_in_the_matrix_is_a_control(shared_data: Path) -> None:
    (config,) = [c for n, c, _ in CASES if n == "several_views_with_several_components"]

    schema = parse_labeling_config(config)

    assert set(schema.controls) == {"mytext1", "labels", "choice_test"}
    assert [o.value for o in schema.controls["labels"].options] == ["1", "2", "3", "4"]
    assert [o.value for o in schema.controls["choice_test"].options] == ["test1", "test2"]


def test_reader_without_yaml_reads_the_matrix_as_yaml_does(shared_data: Path) -> None:
    yaml = pytest.importorskip("yaml")
    text = (shared_data / MATRIX).read_text(encoding="utf-8")

    assert read_matrix_without_yaml(text) == yaml.safe_load(text)
