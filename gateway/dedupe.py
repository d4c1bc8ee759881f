"""Remembers accepted event ids for the dedupe window, in bounded, compact memory.

Fast path `seentable` (gateway/fastpaths.py; off, `seen_ids()` is `PlainSeenIds`, an
OrderedDict of strings and floats). Equivalence: tests/test_dedupe.py. Benchmark: the
memory phase of benchmarks/ingest_bench.py (it buys memory, not speed).
"""

from __future__ import annotations

import hashlib
import mmap
from collections import OrderedDict

from gateway.fastpaths import fast

_KEY = 16  # bytes per id: the 128 bits of a gateway event id
_EMPTY = bytes(_KEY)
# Slots per remembered id: linear probing stays short (~1.5 probes to hit, ~6 to miss).
_SLOTS_PER_ENTRY = 1 / 0.7


def _zeroed(size: int) -> mmap.mmap:
    """Zero-filled memory the OS only backs with pages as they are first written."""
    return mmap.mmap(-1, max(size, 1))


def _key(event_id: str) -> bytes:
    """The 16-byte key of an id: its own bits for a gateway event id, else a digest.

    Any string maps to one key; two strings share a key only by a 128-bit digest collision.
    """
    # islower(): hex with a letter in it (cheaper than a regex); all-digit ids take a digest.
    if len(event_id) == 32 and event_id.islower():
        try:
            key = bytes.fromhex(event_id)
        except ValueError:
            key = _EMPTY
        if len(key) == _KEY and key != _EMPTY:  # all-zero marks a free slot
            return key
    return hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=_KEY).digest()


