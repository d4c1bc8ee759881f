"""Outbound webhooks end to end: real broker, real workers, a real verifying HTTP receiver."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import prometheus_client
import pytest
import structlog
import structlog.testing
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gateway.broker import Broker
from gateway.config import Config, parse_config
from gateway.destinations.admin import list_destinations
from gateway.destinations.kafka import create_topics
from gateway.destinations.replay import replay
from gateway.destinations.tasks import (
    DEAD_LETTER_DECODER,
    ENCODER,
    DeadLetter,
    DeliveryTask,
    task_key,
)
from gateway.destinations.worker import DeliveryWorkers
from tests.conftest import Keys
from tests.delivery_helpers import kafka_section, post_when_ready
from tests.destinations.receiver import Receiver, event_body, new_secret
from tests.ingress_helpers import sample, signed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(40)]

# Short group timeouts so that joining, and taking over from a killed worker, take seconds.
FAST_GROUP = {
    "session_timeout_ms": 3000,
    "heartbeat_interval_ms": 500,
    "rebalance_timeout_ms": 3000,
}
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Hook:
    """One webhook destination of a test config."""

    path: str
    secrets: list[str] = field(default_factory=lambda: [new_secret()])
    timeout: str = "2s"
    max_attempts: int = 5
    initial: str = "10ms"
    maximum: str = "50ms"
    concurrency: int = 4
    extra: str = ""  # more `webhook:` keys, e.g. "ordering: key"


def make_config(
    bootstrap: str,
    url: str,
    hooks: dict[str, Hook],
    whitepay_secret: str | None = None,
    kafka_extra: str = "",
) -> str:
    """Config text with the given webhook destinations and topics/group unique to this test."""
    suffix = uuid.uuid4().hex[:10]
    destinations = "".join(
        textwrap.dedent(f"""\
          {name}:
            webhook:
              url: {url}{hook.path}
              secret: {json.dumps(hook.secrets)}
              timeout: {hook.timeout}
              max_attempts: {hook.max_attempts}
              backoff: {{initial: {hook.initial}, max: {hook.maximum}}}
              concurrency: {hook.concurrency}
              headers: {{X-Team: payments}}
              {hook.extra}
        """)
        for name, hook in hooks.items()
    )
    first = next(iter(hooks))
    whitepay_secret = whitepay_secret or uuid.uuid4().hex
    kafka = kafka_section(bootstrap, suffix, f"control_topic: control-{suffix}", kafka_extra)
    return (
        kafka
        + f"""\
sources:
  whitepay: {{provider: whitepay, secret: {whitepay_secret}}}
destinations:
{textwrap.indent(destinations, "  ")}
routes:
  - name: all-whitepay
    match: {{provider: whitepay}}
    to: [{first}]
"""
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A verifying receiver on 127.0.0.1 (secrets are set per test)."""
    instance = Receiver([])
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def queue(broker: Broker) -> AsyncIterator[AIOKafkaProducer]:
    """A producer for putting tasks straight onto the delivery topic."""
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, enable_idempotence=False, acks="all"
    )
    await producer.start()
    yield producer
    await producer.stop()


def configure(
    broker: Broker, receiver: Receiver, hooks: dict[str, Hook], kafka_extra: str = ""
) -> Config:
    """Parse a config for `hooks`; the receiver verifies with every secret of every hook."""
    receiver.secrets = [s for hook in hooks.values() for s in hook.secrets]
    return parse_config(make_config(broker.bootstrap, receiver.url, hooks, None, kafka_extra))


