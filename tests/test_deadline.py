"""Fast path `deadline`: `Deadline` keeps `asyncio.timeout`'s contract; each case runs on both."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from gateway import deadline as deadline_module
from gateway.deadline import Deadline

Factory = Callable[[float], AbstractAsyncContextManager[object]]
BOTH = pytest.mark.parametrize("bound", [Deadline, asyncio.timeout], ids=["Deadline", "stdlib"])


@BOTH
async def test_expiry_is_timeout_error(bound: Factory) -> None:
    """A block still waiting when the time is up leaves with TimeoutError."""
    with pytest.raises(TimeoutError):
        async with bound(0.01):
            await asyncio.sleep(5)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


@BOTH
async def test_block_done_in_time_is_untouched(bound: Factory) -> None:
    """A block that finishes in time returns normally and its task is not left cancelled."""
    async with bound(0.01):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)  # the timer is gone: no late cancellation lands here
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


@BOTH
async def test_outside_cancellation_stays_cancellation(bound: Factory) -> None:
    """Cancelling the task from outside is a CancelledError, not a timeout."""

    async def guarded() -> None:
        async with bound(5):
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@BOTH
async def test_cancelled_from_outside_while_expiring_stays_cancellation(bound: Factory) -> None:
    """An outside cancel that races the deadline wins: the caller asked to stop."""

    async def guarded() -> None:
        async with bound(0.01):
            try:
                await asyncio.sleep(5)
            finally:
                await asyncio.sleep(0.2)  # the outside cancel arrives while unwinding

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@BOTH
async def test_other_errors_pass_through(bound: Factory) -> None:
    """An error raised inside the block is not turned into anything else."""
    with pytest.raises(KeyError):
        async with bound(1):
            raise KeyError("x")


@BOTH
async def test_nested_inner_expiry_does_not_leak_to_the_outer_block(bound: Factory) -> None:
    """An inner bound that expires is the inner block's TimeoutError; the outer goes on."""
    async with bound(5):
        with pytest.raises(TimeoutError):
            async with bound(0.01):
                await asyncio.sleep(5)
        await asyncio.sleep(0)


async def test_the_switch_picks_deadline_or_the_stdlib() -> None:
    """`deadline()` is a `Deadline` unless GATEWAY_SLOW=deadline (then asyncio.timeout)."""
    made = deadline_module.deadline(1)
    assert isinstance(made, Deadline) is deadline_module._FAST