class SeenIds:
    """Event ids accepted within `window` seconds, at most `max_entries` of them.

    Ids are kept in acceptance order, so expiry only ever looks at the oldest entries.
    When more than `max_entries` ids arrive within one window the oldest are forgotten
    early: a provider retry of such an event is forwarded again, which consumers absorb
    by deduping on the event `id` (at-least-once, never loss).

    Memory is fixed by `max_entries`, not by traffic: a ring of (id, time) in acceptance
    order and an open-addressing table of ids, both flat arrays (about 64 bytes per entry
    in all, backed by the OS only as pages are first written), where a dict of Python
    strings and floats took about 200 bytes per entry: 200 MB for the default million ids.
    """

    def __init__(self, window: float, max_entries: int) -> None:
        self._window = window
        self._max = max_entries
        # The ring: the ids in acceptance order, with their times. An id remembered again
        # leaves a superseded entry behind; the slack gives those room until a compaction.
        self._ring_size = max_entries + max_entries // 4 + 16
        self._ring_keys = _zeroed(self._ring_size * _KEY)
        self._ring_times = memoryview(_zeroed(self._ring_size * 8)).cast("d")
        self._head = 0  # ring slot of the oldest entry
        self._count = 0  # entries in the ring, superseded ones included
        # The table: each remembered id and the ring slot of its latest acceptance.
        self._capacity = max(16, int(max_entries * _SLOTS_PER_ENTRY) + 1)
        self._keys = _zeroed(self._capacity * _KEY)
        self._where = memoryview(_zeroed(self._capacity * 8)).cast("Q")
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self._find(_key(event_id)) >= 0

    def seen(self, event_id: str, now: float) -> bool:
        """True if `event_id` was accepted within the window before `now`."""
        self._expire(now)
        return self._find(_key(event_id)) >= 0

    def remember(self, event_id: str, now: float) -> None:
        """Record `event_id` as accepted at `now`."""
        key = _key(event_id)
        if self._count == self._ring_size:
            self._compact()
        ring = (self._head + self._count) % self._ring_size
        self._ring_keys[ring * _KEY : (ring + 1) * _KEY] = key
        self._ring_times[ring] = now
        self._count += 1
        slot = self._find(key)
        if slot < 0:
            slot = ~slot
            self._keys[slot * _KEY : (slot + 1) * _KEY] = key
            self._live += 1
        # An id remembered again points at its newest ring entry; the older one is now
        # superseded and forgets nothing when it leaves the ring.
        self._where[slot] = ring
        while self._live > self._max:
            self._pop()

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        while self._count:
            ring = self._head
            # Superseded entries (only ever left by an id remembered again) never stop expiry.
            fresh = self._ring_times[ring] > horizon
            if fresh and (self._count == self._live or self._current(ring) >= 0):
                break
            self._pop()

    def _current(self, ring: int) -> int:
        """The table slot of the id at ring slot `ring`, or -1 if that entry is superseded."""
        slot = self._find(self._ring_keys[ring * _KEY : (ring + 1) * _KEY])
        return slot if slot >= 0 and self._where[slot] == ring else -1

    def _pop(self) -> None:
        """Drop the oldest ring entry, and its id unless a newer entry superseded it."""
        ring = self._head
        slot = self._current(ring)
        self._head = (ring + 1) % self._ring_size
        self._count -= 1
        if slot >= 0:
            self._delete(slot)
            self._live -= 1

    def _compact(self) -> None:
        """Rewrite the ring without its superseded entries (rare: ids remembered again)."""
        keys = _zeroed(self._ring_size * _KEY)
        times = memoryview(_zeroed(self._ring_size * 8)).cast("d")
        kept = 0
        for offset in range(self._count):
            ring = (self._head + offset) % self._ring_size
            slot = self._current(ring)
            if slot < 0:
                continue
            keys[kept * _KEY : (kept + 1) * _KEY] = self._ring_keys[ring * _KEY : (ring + 1) * _KEY]
            times[kept] = self._ring_times[ring]
            self._where[slot] = kept
            kept += 1
        self._ring_keys, self._ring_times = keys, times
        self._head, self._count = 0, kept

    def _find(self, key: bytes) -> int:
        """The table slot holding `key`, or `~slot` of the free slot where it would go."""
        keys, capacity = self._keys, self._capacity
        slot = int.from_bytes(key[:8], "little") % capacity
        while True:
            found = keys[slot * _KEY : (slot + 1) * _KEY]
            if found == key:
                return slot
            if found == _EMPTY:
                return ~slot
            slot = slot + 1 if slot + 1 < capacity else 0

    def _delete(self, slot: int) -> None:
        """Empty `slot`, shifting back later entries of its probe run (no tombstones)."""
        keys, where, capacity = self._keys, self._where, self._capacity
        hole = slot
        probe = slot
        while True:
            probe = probe + 1 if probe + 1 < capacity else 0
            key = keys[probe * _KEY : (probe + 1) * _KEY]
            if key == _EMPTY:
                break
            home = int.from_bytes(key[:8], "little") % capacity
            # The entry stays unless its home lies cyclically outside (hole, probe].
            if hole <= probe:
                stays = hole < home <= probe
            else:
                stays = home > hole or home <= probe
            if stays:
                continue
            keys[hole * _KEY : (hole + 1) * _KEY] = key
            where[hole] = where[probe]
            hole = probe
        keys[hole * _KEY : (hole + 1) * _KEY] = _EMPTY


class PlainSeenIds:
    """`SeenIds` as an OrderedDict of id -> time: the reference the flat table replaces."""

    def __init__(self, window: float, max_entries: int) -> None:
        self._window = window
        self._max = max_entries
        self._ids: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def seen(self, event_id: str, now: float) -> bool:
        """True if `event_id` was accepted within the window before `now`."""
        ids = self._ids
        while ids and next(iter(ids.values())) <= now - self._window:
            ids.popitem(last=False)
        return event_id in ids

    def remember(self, event_id: str, now: float) -> None:
        """Record `event_id` as accepted at `now`."""
        ids = self._ids
        ids[event_id] = now
        ids.move_to_end(event_id)
        while len(ids) > self._max:
            ids.popitem(last=False)


def seen_ids(window: float, max_entries: int) -> SeenIds | PlainSeenIds:
    """The dedupe window's table: `SeenIds`, or `PlainSeenIds` with GATEWAY_SLOW=seentable."""
    return SeenIds(window, max_entries) if _FAST else PlainSeenIds(window, max_entries)


_FAST = fast("seentable")
