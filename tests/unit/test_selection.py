"""Which completion of each task training uses."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from annotrain.domain.selection import (
    SelectionRules,
    SkipReason,
    select_training_completions,
)
from annotrain.domain.tasks import (
    Completion,
    CompletionState,
    Member,
    Review,
    ReviewVerdict,
    Role,
    Task,
)

ACCEPT = (Review(ReviewVerdict.ACCEPTED, "rita"),)
REJECT = (Review(ReviewVerdict.REJECTED, "rita"),)
MEMBERS = (
    Member("lead", Role.MANAGER, priority=10),
    Member("ana", Role.ANNOTATOR, priority=5),
    Member("ben", Role.ANNOTATOR, priority=1),
)


def completion(cid: int, author: str = "ana", **kwargs: object) -> Completion:
    return Completion(id=cid, result=(), author=author, **kwargs)  # type: ignore[arg-type]


def chosen_ids(tasks: list[Task], rules: SelectionRules | None = None) -> list[object]:
    selection = select_training_completions(tasks, MEMBERS, rules)
    return [c.id for _, c in selection.chosen]


def test_accepted_completion_wins_over_higher_priority_author() -> None:
    task = Task(1, {}, (completion(1, "lead"), completion(2, "ben", reviews=ACCEPT)))
    assert chosen_ids([task]) == [2]


def test_rejected_completion_is_never_used() -> None:
    task = Task(1, {}, (completion(1, "lead", reviews=REJECT), completion(2, "ben")))
    assert chosen_ids([task]) == [2]
    only_rejected = Task(2, {}, (completion(3, "lead", reviews=REJECT),))
    selection = select_training_completions([only_rejected], MEMBERS)
    assert selection.chosen == []
    assert selection.skipped == {SkipReason.ALL_REJECTED: 1}


def test_last_review_stands() -> None:
    rejected_then_accepted = REJECT + ACCEPT
    task = Task(
        1, {}, (completion(1, "lead"), completion(2, "ben", reviews=rejected_then_accepted))
    )
    assert chosen_ids([task]) == [2]


def test_without_review_the_highest_priority_member_wins() -> None:
    task = Task(1, {}, (completion(1, "ben"), completion(2, "lead"), completion(3, "ana")))
    assert chosen_ids([task]) == [2]


def test_non_member_ranks_below_every_member() -> None:
    task = Task(1, {}, (completion(1, "stranger"), completion(2, "ben")))
    assert chosen_ids([task]) == [2]


def test_drafts_and_cancelled_completions_never_count() -> None:
    task = Task(
        1,
        {},
        (
            completion(1, "lead", state=CompletionState.DRAFT),
            completion(2, "lead", state=CompletionState.CANCELLED, reviews=ACCEPT),
            completion(3, "ben"),
        ),
    )
    assert chosen_ids([task]) == [3]
    nothing = Task(2, {}, (completion(4, state=CompletionState.DRAFT),))
    assert select_training_completions([nothing]).skipped == {SkipReason.NO_SUBMITTED: 1}


def test_reviewed_only_keeps_only_tasks_with_an_accepted_completion() -> None:
    reviewed = Task(1, {}, (completion(1, "ben", reviews=ACCEPT),))
    unreviewed = Task(2, {}, (completion(2, "lead"),))
    selection = select_training_completions(
        [reviewed, unreviewed], MEMBERS, SelectionRules(reviewed_only=True)
    )
    assert [c.id for _, c in selection.chosen] == [1]
    assert selection.skipped == {SkipReason.NOT_REVIEWED: 1}


def test_tag_filter_keeps_tasks_with_any_requested_tag() -> None:
    tasks = [
        Task(1, {}, (completion(1),), tags=("batch-1",)),
        Task(2, {}, (completion(2),), tags=("batch-2", "hard")),
        Task(3, {}, (completion(3),)),
    ]
    rules = SelectionRules(tags=frozenset({"hard", "batch-1"}))
    assert chosen_ids(tasks, rules) == [1, 2]
    assert select_training_completions(tasks, MEMBERS, rules).skipped == {SkipReason.TAG_FILTER: 1}


def test_ties_go_to_ground_truth_then_latest_update_then_id() -> None:
    newer = completion(1, "ana", updated_at="2026-11-02T00:00:00Z")
    older_gt = completion(2, "ana", updated_at="2026-11-01T00:00:00Z", ground_truth=True)
    assert chosen_ids([Task(1, {}, (newer, older_gt))]) == [2]
    latest = completion(3, "ana", updated_at="2026-11-03T00:00:00Z")
    assert chosen_ids([Task(2, {}, (newer, latest))]) == [3]
    assert chosen_ids([Task(3, {}, (completion(9), completion(10)))]) == [10]


# --- invariants ---------------------------------------------------------------

authors = st.sampled_from(["lead", "ana", "ben", "stranger", None])
reviews = st.sampled_from([(), ACCEPT, REJECT, REJECT + ACCEPT, ACCEPT + REJECT])
states = st.sampled_from(list(CompletionState))


@st.composite
def task_lists(draw: st.DrawFn) -> list[Task]:
    tasks = []
    next_id = 0
    for tid in range(draw(st.integers(0, 8))):
        completions = []
        for _ in range(draw(st.integers(0, 4))):
            next_id += 1
            completions.append(
                Completion(
                    id=next_id,
                    result=(),
                    author=draw(authors),
                    state=draw(states),
                    ground_truth=draw(st.booleans()),
                    reviews=draw(reviews),
                    updated_at=draw(st.sampled_from([None, "2026-01-01", "2026-02-01"])),
                )
            )
        tags = tuple(draw(st.sets(st.sampled_from(["a", "b", "Train"]), max_size=2)))
        tasks.append(Task(tid, {}, tuple(completions), tags=tags))
    return tasks


rules_strategy = st.builds(
    SelectionRules,
    tags=st.frozensets(st.sampled_from(["a", "b"]), max_size=2),
    reviewed_only=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(task_lists(), rules_strategy, st.randoms(use_true_random=False))
def test_selection_invariants(tasks: list[Task], rules: SelectionRules, rnd: object) -> None:
    selection = select_training_completions(tasks, MEMBERS, rules)
    chosen_tasks = [task.id for task, _ in selection.chosen]
    # One example per task at most, in the order tasks came.
    assert chosen_tasks == [t.id for t in tasks if t.id in set(chosen_tasks)]
    for task, chosen in selection.chosen:
        assert chosen in task.completions
        assert chosen.state is CompletionState.SUBMITTED
        assert chosen.verdict is not ReviewVerdict.REJECTED
        if rules.tags:
            assert rules.tags & set(task.tags)
        accepted = [
            c
            for c in task.completions
            if c.state is CompletionState.SUBMITTED and c.verdict is ReviewVerdict.ACCEPTED
        ]
        if accepted or rules.reviewed_only:
            assert chosen.verdict is ReviewVerdict.ACCEPTED
        else:
            priority = {m.user: m.priority for m in MEMBERS}
            best = max(
                priority.get(c.author or "", float("-inf"))
                for c in task.completions
                if c.state is CompletionState.SUBMITTED and c.verdict is None
            )
            assert priority.get(chosen.author or "", float("-inf")) == best
    assert len(selection.chosen) + sum(selection.skipped.values()) == len(tasks)
    # The order completions are listed in never changes the choice.
    shuffled = []
    for task in tasks:
        completions = list(task.completions)
        rnd.shuffle(completions)  # type: ignore[attr-defined]
        shuffled.append(Task(task.id, task.data, tuple(completions), tags=task.tags))
    again = select_training_completions(shuffled, MEMBERS, rules)
    assert [c.id for _, c in again.chosen] == [c.id for _, c in selection.chosen]