async def ingest_one(config: Config, running: list[DeliveryWorkers], keys: Keys) -> str:
    """Start workers for `config`, post one signed Whitepay order to a ready gateway; its event id."""
    await start_workers(config, running)
    headers, body = signed("whitepay", sample("whitepay", "order-declined.json"), keys)
    response = await post_when_ready(config, body, headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def start_workers(
    config: Config, running: list[DeliveryWorkers], **kwargs: Any
) -> DeliveryWorkers:
    """Start DeliveryWorkers for `config` (fast group timeouts) and wait until they consume."""
    await create_topics(config.kafka, [config.kafka.delivery_topic, config.kafka.dead_letter_topic])
    workers = DeliveryWorkers(config, consumer_options=FAST_GROUP, **kwargs)
    await workers.start()
    running.append(workers)
    deadline = time.monotonic() + 15
    while not workers.ready:
        assert time.monotonic() < deadline, "workers never became ready"
        await asyncio.sleep(0.05)
    return workers


async def enqueue(
    producer: AIOKafkaProducer, config: Config, destination: str, event_ids: list[str]
) -> dict[str, bytes]:
    """Produce one DeliveryTask per event id, as the ingress does; event id -> body."""
    bodies = {}
    sends = []
    for i, event_id in enumerate(event_ids):
        body = event_body(event_id, i=i)
        bodies[event_id] = body
        task = DeliveryTask(
            destination=destination,
            event_id=event_id,
            enqueued_at=time.time(),
            body=msgspec.Raw(body),
        )
        key = task_key(destination, f"order-{i}")
        sends.append(
            await producer.send(config.kafka.delivery_topic, ENCODER.encode(task), key=key)
        )
    await asyncio.gather(*sends)
    return bodies


async def read_topic(bootstrap: str, topic: str, expected: int, seconds: float = 10.0) -> list[Any]:
    """Every record of `topic`: read until at least `expected` arrived and the end is reached."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert tps, f"topic {topic} does not exist"
        consumer.assign(tps)
        deadline = time.monotonic() + seconds
        while True:
            for items in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(items)
            at_end = True
            for tp in tps:
                end = consumer.highwater(tp)  # known once the partition was fetched
                at_end = at_end and end is not None and await consumer.position(tp) >= end
            if len(records) >= expected and at_end:
                return records
            assert time.monotonic() < deadline, f"{len(records)} of {expected} records in {topic}"
    finally:
        await consumer.stop()


def sample_value(name: str, **labels: str) -> float | None:
    """A metric sample as `/metrics` would show it (this process's default registry)."""
    return prometheus_client.REGISTRY.get_sample_value(name, labels)


async def dead_letters(bootstrap: str, config: Config, expected: int) -> list[DeadLetter]:
    """The dead letters on the config's dead-letter topic."""
    records = await read_topic(bootstrap, config.kafka.dead_letter_topic, expected)
    return [DEAD_LETTER_DECODER.decode(r.value) for r in records]


# -- signing, retries, dead letters ---------------------------------------------------------


async def test_ingress_to_receiver_signed_with_both_secrets(
    broker: Broker, receiver: Receiver, keys: Keys, running: list[DeliveryWorkers]
) -> None:
    """A provider webhook routed to a webhook destination arrives signed with both rotated secrets."""
    hook = Hook("/ledger", secrets=[new_secret(), new_secret()])
    receiver.secrets = hook.secrets
    text = make_config(
        broker.bootstrap, receiver.url, {"ledger": hook}, whitepay_secret=keys.whitepay
    )
    config = parse_config(text)
    event_id = await ingest_one(config, running, keys)
    await receiver.wait(lambda: receiver.delivered("/ledger"), 15, "the delivery")
    [got] = receiver.on("/ledger")
    assert got.event_id == event_id
    assert got.verified_by == (0, 1)  # each rotated secret verifies on its own
    event = json.loads(got.body)
    assert event["id"] == event_id and event["type"] == "order.declined"
    assert got.headers["content-type"] == "application/cloudevents+json"
    assert got.headers["x-team"] == "payments"


async def test_failing_receiver_gets_the_event_once_successfully(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer, running: list[DeliveryWorkers]
) -> None:
    """503 three times, then 200: four requests, one success, same id, nothing dead-lettered."""
    config = configure(broker, receiver, {"flaky": Hook("/flaky", max_attempts=6)})
    receiver.behaviours["/flaky"] = lambda nth: web.Response(status=503 if nth <= 3 else 200)
    with structlog.testing.capture_logs() as logs:
        await start_workers(config, running)
        await enqueue(queue, config, "flaky", ["evt-flaky"])
        await receiver.wait(lambda: receiver.delivered("/flaky"), 15, "a successful delivery")
        await asyncio.sleep(0.3)  # room for a wrong extra attempt to show up
    requests = receiver.on("/flaky")
    assert [r.answered for r in requests] == [503, 503, 503, 200]
    assert {r.event_id for r in requests} == {"evt-flaky"}
    assert all(r.verified_by == (0,) for r in requests)
    assert receiver.delivered("/flaky") == {"evt-flaky": 1}
    assert await dead_letters(broker.bootstrap, config, 0) == []
    # One log line per attempt's outcome, with what an operator needs and nothing secret.
    lines = [line for line in logs if line["event"] == "delivery"]
    assert [(x["attempt"], x["status"], x["outcome"]) for x in lines] == [
        (1, 503, "retry"),
        (2, 503, "retry"),
        (3, 503, "retry"),
        (4, 200, "delivered"),
    ]
    for line in lines:
        assert (line["destination"], line["event_id"]) == ("flaky", "evt-flaky")
        assert isinstance(line["duration_ms"], float)
    text = repr(logs)
    secret = receiver.secrets[0]
    assert secret not in text and secret.removeprefix("whsec_") not in text
    assert not any(r.headers["webhook-signature"] in text for r in requests)
    assert "signature" not in text.lower()


async def test_retry_after_is_honoured(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer, running: list[DeliveryWorkers]
) -> None:
    """A 429 with `Retry-After: 1` delays the next attempt by at least a second (backoff is ms)."""
    config = configure(broker, receiver, {"busy": Hook("/busy", maximum="50ms")})
    receiver.behaviours["/busy"] = lambda nth: (
        web.Response(status=429, headers={"Retry-After": "1"}) if nth == 1 else web.Response()
    )
    await start_workers(config, running)
    await enqueue(queue, config, "busy", ["evt-busy"])
    await receiver.wait(lambda: receiver.delivered("/busy"), 15, "the retried delivery")
    first, second = receiver.on("/busy")
    assert (first.answered, second.answered) == (429, 200)
    assert second.at - first.at >= 0.95


async def one_dead_letter(
    broker: Broker,
    receiver: Receiver,
    queue: AIOKafkaProducer,
    running: list[DeliveryWorkers],
    name: str,
    max_attempts: int,
    status: int,
) -> tuple[Config, dict[str, bytes], DeadLetter]:
    """Destination `name` (path `/name`) always answers `status`: enqueue `evt-<status>` for it
    and return the config, the enqueued bodies and the one dead letter that comes of it."""
    config = configure(broker, receiver, {name: Hook(f"/{name}", max_attempts=max_attempts)})
    receiver.behaviours[f"/{name}"] = lambda nth: web.Response(status=status)
    await start_workers(config, running)
    bodies = await enqueue(queue, config, name, [f"evt-{status}"])
    [letter] = await dead_letters(broker.bootstrap, config, 1)
    return config, bodies, letter


async def test_400_is_dead_lettered_after_one_attempt(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer, running: list[DeliveryWorkers]
) -> None:
    """A permanent 4xx: one request, then a dead letter carrying the status and the event."""
    _, bodies, letter = await one_dead_letter(broker, receiver, queue, running, "strict", 5, 400)
    assert (letter.destination, letter.event_id, letter.attempts) == ("strict", "evt-400", 1)
    assert (letter.last_status, letter.last_error) == (400, "HTTP 400")
    assert bytes(letter.body) == bodies["evt-400"]
    assert len(receiver.on("/strict")) == 1
    assert sample_value("gateway_dead_lettered_total", destination="strict") == 1
    assert (
        sample_value("gateway_deliveries_total", destination="strict", outcome="dead_letter") == 1
    )


async def test_503_is_dead_lettered_after_max_attempts_then_replay_delivers(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer, running: list[DeliveryWorkers]
) -> None:
    """Always 503: `max_attempts` requests, a dead letter; after a fix, `replay` delivers it once."""
    config, _, letter = await one_dead_letter(broker, receiver, queue, running, "down", 4, 503)
    assert (letter.event_id, letter.attempts, letter.last_status) == ("evt-503", 4, 503)
    assert [r.answered for r in receiver.on("/down")] == [503] * 4

    receiver.behaviours["/down"] = lambda nth: web.Response(status=204)
    assert len(await replay(config, None, None, time.time())) == 1
    await receiver.wait(lambda: receiver.delivered("/down"), 15, "the replayed delivery")
    assert receiver.on("/down")[-1].verified_by == (0,)
    # Run twice: the replay group remembers, so nothing is re-driven again.
    assert len(await replay(config, "down", None, time.time())) == 0
    await asyncio.sleep(0.5)
    assert receiver.delivered("/down") == {"evt-503": 1}


async def test_unknown_destination_and_garbage_are_dead_lettered(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer, running: list[DeliveryWorkers]
) -> None:
    """A task for a destination no longer configured, or an undecodable record, is never dropped."""
    config = configure(broker, receiver, {"hook": Hook("/hook")})
    await start_workers(config, running)
    await enqueue(queue, config, "removed", ["evt-gone"])
    await queue.send_and_wait(config.kafka.delivery_topic, b"not a task", key=b"k")
    letters = await dead_letters(broker.bootstrap, config, 2)
    by_id = {letter.event_id: letter for letter in letters}
    assert set(by_id) == {"evt-gone", ""}
    assert by_id["evt-gone"].destination == "removed"
    assert "not a configured webhook destination" in by_id["evt-gone"].last_error
    assert by_id[""].last_error.startswith("undecodable delivery task")
    assert msgspec.json.decode(by_id[""].body) == "not a task"
    assert receiver.received == []


async def test_breaker_stops_hammering_a_down_receiver(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer, running: list[DeliveryWorkers]
) -> None:
    """Once the breaker opens, one probe at a time per cool-down; every attempt is a real request."""
    hook = Hook("/outage", max_attempts=3, timeout="1s", maximum="150ms", concurrency=2)
    config = configure(broker, receiver, {"outage": hook})
    receiver.behaviours["/outage"] = lambda nth: web.Response(status=500)
    workers = await start_workers(config, running)
    events = [f"evt-{i}" for i in range(6)]
    await enqueue(queue, config, "outage", events)
    letters = await dead_letters(broker.bootstrap, config, len(events))
    assert sorted(letter.event_id for letter in letters) == events
    assert {letter.attempts for letter in letters} == {hook.max_attempts}
    requests = receiver.on("/outage")
    assert len(requests) == len(events) * hook.max_attempts  # nothing charged without a request
    # Past the threshold (5) and the stragglers in flight (concurrency 2), the breaker lets
    # one probe through per cool-down (150 ms), never a burst.
    probes = [r.at for r in requests[7:]]
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    print(f"{len(requests)} requests, smallest probe gap {min(gaps):.3f}s")
    assert min(gaps) >= 0.12
    assert sample_value("gateway_circuit_state", destination="outage") == 2  # open
    # `gateway destinations list` shows it (published on the control topic)...
    deadline = time.monotonic() + 10
    while not any("circuit=open in 1 of 1 workers" in x for x in await list_destinations(config)):
        assert time.monotonic() < deadline, await list_destinations(config)
        await asyncio.sleep(0.2)
    # ...until the worker stops: it takes its entry with it.
    await workers.stop(grace=0.5)
    [line] = [x for x in await list_destinations(config) if x.startswith("outage\t")]
    assert "\tcircuit=closed\t" in line


# -- isolation ------------------------------------------------------------------------------


async def test_dead_receiver_does_not_delay_a_healthy_one(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer, running: list[DeliveryWorkers]
) -> None:
    """With a receiver that never answers, a healthy one still gets everything before the timeout."""
    dead = Hook("/dead", timeout="4s", concurrency=2)
    healthy = Hook("/healthy", concurrency=4)
    config = configure(broker, receiver, {"dead": dead, "healthy": healthy})

    async def hang(nth: int) -> web.Response:
        await asyncio.sleep(60)
        return web.Response()

    receiver.behaviours["/dead"] = hang
    await start_workers(config, running)
    dead_ids = [f"dead-{i}" for i in range(20)]
    healthy_ids = [f"healthy-{i}" for i in range(20)]
    for dead_id, healthy_id in zip(dead_ids, healthy_ids, strict=True):
        # Interleaved on the same partitions: the dead receiver's tasks come first.
        await enqueue(queue, config, "dead", [dead_id])
        await enqueue(queue, config, "healthy", [healthy_id])
    await receiver.wait(lambda: len(receiver.delivered("/healthy")) == 20, 15, "healthy deliveries")
    first_dead = min(r.at for r in receiver.on("/dead"))
    last_healthy = max(r.at for r in receiver.on("/healthy"))
    # Every healthy delivery landed while the dead receiver's first requests were still
    # hanging, i.e. well inside its 4 s timeout.
    assert last_healthy - first_dead < 2.0
    assert len(receiver.on("/dead")) == dead.concurrency  # its own limit, not more


# -- crash and shutdown ---------------------------------------------------------------------


async def test_graceful_stop_finishes_in_flight_and_hands_back_the_rest(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer, running: list[DeliveryWorkers]
) -> None:
    """stop(grace) lets an in-flight attempt finish and commits it; cut short, it is redone."""
    config = configure(broker, receiver, {"slow": Hook("/slow", timeout="5s", concurrency=1)})

    async def slow(nth: int) -> web.Response:
        await asyncio.sleep(0.8)
        return web.Response()

    receiver.behaviours["/slow"] = slow
    first = await start_workers(config, running)
    await enqueue(queue, config, "slow", ["evt-1"])  # same key each time: one partition
    await receiver.wait(lambda: receiver.on("/slow"), 15, "the first request")
    await first.stop(grace=3.0)  # the request is in flight: stop waits for its answer
    assert receiver.delivered("/slow") == {"evt-1": 1}

    second = await start_workers(config, running)
    await enqueue(queue, config, "slow", ["evt-2"])
    await receiver.wait(lambda: len(receiver.on("/slow")) == 2, 15, "the second request")
    await second.stop(grace=0.1)  # too short: the attempt is cut, its record left uncommitted

    await start_workers(config, running)
    await receiver.wait(
        lambda: [r.event_id for r in receiver.on("/slow")].count("evt-2") == 2,
        15,
        "evt-2 again",
    )
    await asyncio.sleep(0.3)
    # evt-1 was committed by the graceful stop, so the third worker never saw it again.
    assert [r.event_id for r in receiver.on("/slow")] == ["evt-1", "evt-2", "evt-2"]


def _spawn_worker(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    code = (
        "import sys\n"
        "from gateway.config import load_config\n"
        "from gateway.cli import run_workers\n"
        "from gateway.observability import configure_logging\n"
        "configure_logging('info', 'json')\n"
        f"sys.exit(run_workers(load_config(sys.argv[1]), consumer_options={FAST_GROUP!r}))\n"
    )
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", code, str(config_path)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


async def test_worker_killed_mid_batch_loses_nothing(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer, tmp_path: Path
) -> None:
    """SIGKILL a worker process mid-batch: after a restart every event reaches the receiver."""
    hook = Hook("/slow", concurrency=4)
    receiver.secrets = hook.secrets
    text = make_config(broker.bootstrap, receiver.url, {"slow": hook})
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(text)
    config = parse_config(text)
    await create_topics(config.kafka, [config.kafka.delivery_topic, config.kafka.dead_letter_topic])

    async def slow(nth: int) -> web.Response:
        await asyncio.sleep(0.02)
        return web.Response()

    receiver.behaviours["/slow"] = slow
    events = [f"evt-{i:03d}" for i in range(150)]
    await enqueue(queue, config, "slow", events)
    log = tmp_path / "worker.log"
    first = _spawn_worker(config_path, log)
    try:
        await receiver.wait(lambda: len(receiver.delivered("/slow")) >= 30, 20, "some deliveries")
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        assert len(receiver.delivered("/slow")) < len(events), "the batch finished before the kill"
        second = _spawn_worker(config_path, log)
        try:
            await receiver.wait(
                lambda: set(receiver.delivered("/slow")) == set(events), 20, "every event"
            )
            second.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(second.wait, 10) == 0
        finally:
            second.kill()
    finally:
        first.kill()
    assert all(r.verified_by == (0,) for r in receiver.on("/slow"))
    assert "delivery_workers_stopped" in log.read_text()


# -- replay ---------------------------------------------------------------------------------


async def test_replay_filters_by_destination_and_age_and_never_twice(
    broker: Broker, receiver: Receiver, queue: AIOKafkaProducer
) -> None:
    """Replay re-drives fresh tasks (attempt 0, replayed, same key and body) once per dead letter.

    `since` leaves older letters pending rather than skipping them for good.
    """
    config = configure(broker, receiver, {"a": Hook("/a"), "b": Hook("/b")})
    await create_topics(config.kafka, [config.kafka.delivery_topic, config.kafka.dead_letter_topic])
    now = time.time()

    def letter(destination: str, event_id: str, age: float) -> DeadLetter:
        return DeadLetter(
            destination=destination,
            event_id=event_id,
            enqueued_at=now - age - 60,
            failed_at=now - age,
            attempts=5,
            last_status=503,
            last_error="HTTP 503",
            body=msgspec.Raw(event_body(event_id)),
        )

    letters = [
        letter("a", "a-old", 7200),
        letter("a", "a-new", 60),
        letter("b", "b-old", 7200),
        letter("b", "b-new", 60),
        letter("removed", "gone", 60),
    ]
    for item in letters:
        key = task_key(item.destination, item.event_id)
        await queue.send_and_wait(config.kafka.dead_letter_topic, ENCODER.encode(item), key=key)
    await queue.send_and_wait(config.kafka.dead_letter_topic, b"garbage", key=b"x")

    assert len(await replay(config, "a", 3600, now)) == 1  # only a's recent one
    # `since` never skips for good: a's older letter is still there for an unfiltered run.
    assert [r.event_id for r in (await replay(config, "a", None, now)).redriven] == ["a-old"]
    assert len(await replay(config, None, None, now)) == 2  # b: both; a: nothing new
    assert len(await replay(config, None, None, now)) == 0
    with pytest.raises(ValueError, match="no webhook destination"):
        await replay(config, "removed", None, now)

    records = await read_topic(broker.bootstrap, config.kafka.delivery_topic, 4)
    tasks = {}
    for record in records:
        task = msgspec.json.decode(record.value, type=DeliveryTask)
        assert record.key == task_key(task.destination, task.event_id)
        tasks[task.event_id] = task
    assert sorted(tasks) == ["a-new", "a-old", "b-new", "b-old"]
    assert len(records) == 4  # each re-driven exactly once
    for task in tasks.values():
        assert (task.attempt, task.not_before, task.replayed, task.enqueued_at) == (
            0,
            0.0,
            True,
            now,
        )
        assert bytes(task.body) == event_body(task.event_id)
