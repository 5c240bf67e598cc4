"""The service's choice of base model, and the model code's folders for every choice."""

from __future__ import annotations

import pytest

from annotrain.domain.base_models import BASE_MODELS as TABLE
from annotrain.domain.base_models import choose_base_model
from annotrain.domain.errors import InvalidRequestError
from batch_jobs.text.encoders import BASE_MODELS


def test_every_base_model_the_service_offers_has_a_folder_in_the_model_code() -> None:
    assert list(BASE_MODELS) == list(TABLE)
    assert all(BASE_MODELS[name].info is info for name, info in TABLE.items())


def test_each_language_gets_its_default_and_an_unserved_one_is_refused_by_name() -> None:
    assert choose_base_model("en", None) == "minilm-l6-en"
    assert choose_base_model("de", None) == "e5-small-multilingual"
    with pytest.raises(InvalidRequestError, match="'fr'") as refused:
        choose_base_model("fr", None)
    assert refused.value.field == "language"
    with pytest.raises(InvalidRequestError, match="choose 'e5-small-multilingual'") as wrong:
        choose_base_model("de", "minilm-l6-en")
    assert wrong.value.field == "base_model"
