"""The models a text run trains, built offline from a packaged encoder, and a batched forward.

torch and transformers are imported inside the functions that need them, so
importing this module (and the job entry that imports it) costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_jobs.text.data import IGNORE, Feature
from batch_jobs.text.encoders import base_model
from batch_jobs.text.errors import GpuUnavailableError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TINY_ENCODER = "tiny-bert-test"


@dataclass(frozen=True, slots=True)
class Encoder:
    """Where a model starts from.

    Attributes:
        name: The base model's name, recorded in the artifact.
        tokenizer_path: A folder with a fast tokenizer.
        weights_path: A transformers folder with the encoder's weights; None builds a
            tiny randomly initialised BERT from a config instead (for tests: it
            trains in seconds on a CPU with the real tokenizer).
    """

    name: str
    tokenizer_path: Path
    weights_path: Path | None


def packaged_encoder(name: str) -> Encoder:
    """The packaged base model of a name (``minilm-l6-en``…).

    Raises:
        InvalidRequestError: Naming ``base_model`` when there is no such encoder.
    """
    folder = base_model(name).locate()
    return Encoder(name, folder, folder)


def tiny_encoder() -> Encoder:
    """A 2-layer, 32-wide BERT on MiniLM-L6's tokenizer: real tokens, seconds to train."""
    folder = base_model("minilm-l6-en").locate()
    return Encoder(TINY_ENCODER, folder, None)


def offline() -> None:
    """Make sure the Hugging Face libraries never reach for the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def load_tokenizer(path: Path, markers: Sequence[str] = ()) -> PreTrainedTokenizerBase:
    """The fast tokenizer in ``path``, with ``markers`` added as special tokens."""
    offline()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
    if not tokenizer.is_fast:
        raise ValueError(f"{path} holds no fast tokenizer: offsets and word ids need one")
    if markers:
        tokenizer.add_tokens(list(markers), special_tokens=True)
    return tokenizer


#: The shape of the tiny encoders built from a config (tests): 2 layers, 32 wide.
TINY_SHAPE: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 64, "max_position_embeddings": 512,
}  # fmt: skip


def label_head(labels: Sequence[str], dropout: float) -> dict[str, Any]:
    """Config entries every classifier of ours sets: its labels, both ways, and dropout."""
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
    }


def build_model(
    encoder: Encoder,
    *,
    labels: Sequence[str],
    token_level: bool,
    dropout: float,
    vocab_size: int,
    multi_label: bool = False,
    seed: int = 0,
) -> PreTrainedModel:
    """A token or sequence classifier on the encoder, its head sized to ``labels``.

    ``id2label``/``label2id`` are set so that the saved folder loads in
    ``transformers.pipeline`` as it is; ``problem_type`` makes a multi-label model
    use a sigmoid (BCE loss in training, per-label scores in a pipeline).
    """
    offline()
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        BertConfig,
    )

    torch.manual_seed(seed)
    head = label_head(labels, dropout) | {"classifier_dropout": dropout}
    if not token_level:
        head["problem_type"] = (
            "multi_label_classification" if multi_label else "single_label_classification"
        )
    auto = AutoModelForTokenClassification if token_level else AutoModelForSequenceClassification
    if encoder.weights_path is None:
        config = BertConfig(vocab_size=vocab_size, **TINY_SHAPE, **head)
        model = auto.from_config(config)  # type: ignore[no-untyped-call]
    else:
        model = auto.from_pretrained(str(encoder.weights_path), local_files_only=True, **head)
    if model.get_input_embeddings().weight.shape[0] < vocab_size:
        model.resize_token_embeddings(vocab_size)
    built: PreTrainedModel = model
    return built


def torch_device(device: str) -> torch.device:
    """The torch device for ``device`` (``cpu``, ``cuda``, ``cuda:1``).

    Raises:
        GpuUnavailableError: A CUDA device was asked for and torch sees none.
    """
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GpuUnavailableError(device)
    return torch.device(device)


def pad_batch(
    features: Sequence[Feature], pad_id: int, device: torch.device, *, multiple: int = 1
) -> dict[str, torch.Tensor]:
    """Pad a batch to its own longest row (rounded up to ``multiple``), labels included."""
    import torch

    width = max(len(f.input_ids) for f in features)
    width = -(-width // multiple) * multiple
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, feature in enumerate(features):
        ids[row, : len(feature.input_ids)] = torch.tensor(feature.input_ids)
        mask[row, : len(feature.input_ids)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if features[0].bbox is not None:
        # Padding sits at the origin with the attention mask off: LayoutLM's convention.
        bbox = torch.zeros((len(features), width, 4), dtype=torch.long)
        for row, feature in enumerate(features):
            assert feature.bbox is not None
            bbox[row, : len(feature.bbox)] = torch.tensor(feature.bbox, dtype=torch.long)
        batch["bbox"] = bbox
    first = features[0].labels
    if isinstance(first, list) and first and isinstance(first[0], float):
        batch["labels"] = torch.tensor([f.labels for f in features], dtype=torch.float)
    elif isinstance(first, list):
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        for row, feature in enumerate(features):
            assert isinstance(feature.labels, list)
            labels[row, : len(feature.labels)] = torch.tensor(feature.labels)
        batch["labels"] = labels
    elif isinstance(first, int):
        batch["labels"] = torch.tensor([f.labels for f in features], dtype=torch.long)
    if device.type == "cuda":
        # Page-locked host memory lets the copy overlap the previous step's compute.
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
    return batch


def autocast(device: torch.device) -> Any:
    """Mixed precision on CUDA (bf16 where supported, else fp16); full precision on CPU."""
    import contextlib

    import torch

    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def forward_logits(
    model: PreTrainedModel,
    features: Sequence[Feature],
    *,
    pad_id: int,
    device: torch.device,
    batch_size: int = 64,
) -> list[torch.Tensor]:
    """Logits of every feature (per token, trimmed to the row, for a token classifier).

    Rows are run longest first in batches padded to their own longest row, under
    ``torch.inference_mode``; the result is in the order of ``features``.
    """
    import torch

    order = sorted(range(len(features)), key=lambda i: -len(features[i].input_ids))
    out: list[torch.Tensor | None] = [None] * len(features)
    was_training = model.training
    model.train(False)
    with torch.inference_mode(), autocast(device):
        for at in range(0, len(order), batch_size):
            rows = order[at : at + batch_size]
            chunk = [Feature(features[i].input_ids, None, i, features[i].bbox) for i in rows]
            batch = pad_batch(chunk, pad_id, device, multiple=8 if device.type == "cuda" else 1)
            logits = model(**batch).logits.float().cpu()
            for row, index in enumerate(rows):
                value = logits[row]
                out[index] = value[: len(features[index].input_ids)] if value.dim() == 2 else value
    model.train(was_training)
    return [t for t in out if t is not None]
