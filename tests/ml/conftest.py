"""Fixtures for the text model tests: torch, a tiny encoder, and options that suit it.

Every test here trains a 2-layer, 32-wide BERT built from a config, on the real
MiniLM tokenizer, so a model trains in a second or two on one CPU core. They
skip where the ml extra is not installed.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_test_process() -> None:
    """The machine's cores are shared: tiny models gain nothing from more threads."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_options():  # type: ignore[no-untyped-def]
    """Train options for tests: the tiny encoder, a low minimum, progress every step."""
    from batch_jobs.text.model import tiny_encoder
    from batch_jobs.text.train import TrainOptions

    return TrainOptions(
        min_examples_per_label=5, validation_share=0.2, encoder=tiny_encoder(),
        progress_interval=0.0,
    )  # fmt: skip
