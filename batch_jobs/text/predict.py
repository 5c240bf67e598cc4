"""Pre-annotation: trained artifact folders run over tasks, results in Label Studio's shape.

NER spans are decoded from the words' own predictions (each word read at its
first sub-word, in the window where it is most central), never from a
pipeline's aggregation, so offsets are Python string indices that slice the
task text exactly. Assertion models classify the entities the NER model found;
classifiers give their choices with scores. Visual NER models tag a page's OCR
words and give one ``rectanglelabels`` rectangle per entity and line.

Scores: an entity's ``score`` is the mean probability of its words' tags; an
assertion label's and a single choice's is the class probability; a
multi-label choice's is the lowest probability among the classes chosen. The
task ``score`` is the *lowest* of its items' scores and, for each NER model, the
mean tag probability over the task's words (so a task where nothing was found
still says how sure the model was): a task is as uncertain as its least certain
decision, which is the order active learning wants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotrain.domain.layout import region_result_items, regions_from_word_labels
from annotrain.domain.ocr import page_from_json
from annotrain.domain.training_plan import ModelKind, ModelSpec
from batch_jobs.text.artifacts import read_description
from batch_jobs.text.data import LabelledText, Mention, NerDocument, TextTarget, text_of, words_of
from batch_jobs.text.kinds import ClassScores, KindHandler, WordTags, handler_for
from batch_jobs.text.model import forward_logits, load_tokenizer, torch_device

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from batch_jobs.visual.kinds import PageDocument


@dataclass(frozen=True, slots=True)
class TaskPrediction:
    """What the models predict for one task.

    Attributes:
        result: Label Studio result items (``labels`` spans, ``choices``), each with a ``score``.
        score: The task's confidence: the lowest of its decisions' (see the module).
        model_version: The versions of the models that made it, joined by ``,``.
    """

    result: list[dict[str, Any]]
    score: float
    model_version: str


@dataclass(slots=True)
class _Loaded:
    description: dict[str, Any]
    handler: KindHandler[Any]
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    pad_id: int

    @property
    def kind(self) -> ModelKind:
        return self.handler.spec.kind

    @property
    def version(self) -> str:
        return str(self.description["model_version"])


def load_models(
    directories: Sequence[Path], device: str = "cpu", *, batch_size: int = 64
) -> TextPredictor:
    """Load artifact folders written by training, ready to predict.

    Raises:
        ValueError: A folder is not a text model artifact.
        GpuUnavailableError: ``device`` is CUDA and there is none.
    """
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    target_device = torch_device(device)
    loaded = []
    for directory in directories:
        description = read_description(directory)
        kind = ModelKind(description["type"])
        spec = ModelSpec(
            kind, description["name"], tuple(description["labels"]),
            tuple(description["from_names"]), tuple(description["to_names"]),
            multi_label=bool(description.get("multi_label")),
        )  # fmt: skip
        settings = description.get("settings", {})
        window = settings.get("window", {})
        max_length = int(window.get("max_length", settings.get("max_length", 256)))
        handler = handler_for(
            spec, TextTarget.from_json(description["target"]),
            max_length=max_length, overlap=int(window.get("overlap", 1)),
        )  # fmt: skip
        if "thresholds" in settings:
            handler.thresholds = [float(settings["thresholds"][label]) for label in spec.labels]  # type: ignore[attr-defined]
        auto = (
            AutoModelForTokenClassification if handler.token_level
            else AutoModelForSequenceClassification
        )  # fmt: skip
        model = auto.from_pretrained(str(directory), local_files_only=True)
        model.to(target_device).eval()
        tokenizer = load_tokenizer(directory)
        loaded.append(
            _Loaded(description, handler, model, tokenizer, int(tokenizer.pad_token_id or 0))
        )
    return TextPredictor(loaded, target_device, batch_size)


class TextPredictor:
    """Trained text models, run together over tasks."""

    def __init__(self, models: list[_Loaded], device: torch.device, batch_size: int) -> None:
        self._models = models
        self._device = device
        self._batch_size = batch_size
        self.model_version = ",".join(m.version for m in models)

    def _run(self, loaded: _Loaded, records: Sequence[Any]) -> list[Any]:
        encoded = loaded.handler.encode(records, loaded.tokenizer, labelled=False)
        logits = forward_logits(
            loaded.model, encoded.features, pad_id=loaded.pad_id, device=self._device,
            batch_size=self._batch_size,
        )  # fmt: skip
        return loaded.handler.decode(logits, encoded, records)

    def predict(self, tasks: Sequence[Mapping[str, Any]]) -> list[TaskPrediction]:
        """Predict over tasks, one prediction per task, in order.

        Each task is ``{"id", "data"}``; an image task also carries ``"ocr"``, the OCR
        record of its image (:func:`annotrain.domain.ocr.page_to_json`), which Visual
        NER models read. A task without it gets no rectangles.
        """
        results: list[list[dict[str, Any]]] = [[] for _ in tasks]
        confidences: list[list[float]] = [[] for _ in tasks]
        entities: list[list[tuple[int, int]]] = [[] for _ in tasks]
        for loaded in (m for m in self._models if m.kind is ModelKind.NER):
            documents = [
                words_of(str(i), text_of(data, loaded.handler.target) or "")
                for i, data in enumerate(tasks)
            ]
            for index, (document, tagged) in enumerate(
                zip(documents, self._run(loaded, documents), strict=True)
            ):
                spans = _entity_spans(document, tagged)
                for start, end, label, score in spans:
                    results[index].append(
                        _span_item(loaded, document.text, start, end, label, score)
                    )
                    entities[index].append((start, end))
                    confidences[index].append(score)
                if tagged.scores:
                    confidences[index].append(sum(tagged.scores) / len(tagged.scores))
        for loaded in (m for m in self._models if m.kind is ModelKind.ASSERTION):
            mentions = []
            for index, data in enumerate(tasks):
                text = text_of(data, loaded.handler.target)
                if text is not None:
                    mentions += [Mention(str(index), text, s, e, None) for s, e in entities[index]]
            for mention, scored in zip(mentions, self._run(loaded, mentions), strict=True):
                label = scored.labels[0]
                score = max(scored.probabilities)
                index = int(mention.task_id)
                results[index].append(
                    _span_item(loaded, mention.text, mention.start, mention.end, label, score)
                )
                confidences[index].append(score)
        for loaded in (m for m in self._models if m.kind is ModelKind.CLASSIFICATION):
            texts = [
                LabelledText(str(i), text, ())
                for i, data in enumerate(tasks)
                if (text := text_of(data, loaded.handler.target)) is not None
            ]
            for record, scored in zip(texts, self._run(loaded, texts), strict=True):
                item = _choices_item(loaded, scored)
                if item is not None:
                    results[int(record.task_id)].append(item)
                    confidences[int(record.task_id)].append(item["score"])
        for loaded in (m for m in self._models if m.kind is ModelKind.VISUAL_NER):
            # Visual NER builds on this package's NER code: its module is imported late.
            from batch_jobs.visual.kinds import page_document

            pages = [
                page_document(str(i), page_from_json(task["ocr"]))
                for i, task in enumerate(tasks)
                if task.get("ocr") is not None
            ]
            for page, tagged in zip(pages, self._run(loaded, pages), strict=True):
                index = int(page.task_id)
                items, scores = _rectangle_items(loaded, page, tagged)
                results[index] += items
                confidences[index] += scores
                if tagged.scores:
                    confidences[index].append(sum(tagged.scores) / len(tagged.scores))
        return [
            TaskPrediction(result, round(min(scores), 6) if scores else 0.0, self.model_version)
            for result, scores in zip(results, confidences, strict=True)
        ]


def _entity_spans(document: NerDocument, tagged: WordTags) -> list[tuple[int, int, str, float]]:
    """Entities from word tags, read leniently (an ``I-`` that continues nothing starts one)."""
    spans: list[tuple[int, int, str, float]] = []
    label: str | None = None
    start = end = 0
    scores: list[float] = []
    for word, tag, score in zip(document.words, tagged.tags, tagged.scores, strict=True):
        tag_label = None if tag == "O" else tag[2:]
        if tag.startswith("I-") and tag_label == label:
            end = word.end
            scores.append(score)
            continue
        if label is not None:
            spans.append((start, end, label, sum(scores) / len(scores)))
        label, start, end, scores = tag_label, word.start, word.end, [score]
    if label is not None:
        spans.append((start, end, label, sum(scores) / len(scores)))
    return spans


def _span_item(
    loaded: _Loaded, text: str, start: int, end: int, label: str, score: float
) -> dict[str, Any]:
    spec = loaded.handler.spec
    target = loaded.handler.target
    return {
        "id": f"{spec.kind.value}-{start}-{end}",
        "from_name": target.control(label, spec.from_names[0] if spec.from_names else "label"),
        "to_name": target.to_name,
        "type": "labels",
        "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]},
        "score": round(score, 6),
    }


def _rectangle_items(
    loaded: _Loaded, page: PageDocument, tagged: WordTags
) -> tuple[list[dict[str, Any]], list[float]]:
    """A page's word tags as ``rectanglelabels`` items: one rectangle per entity and line.

    Adjacent words of one entity on one OCR line merge into the union of their
    boxes (percent of the page, rotation 0); the rectangle's score is the mean
    probability of its words' tags.
    """
    spec = loaded.handler.spec
    target = loaded.handler.target
    width, height = page.page.width, page.page.height
    regions = regions_from_word_labels(
        page.page.words, tagged.tags, width, height, scores=tagged.scores, split_lines=True
    )
    items: list[dict[str, Any]] = []
    scores: list[float] = []
    for number, region in enumerate(regions, start=1):
        score = round(region.score if region.score is not None else 0.0, 6)
        items += region_result_items(
            replace(region, score=score),
            region_id=f"{spec.kind.value}-{number}",
            from_name=target.control(
                region.label, spec.from_names[0] if spec.from_names else "label"
            ),
            to_name=target.to_name,
            width=width,
            height=height,
        )
        scores.append(score)
    return items, scores


def _choices_item(loaded: _Loaded, scored: ClassScores) -> dict[str, Any] | None:
    spec = loaded.handler.spec
    if not scored.labels:
        return None
    index = {label: i for i, label in enumerate(spec.labels)}
    score = min(scored.probabilities[index[label]] for label in scored.labels)
    return {
        "id": f"choices-{spec.name}",
        "from_name": spec.from_names[0] if spec.from_names else spec.name,
        "to_name": loaded.handler.target.to_name,
        "type": "choices",
        "value": {"choices": list(scored.labels)},
        "score": round(score, 6),
    }
