"""The registry of packaged base encoders: which one a language gets, and refusals."""

from __future__ import annotations

import pytest

from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.snapshot import LANGUAGES
from batch_jobs.text.encoders import (
    BASE_MODELS,
    E5_SMALL_MULTILINGUAL,
    MINILM_L6_EN,
    base_model,
    default_base_model,
    resolve_base_model,
)


def test_english_starts_from_minilm_and_the_other_languages_from_e5() -> None:
    assert default_base_model("en") is MINILM_L6_EN
    for language in ("de", "es", "pt", "it", "da", "ro"):
        assert default_base_model(language) is E5_SMALL_MULTILINGUAL


def test_every_project_language_has_an_encoder_that_serves_it() -> None:
    for language in LANGUAGES:
        assert language in default_base_model(language).languages


def test_minilm_says_it_serves_english_only() -> None:
    assert MINILM_L6_EN.languages == ("en",)
    assert "English only" in MINILM_L6_EN.description
    with pytest.raises(InvalidRequestError, match="serves en only, not 'de'") as raised:
        resolve_base_model("de", "minilm-l6-en")
    assert raised.value.field == "base_model"
    assert "'e5-small-multilingual'" in str(raised.value)


def test_e5_serves_english_too_when_asked_for() -> None:
    assert resolve_base_model("en", "e5-small-multilingual") is E5_SMALL_MULTILINGUAL
    assert resolve_base_model("ro") is E5_SMALL_MULTILINGUAL


def test_e5_carries_its_fine_tuning_recommendations() -> None:
    assert E5_SMALL_MULTILINGUAL.freeze_word_embeddings is True
    assert E5_SMALL_MULTILINGUAL.recommended_learning_rate == pytest.approx(3e-4)
    assert MINILM_L6_EN.freeze_word_embeddings is False
    assert {m.license for m in BASE_MODELS.values()} == {"Apache-2.0", "MIT"}


def test_unknown_names_and_languages_are_refused_naming_the_choices() -> None:
    with pytest.raises(InvalidRequestError, match="choose from: minilm-l6-en, e5-small") as raised:
        base_model("bert-base")
    assert raised.value.field == "base_model"
    with pytest.raises(InvalidRequestError, match="no packaged encoder serves 'fr'") as raised:
        default_base_model("fr")
    assert raised.value.field == "language"
