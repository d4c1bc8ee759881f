"""Commit points: an offset is committed only once every record before it has an outcome."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from gateway.destinations.offsets import PartitionProgress


def test_nothing_consumed_commits_nothing() -> None:
    """A partition with no consumed record has no commit point."""
    assert PartitionProgress().commit_point() is None


def test_commit_point_waits_for_the_oldest_unfinished() -> None:
    """Finished records after an unfinished one do not move the commit point past it."""
    progress = PartitionProgress()
    entries = [progress.add(offset) for offset in range(10, 15)]
    assert progress.commit_point() == 10
    for entry in entries[1:]:
        entry.done = True
    assert progress.commit_point() == 10
    entries[0].done = True
    assert progress.commit_point() == 15


def test_commit_point_follows_gaps_in_offsets() -> None:
    """Offsets need not be contiguous (compaction, control records): the next one counts."""
    progress = PartitionProgress()
    a, b = progress.add(3), progress.add(7)
    a.done = True
    assert progress.commit_point() == 7
    b.done = True
    assert progress.commit_point() == 8


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32))
def test_commit_point_is_never_past_an_unfinished_record(count: int, seed: int) -> None:
    """Finishing records in any order, the commit point is the first unfinished offset."""
    rng = random.Random(seed)
    progress = PartitionProgress()
    entries = [progress.add(offset) for offset in range(count)]
    order = list(range(count))
    rng.shuffle(order)
    done: set[int] = set()
    for index in order:
        entries[index].done = True
        done.add(index)
        expected = next((i for i in range(count) if i not in done), count)
        assert progress.commit_point() == expected
