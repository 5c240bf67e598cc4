"""Text training and pre-annotation against Hugging Face's Trainer and pipeline, on real data.

One command prints one table::

    python -m benchmarks.train_text [--quick] [--device cpu|cuda] [--epochs 3]
        [--batch-size 8] [--learning-rate 1e-4] [--tasks ner,assertion,classification]
        [--sample TRAIN,DEV] [--threads 1] [--preannotate-threads 0] [--no-baselines]
        [--class-weights default|all|none]

Data (../shared/data, see its README): NCBI-disease for NER (train → train,
devel → dev), NegEx for assertion status (Affirmed/Negated of each condition;
a seeded 80/20 split of its 1,600 mentions) and the SMS Spam Collection for
classification (a seeded, stratified 80/20 split of its 4,460 messages). All
three start from MiniLM-L6 (``minilm-l6-en``). ``--tasks temporality`` adds a
second assertion task, not run by default: the same NegEx mentions' temporality
(Recent/Historical/Not particular: 1,380 / 183 / 37 of the whole file).

For each, in the same run and on the same tokenised inputs (first-sub-word
labels), base model, dev data and torch threads, it trains:

- **ours**: `train_snapshot` with the product's defaults (bucketed batches,
  warm-up and linear decay, two evaluations per epoch on a 10 % validation share
  carved from train, so it learns from less data, early stopping restoring the
  best weights, class weights for assertion), at most ``--epochs`` (3); the dev
  data is also scored at every evaluation (``score_test_each_evaluation``) to
  draw its curve;
- **Trainer**: ``transformers.Trainer`` with default arguments (3 epochs, lr 5e-5,
  batch 8, no warm-up);
- **Trainer+gbl**: the same with ``train_sampling_strategy="group_by_length"``.

and scores each on the dev data with the same decoder (entity-level F1 for NER,
macro per-class F1 for the others). The goal, against each baseline: ours first
reaches the baseline's final dev F1 in at most 2/3 of the baseline's training
time (speed-up >= 1.5x, the baseline's seconds over ours' seconds to that F1)
and ends (restored best weights) at an equal or better dev F1.

Each run's seconds are its training loop's, measured alike: the Trainer's
``trainer.train()``; ours' ``train_seconds`` (training steps and its validation
evaluations, which the Trainer does not do). Neither counts building the model or
tokenising (the Trainer is handed both), and ours' does not count scoring the dev
data, which only the benchmark asks for; ours' wall time with all of that is
printed too.

Pre-annotation: ``load_models(...).predict`` over the dev texts, called as the
pre-annotation job calls it (``BATCH_SIZE`` tasks a call), against
``transformers.pipeline`` called once per task (its default use); goal >= 5x and
>= 55,000 tasks per hour. Both run with torch's default thread count (every
core), as each would on a worker of its own; ``--preannotate-threads`` changes it.

``--quick`` subsamples (300 training and 100 dev examples of each) for a smoke
run that proves the table works: so little data makes few steps, so its F1s say
little.
Without it, the full NCBI training takes ~15 minutes per Trainer run on 2 quiet
cores. Timings on a shared machine swing
2-4x: compare within one run. Threads default to 1: on 2 cores shared with
other torch processes, 2 OpenMP threads per process made the same training ~6x
slower than 1 (measured here, ours and the Trainer alike), and such stalls land
on whichever run is under way.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from annotrain.domain.snapshot import Example, Part, TrainingParams, TrainingSnapshot
from annotrain.domain.training_plan import ModelKind, ModelSpec

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
# --class-weights: which kinds of ours weigh their loss by class (None: the product's choice).
CLASS_WEIGHTS: dict[str, frozenset[ModelKind] | None] = {
    "default": None,
    "all": frozenset({ModelKind.ASSERTION, ModelKind.CLASSIFICATION}),
    "none": frozenset(),
}


@dataclass
class Task:
    """One benchmark task: a snapshot whose test part is the dev data."""

    name: str
    snapshot: TrainingSnapshot
    score_key: str  # "micro" (entity F1) or "macro" (mean per-class F1)


def _spans_from_bio(tokens: list[str], tags: list[str]) -> tuple[str, list[tuple[int, int, str]]]:
    text, spans, offsets = "", [], []
    for token in tokens:
        if text:
            text += " "
        offsets.append((len(text), len(text) + len(token)))
        text += token
    label, start, end = None, 0, 0
    for (s, e), tag in zip(offsets, tags, strict=True):
        if tag.startswith("I-") and tag[2:] == label:
            end = e
            continue
        if label is not None:
            spans.append((start, end, label))
        label, start, end = (tag[2:], s, e) if tag != "O" else (None, 0, 0)
    if label is not None:
        spans.append((start, end, label))
    return text, spans


def _read_bio(path: Path) -> list[tuple[list[str], list[str]]]:
    sentences, tokens, tags = [], [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        token, tag = line.split("\t")
        tokens.append(token)
        tags.append(tag)
    if tokens:
        sentences.append((tokens, tags))
    return sentences


def ncbi(limit: tuple[int, int] | None, params: TrainingParams) -> Task:
    examples = []
    for part, file in ((Part.TRAIN, "train.tsv"), (Part.TEST, "devel.tsv")):
        sentences = _read_bio(DATA / "ncbi_disease" / file)
        if limit:
            sentences = random.Random(0).sample(sentences, limit[part is Part.TEST])
        for tokens, tags in sentences:
            text, spans = _spans_from_bio(tokens, tags)
            result = tuple(
                {"from_name": "label", "to_name": "text", "type": "labels",
                 "value": {"start": s, "end": e, "labels": [label]}}
                for s, e, label in spans
            )  # fmt: skip
            examples.append(Example(f"{part}-{len(examples)}", part, {"text": text}, result))
    spec = ModelSpec(ModelKind.NER, "ner", ("Disease",), ("label",), ("text",))
    return Task("NER NCBI-disease", _snapshot(spec, examples, params), "micro")


def negex(limit: tuple[int, int] | None, params: TrainingParams) -> Task:
    return _negex_assertion(limit, params, "Assertion NegEx", 3, ("Affirmed", "Negated"))


def negex_temporality(limit: tuple[int, int] | None, params: TrainingParams) -> Task:
    labels = ("Recent", "Historical", "Not particular")
    return _negex_assertion(limit, params, "Assertion NegEx temporal", 4, labels)


def _negex_assertion(
    limit: tuple[int, int] | None,
    params: TrainingParams,
    name: str,
    column: int,
    labels: tuple[str, ...],
) -> Task:
    """NegEx's conditions, each with the status in ``column`` (3: negation, 4: temporality)."""
    rows = (DATA / "negex" / "annotations_dev.tsv").read_text().splitlines()[1:]
    mentions = []
    for row in rows:
        columns = row.split("\t")
        condition, sentence, status = columns[1].strip(), columns[2], columns[column].strip()
        start = sentence.lower().find(condition.lower())
        if start >= 0 and status in labels:
            mentions.append((sentence, start, start + len(condition), status))
    random.Random(0).shuffle(mentions)
    cut = int(len(mentions) * 0.8)
    parts = [(Part.TRAIN, mentions[:cut]), (Part.TEST, mentions[cut:])]
    examples = []
    for part, chosen in parts:
        if limit:
            chosen = chosen[: limit[part is Part.TEST]]
        for sentence, start, end, status in chosen:
            value = {"start": start, "end": end, "labels": ["Condition", status]}
            item = {"from_name": "label", "to_name": "text", "type": "labels", "value": value}
            examples.append(Example(f"{part}-{len(examples)}", part, {"text": sentence}, (item,)))
    spec = ModelSpec(ModelKind.ASSERTION, "assertion", labels, ("label",), ("text",))
    return Task(name, _snapshot(spec, examples, params), "macro")


