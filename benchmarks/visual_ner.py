"""Visual NER, part 1: OCR pages per second on synthetic invoices, serial vs a process pool.

    python -m benchmarks.visual_ner [--pages 8] [--repeats 3] [--workers N] [--lang eng]

Each page is a generated invoice (``batch_jobs.visual.synthetic``, A4 at 150 dpi,
1240x1754 px), written as PNG into a temporary folder, then read with Tesseract
through ``batch_jobs.visual.ocr_engine.read_pages`` exactly as the OCR job reads
them (``image_to_data`` once per page, ``OMP_THREAD_LIMIT=1``):

- ``serial``: one page after another in this process (one Tesseract at a time);
- ``pool``: ``--workers`` processes (default: every core), one Tesseract each.

Every figure is the median of ``--repeats`` runs (the pool's includes starting
its processes); the machines are shared and noisy, so compare within one run.
The training part (pages/s, entity F1, ``--tasks 714 --device cuda``) arrives with
the Visual NER model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from batch_jobs.visual.ocr_engine import read_pages, tesseract_version
from batch_jobs.visual.synthetic import generate_forms


def _seconds(paths: list[str], language: str, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    words = 0
    for _, outcome in read_pages(paths, language, workers=workers):
        if isinstance(outcome, Exception):
            raise outcome
        words += len(outcome.words)
    return time.perf_counter() - start, words


def main(argv: list[str] | None = None) -> None:
    """Print OCR pages/s, serial and pooled, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--lang", default="eng")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for form in generate_forms(args.pages, seed=1000):
            path = Path(tmp) / f"form-{form.seed}.png"
            path.write_bytes(form.png())
            paths.append(str(path))
        print(
            f"OCR of {args.pages} synthetic invoice pages (1240x1754, 150 dpi), Tesseract "
            f"{tesseract_version()} ({args.lang}), {os.cpu_count()} cores, median of "
            f"{args.repeats}"
        )
        rows = []
        for name, workers in (("serial", 1), (f"pool x{args.workers}", args.workers)):
            runs = [_seconds(paths, args.lang, workers) for _ in range(args.repeats)]
            seconds = statistics.median(s for s, _ in runs)
            rows.append((name, seconds, runs[0][1]))
        print(f"{'mode':<12} {'s/page':>8} {'pages/s':>8} {'words':>7} {'vs serial':>10}")
        for name, seconds, words in rows:
            print(
                f"{name:<12} {seconds / args.pages:>8.3f} {args.pages / seconds:>8.2f} "
                f"{words:>7} {rows[0][1] / seconds:>9.2f}x"
            )


if __name__ == "__main__":
    main()
