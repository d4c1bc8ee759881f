"""Commit points of consumed partitions, and what is done beyond them.

Kafka keeps one committed offset per partition: every record before it is done. A record
that waits (a retry in memory, a paused destination's delivery, an `ordering: key`
follower) holds that offset back while the records after it finish. So that those are
not sent again after a crash or a rebalance, the consumer also saves which records
beyond the commit point are done (`Done`: a bitmap over `[point, end)`) in the state store,
and a partition's next owner skips them (`PartitionProgress.known`). With `state.backend:
redis` that covers the fleet; with `memory` only this process's own rebalances.

A window is saved right after its commit point was committed, and says which record it
was saved for: the timestamp of the record at the commit point. The next owner trusts it
only if the partition's committed offset is that point and the first record it consumes
there has that timestamp; otherwise (a failed commit, a topic deleted and created again
under the same name) it is dropped and everything is delivered, never skipped.
"""

from __future__ import annotations

import base64
import zlib
from collections import deque
from dataclasses import dataclass

from gateway.types import ascii_int

# A saved window covers at most this many offsets past the commit point (the bitmap is
# 125 KB raw, far less compressed); done records further on are sent again after a crash.
MAX_WINDOW = 1_000_000
_VERSION = "d2"
_DIGITS = 19  # offsets and timestamps are int64


@dataclass(eq=False, slots=True)
class Entry:
    """One consumed record's place in its partition; `done` once its outcome is recorded."""

    offset: int
    stamp: int = 0  # the record's timestamp (ms): identifies it, with the offset
    done: bool = False


@dataclass(frozen=True, slots=True)
class Done:
    """Which offsets in `[point, end)` are done (every offset before `point` is)."""

    point: int
    end: int
    stamp: int  # the timestamp of the record at `point` (not done: it is what waits)
    bits: bytes  # bit i (LSB first) set: offset point + i is done

    def __contains__(self, offset: int) -> bool:
        if offset < self.point:
            return True
        index = offset - self.point
        if offset >= self.end or index // 8 >= len(self.bits):
            return False
        return bool(self.bits[index // 8] >> (index % 8) & 1)

    def encode(self) -> bytes:
        """`d2 <point> <end> <stamp> <base64 of the zlib'd bitmap>`: what the store keeps."""
        packed = base64.b64encode(zlib.compress(self.bits, 6)).decode()
        return f"{_VERSION} {self.point} {self.end} {self.stamp} {packed}".encode()

    @classmethod
    def decode(cls, blob: bytes) -> Done | None:
        """The saved window, or None for anything that is not one (never trusted blindly)."""
        try:
            version, point, end, stamp, packed = blob.decode("ascii").split(" ")
            start, stop = ascii_int(point, _DIGITS), ascii_int(end, _DIGITS)
            at = ascii_int(stamp.removeprefix("-"), _DIGITS)  # -1: a record without one
            if version != _VERSION or start is None or stop is None or at is None:
                return None
            bits = zlib.decompress(base64.b64decode(packed, validate=True))
        except (ValueError, UnicodeDecodeError, zlib.error):
            return None
        if not start <= stop <= start + MAX_WINDOW or len(bits) * 8 < stop - start:
            return None
        return cls(start, stop, -at if stamp.startswith("-") else at, bits)


class PartitionProgress:
    """Consumed offsets of one partition and the commit point: the first one not yet done."""

    __slots__ = ("_checked", "_end", "_open", "committed", "known", "saved", "saved_at")

    def __init__(self, known: Done | None = None) -> None:
        self._open: deque[Entry] = deque()
        self._end: int | None = None
        self.committed: int | None = None
        # Done beyond the commit point, as a previous owner saved it: skipped when consumed.
        self.known = known
        self._checked = False  # the first record consumed matched the window's
        self.saved: Done | None = None  # what this owner last saved
        self.saved_at = 0.0  # when (monotonic), to save it again before it expires

    def add(self, offset: int, stamp: int = 0) -> Entry:
        """Track a newly consumed offset (offsets arrive in increasing order)."""
        entry = Entry(offset, stamp)
        self._open.append(entry)
        self._end = offset + 1
        return entry

    def already_done(self, offset: int, stamp: int) -> bool:
        """True if a previous owner finished this record: tracked as done, not delivered.

        The first record consumed must be the one the window was saved for (its offset
        and timestamp), else the window is dropped.
        """
        known = self.known
        if known is None:
            return False
        if not self._checked:
            if offset != known.point or stamp != known.stamp:
                self.known = None
                return False
            self._checked = True
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
        return Done(point, end, self._open[0].stamp, bytes(bits))
