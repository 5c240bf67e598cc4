"""SQLite store: bulk import of 100k tasks, then reading them back by page.

Goal: ``add_tasks`` writes at least 20,000 completions a second.

    python -m benchmarks.sqlite_import [--tasks 100000] [--sample 2000] [--repeats 3]

What it measures, on fresh database files in a temporary folder:

- ``add_tasks 100k``: one ``add_tasks`` call with every task (two completions
  each, NER spans as in ``benchmarks.selection_export``, a fifth reviewed, a
  Train or Test tag): one transaction, one ``executemany`` per table. Each
  repeat imports into a new file.
- ``list_tasks all pages``: every page of 100 from the first to the last, each
  with its completions and predictions (three queries per page).
- ``list_tasks random pages``: pages of 100 fetched at random places, by the
  tokens the full walk handed out.
- ``iter_tasks``: the whole project the way selection and export read it.

- ``DynamoDB under moto``: the same ``add_tasks`` and paged read through
  ``DynamoDbStore`` against moto's in-process fake of DynamoDB and S3, on
  ``--moto-tasks`` tasks. moto is Python code in this process: these figures say
  nothing about AWS and are printed only to show the adapter's path works at
  volume and how its request count grows.

The baseline is the naive way, measured in the same run on ``--sample`` tasks
and extrapolated per completion: writing, one ``add_tasks`` call (one
transaction and commit) per task; reading, one ``get_task`` per task. The
"vs naive" column is the throughput over the baseline's: the speed-up of the
bulk and paged paths. Every figure is the median of ``--repeats`` runs; the
machines are shared and noisy, so compare within one run.
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from annotrain.adapters.sqlite import SqliteStore
from annotrain.domain.records import Project
from annotrain.domain.tasks import Task
from benchmarks.selection_export import CONFIG, synthetic_tasks

GOAL_COMPLETIONS_PER_S = 20_000
PAGE = 100


@dataclass(frozen=True, slots=True)
class Measurement:
    """One row of the table: how many tasks and completions took how long."""

    step: str
    tasks: int
    completions: int
    seconds: float

    @property
    def completions_per_s(self) -> float:
        """Completions written or read per second."""
        return self.completions / self.seconds


def benchmark_tasks(n_tasks: int, seed: int) -> list[Task]:
    """``n_tasks`` tasks of two completions each, tagged Train or Test (4 to 1)."""
    tasks = synthetic_tasks(2 * n_tasks, seed)
    return [
        replace(task, tags=("Test",) if index % 5 == 0 else ("Train",))
        for index, task in enumerate(tasks)
    ]


def _fresh_store(path: Path) -> tuple[SqliteStore, int]:
    path.unlink(missing_ok=True)
    store = SqliteStore(path)
    created = datetime(2026, 1, 1, tzinfo=UTC)
    project = store.create_project(Project(0, path.stem, CONFIG, "bench", created))
    return store, project.id


def _median(step: str, runs: list[tuple[int, int, float]]) -> Measurement:
    tasks, completions, seconds = sorted(runs, key=lambda run: run[2])[len(runs) // 2]
    return Measurement(step, tasks, completions, seconds)


def _timed_read(read: Callable[[], tuple[int, int]], repeats: int) -> list[tuple[int, int, float]]:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        tasks, completions = read()
        runs.append((tasks, completions, time.perf_counter() - started))
    return runs


def measure_naive(
    folder: Path, sample: list[Task], repeats: int
) -> tuple[Measurement, Measurement]:
    """The baseline: one transaction per task written, one ``get_task`` per task read."""
    completions = sum(len(task.completions) for task in sample)
    writes, reads = [], []
    for _ in range(repeats):
        store, project_id = _fresh_store(folder / "naive.db")
        try:
            started = time.perf_counter()
            ids = [store.add_tasks(project_id, [task])[0].id for task in sample]
            writes.append((len(sample), completions, time.perf_counter() - started))
            started = time.perf_counter()
            read = sum(len(store.get_task(project_id, i).completions) for i in ids)
            reads.append((len(ids), read, time.perf_counter() - started))
        finally:
            store.close()
    return (
        _median("naive: add_tasks 1 per commit", writes),
        _median("naive: get_task one by one", reads),
    )


def measure_bulk(
    folder: Path, n_tasks: int, random_pages: int, seed: int, repeats: int
) -> list[Measurement]:
    """The bulk write, then the paged reads on the last database written."""
    label = f"{n_tasks // 1000}k" if n_tasks >= 1000 else str(n_tasks)
    tasks = benchmark_tasks(n_tasks, seed)
    completions = sum(len(task.completions) for task in tasks)
    writes = []
    for repeat in range(repeats):
        store, project_id = _fresh_store(folder / "bulk.db")
        gc.collect()
        started = time.perf_counter()
        store.add_tasks(project_id, tasks)
        writes.append((n_tasks, completions, time.perf_counter() - started))
        if repeat < repeats - 1:
            store.close()
    # A server reading a project does not hold the import in memory: neither do the
    # reads here (the garbage collector would walk it over and over).
    del tasks
    gc.collect()
    try:
        tokens: list[str | None] = [None]

        def every_page() -> tuple[int, int]:
            del tokens[1:]
            seen = [0, 0]
            while True:
                page = store.list_tasks(project_id, limit=PAGE, token=tokens[-1])
                seen[0] += len(page.items)
                seen[1] += sum(len(task.completions) for task in page.items)
                if page.next_token is None:
                    return seen[0], seen[1]
                tokens.append(page.next_token)

        def random_places() -> tuple[int, int]:
            seen = [0, 0]
            for token in random.Random(seed).choices(tokens, k=random_pages):
                page = store.list_tasks(project_id, limit=PAGE, token=token)
                seen[0] += len(page.items)
                seen[1] += sum(len(task.completions) for task in page.items)
            return seen[0], seen[1]

        def iterate() -> tuple[int, int]:
            seen = [0, 0]
            for task in store.iter_tasks(project_id):
                seen[0] += 1
                seen[1] += len(task.completions)
            return seen[0], seen[1]

        rows = [
            _median(f"add_tasks {label}", writes),
            _median("list_tasks all pages", _timed_read(every_page, repeats)),
            _median(f"list_tasks {random_pages} random pages", _timed_read(random_places, repeats)),
            _median("iter_tasks", _timed_read(iterate, repeats)),
        ]
    finally:
        store.close()
    if rows[1].tasks != n_tasks:
        raise AssertionError(f"listed {rows[1].tasks} tasks of {n_tasks}")
    return rows


def measure_dynamodb_under_moto(n_tasks: int, seed: int) -> list[Measurement]:
    """``add_tasks`` and a full paged read through DynamoDbStore, under moto."""
    import boto3
    from moto import mock_aws

    from annotrain.adapters.dynamodb import DynamoDbStore, create_table

    tasks = benchmark_tasks(n_tasks, seed)
    completions = sum(len(task.completions) for task in tasks)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bench-items")
        create_table(dynamodb, "bench")
        store = DynamoDbStore("bench", client=dynamodb, s3_client=s3, overflow_bucket="bench-items")
        created = datetime(2026, 1, 1, tzinfo=UTC)
        project_id = store.create_project(Project(0, "moto", CONFIG, "bench", created)).id
        started = time.perf_counter()
        store.add_tasks(project_id, tasks)
        write = Measurement("moto: add_tasks", n_tasks, completions, time.perf_counter() - started)
        started = time.perf_counter()
        token: str | None = None
        seen = [0, 0]
        while True:
            page = store.list_tasks(project_id, limit=PAGE, token=token)
            seen[0] += len(page.items)
            seen[1] += sum(len(task.completions) for task in page.items)
            if (token := page.next_token) is None:
                break
        read = Measurement("moto: list_tasks all pages", seen[0], seen[1],
                           time.perf_counter() - started)  # fmt: skip
    return [write, read]


def main() -> None:
    """Run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--random-pages", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--moto-tasks", type=int, default=2_000)
    args = parser.parse_args()

    # The sample is the first tasks of the bulk import: the generator is deterministic.
    sample = benchmark_tasks(args.sample, args.seed)
    with tempfile.TemporaryDirectory(prefix="annotrain-bench-") as folder:
        naive_write, naive_read = measure_naive(Path(folder), sample, args.repeats)
        bulk = measure_bulk(Path(folder), args.tasks, args.random_pages, args.seed, args.repeats)
        size_mb = (Path(folder) / "bulk.db").stat().st_size / 1e6

    print(f"{'step':<32} {'tasks':>8} {'completions':>12} {'seconds':>8} "
          f"{'compl/s':>9} {'vs naive':>9}")  # fmt: skip
    write, reads = bulk[0], bulk[1:]
    # Each row against the naive way of doing the same: writing, or reading.
    against = [(naive_write, naive_write), (write, naive_write), (naive_read, naive_read)]
    against += [(read, naive_read) for read in reads]
    for row, base in against:
        ratio = row.completions_per_s / base.completions_per_s
        print(f"{row.step:<32} {row.tasks:>8,} {row.completions:>12,} {row.seconds:>8.2f} "
              f"{row.completions_per_s:>9,.0f} {ratio:>8.1f}x")  # fmt: skip
    print(f"database file: {size_mb:,.0f} MB for {write.tasks:,} tasks")
    met = "met" if write.completions_per_s >= GOAL_COMPLETIONS_PER_S else "MISSED"
    print(f"goal: ≥{GOAL_COMPLETIONS_PER_S:,} completions/s written: {met}")
    if args.moto_tasks > 0:
        print()
        print("DynamoDB + S3 under moto, an in-process fake: NOT AWS figures")
        for row in measure_dynamodb_under_moto(args.moto_tasks, args.seed):
            print(f"{row.step:<32} {row.tasks:>8,} {row.completions:>12,} {row.seconds:>8.2f} "
                  f"{row.completions_per_s:>9,.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
