"""What differs between NER, assertion status and classification, behind one interface.

Training and prediction both work through a :class:`KindHandler`: it reads the
records of its kind from examples, counts them per label, encodes them, turns
logits back into per-record predictions, and scores predictions against the
truth. The loop in :mod:`batch_jobs.text.train` and the predictor in
:mod:`batch_jobs.text.predict` are the same for every kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from annotrain.domain.snapshot import Example
from annotrain.domain.training_plan import ModelKind, ModelSpec
from batch_jobs.text.data import (
    ENTITY_END,
    ENTITY_START,
    EncodedDocument,
    Feature,
    LabelledText,
    Mention,
    NerDocument,
    TextTarget,
    assertion_mentions,
    bio_tags,
    class_counts,
    classification_texts,
    encode_mentions,
    encode_ner,
    encode_texts,
    ner_documents,
    ner_label_counts,
)
from batch_jobs.text.evaluate import (
    choose_thresholds,
    class_metrics,
    multilabel_metrics,
    ner_metrics,
)
from batch_jobs.text.model import Encoder, build_model

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

R = TypeVar("R", NerDocument, Mention, LabelledText)


@dataclass(slots=True)
class Encoded:
    """Features of some records, and for NER where each word is read back."""

    features: list[Feature]
    documents: list[EncodedDocument]
    truncated: int = 0


@dataclass(frozen=True, slots=True)
class WordTags:
    """A NER document's predicted tag and its probability for each word."""

    tags: list[str]
    scores: list[float]


@dataclass(frozen=True, slots=True)
class ClassScores:
    """A record's predicted classes and the probability of every class."""

    labels: tuple[str, ...]
    probabilities: list[float]


class KindHandler(ABC, Generic[R]):
    """One kind of text model: its records, labels, encoding, decoding and scores."""

    token_level = False
    markers: tuple[str, ...] = ()

    def __init__(self, spec: ModelSpec, target: TextTarget, *, max_length: int, overlap: int):
        self.spec = spec
        self.target = target
        self.max_length = max_length
        self.overlap = overlap

    @property
    def model_labels(self) -> list[str]:
        """The model's output classes, in head order (``id2label``)."""
        return list(self.spec.labels)

    @abstractmethod
    def records(self, examples: Sequence[Example]) -> list[R]:
        """The records of this kind in some examples (with their truth)."""

    @abstractmethod
    def counts(self, records: Sequence[R]) -> dict[str, int]:
        """Examples per label: entity mentions, or records per class."""

    @abstractmethod
    def encode(
        self, records: Sequence[R], tokenizer: PreTrainedTokenizerBase, *, labelled: bool
    ) -> Encoded:
        """Model inputs for the records, with labels when ``labelled``."""

    @abstractmethod
    def decode(
        self, logits: Sequence[torch.Tensor], encoded: Encoded, records: Sequence[R]
    ) -> list[Any]:
        """Per record, what the model predicts."""

    @abstractmethod
    def metrics(self, records: Sequence[R], predictions: Sequence[Any]) -> dict[str, Any]:
        """Scores of predictions against the records' truth (see :mod:`.evaluate`)."""

    def score(self, metrics: dict[str, Any]) -> float:
        """The one number early stopping watches: macro F1 (every class counts)."""
        return float(metrics["macro"]["f1"])

    def tune(self, records: Sequence[R], predictions: Sequence[Any]) -> None:
        """Adjust decision settings on validation predictions (multi-label thresholds).

        Predictions decoded before a change of settings are stale: decode again.
        """

    def settings(self) -> dict[str, Any]:
        """What prediction needs beyond the weights, for ``annotrain.json``."""
        return {}

    def build(
        self, encoder: Encoder, *, vocab_size: int, dropout: float, seed: int
    ) -> PreTrainedModel:
        """A fresh model of this kind on the encoder, its head sized to :attr:`model_labels`."""
        return build_model(
            encoder, labels=self.model_labels, token_level=self.token_level, dropout=dropout,
            vocab_size=vocab_size, multi_label=bool(getattr(self, "multi_label", False)),
            seed=seed,
        )  # fmt: skip


