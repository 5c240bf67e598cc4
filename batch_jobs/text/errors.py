"""Why a text training or prediction could not go on: each message is a run's failure reason.

The messages are what a person reads in the run's ``failure_reason``, so each one
says what was found and what to change.
"""

from __future__ import annotations

from collections.abc import Mapping

from annotrain.domain.errors import AnnotrainError


class NotEnoughDataError(AnnotrainError):
    """Too few annotated examples to train a model, found before any training began.

    Attributes:
        model: The model's name (``ner``, ``assertion``, a ``Choices`` name).
        counts: For a per-label shortage, how many training examples each label has.
        needed: The minimum per label that was asked for.
    """

    def __init__(
        self,
        model: str,
        message: str,
        *,
        counts: Mapping[str, int] | None = None,
        needed: int = 0,
    ) -> None:
        self.model = model
        self.counts = dict(counts or {})
        self.needed = needed
        super().__init__(f"model {model!r}: {message}")

    @classmethod
    def per_label(cls, model: str, counts: Mapping[str, int], needed: int) -> NotEnoughDataError:
        """The shortage of every label under ``needed``, with how many more each one needs."""
        short = {label: n for label, n in counts.items() if n < needed}
        parts = [
            f"{label!r} has {n}, needs {needed - n} more" for label, n in sorted(short.items())
        ]
        message = (
            f"too few annotated examples in the training part (at least {needed} per label): "
            + "; ".join(parts)
            + ". Annotate more tasks with these labels, or remove labels nobody uses "
            "from the labeling config."
        )
        return cls(model, message, counts=counts, needed=needed)


class TrainingCancelledError(AnnotrainError):
    """The run was cancelled while it trained; nothing was kept of the unfinished model."""

    def __init__(self, model: str, epoch: int, step: int) -> None:
        self.model = model
        super().__init__(f"cancelled while training model {model!r} (epoch {epoch}, step {step})")


class GpuUnavailableError(AnnotrainError):
    """A GPU was asked for and this machine has none that torch can use."""

    def __init__(self, device: str) -> None:
        super().__init__(
            f"the run asked for the GPU (device {device!r}) but torch sees no CUDA device on "
            "this machine: start the training with use_gpu false, or on a worker with a GPU"
        )


class OutOfMemoryError(AnnotrainError):
    """Training or prediction ran out of accelerator memory.

    Attributes:
        fits: The largest batch size whose step of the longest examples was then
            measured to fit (None when not measured, 0 when not even one fits).
    """

    def __init__(
        self, model: str, device: str, batch_size: int, max_length: int, *, fits: int | None = None
    ) -> None:
        self.fits = fits
        if fits:
            advice = (
                f"set params.batch_size to {fits} (a training step on the {fits} longest "
                f"examples fits on {device}), lower params.max_length, or train on the CPU "
                "(use_gpu false)"
            )
        elif fits == 0:
            advice = (
                "not even a batch of 1 fits: lower params.max_length, or train on the CPU "
                "(use_gpu false)"
            )
        else:
            advice = (
                f"lower params.batch_size (try {max(1, batch_size // 2)}) or params.max_length, "
                "or train on the CPU (use_gpu false)"
            )
        super().__init__(
            f"out of memory on {device} while training model {model!r} with "
            f"batch_size {batch_size} and max_length {max_length}: {advice}"
        )
