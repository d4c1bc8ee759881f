"""The hand-off deadline behaves like `asyncio.timeout`: expiry is TimeoutError, outside cancels stay."""

from __future__ import annotations

import asyncio

import pytest

from gateway.deadline import Deadline


async def test_expiry_is_timeout_error() -> None:
    """A block still waiting when the time is up leaves with TimeoutError."""
    with pytest.raises(TimeoutError):
        async with Deadline(0.01):
            await asyncio.sleep(5)


async def test_block_done_in_time_is_untouched() -> None:
    """A block that finishes in time returns normally and its task is not left cancelled."""
    async with Deadline(1):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)  # the timer is gone: no late cancellation lands here
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_outside_cancellation_stays_cancellation() -> None:
    """Cancelling the task from outside is a CancelledError, not a timeout."""

    async def guarded() -> None:
        async with Deadline(5):
            await asyncio.sleep(5)

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelled_from_outside_while_expiring_stays_cancellation() -> None:
    """An outside cancel that races the deadline wins: the caller asked to stop."""

    async def guarded() -> None:
        async with Deadline(0.01):
            try:
                await asyncio.sleep(5)
            finally:
                await asyncio.sleep(0.05)  # the outside cancel arrives while unwinding

    task = asyncio.create_task(guarded())
    await asyncio.sleep(0.03)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_other_errors_pass_through() -> None:
    """An error raised inside the block is not turned into anything else."""
    with pytest.raises(KeyError):
        async with Deadline(1):
            raise KeyError("x")
