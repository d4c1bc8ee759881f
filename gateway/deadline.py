"""`Deadline`: `asyncio.timeout(seconds)` for the hand-off, with less machinery.

Same contract as `asyncio.timeout`: when the time is up the task is cancelled and the
cancellation leaves the block as `TimeoutError`, unless the task was also cancelled from
outside (then it stays a `CancelledError`); a block done in time leaves the task as it
found it. One timer per block and no state machine around it.

Fast path `deadline` (gateway/fastpaths.py; off, `deadline(seconds)` is
`asyncio.timeout(seconds)`). Equivalence: tests/test_deadline.py runs every case against
both. Benchmark: benchmarks/ingress_profile.py with and without GATEWAY_SLOW=deadline.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from types import TracebackType

from gateway.fastpaths import fast

__all__ = ["Deadline", "deadline"]


class Deadline:
    """An async context manager that cancels its task after `seconds` (see the module)."""

    __slots__ = ("_seconds", "_task", "_timer", "expired")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self.expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadline should be used inside a task")
        self._task = task
        self._timer = asyncio.get_running_loop().call_later(self._seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._timer.cancel()
        if self.expired and self._task.uncancel() == 0 and kind is asyncio.CancelledError:
            raise TimeoutError from error


def deadline(seconds: float) -> AbstractAsyncContextManager[object]:
    """`Deadline(seconds)`, or `asyncio.timeout(seconds)` with GATEWAY_SLOW=deadline."""
    return Deadline(seconds) if _FAST else asyncio.timeout(seconds)


_FAST = fast("deadline")
