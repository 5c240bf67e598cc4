"""The Visual NER model: LayoutLM (v1) token classification on the packaged text encoder.

LayoutLM is BERT with four more embedding tables added to each token's input:
the word's left and right edges (``x0``, ``x1``), top and bottom (``y0``, ``y1``),
and its width and height, all on a 0-1000 grid of the page. It needs no image
backbone (no torchvision, no detectron2), so it trains wherever the text models
do. Its encoder has BERT's layout and parameter names, so it starts from the
packaged text encoder's weights (MiniLM-L6); only the 2-D tables start fresh.

The model is a plain ``LayoutLMForTokenClassification``: ``save_pretrained``
writes a folder that ``AutoModelForTokenClassification`` loads as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from batch_jobs.text.model import TINY_SHAPE, Encoder, label_head, offline

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: LayoutLM's 2-D tables hold 0-1000 coordinates and sizes (1024 rows, as the paper's).
MAX_2D_POSITIONS = 1024
#: Parameters of a LayoutLM encoder that a BERT checkpoint does not have.
_FRESH_PREFIXES = (
    "embeddings.x_position_embeddings.",
    "embeddings.y_position_embeddings.",
    "embeddings.h_position_embeddings.",
    "embeddings.w_position_embeddings.",
    "pooler.",  # unused by token classification; some BERT folders lack it
)
#: What a BERT config says that a LayoutLM config takes over as it is.
_SHARED_CONFIG = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "hidden_act", "max_position_embeddings", "type_vocab_size",
    "initializer_range", "layer_norm_eps", "pad_token_id",
)  # fmt: skip


def build_layout_model(
    encoder: Encoder,
    *,
    labels: Sequence[str],
    dropout: float,
    vocab_size: int,
    seed: int = 0,
) -> PreTrainedModel:
    """A LayoutLM token classifier with a head for ``labels``, on the encoder's weights.

    With ``encoder.weights_path`` None, a tiny 2-layer, 32-wide model is built from
    a config (tests); otherwise the BERT encoder's weights are copied in and only
    the 2-D position tables (and the head) start from random values.

    Raises:
        ValueError: The encoder's weights do not fit a LayoutLM encoder (a name is
            missing or left over): it is not a BERT-family checkpoint.
    """
    offline()
    import torch
    from transformers import AutoConfig, BertModel, LayoutLMConfig, LayoutLMForTokenClassification

    torch.manual_seed(seed)
    head = label_head(labels, dropout) | {"max_2d_position_embeddings": MAX_2D_POSITIONS}
    if encoder.weights_path is None:
        config = LayoutLMConfig(vocab_size=vocab_size, **TINY_SHAPE, **head)
        tiny: PreTrainedModel = LayoutLMForTokenClassification(config)
        return tiny
    path = str(encoder.weights_path)
    base = AutoConfig.from_pretrained(path, local_files_only=True)
    shared = {name: getattr(base, name) for name in _SHARED_CONFIG if hasattr(base, name)}
    model = LayoutLMForTokenClassification(LayoutLMConfig(**shared, **head))
    bert = BertModel.from_pretrained(path, local_files_only=True)
    missing, unexpected = model.layoutlm.load_state_dict(bert.state_dict(), strict=False)
    not_fresh = [name for name in missing if not name.startswith(_FRESH_PREFIXES)]
    if not_fresh or unexpected:
        raise ValueError(
            f"the encoder at {path} does not fit a LayoutLM model: missing {not_fresh[:5]}, "
            f"left over {list(unexpected)[:5]} (a BERT-family encoder is needed)"
        )
    if model.get_input_embeddings().weight.shape[0] < vocab_size:  # type: ignore[no-untyped-call]
        model.resize_token_embeddings(vocab_size)
    built: PreTrainedModel = model
    return built
