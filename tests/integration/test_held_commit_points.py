"""Held-back commit points cost no re-sends (SPEC §12, issue 13 item 2).

A delivery that waits in memory (an `ordering: key` retry, a paused destination) holds
its partition's committed offset back. What finishes after it on that partition is saved
in the state store as done (`gateway/destinations/offsets.py`): after a SIGKILL the next
worker skips it. Real broker, real `gateway worker` processes, real Redis, receivers
verifying with `standardwebhooks`.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from gateway.broker import Broker
from gateway.config import Config, parse_config
from gateway.destinations.kafka import create_topics
from gateway.destinations.tasks import task_key
from tests.destinations.receiver import Receiver
from tests.integration import test_delivery as base
from tests.integration.test_delivery import Hook, make_config
from tests.integration.test_delivery_fleet import (
    committed_offsets,
    enqueue_keyed,
    first_successes,
    gateway_cli,
    spawn_gateway_worker,
    stop_process,
    wait_for,
)
from tests.redis_server import RedisServer

receiver, queue = base.receiver, base.queue

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def fleet_config(
    broker: Broker, receiver: Receiver, redis: RedisServer, hooks: dict[str, Hook], tmp: Path
) -> tuple[Path, Config]:
    receiver.secrets = [s for hook in hooks.values() for s in hook.secrets]
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    text = make_config(broker.bootstrap, receiver.url, hooks) + (
        f"state:\n  backend: redis\n  url: {redis.url}\n  key_prefix: '{prefix}'\n"
    )
    path = tmp / "gateway.yaml"
    path.write_text(text)
    return path, parse_config(text)


def partition_of(config: Config, destination: str, key: str) -> int:
    """The delivery-topic partition a task key lands on (the producer's default partitioner)."""
    from aiokafka.partitioner import DefaultPartitioner

    return int(DefaultPartitioner()(task_key(destination, key), [0, 1], [0, 1]))


async def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait, 10)


def successes(receiver: Receiver, path: str) -> Counter[str]:
    return Counter(r.event_id for r in receiver.on(path) if 200 <= r.answered < 300)


async def test_a_paused_destination_costs_no_re_sends_after_a_sigkill(
    broker: Broker,
    receiver: Receiver,
    queue: AIOKafkaProducer,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """Paused `held` first on each partition, `fast` after it: SIGKILL, restart: `fast` once."""
    hooks = {"held": Hook("/held", extra="ordering: key"), "fast": Hook("/fast")}
    path, config = fleet_config(broker, receiver, redis_server, hooks, tmp_path)
    await create_topics(config.kafka, [config.kafka.delivery_topic, config.kafka.dead_letter_topic])
    paused = gateway_cli("destinations", "pause", "held", "--config", str(path))
    assert paused.returncode == 0, paused.stderr
    keys = [f"key-{k}" for k in range(4)]
    held = {key: [f"{key}-held-{i}" for i in range(5)] for key in keys}
    fast = [f"fast-{i:02d}" for i in range(40)]
    # The held tasks come first on every partition: they pin both commit points.
    await enqueue_keyed(queue, config, "held", [(held[k][i], k) for i in range(5) for k in keys])
    await enqueue_keyed(queue, config, "fast", [(e, e) for e in fast])
    assert {partition_of(config, "held", k) for k in keys} == {0, 1}

    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    first = spawn_gateway_worker(path, logs[0], "w1")
    try:
        await receiver.wait(lambda: len(successes(receiver, "/fast")) == 40, 30, "fast")
        await asyncio.sleep(1.5)  # a few commit intervals: the done windows are saved
        pinned = await committed_offsets(config, config.kafka.delivery_topic)
    finally:
        await kill(first)
    # Without the saved windows a restart re-sends every `fast` task: none is committed.
    assert all(offset in (None, 0) for offset in pinned.values()), pinned
    second = spawn_gateway_worker(path, logs[1], "w2")
    try:
        # The killed member's session must expire before the group takes the new one in.
        await wait_for(lambda: "delivery_progress_restored" in logs[1].read_text(), 30, "restore")
        await asyncio.sleep(2.0)  # a worker that re-sent `fast` would have done it by now
        assert receiver.on("/held") == []
        resumed = gateway_cli("destinations", "resume", "held", "--config", str(path))
        assert resumed.returncode == 0, resumed.stderr
        await receiver.wait(lambda: len(successes(receiver, "/held")) == 20, 30, "held")
        await asyncio.sleep(1.0)
    finally:
        await stop_process(second)
    print(f"fast: {sum(successes(receiver, '/fast').values())} deliveries of 40 after a SIGKILL")
    assert successes(receiver, "/fast") == Counter(dict.fromkeys(fast, 1))
    assert first_successes(receiver, "/held") == held


async def test_an_ordered_retry_in_memory_costs_other_keys_no_re_sends(
    broker: Broker,
    receiver: Receiver,
    queue: AIOKafkaProducer,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    """`ordering: key`, one key's head answered `Retry-After: 30`: SIGKILL, restart: the
    other keys are not sent again, and the waiting key is delivered in order."""
    hooks = {"ordered": Hook("/ordered", max_attempts=10, extra="ordering: key")}
    path, config = fleet_config(broker, receiver, redis_server, hooks, tmp_path)
    await create_topics(config.kafka, [config.kafka.delivery_topic, config.kafka.dead_letter_topic])
    answered: Counter[str] = Counter()

    def answer(nth: int) -> web.Response:
        event_id = receiver.received[-1].event_id
        answered[event_id] += 1
        if event_id == "slow-0" and answered[event_id] == 1:
            return web.Response(status=503, headers={"Retry-After": "30"})
        return web.Response()

    receiver.behaviours["/ordered"] = answer
    keys = [f"key-{k}" for k in range(12)]
    home = partition_of(config, "ordered", "slow")
    neighbours = [k for k in keys if partition_of(config, "ordered", k) == home]
    assert neighbours  # keys that share the waiting key's partition (and its commit point)
    slow = [f"slow-{i}" for i in range(4)]
    others = {key: [f"{key}-{i}" for i in range(3)] for key in keys}
    items = [(slow[0], "slow")] + [(others[k][i], k) for i in range(3) for k in keys]
    items += [(e, "slow") for e in slow[1:]]
    await enqueue_keyed(queue, config, "ordered", items)

    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    first = spawn_gateway_worker(path, logs[0], "w1")
    everyone = {e for events in others.values() for e in events}
    try:
        await receiver.wait(
            lambda: set(successes(receiver, "/ordered")) == everyone, 30, "the other keys"
        )
        await asyncio.sleep(1.5)
        pinned = await committed_offsets(config, config.kafka.delivery_topic)
    finally:
        await kill(first)
    assert pinned.get(home) in (None, 0), pinned  # the waiting head holds it back
    started = time.monotonic()
    second = spawn_gateway_worker(path, logs[1], "w2")
    try:
        await receiver.wait(lambda: len(successes(receiver, "/ordered")) == 40, 30, "slow key")
        await asyncio.sleep(1.0)
    finally:
        await stop_process(second)
    print(
        f"after a SIGKILL: {sum(successes(receiver, '/ordered').values())} deliveries of 40, "
        f"the waiting key done {time.monotonic() - started:.1f}s after the restart"
    )
    assert successes(receiver, "/ordered") == Counter(dict.fromkeys([*everyone, *slow], 1))
    assert first_successes(receiver, "/ordered")["slow"] == slow
