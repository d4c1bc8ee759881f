"""The half-open probe and the attempts waiting for it, driven through `DeliveryWorkers`.

Found by the flapping-receiver integration test under CI load: a request sent before the
breaker opened failed while the probe was out, was taken for the probe's answer, and one
cool-down later a second probe replaced the event the waiting attempts were parked on; the
first probe then set the new event, and the parked deliveries waited forever (neither
delivered nor dead-lettered). Here the interleaving is forced, so it runs every time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from gateway.config import parse_config
from gateway.destinations.lanes import Job
from gateway.destinations.offsets import Entry
from gateway.destinations.retry import BreakerState, CircuitBreaker
from gateway.destinations.webhook import AttemptResult
from gateway.destinations.worker import DeliveryWorkers
from tests.destinations.receiver import new_secret
from tests.destinations.test_delivery_settings import CONFIG

COOLDOWN = 0.05


class HeldClient:
    """A webhook client whose every request waits until the test answers it."""

    def __init__(self) -> None:
        self.pending: dict[str, asyncio.Future[AttemptResult]] = {}

    async def send(self, endpoint: Any, event_id: str, body: bytes, now: float) -> AttemptResult:
        future: asyncio.Future[AttemptResult] = asyncio.get_running_loop().create_future()
        self.pending[event_id] = future
        return await future

    async def sent(self, event_id: str) -> None:
        while event_id not in self.pending:
            await asyncio.sleep(0.001)

    def fail(self, event_id: str) -> None:
        self.pending.pop(event_id).set_result(AttemptResult("retry", 503, "HTTP 503"))


class NullProducer:
    """Circuit changes are published to the control topic; here they go nowhere."""

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        return None


def _job(n: int) -> Job:
    return Job(TopicPartition("deliveries", 0), Entry(n), None, b"", None)


async def test_attempts_parked_on_a_probe_wake_when_it_ends() -> None:
    """A straggler failing mid-probe neither ends the probe nor strands the waiting attempts."""
    config = parse_config(CONFIG.format(secret=new_secret(), extra=""))
    workers = DeliveryWorkers(config, producer=NullProducer())  # type: ignore[arg-type]
    client = HeldClient()
    workers._client = client  # type: ignore[assignment]
    lane = workers.lanes["hook"]
    lane.breaker = CircuitBreaker(threshold=1, cooldown=COOLDOWN, max_cooldown=COOLDOWN)

    def state() -> BreakerState:
        return lane.breaker.state

    def attempt(name: str, n: int) -> asyncio.Task[AttemptResult | None]:
        return asyncio.create_task(workers._attempt(lane, _job(n), name, b"{}"))

    straggler = attempt("straggler", 1)  # sent while closed; its answer comes late
    await client.sent("straggler")
    opener = attempt("opener", 2)
    await client.sent("opener")
    client.fail("opener")
    await opener
    assert state() is BreakerState.OPEN

    await asyncio.sleep(COOLDOWN * 1.5)
    first_probe = attempt("first-probe", 3)
    await client.sent("first-probe")
    parked = attempt("parked", 4)  # due while the probe is out: waits for its answer
    await asyncio.sleep(0.01)
    assert not parked.done()

    client.fail("straggler")  # sent before the breaker opened
    await straggler
    assert state() is BreakerState.HALF_OPEN  # no news: the probe is still out

    await asyncio.sleep(COOLDOWN * 2.5)
    late = attempt("late", 5)  # not a second probe: it parks too
    await asyncio.sleep(0.01)
    assert "late" not in client.pending

    client.fail("first-probe")
    results = await asyncio.wait_for(asyncio.gather(first_probe, parked, late), timeout=2.0)
    assert state() is BreakerState.OPEN
    assert results[0] is not None and results[0].status == 503
    # The parked attempts were woken by the probe's failure: not sent, uncharged, re-timed.
    assert [r.error if r else r for r in results[1:]] == ["circuit open: not sent"] * 2
    assert not client.pending