class NerHandler(KindHandler[NerDocument]):
    """BIO token classification over words, read in overlapping windows."""

    token_level = True

    @property
    def model_labels(self) -> list[str]:
        return bio_tags(self.spec.labels)

    def records(self, examples: Sequence[Example]) -> list[NerDocument]:
        return ner_documents(examples, self.spec, self.target)

    def counts(self, records: Sequence[NerDocument]) -> dict[str, int]:
        return ner_label_counts(records, self.spec.labels)

    def encode(
        self, records: Sequence[NerDocument], tokenizer: PreTrainedTokenizerBase, *, labelled: bool
    ) -> Encoded:
        tag_ids = {t: i for i, t in enumerate(self.model_labels)} if labelled else None
        features, documents = encode_ner(
            records, tokenizer, max_length=self.max_length, overlap=self.overlap,
            tag_ids=tag_ids, boxes=self.word_boxes(records),
        )  # fmt: skip
        return Encoded(features, documents)

    def word_boxes(
        self, records: Sequence[NerDocument]
    ) -> Sequence[Sequence[tuple[int, int, int, int]]] | None:
        """Per document, a 0-1000 box per word for a layout model; None for text."""
        return None

    def decode(
        self, logits: Sequence[torch.Tensor], encoded: Encoded, records: Sequence[NerDocument]
    ) -> list[WordTags]:
        tags = self.model_labels
        # One softmax and one max per window, then plain lists: no tensor op per word.
        best = [row.softmax(-1).max(-1) for row in logits]
        top_scores = [b.values.tolist() for b in best]
        top_tags = [b.indices.tolist() for b in best]
        out = []
        for document in encoded.documents:
            word_tags: list[str] = []
            scores: list[float] = []
            for position in document.word_position:
                if position is None:
                    # A word the tokenizer dropped: it continues the entity around it, if any.
                    previous = word_tags[-1] if word_tags else "O"
                    word_tags.append("O" if previous == "O" else "I-" + previous[2:])
                    scores.append(scores[-1] if scores else 1.0)
                    continue
                feature, token = position
                word_tags.append(tags[top_tags[feature][token]])
                scores.append(top_scores[feature][token])
            out.append(WordTags(word_tags, scores))
        return out

    def metrics(
        self, records: Sequence[NerDocument], predictions: Sequence[WordTags]
    ) -> dict[str, Any]:
        return ner_metrics(
            [r.tags for r in records], [p.tags for p in predictions], self.spec.labels
        )

    def score(self, metrics: dict[str, Any]) -> float:
        """Entity-level micro F1, the figure NER is compared on."""
        return float(metrics["micro"]["f1"])

    def settings(self) -> dict[str, Any]:
        return {"window": {"max_length": self.max_length, "overlap": self.overlap}}


class _ClassHandler(KindHandler[R]):
    """Sequence classification: softmax over classes, or a sigmoid per class."""

    multi_label = False

    def __init__(self, spec: ModelSpec, target: TextTarget, *, max_length: int, overlap: int):
        super().__init__(spec, target, max_length=max_length, overlap=overlap)
        self.thresholds = [0.5] * len(spec.labels)

    def _label_ids(self, labelled: bool) -> dict[str, int] | None:
        return {label: i for i, label in enumerate(self.spec.labels)} if labelled else None

    def decode(
        self, logits: Sequence[torch.Tensor], encoded: Encoded, records: Sequence[R]
    ) -> list[ClassScores]:
        labels = self.spec.labels
        out = []
        for row in logits:
            if self.multi_label:
                probabilities = row.sigmoid().tolist()
                chosen = tuple(
                    label
                    for label, p, t in zip(labels, probabilities, self.thresholds, strict=True)
                    if p >= t
                )
            else:
                probabilities = row.softmax(-1).tolist()
                chosen = (labels[max(range(len(labels)), key=probabilities.__getitem__)],)
            out.append(ClassScores(chosen, probabilities))
        return out

    @staticmethod
    def _truth(record: R) -> tuple[str, ...]:
        if isinstance(record, Mention):
            return (record.label,) if record.label is not None else ()
        if isinstance(record, LabelledText):
            return record.labels
        raise TypeError(type(record).__name__)

    def metrics(self, records: Sequence[R], predictions: Sequence[ClassScores]) -> dict[str, Any]:
        labels = self.spec.labels
        index = {label: i for i, label in enumerate(labels)}
        if self.multi_label:
            truth = [[int(label in self._truth(r)) for label in labels] for r in records]
            predicted = [[int(label in p.labels) for label in labels] for p in predictions]
            return multilabel_metrics(truth, predicted, labels)
        return class_metrics(
            [index[self._truth(r)[0]] for r in records],
            [index[p.labels[0]] for p in predictions],
            labels,
        )

    def score(self, metrics: dict[str, Any]) -> float:
        """Macro F1; micro F1 for multi-label models, whose rare labels are noisy."""
        return float(metrics["micro" if self.multi_label else "macro"]["f1"])

    def tune(self, records: Sequence[R], predictions: Sequence[ClassScores]) -> None:
        if not self.multi_label:
            return
        labels = self.spec.labels
        truth = [[int(label in self._truth(r)) for label in labels] for r in records]
        self.thresholds = choose_thresholds(
            [p.probabilities for p in predictions], truth, len(labels)
        )

    def settings(self) -> dict[str, Any]:
        if not self.multi_label:
            return {"max_length": self.max_length}
        return {
            "max_length": self.max_length,
            "thresholds": dict(zip(self.spec.labels, self.thresholds, strict=True)),
        }


