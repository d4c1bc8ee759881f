"""SeenIds (flat ring + open-addressing table) against a plain OrderedDict reference."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dedupe import PlainSeenIds, SeenIds

Reference = PlainSeenIds  # the straightforward window the compact one must match


def _id(i: int) -> str:
    """Mostly gateway-style hex ids, some other strings (digest path)."""
    return f"other-{i}" if i % 7 == 3 else hashlib.sha256(str(i).encode()).hexdigest()[:32]


OPS = st.lists(
    st.tuples(
        st.sampled_from(["seen", "remember", "contains"]), st.integers(0, 40), st.integers(-2, 3)
    ),
    max_size=300,
)


@settings(max_examples=500, deadline=None)
@given(OPS, st.integers(1, 12), st.sampled_from([0.5, 3.0, 10.0, 1e9]))
def test_behaves_like_an_ordered_dict(
    ops: list[tuple[str, int, int]], max_entries: int, window: float
) -> None:
    """Expiry, eviction of the oldest, ids remembered again, any time order: same answers."""
    compact, reference = SeenIds(window, max_entries), Reference(window, max_entries)
    now = 0.0
    for op, i, step in ops:
        now += step
        event_id = _id(i)
        if op == "seen":
            assert compact.seen(event_id, now) == reference.seen(event_id, now)
        elif op == "remember":
            compact.remember(event_id, now)
            reference.remember(event_id, now)
        else:
            assert (event_id in compact) == (event_id in reference)
        assert len(compact) == len(reference)


def test_dense_table_keeps_every_id_findable() -> None:
    """Long probe runs and backward-shift deletions in a small table lose no id."""
    compact, reference = SeenIds(5.0, 50), Reference(5.0, 50)
    for t in range(3000):
        event_id = _id(t % 97)
        assert compact.seen(event_id, t * 0.1) == reference.seen(event_id, t * 0.1)
        if t % 3:
            compact.remember(event_id, t * 0.1)
            reference.remember(event_id, t * 0.1)
    assert all((_id(i) in compact) == (_id(i) in reference) for i in range(97))
