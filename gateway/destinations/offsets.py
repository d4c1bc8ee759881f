"""Commit points of consumed partitions, and what is done beyond them.

Kafka keeps one committed offset per partition: every record before it is done. A record
that waits (a retry in memory, a paused destination's delivery, an `ordering: key`
follower) holds that offset back while the records after it finish. So that those are
not sent again after a crash or a rebalance, the consumer also saves which records
beyond the commit point are done (`Done`: a bitmap over `[point, end)`) in the state store,
and a partition's next owner skips them (`PartitionProgress.known`). With `state.backend:
redis` that covers the fleet; with `memory` only this process's own rebalances.
"""

from __future__ import annotations

import base64
import zlib
from collections import deque
from dataclasses import dataclass

# A saved window covers at most this many offsets past the commit point (the bitmap is
# 125 KB raw, far less compressed); done records further on are sent again after a crash.
MAX_WINDOW = 1_000_000
_VERSION = "d1"


@dataclass(eq=False, slots=True)
class Entry:
    """One consumed record's place in its partition; `done` once its outcome is recorded."""

    offset: int
    done: bool = False


@dataclass(frozen=True, slots=True)
class Done:
    """Which offsets in `[point, end)` are done (every offset before `point` is)."""

    point: int
    end: int
    bits: bytes  # bit i (LSB first) set: offset point + i is done

    def __contains__(self, offset: int) -> bool:
        if offset < self.point:
            return True
        index = offset - self.point
        if offset >= self.end or index // 8 >= len(self.bits):
            return False
        return bool(self.bits[index // 8] >> (index % 8) & 1)

    def encode(self) -> bytes:
        """`d1 <point> <end> <base64 of the zlib'd bitmap>`: what the state store keeps."""
        packed = base64.b64encode(zlib.compress(self.bits, 6)).decode()
        return f"{_VERSION} {self.point} {self.end} {packed}".encode()

    @classmethod
    def decode(cls, blob: bytes) -> Done | None:
        """The saved window, or None for anything that is not one (never trusted blindly)."""
        try:
            version, point, end, packed = blob.decode("ascii").split(" ")
            if version != _VERSION:
                return None
            start, stop = int(point), int(end)
            bits = zlib.decompress(base64.b64decode(packed, validate=True))
        except (ValueError, UnicodeDecodeError, zlib.error):
            return None
        if start < 0 or not start <= stop <= start + MAX_WINDOW or len(bits) * 8 < stop - start:
            return None
        return cls(start, stop, bits)


class PartitionProgress:
    """Consumed offsets of one partition and the commit point: the first one not yet done."""

    __slots__ = ("_end", "_open", "committed", "known", "saved")

    def __init__(self, known: Done | None = None) -> None:
        self._open: deque[Entry] = deque()
        self._end: int | None = None
        self.committed: int | None = None
        # Done beyond the commit point, as a previous owner saved it: skipped when consumed.
        self.known = known
        self.saved: Done | None = None  # what this owner last saved

    def add(self, offset: int) -> Entry:
        """Track a newly consumed offset (offsets arrive in increasing order)."""
        entry = Entry(offset)
        self._open.append(entry)
        self._end = offset + 1
        return entry

    def already_done(self, offset: int) -> bool:
        """True if a previous owner finished this record: tracked as done, not delivered."""
        known = self.known
        if known is None:
            return False
        if offset >= known.end:
            self.known = None  # past the saved window: everything from here is new
            return False
        if offset not in known:
            return False
        self.add(offset).done = True
        return True

    def skip_to(self, offset: int) -> None:
        """Records before `offset` need no outcome (seen, but left for a later fetch)."""
        if not self._open and (self._end is None or offset > self._end):
            self._end = offset

    def commit_point(self) -> int | None:
        """The offset to commit: every record before it is done (None: nothing consumed)."""
        while self._open and self._open[0].done:
            self._open.popleft()
        return self._open[0].offset if self._open else self._end

    def done_beyond(self) -> Done | None:
        """The done records past the commit point (None: there are none to save)."""
        point = self.commit_point()
        if point is None or self._end is None or not self._open:
            return None
        end = min(self._end, point + MAX_WINDOW)
        bits = bytearray(b"\xff" * ((end - point + 7) // 8))  # gaps hold no record: done
        any_done = False
        for entry in self._open:
            if entry.offset >= end:
                break
            if entry.done:
                any_done = True
            else:
                index = entry.offset - point
                bits[index // 8] &= ~(1 << (index % 8)) & 0xFF
        if not any_done:
            return None
        return Done(point, end, bytes(bits))
