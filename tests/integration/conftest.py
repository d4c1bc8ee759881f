"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.destinations.worker import DeliveryWorkers


@pytest.fixture
async def running() -> AsyncIterator[list[DeliveryWorkers]]:
    """Workers registered here are stopped when the test ends."""
    started: list[DeliveryWorkers] = []
    yield started
    for workers in started:
        await workers.stop(grace=0.5)
