"""Commit points of consumed partitions: an offset is committed once all before it are done."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(eq=False, slots=True)
class Entry:
    """One consumed record's place in its partition; `done` once its outcome is recorded."""

    offset: int
    done: bool = False


class PartitionProgress:
    """Consumed offsets of one partition and the commit point: the first one not yet done."""

    __slots__ = ("_end", "_open", "committed")

    def __init__(self) -> None:
        self._open: deque[Entry] = deque()
        self._end: int | None = None
        self.committed: int | None = None

    def add(self, offset: int) -> Entry:
        """Track a newly consumed offset (offsets arrive in increasing order)."""
        entry = Entry(offset)
        self._open.append(entry)
        self._end = offset + 1
        return entry

    def skip_to(self, offset: int) -> None:
        """Records before `offset` need no outcome (seen, but left for a later fetch)."""
        if not self._open and (self._end is None or offset > self._end):
            self._end = offset

    def commit_point(self) -> int | None:
        """The offset to commit: every record before it is done (None: nothing consumed)."""
        while self._open and self._open[0].done:
            self._open.popleft()
        return self._open[0].offset if self._open else self._end
