"""The training loop, and `train_snapshot`: every text model of a run, trained and saved.

The loop does what the Hugging Face ``Trainer``'s defaults do not:

- batches of similar lengths (shuffled blocks of 50 batches, sorted by length
  within a block) padded to their own longest row, so little time goes to padding;
- AdamW without weight decay on biases and LayerNorm, a linear warm-up over 6 %
  of the steps and a linear decay to zero, gradients clipped at 1.0;
- evaluations on a validation share carved from the *training* part at
  ``evaluations_per_epoch`` points of every epoch (2 by default), early stopping
  after ``early_stopping_patience`` evaluations without improvement, and the best
  evaluation's weights restored at the end (the latest of tied ones; the test part
  is only for the final scores);
- single-label classifiers and assertion weigh their loss by the inverse square
  root of each class's frequency (a rare class such as spam is not drowned out);
- mixed precision on CUDA (bf16 where the GPU has it, else fp16 with a gradient
  scaler);
- progress at least every ``progress_interval`` seconds, and a cancellation check
  before every step.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotrain.domain.snapshot import Part, TrainingParams, TrainingSnapshot
from annotrain.domain.training_plan import ModelKind, ModelSpec
from batch_jobs.text.artifacts import save_artifact
from batch_jobs.text.data import Feature, default_overlap, text_target
from batch_jobs.text.errors import NotEnoughDataError, OutOfMemoryError, TrainingCancelledError
from batch_jobs.text.evaluate import plot_confusion_matrix, plot_learning_curve
from batch_jobs.text.kinds import KindHandler, handler_for
from batch_jobs.text.model import (
    Encoder,
    autocast,
    forward_logits,
    load_tokenizer,
    packaged_encoder,
    pad_batch,
    torch_device,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

_LOG = logging.getLogger("batch_jobs.text")
#: The kinds this loop trains: the text kinds, and Visual NER (NER over OCR words and boxes).
TEXT_KINDS = (ModelKind.NER, ModelKind.ASSERTION, ModelKind.CLASSIFICATION, ModelKind.VISUAL_NER)
WARMUP_SHARE = 0.06
BLOCK_BATCHES = 50


@dataclass(frozen=True, slots=True)
class TrainingProgress:
    """Where a run stands, for its progress bar and live log.

    Attributes:
        percent: 0-100 over every model of the run.
        epoch: 1-based epoch of the model being trained.
        step: Optimisation steps done for that model.
        total_steps: Steps that model trains at most.
        loss: Mean training loss since the last report.
        model_name: The model being trained.
        message: One line for the log.
    """

    percent: float
    epoch: int
    step: int
    total_steps: int
    loss: float | None
    model_name: str
    message: str


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A model the run trained and saved.

    Attributes:
        spec: The model's spec from the snapshot.
        directory: Its artifact folder.
        metrics: Scores on the test part (see :mod:`batch_jobs.text.evaluate`),
            plus ``evaluated_on``, ``counts`` and ``best_epoch``.
        history: Per epoch: ``epoch``, ``step`` (steps done), ``loss``, ``val_score``
            (None without validation data), ``seconds`` (since training began).
        plots: PNG files: the learning curve and any confusion matrices.
    """

    spec: ModelSpec
    directory: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    plots: list[Path]


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """How the lab trains, beyond the user's parameters.

    Attributes:
        min_examples_per_label: Fewest training examples a label may have (entity
            mentions for NER and assertion, texts per class for classifiers); the
            seed product asks for 40-50 per entity.
        validation_share: Share of the training part's tasks held out for early
            stopping and thresholds.
        encoder: What models start from; by default the snapshot's base model.
        window_overlap: Tokens neighbouring NER windows share (a quarter of a window).
        progress_interval: Most seconds between two progress reports.
        eval_batch_size: Rows per batch when evaluating and predicting.
        evaluations_per_epoch: Validation points per epoch (early stopping and the
            best weights are chosen among them).
        balance_classes: The kinds whose single-label models weigh each class's loss
            by the inverse square root of its frequency, so a rare class is not
            drowned out; the weights go in the artifact's ``settings``. Assertion by
            default: measured on NegEx it reached a baseline's F1 sooner with them,
            where the SMS spam classifier reached the same F1 later (docs/training.md).
        score_test_each_evaluation: Also score the test part at every validation
            point (``test_score`` in the history; its time is counted in
            ``seconds``). For learning curves and benchmarks: the test part never
            chooses anything.
    """

    min_examples_per_label: int = 40
    validation_share: float = 0.1
    encoder: Encoder | None = None
    window_overlap: int | None = None
    progress_interval: float = 2.0
    eval_batch_size: int = 64
    evaluations_per_epoch: int = 2
    balance_classes: frozenset[ModelKind] = frozenset({ModelKind.ASSERTION})
    score_test_each_evaluation: bool = False