class AssertionHandler(_ClassHandler[Mention]):
    """The assertion status of an entity mention, read with ``[E] … [/E]`` around it."""

    markers = (ENTITY_START, ENTITY_END)

    def records(self, examples: Sequence[Example]) -> list[Mention]:
        return assertion_mentions(examples, self.spec, self.target)

    def counts(self, records: Sequence[Mention]) -> dict[str, int]:
        return class_counts(((r.label,) for r in records if r.label), self.spec.labels)

    def encode(
        self, records: Sequence[Mention], tokenizer: PreTrainedTokenizerBase, *, labelled: bool
    ) -> Encoded:
        features = encode_mentions(
            records, tokenizer, max_length=self.max_length, label_ids=self._label_ids(labelled)
        )
        return Encoded(features, [])


class ClassificationHandler(_ClassHandler[LabelledText]):
    """The classes of a whole text for one ``Choices`` control."""

    def __init__(self, spec: ModelSpec, target: TextTarget, *, max_length: int, overlap: int):
        super().__init__(spec, target, max_length=max_length, overlap=overlap)
        self.multi_label = spec.multi_label

    def records(self, examples: Sequence[Example]) -> list[LabelledText]:
        return classification_texts(examples, self.spec, self.target)

    def counts(self, records: Sequence[LabelledText]) -> dict[str, int]:
        return class_counts((r.labels for r in records), self.spec.labels)

    def encode(
        self, records: Sequence[LabelledText], tokenizer: PreTrainedTokenizerBase, *, labelled: bool
    ) -> Encoded:
        features, truncated = encode_texts(
            records,
            tokenizer,
            max_length=self.max_length,
            label_ids=self._label_ids(labelled),
            multi_label=self.multi_label,
        )
        return Encoded(features, [], truncated)


def handler_for(
    spec: ModelSpec, target: TextTarget, *, max_length: int, overlap: int
) -> KindHandler[Any]:
    """The handler of a model spec's kind (Visual NER's from :mod:`batch_jobs.visual.kinds`).

    Raises:
        ValueError: For a kind this code does not train.
    """
    # Visual NER builds on NerHandler, so its module imports this one: import it late.
    from batch_jobs.visual.kinds import VisualNerHandler

    kinds: dict[ModelKind, type[KindHandler[Any]]] = {
        ModelKind.NER: NerHandler,
        ModelKind.ASSERTION: AssertionHandler,
        ModelKind.CLASSIFICATION: ClassificationHandler,
        ModelKind.VISUAL_NER: VisualNerHandler,
    }
    if spec.kind not in kinds:
        raise ValueError(f"{spec.kind} is not a model kind this code trains")
    return kinds[spec.kind](spec, target, max_length=max_length, overlap=overlap)
