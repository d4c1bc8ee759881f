"""Flapping receivers: random 500s, timeouts and connection resets; no delivery vanishes."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from standardwebhooks.webhooks import Webhook

from gateway.broker import Broker
from gateway.config import parse_config
from gateway.destinations.tasks import DEAD_LETTER_DECODER
from gateway.destinations.worker import DeliveryWorkers
from tests.destinations.receiver import listen, new_secret
from tests.integration.test_delivery import (  # noqa: F401 - fixtures used by name
    Hook,
    enqueue,
    make_config,
    queue,
    start_workers,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class Flapping:
    """A receiver that answers 200, 500, hangs past the timeout, or resets the connection at random."""

    def __init__(self, secret: str, seed: int) -> None:
        self.secret = secret
        self.rng = random.Random(seed)
        self.delivered: set[str] = set()  # event ids answered 200 (signature verified)
        self.behaviour: Counter[str] = Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        Webhook(self.secret).verify(body, {k.lower(): v for k, v in request.headers.items()})
        event_id = request.headers["webhook-id"]
        roll = self.rng.random()
        if roll < 0.3:
            self.behaviour["500"] += 1
            return web.Response(status=500)
        if roll < 0.4:
            self.behaviour["timeout"] += 1
            await asyncio.sleep(1.0)  # past the destination's 300ms timeout
            return web.Response(status=200)
        if roll < 0.5:
            self.behaviour["reset"] += 1
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=200)
        self.behaviour["200"] += 1
        self.delivered.add(event_id)
        return web.Response(status=200)

    async def start(self) -> None:
        self._runner, self.url = await listen(self.handle, shutdown_timeout=0.2)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def dead_letter_ids(bootstrap: str, topic: str) -> set[str]:
    """Event ids of every dead letter on `topic` so far (reads until quiet for 1.5 s)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    ids: set[str] = set()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        quiet_since = time.monotonic()
        while partitions and time.monotonic() - quiet_since < 1.5:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                if records:
                    quiet_since = time.monotonic()
                ids.update(DEAD_LETTER_DECODER.decode(r.value).event_id for r in records)
    finally:
        await consumer.stop()
    return ids


@pytest.fixture
async def flapping() -> AsyncIterator[Flapping]:
    """A flapping receiver on 127.0.0.1."""
    receiver = Flapping(new_secret(), seed=20261122)
    await receiver.start()
    yield receiver
    await receiver.stop()


async def test_every_delivery_ends_delivered_or_dead_lettered(
    broker: Broker,
    flapping: Flapping,
    queue: object,  # noqa: F811 - the fixture imported above
    running: list[DeliveryWorkers],
) -> None:
    """With a receiver that flaps, each of N deliveries is delivered or dead-lettered; none vanishes."""
    hook = Hook(
        path="/flap",
        secrets=[flapping.secret],
        timeout="300ms",
        max_attempts=4,
        initial="10ms",
        maximum="100ms",
        concurrency=8,
    )
    config = parse_config(make_config(broker.bootstrap, flapping.url, {"flap": hook}))
    await start_workers(config, running)
    ids = [uuid.uuid4().hex for _ in range(150)]
    await enqueue(queue, config, "flap", ids)  # type: ignore[arg-type]

    deadline = time.monotonic() + 60
    letters: set[str] = set()
    while time.monotonic() < deadline:
        pending = set(ids) - flapping.delivered
        letters = await dead_letter_ids(broker.bootstrap, config.kafka.dead_letter_topic)
        if pending <= letters:
            break
        await asyncio.sleep(1)
    missing = set(ids) - flapping.delivered - letters
    print(
        f"\n[flapping receiver] answers {dict(flapping.behaviour)}; delivered {len(flapping.delivered)}, "
        f"dead-lettered {len(letters - flapping.delivered)}, both {len(letters & flapping.delivered)}, vanished {len(missing)}"
    )
    assert not missing, f"{len(missing)} deliveries vanished"
    assert (
        flapping.behaviour["500"] and flapping.behaviour["timeout"] and flapping.behaviour["reset"]
    )
