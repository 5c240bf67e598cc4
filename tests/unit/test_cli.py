"""The annotrain command line: config validate and convert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotrain.cli import main
from annotrain.domain.conll import read_conll

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample_project"


def test_validate_prints_the_models_the_sample_config_implies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "validate", str(SAMPLE / "config.xml")]) == 0
    summary = json.loads(capsys.readouterr().out)
    models = {m["kind"]: m for m in summary["models"]}
    assert models["ner"]["labels"] == ["Condition", "Medication"]
    assert models["assertion"]["labels"] == ["Present", "Absent", "Family"]
    assert models["classification"]["name"] == "urgency"
    assert models["classification"]["multi_label"] is False


def test_validate_can_name_several_classifiers(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["config", "validate", str(SAMPLE / "config.xml"), "--classifiers", "topics,urgency"]
    assert main(argv) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    classifiers = [(m["name"], m["multi_label"]) for m in models if m["kind"] == "classification"]
    assert classifiers == [("topics", True), ("urgency", False)]


def test_validate_refuses_a_bad_config_with_exit_2_and_the_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(
        '<View><Text name="text" value="$text"/>'
        '<Labels name="label" toName="txt"><Label value="A"/><Label value="A"/></Labels></View>'
    )
    assert main(["config", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "toName='txt' names no tag" in err
    assert "declared twice" in err


def test_validate_refuses_an_entity_bomb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><View><Header value="&b;"/></View>'
    )
    assert main(["config", "validate", str(bomb)]) == 2
    assert "DTD" in capsys.readouterr().err


def test_validate_reports_a_missing_file_as_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", "/nonexistent/config.xml"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_convert_to_conll_uses_the_completion_training_would_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["convert", "--config", str(SAMPLE / "config.xml"), "--to", "conll"]
    assert main([*argv, str(SAMPLE / "tasks.json")]) == 0
    out, err = capsys.readouterr()
    assert "wrote 6 documents" in err
    assert "1 task(s) left out: no submitted completion" in err
    documents = read_conll(out.splitlines())
    # Tasks 1-6 have a usable completion; task 7 only a draft.
    assert len(documents) == 6
    first_sentence_tokens, first_sentence_tags = documents[0][0]
    tagged = dict(zip(first_sentence_tokens, first_sentence_tags, strict=True))
    assert tagged["chest"] == "B-Condition"
    assert tagged["pain"] == "I-Condition"
    # Assertion labels are another model's: not in the NER export.
    assert not any("Present" in tag for doc in documents for _, tags in doc for tag in tags)


@pytest.mark.parametrize("fmt", ["json", "json_min", "csv", "conll"])
def test_convert_writes_the_output_file_whole(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"export.{fmt}"
    argv = ["convert", "--config", str(SAMPLE / "config.xml"), "--to", fmt]
    assert main([*argv, str(SAMPLE / "tasks.json"), "-o", str(out)]) == 0
    assert out.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_convert_json_round_trips_through_a_second_convert(tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    second = tmp_path / "second.json"
    argv = ["convert", "--config", str(SAMPLE / "config.xml"), "--to", "json"]
    assert main([*argv, str(SAMPLE / "tasks.json"), "-o", str(first)]) == 0
    assert main([*argv, str(first), "-o", str(second)]) == 0
    assert json.loads(first.read_text()) == json.loads(second.read_text())


def test_convert_refuses_inconsistent_tasks_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = json.loads((SAMPLE / "tasks.json").read_text())
    tasks[2]["annotations"][0]["result"][0]["value"]["labels"] = ["Disease"]
    bad = tmp_path / "tasks.json"
    bad.write_text(json.dumps(tasks))
    out = tmp_path / "out.conll"
    argv = ["convert", "--config", str(SAMPLE / "config.xml"), "--to", "conll", str(bad)]
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "task 2" in err
    assert "'Disease' not declared" in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tasks.json"]


def test_convert_refuses_a_file_that_is_not_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "tasks.json"
    bad.write_text("[{")
    argv = ["convert", "--config", str(SAMPLE / "config.xml"), "--to", "json", str(bad)]
    assert main(argv) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_convert_to_conll_names_the_overlapping_span_it_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "Mother had breast cancer."
    overlapping = [
        ("r1", 11, 24, "Condition"),  # "breast cancer"
        ("r2", 18, 24, "Medication"),  # "cancer", inside the first
    ]
    result = [
        {"id": rid, "from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}}
        for rid, start, end, label in overlapping
    ]  # fmt: skip
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps([{"id": 1, "data": {"text": text}, "annotations": [
        {"id": 9, "result": result}]}]))  # fmt: skip
    argv = ["convert", "--config", str(SAMPLE / "config.xml"), "--to", "conll", str(tasks)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "task 1, completion 9, result r2: 'Medication' at 18..24 left out (overlap)" in err


def test_first_boot_generates_a_payg_license_and_renewal_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANNOTRAIN_INSTANCE_ID", "i-0123456789abcdef0")
    from annotrain.settings import get_settings

    get_settings.cache_clear()
    try:
        data = ["--data-dir", str(tmp_path / "lab")]
        assert main(["licenses", "generate-payg", "--instance-id", "i-0123456789abcdef0",
                     "--product-code", "prod-1", *data]) == 0  # fmt: skip
        key = tmp_path / "lab" / "license-signing-key"
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        assert main(["licenses", "renew", *data]) == 0
        assert "nothing to do" in capsys.readouterr().err
        assert main(["licenses", "list", *data]) == 0
        listing = json.loads(capsys.readouterr().out)
        assert [i["type"] for i in listing["items"]] == ["PAYG"]
        assert listing["items"][0]["in_force"] is True
        assert listing["cost_banner"].startswith("Continuous Server Usage Incurs Costs!")
    finally:
        get_settings.cache_clear()


def test_without_a_product_code_no_payg_license_is_generated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["licenses", "generate-payg", "--instance-id", "i-0123456789abcdef0",
                 "--product-code", "", "--data-dir", str(tmp_path / "lab")])  # fmt: skip
    assert code == 2
    assert "Marketplace" in capsys.readouterr().err
