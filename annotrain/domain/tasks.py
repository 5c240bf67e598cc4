"""Tasks and what people and models say about them: completions, reviews, predictions.

These are plain values. Everything a Label Studio file carries that annotrain
does not interpret is kept in ``extra`` so an export gives it back unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from annotrain.domain.errors import InvalidRequestError

JsonId: TypeAlias = int | str
_EMPTY: Mapping[str, Any] = {}


class CompletionState(StrEnum):
    """Where a completion stands; only submitted ones are ever trained on."""

    SUBMITTED = "submitted"
    DRAFT = "draft"
    CANCELLED = "cancelled"


class ReviewVerdict(StrEnum):
    """A reviewer's decision on a completion."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Role(StrEnum):
    """A project member's role."""

    OWNER = "Owner"
    MANAGER = "Manager"
    ANNOTATOR = "Annotator"
    REVIEWER = "Reviewer"


@dataclass(frozen=True, slots=True)
class ResultItem:
    """One region or answer inside a completion or prediction (Label Studio ``result``).

    Attributes:
        id: Region id; items of one region (a box and its text) share it.
        type: Result type, the control tag in lower case (``labels``, ``choices``…),
            or ``relation``.
        from_name: The control that produced it (None for relations).
        to_name: The object it annotates (None for relations).
        value: The payload (``start``/``end``/``labels``, ``x``/``y``/…, ``choices``).
        score: The model's confidence for this item, for predictions.
        extra: Every other key, kept as given (``origin``, ``meta``, ``from_id``…).
    """

    id: str | None
    type: str
    from_name: str | None
    to_name: str | None
    value: Mapping[str, Any]
    score: float | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Review:
    """A reviewer's verdict on one completion."""

    verdict: ReviewVerdict
    reviewer: str | None = None
    comment: str = ""
    created_at: str | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """One person's annotation of a task (Label Studio ``annotation``).

    Attributes:
        id: Its id, as given.
        result: The regions and answers.
        author: Who made it (email or user name, or the id as text).
        state: Submitted, draft or cancelled (skipped).
        ground_truth: Marked as the reference answer (``ground_truth``/``honeypot``).
        lead_time: Seconds spent on it.
        created_at: ISO 8601 time it was created, as given.
        updated_at: ISO 8601 time it was last changed, as given.
        reviews: Reviews in the order they were made; the last one stands.
        extra: Every other key, kept as given.
        revision: The stored revision this value was read at (0: never stored); an
            update carrying an older one is refused as a conflict.
    """

    id: JsonId | None
    result: tuple[ResultItem, ...]
    author: str | None = None
    state: CompletionState = CompletionState.SUBMITTED
    ground_truth: bool = False
    lead_time: float | None = None
    created_at: str | None = None
    updated_at: str | None = None
    reviews: tuple[Review, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    revision: int = 0

    @property
    def verdict(self) -> ReviewVerdict | None:
        """The standing review verdict: that of the last review, or None if unreviewed."""
        return self.reviews[-1].verdict if self.reviews else None


@dataclass(frozen=True, slots=True)
class Prediction:
    """A model's proposal for a task.

    Attributes:
        id: Its id, as given.
        result: The proposed regions and answers, each with its own score.
        model_version: The model (name and version) that made it.
        score: The model's confidence for the task as a whole.
        extra: Every other key, kept as given.
    """

    id: JsonId | None
    result: tuple[ResultItem, ...]
    model_version: str | None = None
    score: float | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Task:
    """One item to annotate: its data and what was said about it.

    Attributes:
        id: Its id, as given, or None for tasks not stored yet.
        data: The fields the labeling config's objects show (``$text`` → ``data["text"]``).
        completions: Human annotations, drafts and skips included.
        predictions: Model proposals.
        tags: Labels for organising tasks (``Train``, ``Test``, …).
        extra: Every other key, kept as given (``meta``, ``created_at``…).
        revision: The stored revision this value was read at (0: never stored).
    """

    id: JsonId | None
    data: Mapping[str, Any]
    completions: tuple[Completion, ...] = ()
    predictions: tuple[Prediction, ...] = ()
    tags: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Member:
    """A person in a project.

    Attributes:
        user: The same identifier completions carry as their author.
        role: What they may do.
        priority: Whose completion wins when several annotated a task: the higher, the
            more trusted.
    """

    user: str
    role: Role
    priority: int = 0


def check_prediction_models(
    models: Collection[str], predictions: Sequence[tuple[int, Prediction]]
) -> frozenset[str]:
    """What a store checks before replacing predictions by models; returns the names.

    A pre-annotation run gives each task one prediction, made by one or more
    models named by their registry names.

    Raises:
        InvalidRequestError: On ``models`` (none, an empty name, a comma in one) or
            ``predictions`` (a task named twice).
    """
    names = frozenset(models)
    if not names or any(not name or "," in name for name in names):
        raise InvalidRequestError(
            "models", f"name the models that made the predictions, without commas: {models!r}"
        )
    seen: set[int] = set()
    for task_id, _ in predictions:
        if task_id in seen:
            raise InvalidRequestError(
                "predictions", f"task {task_id} is named twice: give one prediction per task"
            )
        seen.add(task_id)
    return names
