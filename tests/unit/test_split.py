"""Train/test split by a seeded share or by Train/Test tags."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotrain.domain.errors import InvalidRequestError
from annotrain.domain.split import split_by_share, split_by_tags, task_key
from annotrain.domain.tasks import Task


def tasks(n: int) -> list[Task]:
    return [Task(i, {"text": f"t{i}"}) for i in range(n)]


def ids(items: list[Task]) -> list[object]:
    return [t.id for t in items]


def test_same_seed_and_data_give_the_same_split_whatever_the_order() -> None:
    data = tasks(50)
    first = split_by_share(data, 0.2, seed=7, key=task_key)
    again = split_by_share(list(reversed(data)), 0.2, seed=7, key=task_key)
    assert sorted(ids(first.test)) == sorted(ids(again.test))
    assert len(first.test) == 10
    assert len(first.train) == 40


def test_another_seed_gives_another_split() -> None:
    data = tasks(50)
    a = split_by_share(data, 0.2, seed=1, key=task_key)
    b = split_by_share(data, 0.2, seed=2, key=task_key)
    assert set(ids(a.test)) != set(ids(b.test))


def test_adding_tasks_keeps_old_test_tasks_mostly_in_test() -> None:
    before = split_by_share(tasks(100), 0.2, seed=3, key=task_key)
    after = split_by_share(tasks(110), 0.2, seed=3, key=task_key)
    kept = set(ids(before.test)) & set(ids(after.test))
    # 22 test slots for 110 tasks: at most 10 new tasks can take an old one's place.
    assert len(kept) >= len(before.test) - 10


def test_a_positive_share_leaves_both_parts_non_empty() -> None:
    split = split_by_share(tasks(3), 0.01, seed=0, key=task_key)
    assert len(split.test) == 1
    assert len(split.train) == 2
    assert split_by_share(tasks(1), 0.5, seed=0, key=task_key).test == []


@pytest.mark.parametrize("share", [-0.1, 1.0, 1.5, float("nan")])
def test_share_out_of_range_is_refused_naming_the_field(share: float) -> None:
    with pytest.raises(InvalidRequestError) as exc:
        split_by_share(tasks(5), share, seed=0, key=task_key)
    assert exc.value.field == "validation_share"


def test_repeated_task_ids_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="distinct id"):
        split_by_share([Task(1, {}), Task(1, {})], 0.5, seed=0, key=task_key)


def test_tag_split_uses_train_and_test_tags_and_reports_the_rest() -> None:
    data = [
        Task(1, {}, tags=("Train",)),
        Task(2, {}, tags=("test", "hard")),
        Task(3, {}, tags=("Train", "Test")),
        Task(4, {}),
    ]
    split = split_by_tags(data, tags=lambda t: t.tags)
    assert ids(split.train) == [1]
    assert ids(split.test) == [2]
    assert ids(split.unassigned) == [3, 4]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), unique=True, max_size=60),
    st.floats(0, 0.95),
    st.integers(0, 2**32),
)
def test_share_split_is_a_partition_of_the_expected_size(
    task_ids: list[int], share: float, seed: int
) -> None:
    data = [Task(i, {}) for i in task_ids]
    split = split_by_share(data, share, seed=seed, key=task_key)
    assert sorted(ids(split.train) + ids(split.test)) == sorted(task_ids)
    assert not set(ids(split.train)) & set(ids(split.test))
    if len(data) >= 2 and share > 0:
        assert split.train
        assert split.test
        assert abs(len(split.test) - share * len(data)) <= 1
