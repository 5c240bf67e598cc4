"""Train/test split: a seeded share of the tasks, or fixed Train/Test tags.

The seeded split ranks tasks by a keyed hash of (seed, task key) and puts the
lowest-ranked share in the test part. It does not depend on the order tasks come
in, gives the same split for the same seed and data, and moves few tasks when
tasks are added: a task's rank never changes, so retraining after new
completions (active learning) keeps nearly every old test task in the test part.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.tasks import Task

T = TypeVar("T")

TRAIN_TAG = "Train"
TEST_TAG = "Test"


@dataclass(frozen=True, slots=True)
class Split(Generic[T]):
    """Items divided for training and evaluation.

    Attributes:
        train: What the model learns from.
        test: What it is scored on.
        unassigned: Items a tag split could not place (no Train or Test tag, or both).
    """

    train: list[T]
    test: list[T]
    unassigned: list[T]


def split_by_share(
    items: Sequence[T], test_share: float, seed: int, key: Callable[[T], str]
) -> Split[T]:
    """Put a seeded, reproducible share of the items in the test part.

    Args:
        items: What to split, e.g. (task, completion) pairs.
        test_share: The fraction for the test part, 0 ≤ share < 1. The train
            part always keeps at least one item; with two or more items and a
            positive share, the test part gets at least one too.
        seed: Another seed gives another split; the same seed, the same split.
        key: A stable identity for an item (the task id).

    Returns:
        The parts, each in the order the items came.

    Raises:
        InvalidRequestError: For a share outside [0, 1) or items whose keys repeat.
    """
    if not (isinstance(test_share, int | float) and 0 <= test_share < 1):
        raise InvalidRequestError(
            "validation_share", f"must be at least 0 and below 1, got {test_share!r}"
        )
    keys = [key(item) for item in items]
    if len(set(keys)) != len(keys):
        raise InvalidRequestError("tasks", "task ids repeat; give every task a distinct id")
    ranked = sorted(range(len(items)), key=lambda i: _rank(seed, keys[i]))
    test_positions = set(ranked[: _test_size(len(items), test_share)])
    return Split(
        train=[item for i, item in enumerate(items) if i not in test_positions],
        test=[item for i, item in enumerate(items) if i in test_positions],
        unassigned=[],
    )


def split_by_tags(
    items: Sequence[T],
    tags: Callable[[T], Sequence[str]],
    train_tag: str = TRAIN_TAG,
    test_tag: str = TEST_TAG,
) -> Split[T]:
    """Split by the Train and Test tags users put on tasks.

    Tag names match without regard to case. Items with neither tag, or with both,
    are returned as ``unassigned`` so the caller can say how many were left out.
    """
    train_key, test_key = train_tag.casefold(), test_tag.casefold()
    split: Split[T] = Split([], [], [])
    for item in items:
        folded = {t.casefold() for t in tags(item)}
        is_train, is_test = train_key in folded, test_key in folded
        if is_train and not is_test:
            split.train.append(item)
        elif is_test and not is_train:
            split.test.append(item)
        else:
            split.unassigned.append(item)
    return split


def task_key(task: Task) -> str:
    """The identity a split uses for a task: its id."""
    return f"{type(task.id).__name__}:{task.id}"


def _rank(seed: int, key: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=16).digest()


def _test_size(n: int, test_share: float) -> int:
    n_test = math.floor(test_share * n + 0.5)
    if test_share > 0 and n >= 2:
        n_test = max(n_test, 1)
    # The model must have something to learn from.
    return min(n_test, max(n - 1, 0))
