"""Selection + CoNLL export over 10k, 100k and 1M synthetic completions.

Goal: 1M completions in at most 10 s, growing linearly. The baseline is the
smallest size measured in the same run: the "vs base" column is the cost per
completion relative to it, so linear growth reads as ~1.0.

    python -m benchmarks.selection_export [--sizes 10000,100000,1000000]

The tasks look like a real NER project: two annotators per task (priorities 5
and 1), a fifth of the tasks reviewed (some completions rejected), sentences of
8 to 24 tokens with two or three spans, some with a tab or a second line. Texts
come from a pool of 2,000 so building 1M completions takes seconds and little
memory; nothing in selection or export caches by text, so every task costs what
a distinct one would.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Iterable

from annotrain.domain.config import ProjectSchema, parse_labeling_config
from annotrain.domain.conll import to_conll
from annotrain.domain.selection import select_training_completions
from annotrain.domain.tasks import (
    Completion,
    Member,
    ResultItem,
    Review,
    ReviewVerdict,
    Role,
    Task,
)

CONFIG = """<View>
  <Labels name="label" toName="text">
    <Label value="Condition"/><Label value="Drug"/><Label value="Dose"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""
WORDS = (
    "patient",
    "reports",
    "chest",
    "pain",
    "since",
    "monday",
    "no",
    "fever",
    "takes",
    "aspirin",
    "daily",
    "mother",
    "had",
    "asthma",
    "denies",
    "wheezing",
    "follow-up",
    "hypertension",
    "controlled",
    "on",
    "lisinopril",
    "severe",
    "shortness",
    "of",
    "breath",
    "cough",
    "started",
    "yesterday",
    "history",
    "diabetes",
    "type",
    "2",
    "metformin",
    "dose",
)
MEMBERS = (Member("ana", Role.ANNOTATOR, 5), Member("ben", Role.ANNOTATOR, 1))
POOL = 2000
GOAL_SECONDS = 10.0
GOAL_SIZE = 1_000_000


def _sentence(rnd: random.Random) -> tuple[str, tuple[ResultItem, ...]]:
    words = [rnd.choice(WORDS) for _ in range(rnd.randint(8, 24))]
    seps = [rnd.choice([" ", " ", " ", ", ", "\t", "\n"]) for _ in words]
    text, offsets = "", []
    for word, sep in zip(words, seps, strict=True):
        offsets.append((len(text), len(text) + len(word)))
        text += word + sep
    text = text.rstrip() + "."
    items = []
    for k, index in enumerate(sorted(rnd.sample(range(len(words) - 1), rnd.randint(2, 3)))):
        start, end = offsets[index]
        items.append(
            ResultItem(f"r{k}", "labels", "label", "text",
                       {"start": start, "end": end, "text": text[start:end],
                        "labels": [rnd.choice(["Condition", "Drug", "Dose"])]})
        )  # fmt: skip
    return text, tuple(items)


def synthetic_tasks(n_completions: int, seed: int = 0) -> list[Task]:
    """Tasks holding ``n_completions`` completions in all, two per task."""
    rnd = random.Random(seed)
    pool = [_sentence(rnd) for _ in range(POOL)]
    accepted = (Review(ReviewVerdict.ACCEPTED, "rita"),)
    rejected = (Review(ReviewVerdict.REJECTED, "rita"),)
    tasks = []
    for tid in range(n_completions // 2):
        text, items = pool[tid % POOL]
        reviews = (accepted, rejected, (), (), (), (), (), (), (), ())[tid % 10]
        tasks.append(
            Task(tid, {"text": text}, (
                Completion(2 * tid, items, author="ben", reviews=reviews),
                Completion(2 * tid + 1, items, author="ana"),
            ))
        )  # fmt: skip
    return tasks


def _consume(chunks: Iterable[str]) -> int:
    return sum(len(chunk) for chunk in chunks)


def measure(n_completions: int, schema: ProjectSchema, repeats: int) -> tuple[float, float]:
    """Median seconds of selection and of CoNLL export for one size."""
    tasks = synthetic_tasks(n_completions)
    select_times, export_times = [], []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        chosen = select_training_completions(tasks, MEMBERS).chosen
        selected = time.perf_counter()
        _consume(to_conll(chosen, schema))
        done = time.perf_counter()
        select_times.append(selected - started)
        export_times.append(done - selected)
    return sorted(select_times)[repeats // 2], sorted(export_times)[repeats // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    schema = parse_labeling_config(CONFIG)
    print(f"{'completions':>12} {'select s':>9} {'conll s':>9} {'total s':>9} "
          f"{'us/compl':>9} {'vs base':>8}")  # fmt: skip
    base: float | None = None
    verdict = ""
    for size in sizes:
        select_s, export_s = measure(size, schema, args.repeats if size < GOAL_SIZE else 1)
        total = select_s + export_s
        per = total / size * 1e6
        base = base or per
        print(f"{size:>12,} {select_s:>9.2f} {export_s:>9.2f} {total:>9.2f} "
              f"{per:>9.2f} {per / base:>8.2f}")  # fmt: skip
        if size == GOAL_SIZE:
            met = "met" if total <= GOAL_SECONDS else "MISSED"
            verdict = f"goal: {GOAL_SIZE:,} completions in <= {GOAL_SECONDS:.0f} s: {met}"
    if verdict:
        print(verdict)


if __name__ == "__main__":
    main()
