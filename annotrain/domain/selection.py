"""Which completion of each task a model learns from.

The rules, in order:

1. Only tasks carrying one of the requested tags take part (when tags are given).
2. Drafts and cancelled (skipped) completions never count.
3. A completion whose standing review is a rejection is never used.
4. If a reviewer accepted a completion, it wins and the others are ignored.
5. Otherwise the submitted completion of the member with the highest priority is
   used; "reviewed only" leaves such tasks out instead.

Ties are broken so the same data always gives the same choice: the ground-truth
mark first, then the most recent update, then the id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from annotrain.domain.tasks import Completion, CompletionState, Member, ReviewVerdict, Task

# Authors who are not (or no longer) members rank below every member.
_NON_MEMBER_PRIORITY = float("-inf")


class SkipReason(StrEnum):
    """Why a task gave no training example."""

    TAG_FILTER = "not tagged with a requested tag"
    NO_SUBMITTED = "no submitted completion"
    ALL_REJECTED = "every submitted completion was rejected"
    NOT_REVIEWED = "no accepted completion (reviewed only)"


@dataclass(frozen=True, slots=True)
class SelectionRules:
    """What the user asked for when choosing training data.

    Attributes:
        tags: Keep only tasks with at least one of these tags; empty keeps all.
        reviewed_only: Keep only tasks with a completion a reviewer accepted.
    """

    tags: frozenset[str] = frozenset()
    reviewed_only: bool = False


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of selection.

    Attributes:
        chosen: One (task, completion) pair per task that gives a training
            example, in the order the tasks came.
        skipped: How many tasks were left out, by reason.
    """

    chosen: list[tuple[Task, Completion]]
    skipped: Mapping[SkipReason, int] = field(default_factory=dict)


def select_training_completions(
    tasks: Iterable[Task],
    members: Iterable[Member] = (),
    rules: SelectionRules | None = None,
) -> Selection:
    """Choose, for each task, the completion a model learns from.

    Args:
        tasks: The project's tasks with their completions and reviews.
        members: The project's members; their priority decides between
            unreviewed completions.
        rules: Tag filter and "reviewed only"; defaults to all tasks, reviews optional.

    Returns:
        The chosen pairs and the count of tasks skipped for each reason.
    """
    rules = rules or SelectionRules()
    priority: dict[str | None, float] = {m.user: m.priority for m in members}
    chosen: list[tuple[Task, Completion]] = []
    skipped = dict.fromkeys(SkipReason, 0)
    tags, reviewed_only = rules.tags, rules.reviewed_only
    # Bound once: this loop runs once per task of the project (millions).
    submitted_state, accepted_verdict = CompletionState.SUBMITTED, ReviewVerdict.ACCEPTED
    for task in tasks:
        if tags and tags.isdisjoint(task.tags):
            skipped[SkipReason.TAG_FILTER] += 1
            continue
        accepted: list[Completion] = []
        unreviewed: list[Completion] = []
        any_submitted = False
        for completion in task.completions:
            if completion.state is not submitted_state:
                continue
            any_submitted = True
            reviews = completion.reviews
            if not reviews:
                unreviewed.append(completion)
            elif reviews[-1].verdict is accepted_verdict:
                accepted.append(completion)
        pool = accepted or (None if reviewed_only else unreviewed)
        if not pool:
            if not any_submitted:
                skipped[SkipReason.NO_SUBMITTED] += 1
            elif reviewed_only and not accepted:
                skipped[SkipReason.NOT_REVIEWED] += 1
            else:
                skipped[SkipReason.ALL_REJECTED] += 1
            continue
        chosen.append((task, pool[0] if len(pool) == 1 else _best(pool, priority)))
    return Selection(chosen, {reason: n for reason, n in skipped.items() if n})


def _best(pool: list[Completion], priority: Mapping[str | None, float]) -> Completion:
    """The completion of the highest-priority author; the tie-break only runs on ties."""
    best = pool[0]
    best_priority = priority.get(best.author, _NON_MEMBER_PRIORITY)
    for completion in pool[1:]:
        p = priority.get(completion.author, _NON_MEMBER_PRIORITY)
        if p > best_priority or (p == best_priority and _tie_key(completion) > _tie_key(best)):
            best, best_priority = completion, p
    return best


def _tie_key(completion: Completion) -> tuple[bool, str, tuple[int, str]]:
    cid = completion.id
    # Numeric ids compare as numbers (10 after 9), text ids as text, numbers last.
    id_key = (1, f"{cid:030d}") if isinstance(cid, int) else (0, str(cid))
    # ISO 8601 times in one zone sort as text.
    return (completion.ground_truth, completion.updated_at or completion.created_at or "", id_key)
