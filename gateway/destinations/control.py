"""The control topic: durable, fleet-wide delivery state in one compacted Kafka topic.

`kafka.control_topic` (one partition, `cleanup.policy=compact`) holds the latest value
of each key; a `None` value (tombstone) deletes it. It needs nothing but the broker, so it
works with either state backend. Keys:

- `pause/<destination>`: `{"paused": bool, "at": unix time}`. Every worker process
  follows the topic (`ControlFollower`) and pauses or resumes its lane within about a
  second; a restarted worker reads the whole topic before it starts delivering.
- `circuit/<destination>/<worker>`: `{"state": "closed"|"half_open"|"open", "at": ...}`,
  written by each worker process when its breaker for that destination changes state and
  tombstoned when the process stops gracefully (`gateway destinations list` shows them).
- `replayed/<destination>/<partition>/<offset>`: a dead letter re-driven by a filtered
  replay (`--since`, `--event`) past the point the replay group has committed, so a later
  run skips it instead of re-driving it again (replay.py). Tombstoned once passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from gateway.config import Config, KafkaConfig
from gateway.destinations.kafka import cancel_follower, client_options

log = structlog.get_logger("gateway.control")


class Pause(msgspec.Struct, frozen=True, kw_only=True):
    """The value of a `pause/<destination>` key."""

    paused: bool
    at: float


class Circuit(msgspec.Struct, frozen=True, kw_only=True):
    """The value of a `circuit/<destination>/<worker>` key."""

    state: str
    at: float


PAUSE_DECODER = msgspec.json.Decoder(Pause)
CIRCUIT_DECODER = msgspec.json.Decoder(Circuit)


def circuit_key(destination: str, worker: str) -> bytes:
    """The control key of one worker process's breaker for a destination."""
    return f"circuit/{destination}/{worker}".encode()


def circuits(state: dict[bytes, bytes]) -> dict[str, dict[str, Circuit]]:
    """destination -> worker -> its last published breaker state."""
    out: dict[str, dict[str, Circuit]] = {}
    for key, value in state.items():
        if not key.startswith(b"circuit/"):
            continue
        try:
            destination, worker = key[8:].decode().rsplit("/", 1)
            out.setdefault(destination, {})[worker] = CIRCUIT_DECODER.decode(value)
        except (ValueError, msgspec.DecodeError, UnicodeDecodeError):
            continue
    return out


ENCODER = msgspec.json.Encoder()


def pause_key(destination: str) -> bytes:
    """The control key of a destination's pause state."""
    return f"pause/{destination}".encode()


async def ensure_control_topic(cfg: KafkaConfig) -> None:
    """Create the compacted, single-partition control topic if missing (`create_topics`)."""
    admin = AIOKafkaAdminClient(**client_options(cfg))
    await admin.start()
    try:
        if cfg.control_topic in set(await admin.list_topics()):
            return
        topic = NewTopic(
            cfg.control_topic,
            1,  # one partition: one total order of control changes
            cfg.topic_replication,
            topic_configs={"cleanup.policy": "compact"},
        )
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([topic])
        log.info("control_topic_created", topic=cfg.control_topic)
    finally:
        await admin.close()


async def read_control(cfg: KafkaConfig, prefix: bytes = b"") -> dict[bytes, bytes]:
    """The latest value of every live key (starting with `prefix`) on the control topic."""
    if cfg.create_topics:
        await ensure_control_topic(cfg)
    consumer = AIOKafkaConsumer(**client_options(cfg), enable_auto_commit=False)
    await consumer.start()
    state: dict[bytes, bytes] = {}
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(cfg.control_topic) or set()
        tps = [TopicPartition(cfg.control_topic, p) for p in sorted(partitions)]
        if not tps:
            return state
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    _apply(state, record, prefix)
    finally:
        await consumer.stop()
    return state


def _apply(state: dict[bytes, bytes], record: Any, prefix: bytes) -> None:
    key: bytes | None = record.key
    if key is None or not key.startswith(prefix):
        return
    if record.value is None:
        state.pop(key, None)
    else:
        state[key] = record.value


def paused_destinations(state: dict[bytes, bytes]) -> dict[str, Pause]:
    """destination -> its pause record, for every `pause/` key that decodes."""
    out = {}
    for key, value in state.items():
        if key.startswith(b"pause/"):
            try:
                out[key[6:].decode()] = PAUSE_DECODER.decode(value)
            except (msgspec.DecodeError, UnicodeDecodeError):
                continue
    return out


class ControlFollower:
    """Follows the control topic in a worker and applies pause/resume to its lanes."""

    def __init__(self, config: Config, apply: Callable[[str, bool], None]) -> None:
        self._config = config
        self._apply = apply
        self._task: asyncio.Task[None] | None = None
        self._applied: dict[str, bool] = {}  # kept across reconnects: a resume is never missed
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        """Start following in the background."""
        self._task = asyncio.create_task(self._follow(), name="control-follower")

    async def stop(self) -> None:
        """Stop following."""
        await cancel_follower(self._task)

    async def _follow(self) -> None:
        cfg = self._config.kafka
        delay = 0.2
        while True:
            consumer = AIOKafkaConsumer(**client_options(cfg), enable_auto_commit=False)
            try:
                if cfg.create_topics:
                    await ensure_control_topic(cfg)
                await consumer.start()
                await consumer.topics()
                partitions = consumer.partitions_for_topic(cfg.control_topic) or set()
                if not partitions:
                    # No topic, so no pause was ever written: deliver, and keep looking for it
                    # (a pause command creates it only where the broker auto-creates topics).
                    if not self.caught_up.is_set():
                        log.error("control_topic_missing", topic=cfg.control_topic)
                    self.caught_up.set()
                    raise KafkaError(f"control topic {cfg.control_topic} does not exist")
                tps = [TopicPartition(cfg.control_topic, p) for p in sorted(partitions)]
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                ends = await consumer.end_offsets(tps)
                state: dict[bytes, bytes] = {}
                applied = self._applied
                while True:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for record in records:
                            _apply(state, record, b"pause/")
                    if not self.caught_up.is_set():
                        if any([await consumer.position(tp) < ends[tp] for tp in tps]):
                            continue
                        self.caught_up.set()
                    paused = {name: p.paused for name, p in paused_destinations(state).items()}
                    for name in set(applied) | set(paused):
                        now = paused.get(name, False)
                        if applied.get(name, False) != now:
                            self._apply(name, now)
                        applied[name] = now
                    delay = 0.2
            except (KafkaError, OSError) as exc:
                log.warning("control_follow_failed", error=type(exc).__name__, retry_in=delay)
            finally:
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def pause_record(paused: bool) -> bytes:
    """The value written by `gateway destinations pause|resume`."""
    return ENCODER.encode(Pause(paused=paused, at=time.time()))
