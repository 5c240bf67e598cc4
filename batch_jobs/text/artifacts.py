"""A trained text model on disk: a ``save_pretrained`` folder plus ``annotrain.json``.

The folder loads as it is with ``transformers.pipeline(task, model=folder)``
(``id2label``/``label2id`` and, for multi-label classifiers, ``problem_type``
are in its config); ``annotrain.json`` adds what the lab needs to use it:

``format``, ``type`` (ner, assertion, classification), ``name``, ``labels``
(the spec's), ``model_labels`` (the head's classes), ``base_model``,
``parameters``, ``data_fingerprint``, ``run_id``, ``model_version``, ``target``
(text field, ``to_name`` and the control of each label), ``settings`` (NER
windows, classifier thresholds), ``metrics``, ``history``, ``counts`` and
``versions`` (python, torch, transformers, annotrain).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ARTIFACT_FORMAT = "annotrain.text-model/1"
METADATA_FILE = "annotrain.json"


def versions() -> dict[str, str]:
    """Versions of what made the model, for the record."""
    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "tokenizers", "annotrain"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "unknown"
    return found


def save_artifact(
    directory: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    description: dict[str, Any],
) -> Path:
    """Write the model, its tokenizer and ``annotrain.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    document = {"format": ARTIFACT_FORMAT, **description, "versions": versions()}
    (directory / METADATA_FILE).write_text(json.dumps(document, indent=2, ensure_ascii=False))
    return directory


def read_description(directory: Path) -> dict[str, Any]:
    """The ``annotrain.json`` of an artifact folder.

    Raises:
        ValueError: When the folder is not a text model artifact of this format.
    """
    path = directory / METADATA_FILE
    if not path.is_file():
        raise ValueError(f"{directory} is not a model folder: it has no {METADATA_FILE}")
    document: dict[str, Any] = json.loads(path.read_text())
    if document.get("format") != ARTIFACT_FORMAT:
        raise ValueError(
            f"{path} is of format {document.get('format')!r}, expected {ARTIFACT_FORMAT!r}"
        )
    return document