def _ignore_progress(progress: TrainingProgress) -> None:
    del progress


def _never() -> bool:
    return False


@dataclass(slots=True)
class _Plan:
    spec: ModelSpec
    handler: KindHandler[Any]
    train: list[Any]
    validation: list[Any]
    test: list[Any]
    counts: dict[str, int] = field(default_factory=dict)


def train_snapshot(
    snapshot: TrainingSnapshot,
    out_dir: Path,
    *,
    device: str = "cpu",
    on_progress: Callable[[TrainingProgress], None] = _ignore_progress,
    log: logging.Logger | None = None,
    should_stop: Callable[[], bool] = _never,
    options: TrainOptions | None = None,
) -> list[TrainedModel]:
    """Train, evaluate and save every NER, assertion, classification and Visual NER model.

    Every model's data is checked before any training begins. Visual NER models
    train in the same loop on their pages' OCR words and boxes
    (:mod:`batch_jobs.visual.kinds`).

    Args:
        snapshot: The run's data, models and parameters.
        out_dir: Where each model's artifact folder goes (``<kind>-<name>``).
        device: ``cpu`` or ``cuda``; a snapshot with ``use_gpu`` trains on ``cuda``.
        on_progress: Called at least every ``options.progress_interval`` seconds.
        log: Where log lines go; ``batch_jobs.text`` by default.
        should_stop: Checked before every step; True cancels the run.
        options: Minimum examples, validation share, encoder, windows.

    Returns:
        The trained models, in the snapshot's order.

    Raises:
        NotEnoughDataError: A model has no labels, no training data, or labels with
            too few examples (all shortages named).
        GpuUnavailableError: The GPU was asked for and there is none.
        OutOfMemoryError: The device ran out of memory; says which parameter to lower.
        TrainingCancelledError: ``should_stop`` returned True.
    """
    log = log or _LOG
    options = options or TrainOptions()
    params = snapshot.params
    target_device = torch_device(
        "cuda" if snapshot.use_gpu and not device.startswith("cuda") else device
    )
    plans = _plan(snapshot, params, options, log)
    encoder = options.encoder or packaged_encoder(snapshot.base_model)
    trained = []
    for index, plan in enumerate(plans):

        def report(progress: TrainingProgress, index: int = index) -> None:
            share = progress.step / progress.total_steps if progress.total_steps else 1.0
            percent = 100.0 * (index + min(1.0, share)) / len(plans)
            on_progress(_with_percent(progress, percent))

        model = _train_one(
            plan, snapshot, encoder, params, target_device, out_dir, options, log, report,
            should_stop,
        )  # fmt: skip
        trained.append(model)
        name = f"{plan.spec.kind}:{plan.spec.name}"
        last = model.history[-1]
        on_progress(TrainingProgress(
            round(100.0 * (index + 1) / len(plans), 2), int(last["epoch"]), int(last["step"]),
            int(last["step"]), float(last["loss"]), name,
            f"{name}: saved ({_summary(model.metrics)})",
        ))  # fmt: skip
    return trained


