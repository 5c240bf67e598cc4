"""The base encoders a project may train from, by name and by the languages they serve.

The model code (``batch_jobs/text/encoders.py``) resolves each name to a folder
installed with a Python package; this table is what the service checks a request
against when the training starts, so a language no packaged encoder serves is
refused then, not after the job began. A test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping

from annotrain.domain.errors import InvalidRequestError

#: Base model name → the project languages it serves well, the default first.
BASE_MODEL_LANGUAGES: Mapping[str, tuple[str, ...]] = {"minilm-l6-en": ("en",)}


def choose_base_model(language: str, requested: str | None) -> str:
    """The base model a training of a project in ``language`` starts from.

    Args:
        language: The project's language.
        requested: The base model the request names, or None for the language's default.

    Raises:
        InvalidRequestError: ``base_model`` for an unknown name or one that does not
            serve the language; ``language`` when no packaged encoder serves it.
    """
    if requested is not None:
        languages = BASE_MODEL_LANGUAGES.get(requested)
        if languages is None:
            raise InvalidRequestError(
                "base_model",
                f"unknown base model {requested!r}; choose from: {', '.join(BASE_MODEL_LANGUAGES)}",
            )
        if language not in languages:
            raise InvalidRequestError(
                "base_model",
                f"{requested!r} serves {', '.join(languages)}, not the project's language "
                f"{language!r}; leave base_model out for the language's default",
            )
        return requested
    for name, languages in BASE_MODEL_LANGUAGES.items():
        if language in languages:
            return name
    served = sorted({lang for langs in BASE_MODEL_LANGUAGES.values() for lang in langs})
    raise InvalidRequestError(
        "language",
        f"no packaged encoder serves {language!r} well yet (served: {', '.join(served)}); "
        "set the project's language to one of those to train",
    )
