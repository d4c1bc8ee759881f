"""Commit points: an offset is committed only once every record before it has an outcome."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.destinations.offsets import Done, PartitionProgress


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


# -- what is done beyond the commit point (saved for the partition's next owner) -------------


def test_nothing_done_beyond_the_commit_point_saves_nothing() -> None:
    """All done, or only the head waiting with nothing after it finished: no window."""
    progress = PartitionProgress()
    entries = [progress.add(offset) for offset in range(5)]
    assert progress.done_beyond() is None
    for entry in entries:
        entry.done = True
    assert progress.done_beyond() is None


def test_a_window_round_trips_and_says_exactly_what_is_done() -> None:
    """Head 10 waits, 11-14 done except 13; offset 16 is a gap (no record): done too."""
    progress = PartitionProgress()
    entries = {o: progress.add(o) for o in (10, 11, 12, 13, 14, 15, 17)}
    for offset in (11, 12, 14, 17):
        entries[offset].done = True
    done = progress.done_beyond()
    assert done is not None and (done.point, done.end) == (10, 18)
    again = Done.decode(done.encode())
    assert again == done
    assert [o for o in range(8, 20) if o in again] == [8, 9, 11, 12, 14, 16, 17]
    assert Done.decode(b"d2 0 8 5 eJz7DwABAAEA") == Done(0, 8, 5, b"\xff")


def test_the_next_owner_skips_what_the_window_says_is_done() -> None:
    """Skipped records are tracked as done; the rest are handed out; past the window, all."""
    old = PartitionProgress()
    entries = [old.add(o) for o in range(6)]
    for entry in entries[2:4]:
        entry.done = True
    window = old.done_beyond()
    assert window is not None
    new = PartitionProgress(known=window)
    handed = {o: new.add(o) for o in range(10) if not new.already_done(o, 0)}  # as admit does
    assert list(handed) == [0, 1, 4, 5, 6, 7, 8, 9]
    assert new.known is None
    assert new.commit_point() == 0
    handed[0].done = handed[1].done = True
    assert new.commit_point() == 4


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"garbage",
        b"d1 0 8 eJz7DwABAAEA",  # the format of another version
        b"d2 -1 8 5 eJz7DwABAAEA",
        b"d2 9 8 5 eJz7DwABAAEA",
        b"d2 0 9000 5 eJz7DwABAAEA",  # says more offsets than it has bits for
        b"d2 0 8 5 not-base64!",
        b"d2 0 8 5 aGVsbG8=",  # base64, not zlib
        b"d2 0 2000000 5 eJz7DwABAAEA",
        b"d2 0 8 x eJz7DwABAAEA",
        "d2 0 8 \u00b2 eJz7DwABAAEA".encode(),
        "d2 \u0663 8 5 eJz7DwABAAEA".encode(),  # a non-ASCII digit
    ],
)
def test_a_window_that_is_not_one_is_ignored(blob: bytes) -> None:
    """Anything else in the store's slot is ignored: the records are delivered again."""
    assert Done.decode(blob) is None


@given(
    st.lists(st.booleans(), min_size=1, max_size=300),
    st.integers(min_value=0, max_value=2**40),
)
def test_a_window_never_claims_an_unfinished_record(flags: list[bool], base: int) -> None:
    """Whatever finished, every record not done is outside the saved window's done set."""
    progress = PartitionProgress()
    entries = [progress.add(base + i) for i in range(len(flags))]
    for entry, flag in zip(entries, flags, strict=True):
        entry.done = flag
    window = progress.done_beyond()
    restored = Done.decode(window.encode()) if window is not None else None
    for entry in entries:
        if not entry.done:
            assert restored is None or entry.offset not in restored
        elif restored is not None:
            assert entry.offset in restored


def test_a_window_for_another_record_at_the_point_is_dropped() -> None:
    """Same offsets, another record there (a topic created again): nothing is skipped."""
    old = PartitionProgress()
    head, *rest = [old.add(o, stamp=1_700_000_000_000 + o) for o in range(4)]
    for entry in rest:
        entry.done = True
    window = old.done_beyond()
    assert window is not None and window.stamp == head.stamp
    same = PartitionProgress(known=window)
    assert [same.already_done(o, 1_700_000_000_000 + o) for o in range(5)] == [
        False,
        True,
        True,
        True,
        False,
    ]
    other = PartitionProgress(known=window)
    assert [other.already_done(o, 5 + o) for o in range(5)] == [False] * 5
    assert other.known is None
    late = PartitionProgress(known=window)  # the first record seen is not the point's
    assert [late.already_done(o, 1_700_000_000_000 + o) for o in range(1, 4)] == [False] * 3