def _with_percent(progress: TrainingProgress, percent: float) -> TrainingProgress:
    return TrainingProgress(
        round(percent, 2), progress.epoch, progress.step, progress.total_steps, progress.loss,
        progress.model_name, progress.message,
    )  # fmt: skip


def _plan(
    snapshot: TrainingSnapshot, params: TrainingParams, options: TrainOptions, log: logging.Logger
) -> list[_Plan]:
    """Each text model's records, split, and checked for enough data."""
    specs = [s for s in snapshot.models if s.kind in TEXT_KINDS]
    for spec in snapshot.models:
        if spec.kind not in TEXT_KINDS:
            log.info(
                "model %r (%s) is not a text model: another job trains it", spec.name, spec.kind
            )
    if not specs:
        raise NotEnoughDataError(
            "text",
            "the labeling config declares no labels for a model: add <Labels> or "
            "<Choices> with at least one <Label>/<Choice> on a <Text>, or <RectangleLabels> "
            "on an <Image>",
        )
    train_examples = snapshot.part(Part.TRAIN)
    test_examples = snapshot.part(Part.TEST)
    overlap = options.window_overlap or default_overlap(params.max_length)
    plans = []
    problems: list[NotEnoughDataError] = []
    for spec in specs:
        if not spec.labels:
            problems.append(NotEnoughDataError(
                spec.name, "the labeling config declares no labels for it: add at least one",
            ))  # fmt: skip
            continue
        target = text_target(spec, snapshot.label_config)
        handler = handler_for(spec, target, max_length=params.max_length, overlap=overlap)
        try:
            records = handler.records(train_examples)
        except NotEnoughDataError as problem:
            problems.append(problem)
            continue
        for warning in getattr(handler, "warnings", ()):
            log.warning("model %r: %s", spec.name, warning)
        if not records:
            problems.append(NotEnoughDataError(
                spec.name,
                f"the training part holds no annotated example for it ({len(train_examples)} "
                f"training tasks, text field {target.data_key!r}): annotate tasks, or check "
                "the split tags",
            ))  # fmt: skip
            continue
        counts = handler.counts(records)
        if any(n < options.min_examples_per_label for n in counts.values()):
            problems.append(
                NotEnoughDataError.per_label(spec.name, counts, options.min_examples_per_label)
            )
            continue
        train, validation = _carve_validation(records, options.validation_share, params.seed)
        test = handler.records(test_examples)
        plans.append(_Plan(spec, handler, train, validation, test, counts))
        log.info(
            "model %r (%s): %d training, %d validation, %d test records; per label %s",
            spec.name, spec.kind, len(train), len(validation), len(test), counts,
        )  # fmt: skip
    if problems:
        if len(problems) == 1:
            raise problems[0]
        first = problems[0]
        raise NotEnoughDataError(
            first.model,
            "; ".join(str(p) for p in problems),
            counts=first.counts,
            needed=first.needed,
        )
    return plans