def sms(limit: tuple[int, int] | None, params: TrainingParams) -> Task:
    by_class: dict[str, list[str]] = {}
    for line in (DATA / "sms_spam" / "train.tsv").read_text().splitlines():
        label, text = line.split("\t", 1)
        by_class.setdefault(label, []).append(text)
    examples = []
    rng = random.Random(0)
    for label, texts in sorted(by_class.items()):
        rng.shuffle(texts)
        cut = int(len(texts) * 0.8)
        share = len(texts) / sum(map(len, by_class.values()))
        for part, chosen in ((Part.TRAIN, texts[:cut]), (Part.TEST, texts[cut:])):
            if limit:
                chosen = chosen[: max(5, round(limit[part is Part.TEST] * share))]
            for text in chosen:
                item = {"from_name": "type", "to_name": "text", "type": "choices",
                        "value": {"choices": [label]}}  # fmt: skip
                examples.append(Example(f"{part}-{len(examples)}", part, {"text": text}, (item,)))
    spec = ModelSpec(ModelKind.CLASSIFICATION, "type", ("ham", "spam"), ("type",), ("text",))
    return Task("Classification SMS spam", _snapshot(spec, examples, params), "macro")


def _snapshot(spec: ModelSpec, examples: list[Example], params: TrainingParams) -> TrainingSnapshot:
    return TrainingSnapshot(
        run_id="bench", project_id=0, language="en", base_model="minilm-l6-en", params=params,
        models=(spec,), examples=tuple(examples),
    )  # fmt: skip


