"""The service's table of base models agrees with what the model code can load."""

from __future__ import annotations

import pytest

from annotrain.domain.base_models import BASE_MODEL_LANGUAGES, choose_base_model
from annotrain.domain.errors import InvalidRequestError
from batch_jobs.text.encoders import BASE_MODELS


def test_every_base_model_the_service_offers_is_one_the_model_code_knows() -> None:
    for name, languages in BASE_MODEL_LANGUAGES.items():
        assert name in BASE_MODELS
        assert set(languages) <= set(BASE_MODELS[name].languages)


def test_english_defaults_to_minilm_and_an_unserved_language_is_refused_by_name() -> None:
    assert choose_base_model("en", None) == "minilm-l6-en"
    with pytest.raises(InvalidRequestError, match="'de'") as refused:
        choose_base_model("de", None)
    assert refused.value.field == "language"
    with pytest.raises(InvalidRequestError) as wrong:
        choose_base_model("de", "minilm-l6-en")
    assert wrong.value.field == "base_model"