def _carve_validation(records: list[Any], share: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Hold out ``share`` of the tasks (all records of a task go the same way)."""
    tasks = sorted({r.task_id for r in records})
    if len(tasks) < 2 or share <= 0:
        return records, []
    random.Random(seed).shuffle(tasks)  # noqa: S311 - a seeded split, not secrecy
    held = set(tasks[: max(1, round(len(tasks) * share))])
    return [r for r in records if r.task_id not in held], [r for r in records if r.task_id in held]


def _train_one(
    plan: _Plan,
    snapshot: TrainingSnapshot,
    encoder: Encoder,
    params: TrainingParams,
    device: torch.device,
    out_dir: Path,
    options: TrainOptions,
    log: logging.Logger,
    on_progress: Callable[[TrainingProgress], None],
    should_stop: Callable[[], bool],
) -> TrainedModel:
    import torch

    started = time.monotonic()
    spec, handler = plan.spec, plan.handler
    tokenizer = load_tokenizer(encoder.tokenizer_path, handler.markers)
    model = handler.build(
        encoder, vocab_size=len(tokenizer), dropout=params.dropout, seed=params.seed
    )
    train = handler.encode(plan.train, tokenizer, labelled=True)
    if train.truncated:
        log.warning(
            "model %r: %d training texts are longer than max_length %d; the classifier reads "
            "their first %d tokens (raise params.max_length to read more)",
            spec.name, train.truncated, params.max_length, params.max_length,
        )  # fmt: skip
    pad_id = int(tokenizer.pad_token_id or 0)

    def evaluate(records: Sequence[Any]) -> tuple[list[Any], dict[str, Any]]:
        encoded = handler.encode(records, tokenizer, labelled=False)
        logits = forward_logits(
            model, encoded.features, pad_id=pad_id, device=device,
            batch_size=options.eval_batch_size,
        )  # fmt: skip
        predictions = handler.decode(logits, encoded, records)
        return predictions, handler.metrics(records, predictions)

    def validation_score() -> float:
        if not plan.validation:
            return float("nan")
        predictions, metrics = evaluate(plan.validation)
        handler.tune(plan.validation, predictions)
        if handler.settings().get("thresholds"):
            predictions, metrics = evaluate(plan.validation)
        return handler.score(metrics)

    def score_test(entry: dict[str, Any]) -> None:
        entry["test_score"] = handler.score(evaluate(plan.test)[1])

    weights = None
    if spec.kind in options.balance_classes and not spec.multi_label and not handler.token_level:
        labels = [int(f.labels) for f in train.features if isinstance(f.labels, int)]
        weights = class_weights(labels, len(handler.model_labels))
        log.info("model %r: class weights %s", spec.name, [round(w, 3) for w in weights])
    name = f"{spec.kind}:{spec.name}"
    on_device = False
    try:
        model.to(device)  # type: ignore[arg-type]  # transformers types `to` poorly
        on_device = True
        history, best_epoch = fit(
            model, train.features, params=params, device=device, pad_id=pad_id,
            validation_score=validation_score, model_name=name, on_progress=on_progress,
            should_stop=should_stop, progress_interval=options.progress_interval, log=log,
            evaluations_per_epoch=options.evaluations_per_epoch if plan.validation else 1,
            weights=weights,
            on_evaluated=score_test if options.score_test_each_evaluation and plan.test else None,
            started=started,
        )  # fmt: skip
        if plan.validation:
            validation_score()  # thresholds of the restored best weights
        evaluated_on = "test" if plan.test else "validation"
        _, metrics = evaluate(plan.test or plan.validation or plan.train)
    except torch.cuda.OutOfMemoryError as exc:
        # Measure what fits, unless the weights themselves did not (then no batch does).
        model.zero_grad(set_to_none=True)
        fits = (
            fitting_batch_size(
                lambda size: _trial_step(model, train.features, size, pad_id, device),
                params.batch_size,
            )
            if on_device
            else None
        )
        raise OutOfMemoryError(
            name, str(device), params.batch_size, params.max_length, fits=fits
        ) from exc
    metrics |= {"evaluated_on": evaluated_on, "counts": plan.counts, "best_epoch": best_epoch}
    directory = out_dir / _folder_name(spec)
    model.to("cpu")  # type: ignore[arg-type]
    save_artifact(directory, model, tokenizer, {
        "type": spec.kind.value, "name": spec.name, "labels": list(spec.labels),
        "model_labels": handler.model_labels, "multi_label": spec.multi_label,
        "from_names": list(spec.from_names), "to_names": list(spec.to_names),
        "base_model": encoder.name, "parameters": params.to_json(),
        "data_fingerprint": snapshot.fingerprint, "run_id": snapshot.run_id,
        "model_version": f"{snapshot.run_id}:{spec.kind.value}:{spec.name}",
        "target": handler.target.to_json(),
        "settings": handler.settings() | ({"class_weights": weights} if weights else {}),
        "metrics": metrics, "history": history,
    })  # fmt: skip
    plots = _plots(directory, spec, metrics, history)
    log.info("model %r saved to %s: %s", spec.name, directory, _summary(metrics))
    return TrainedModel(spec, directory, metrics, history, plots)


def fitting_batch_size(try_step: Callable[[int], None], batch_size: int) -> int:
    """The largest batch size under ``batch_size`` (halving) whose step does not run out of memory.

    Args:
        try_step: Runs one training step (forward and backward) at a batch size;
            raises ``torch.cuda.OutOfMemoryError`` when it does not fit.
        batch_size: The size that ran out of memory.

    Returns:
        The size that fits, or 0 when not even 1 does.
    """
    import torch

    size = batch_size // 2
    while size >= 1:
        try:
            try_step(size)
        except torch.cuda.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            size //= 2
            continue
        return size
    return 0


def _trial_step(
    model: PreTrainedModel, features: Sequence[Feature], size: int, pad_id: int, device: Any
) -> None:
    """One forward and backward pass over the ``size`` longest features, gradients dropped."""
    longest = sorted(features, key=lambda f: -len(f.input_ids))[:size]
    multiple = 8 if device.type == "cuda" else 1
    try:
        with autocast(device):
            loss = model(**pad_batch(longest, pad_id, device, multiple=multiple)).loss
        loss.backward()
    finally:
        model.zero_grad(set_to_none=True)


def _folder_name(spec: ModelSpec) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.name).strip("._") or "model"
    return f"{spec.kind.value}-{safe}" if safe != spec.kind.value else safe


def _summary(metrics: dict[str, Any]) -> str:
    micro, macro = metrics["micro"], metrics["macro"]
    return f"micro F1 {micro['f1']:.3f}, macro F1 {macro['f1']:.3f} on {metrics['evaluated_on']}"


def _plots(
    directory: Path, spec: ModelSpec, metrics: dict[str, Any], history: list[dict[str, Any]]
) -> list[Path]:
    plots_dir = directory / "plots"
    plots_dir.mkdir(exist_ok=True)
    plots = [plot_learning_curve(history, plots_dir / "learning_curve.png", spec.name)]
    if "confusion_matrix" in metrics:
        matrix = metrics["confusion_matrix"]
        plots.append(plot_confusion_matrix(
            matrix["matrix"], matrix["labels"], plots_dir / "confusion_matrix.png", spec.name
        ))  # fmt: skip
    for index, (label, matrix) in enumerate(metrics.get("confusion_matrices", {}).items()):
        plots.append(plot_confusion_matrix(
            matrix["matrix"], matrix["labels"], plots_dir / f"confusion_matrix_{index}.png", label
        ))  # fmt: skip
    return plots


# --- the loop --------------------------------------------------------------------------


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random
) -> list[list[int]]:
    """Batches of row indices of similar length, in random order.

    Rows are shuffled, cut into blocks of ``BLOCK_BATCHES`` batches, sorted by length
    within a block and cut into batches; the batches are shuffled, so each epoch
    sees a different order while padding stays small.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    block = batch_size * BLOCK_BATCHES
    batches = []
    for at in range(0, len(order), block):
        rows = sorted(order[at : at + block], key=lengths.__getitem__)
        batches += [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    rng.shuffle(batches)
    return batches


def evaluation_steps(steps_per_epoch: int, per_epoch: int) -> set[int]:
    """The steps (1-based, within an epoch) after which the model is evaluated.

    ``per_epoch`` points spread evenly over the epoch, the last on its last step; an
    epoch shorter than ``per_epoch`` steps is evaluated after each step.
    """
    per_epoch = max(1, min(per_epoch, steps_per_epoch))
    return {round(steps_per_epoch * k / per_epoch) for k in range(1, per_epoch + 1)}


def class_weights(labels: Sequence[int], count: int) -> list[float]:
    """Loss weights of a single-label classifier's classes: inverse square root of frequency.

    Normalised so that the weight of an average example is 1 (the learning rate keeps
    its meaning). A class with no example gets the largest weight of the others.
    """
    seen = [0] * count
    for label in labels:
        seen[label] += 1
    raw = [len(labels) / (count * n) if n else 0.0 for n in seen]
    weights = [w**0.5 for w in raw]
    fallback = max(weights, default=1.0) or 1.0
    weights = [w or fallback for w in weights]
    mean = sum(weights[label] for label in labels) / max(1, len(labels))
    return [w / mean for w in weights] if mean else weights


def learning_rate_factor(step: int, total_steps: int, warmup: int) -> float:
    """The schedule: linear warm-up over ``warmup`` steps, then a linear decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def fit(
    model: PreTrainedModel,
    features: Sequence[Feature],
    *,
    params: TrainingParams,
    device: torch.device,
    pad_id: int,
    validation_score: Callable[[], float],
    model_name: str,
    on_progress: Callable[[TrainingProgress], None] = _ignore_progress,
    should_stop: Callable[[], bool] = _never,
    progress_interval: float = 2.0,
    log: logging.Logger | None = None,
    evaluations_per_epoch: int = 1,
    weights: Sequence[float] | None = None,
    on_evaluated: Callable[[dict[str, Any]], None] | None = None,
    started: float | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Train ``model`` in place; the best evaluation's weights are in it on return.

    Args:
        validation_score: Scores the model as it is now (higher is better; NaN when
            there is no validation data, which turns early stopping off). It runs
            at the evaluation points of each epoch and, with ``params.eval_steps``,
            every that many steps; ``params.max_steps`` ends training early (with a
            last evaluation there).
        evaluations_per_epoch: Validation points per epoch, evenly spread; early
            stopping counts ``params.early_stopping_patience`` of them.
        weights: Per-class loss weights of a single-label classifier (see
            :func:`class_weights`); None keeps the model's own loss.
        on_evaluated: Called with each history entry once the validation score is
            in, before its ``seconds`` are stamped (so work it does is timed).
        started: ``time.monotonic()`` when this model's training began (model
            building and tokenising included); by default when ``fit`` starts.

    Returns:
        The history (per evaluation: ``epoch``, ``at_epoch`` (epochs done, a
        fraction), ``step``, ``loss`` (mean since the previous evaluation),
        ``val_score``, ``seconds`` (since ``started``), ``train_seconds`` (in this
        loop: steps and validation, not ``on_evaluated``'s work)) and the epoch of
        the best evaluation.

    Raises:
        TrainingCancelledError: ``should_stop`` returned True.
    """
    import torch

    log = log or _LOG
    torch.manual_seed(params.seed)
    rng = random.Random(params.seed)  # noqa: S311 - shuffling, not secrecy
    lengths = [len(f.input_ids) for f in features]
    steps_per_epoch = -(-len(features) // params.batch_size)
    total_steps = steps_per_epoch * params.epochs
    if params.max_steps:
        total_steps = min(total_steps, params.max_steps)
    checkpoints = evaluation_steps(steps_per_epoch, evaluations_per_epoch)
    # The fused kernel (CPU and CUDA): one pass over each parameter group per step.
    optimizer = torch.optim.AdamW(
        _parameter_groups(model, params.decay), lr=params.learning_rate, fused=True
    )
    warmup = max(1, int(total_steps * WARMUP_SHARE))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, warmup)
    )
    use_scaler = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    multiple = 8 if device.type == "cuda" else 1
    loss_weights = (
        torch.tensor(list(weights), dtype=torch.float, device=device) if weights else None
    )
    history: list[dict[str, Any]] = []
    best: tuple[float, int] = (float("-inf"), 0)
    best_state: dict[str, torch.Tensor] | None = None
    waited = step = 0
    looping = time.monotonic()
    started = looping if started is None else started
    outside = 0.0  # seconds on_evaluated took
    last_report = time.monotonic()
    stop = False
    model.train()
    for epoch in range(1, params.epochs + 1):
        since_eval = running = 0.0
        since_count = running_count = 0
        pending: list[torch.Tensor] = []
        batches = length_bucketed_batches(lengths, params.batch_size, rng)
        for index, rows in enumerate(batches, start=1):
            if step >= total_steps:
                break
            if should_stop():
                raise TrainingCancelledError(model_name, epoch, step)
            batch = pad_batch([features[i] for i in rows], pad_id, device, multiple=multiple)
            with autocast(device):
                if loss_weights is None:
                    loss = model(**batch).loss
                else:
                    labels = batch.pop("labels")
                    logits = model(**batch).logits.float()
                    loss = torch.nn.functional.cross_entropy(logits, labels, weight=loss_weights)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            # Losses stay on the device until a report or an evaluation needs them: a
            # float() per step would make the CPU wait for the GPU after every step.
            pending.append(loss.detach())
            now = time.monotonic()
            due = now - last_report >= progress_interval
            evaluate = (
                index in checkpoints
                or bool(params.eval_steps and step % params.eval_steps == 0)
                or step >= total_steps
            )
            if due or evaluate:
                values = torch.stack(pending).float().tolist()
                pending.clear()
                since_eval += sum(values)
                since_count += len(values)
                running += sum(values)
                running_count += len(values)
            if due:
                mean = running / running_count
                on_progress(TrainingProgress(
                    0.0, epoch, step, total_steps, mean, model_name,
                    f"{model_name}: epoch {epoch}/{params.epochs}, step {step}/{total_steps}, "
                    f"loss {mean:.4f}",
                ))  # fmt: skip
                running, running_count, last_report = 0.0, 0, now
            if not evaluate:
                continue
            score = validation_score()
            model.train()
            mean_loss = since_eval / max(1, since_count)
            since_eval, since_count = 0.0, 0
            entry: dict[str, Any] = {
                "epoch": epoch, "at_epoch": round(step / steps_per_epoch, 3), "step": step,
                "loss": mean_loss, "val_score": None if score != score else score,  # no NaN in JSON
            }  # fmt: skip
            if on_evaluated is not None:
                before = time.monotonic()
                on_evaluated(entry)
                model.train()
                outside += time.monotonic() - before
            now = time.monotonic()
            entry["seconds"] = round(now - started, 3)
            entry["train_seconds"] = round(now - looping - outside, 3)
            history.append(entry)
            message = (
                f"{model_name}: epoch {entry['at_epoch']:g} evaluated, loss {mean_loss:.4f}, "
                f"validation {score:.4f}"
            )
            log.info("%s", message)
            on_progress(
                TrainingProgress(0.0, epoch, step, total_steps, mean_loss, model_name, message)
            )
            last_report = time.monotonic()
            if score != score:  # NaN: no validation data, keep the last weights
                best = (best[0], epoch)
                continue
            if score >= best[0]:
                # A tie keeps the later weights (they learned from more data; a small
                # validation part saturates) but is no improvement for early stopping.
                improved = score > best[0]
                best = (score, epoch)
                best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
                if improved:
                    waited = 0
                    continue
            waited += 1
            if params.early_stopping_patience and waited >= params.early_stopping_patience:
                log.info(
                    "%s: no better validation score in %d evaluations; stopping at epoch %g",
                    model_name, waited, entry["at_epoch"],
                )  # fmt: skip
                stop = True
                break
        if stop or step >= total_steps:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.train(False)
    return history, best[1]


def _parameter_groups(model: PreTrainedModel, decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only: not on biases, LayerNorm or embeddings' norms."""
    decayed, plain = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.dim() < 2 or "LayerNorm" in name or "layer_norm" in name:
            plain.append(parameter)
        else:
            decayed.append(parameter)
    return [{"params": decayed, "weight_decay": decay}, {"params": plain, "weight_decay": 0.0}]