# --- the runs -----------------------------------------------------------------------------


@dataclass
class Row:
    task: str
    trainer: str
    seconds: float
    f1: float
    per_class: str
    curve: list[tuple[float, float, float]] = field(default_factory=list)  # epochs, s, dev F1
    wall: float | None = None  # ours: also model building, tokenising, scoring dev and saving


def run_ours(
    task: Task, out: Path, device: str, *, balance: frozenset[ModelKind] | None = None
) -> tuple[Row, Path]:
    """The product's trainer, its dev F1 scored at every evaluation point (timed apart).

    ``balance``: the kinds weighing their loss by class; None keeps the product's.
    """
    from batch_jobs.text import TrainOptions, train_snapshot

    options = TrainOptions(min_examples_per_label=1, score_test_each_evaluation=True)
    if balance is not None:
        options = replace(options, balance_classes=balance)
    started = time.perf_counter()
    [model] = train_snapshot(task.snapshot, out, device=device, options=options)
    row = _row(task, "ours", model.history[-1]["train_seconds"], model.metrics)
    row.wall = time.perf_counter() - started
    row.curve = [(h["at_epoch"], h["train_seconds"], h["test_score"]) for h in model.history]
    return row, model.directory


def run_hf_trainer(task: Task, out: Path, device: str, *, group_by_length: bool) -> Row:
    """The Trainer with its defaults, fed our tokenised inputs, scored by our decoder."""
    import torch
    from transformers import Trainer, TrainingArguments

    from batch_jobs.text.data import IGNORE, text_target
    from batch_jobs.text.kinds import handler_for
    from batch_jobs.text.model import build_model, forward_logits, load_tokenizer, packaged_encoder

    snapshot = task.snapshot
    spec = snapshot.models[0]
    handler = handler_for(spec, text_target(spec, ""), max_length=snapshot.params.max_length,
                          overlap=max(1, (snapshot.params.max_length - 2) // 4))  # fmt: skip
    encoder = packaged_encoder(snapshot.base_model)
    tokenizer = load_tokenizer(encoder.tokenizer_path, handler.markers)
    model = build_model(encoder, labels=handler.model_labels, token_level=handler.token_level,
                        dropout=0.1, vocab_size=len(tokenizer), seed=42)  # fmt: skip
    train = handler.encode(handler.records(snapshot.part(Part.TRAIN)), tokenizer, labelled=True)
    rows = [{"input_ids": f.input_ids, "labels": f.labels} for f in train.features]

    def collate(batch: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), int(tokenizer.pad_token_id or 0))
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            ids[i, : len(b["input_ids"])] = torch.tensor(b["input_ids"])
            mask[i, : len(b["input_ids"])] = 1
        if handler.token_level:
            labels = torch.full((len(batch), width), IGNORE)
            for i, b in enumerate(batch):
                labels[i, : len(b["labels"])] = torch.tensor(b["labels"])
        else:
            labels = torch.tensor([b["labels"] for b in batch])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    extra: dict[str, Any] = (
        {"train_sampling_strategy": "group_by_length"} if group_by_length else {}
    )
    args = TrainingArguments(
        output_dir=str(out), num_train_epochs=3, report_to=[], save_strategy="no",
        logging_strategy="no", use_cpu=device == "cpu", disable_tqdm=True, **extra,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    records = handler.records(snapshot.part(Part.TEST))
    encoded = handler.encode(records, tokenizer, labelled=False)
    logits = forward_logits(model, encoded.features, pad_id=int(tokenizer.pad_token_id or 0),
                            device=torch.device(device))  # fmt: skip
    metrics = handler.metrics(records, handler.decode(logits, encoded, records))
    name = "Trainer+gbl" if group_by_length else "Trainer"
    return _row(task, name, seconds, metrics)


def _row(task: Task, trainer: str, seconds: float, metrics: dict[str, Any]) -> Row:
    per_class = ", ".join(f"{k} {v['f1']:.3f}" for k, v in metrics["per_label"].items())
    return Row(task.name, trainer, seconds, float(metrics[task.score_key]["f1"]), per_class)


def preannotation(
    directory: Path, texts: list[str], device: str, pipeline_task: str
) -> tuple[float, float]:
    """Tasks per second: our predictor over all texts, and the pipeline called per task.

    Ours is called as the pre-annotation job calls it: ``BATCH_SIZE`` tasks at a time.
    """
    from transformers import pipeline

    from batch_jobs.preannotate import BATCH_SIZE
    from batch_jobs.text import load_models

    predictor = load_models([directory], device=device)
    predictor.predict([{"text": t} for t in texts[:8]])  # warm up
    started = time.perf_counter()
    for at in range(0, len(texts), BATCH_SIZE):
        predictor.predict([{"text": t} for t in texts[at : at + BATCH_SIZE]])
    ours = len(texts) / (time.perf_counter() - started)
    pipe = pipeline(pipeline_task, model=str(directory), device=device)
    pipe(texts[0])
    sample = texts[: min(len(texts), 200)]
    started = time.perf_counter()
    for text in sample:
        pipe(text)
    theirs = len(sample) / (time.perf_counter() - started)
    return ours, theirs


def _print_row(row: Row) -> None:
    wall = f" ({row.wall:.1f} s wall)" if row.wall is not None else ""
    print(f"  {row.task}: {row.trainer} {row.seconds:.1f} s{wall}, dev F1 {row.f1:.3f}", flush=True)


def time_to_target(curve: Sequence[tuple[float, float, float]], target: float) -> float | None:
    """Seconds until ours first scored ``target`` or more on dev; None if it never did."""
    return next((seconds for _, seconds, f1 in curve if f1 >= target), None)


def _print_task(rows: Sequence[Row]) -> None:
    """One task's results: every run, then ours against each baseline."""
    ours = next(r for r in rows if r.trainer == "ours")
    print(f"\n{'task':26} {'run':12} {'train s':>8} {'dev F1':>7}  per class F1")
    for row in rows:
        print(f"{row.task:26} {row.trainer:12} {row.seconds:8.1f} {row.f1:7.3f}  {row.per_class}")
    curve = ", ".join(f"{e:g}ep {s:.0f}s {f:.3f}" for e, s, f in ours.curve)
    print(f"ours' dev F1 at each evaluation (epochs, seconds, F1): {curve}")
    if len(rows) == 1:
        return
    print(f"{'':26} {'baseline':12} {'its s':>8} {'its F1':>7} {'ours reach s':>12} "
          f"{'speed-up':>8} {'ours end F1':>11}  goal (>=1.5x, end F1 >=)")  # fmt: skip
    for base in (r for r in rows if r.trainer != "ours"):
        reached = time_to_target(ours.curve, base.f1)
        speed = base.seconds / reached if reached else None
        met = speed is not None and speed >= 1.5 and ours.f1 >= base.f1
        print(f"{ours.task:26} {base.trainer:12} {base.seconds:8.1f} {base.f1:7.3f} "
              f"{reached if reached is not None else float('nan'):12.1f} "
              f"{(f'{speed:.2f}x' if speed else 'never'):>8} {ours.f1:11.3f}  "
              f"{'met' if met else 'NOT met'}", flush=True)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="subsample for a smoke run")
    parser.add_argument(
        "--sample",
        default="",
        help="TRAIN,DEV: subsample this many examples of each (a seeded draw)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--epochs", type=int, default=3, help="most epochs of ours (Trainer: 3)")
    defaults = TrainingParams()
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="batch size of ours (the product's default)",
    )
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                        help="peak lr of ours (the product's default)")  # fmt: skip
    parser.add_argument("--tasks", default="ner,assertion,classification")
    parser.add_argument("--no-baselines", action="store_true",
                        help="train ours only (its curve and pre-annotation)")  # fmt: skip
    parser.add_argument(
        "--class-weights",
        choices=sorted(CLASS_WEIGHTS),
        default="default",
        help="which of ours' single-label models weigh their loss by class (default: the "
        "product's, assertion only)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (0: torch's default, all cores)"
    )
    parser.add_argument(
        "--preannotate-threads",
        type=int,
        default=0,
        help="torch threads of the pre-annotation comparison (0: torch's default, every core, "
        "as a pre-annotation job and a pipeline run on a worker of their own)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    every_core = torch.get_num_threads()
    preannotate_threads = args.preannotate_threads or every_core
    if args.threads:
        torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        raise SystemExit(f"no data at {DATA.resolve()}: see /work/shared/data/README.md")
    params = TrainingParams(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        max_length=128, early_stopping_patience=defaults.early_stopping_patience,
    )  # fmt: skip
    limit = (300, 100) if args.quick else None
    if args.sample:
        train_count, dev_count = (int(n) for n in args.sample.split(","))
        limit = (train_count, dev_count)
    builders: dict[str, Callable[[tuple[int, int] | None, TrainingParams], Task]] = {
        "ner": ncbi, "assertion": negex, "classification": sms, "temporality": negex_temporality,
    }  # fmt: skip
    speeds: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for key in args.tasks.split(","):
            task = builders[key](limit, params)
            row, directory = run_ours(task, Path(scratch) / key, args.device,
                                      balance=CLASS_WEIGHTS[args.class_weights])  # fmt: skip
            rows = [row]
            _print_row(row)
            for group in () if args.no_baselines else (False, True):
                rows.append(run_hf_trainer(task, Path(scratch) / f"hf-{key}", args.device,
                                           group_by_length=group))  # fmt: skip
                _print_row(rows[-1])
            _print_task(rows)
            texts = [str(e.data["text"]) for e in task.snapshot.part(Part.TEST)]
            pipeline_task = "token-classification" if key == "ner" else "text-classification"
            # A pipeline cannot mark an assertion's entity: no fair baseline.
            if task.snapshot.models[0].kind is not ModelKind.ASSERTION:
                torch.set_num_threads(preannotate_threads)
                speeds.append((task.name, *preannotation(directory, texts, args.device,
                                                         pipeline_task)))  # fmt: skip
                torch.set_num_threads(args.threads or every_core)
                _print_speed(*speeds[-1])
    print()
    header = f"{'ours tasks/s':>12} {'pipeline/task':>13} {'ratio':>6} {'tasks/h':>9}"
    print(f"{'pre-annotation':26} {header}")
    for speed in speeds:
        _print_speed(*speed)
    scale = f"subsample {limit[0]} train / {limit[1]} dev" if limit else "full data"
    threads = torch.get_num_threads()
    print(f"\ndevice {args.device}, torch threads {threads} (pre-annotation "
          f"{preannotate_threads}), {scale}, ours: at most "
          f"{args.epochs} epochs, batch {args.batch_size}, "
          f"peak lr {args.learning_rate:g}"
          f", class weights {args.class_weights}")  # fmt: skip


def _print_speed(name: str, ours: float, theirs: float) -> None:
    print(f"{name:26} {ours:12.1f} {theirs:13.1f} {ours / theirs:5.1f}x {ours * 3600:9.0f}",
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
