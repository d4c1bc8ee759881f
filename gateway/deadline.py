"""`Deadline`: `asyncio.timeout` for the hot path (the hand-off, state store operations)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from gateway.fastpaths import fast

__all__ = ["Deadline", "timeout"]


class Deadline:
    """`asyncio.timeout(seconds)` for the hand-off and state store calls, cheaper.

    Same contract: when the time is up the task is cancelled, and the cancellation leaves
    the block as `TimeoutError`, unless the task was also cancelled from outside (then it
    stays a `CancelledError`). One timer per hand-off, without the stdlib's state machine
    around it. Fast path `deadline` (gateway/fastpaths.py; tests/test_deadline.py checks
    it against `asyncio.timeout`), justified by benchmarks/ingest_bench.py --fast-paths.
    """

    __slots__ = ("_seconds", "_task", "_timer", "expired")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self.expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._timer = asyncio.get_running_loop().call_later(self._seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        self._timer.cancel()
        if self.expired and self._task.uncancel() == 0 and kind is asyncio.CancelledError:
            raise TimeoutError from error


# `asyncio.timeout`, or its fast path `Deadline` (on unless GATEWAY_SLOW names `deadline`).
timeout: Callable[[float], AbstractAsyncContextManager[Any]] = (
    Deadline if fast("deadline") else asyncio.timeout
)
