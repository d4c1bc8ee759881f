"""Kafka: the one long-lived producer per process, and CloudEvents Kafka-binding records."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAlreadyExistsError,
    UnsupportedForMessageFormatError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from gateway import metrics
from gateway.config import Config, KafkaConfig, KafkaDestination
from gateway.destinations.delays import tier_topics
from gateway.event import encode
from gateway.fastpaths import fast
from gateway.types import ascii_int

log = structlog.get_logger("gateway.kafka")

Header = tuple[str, bytes]
STRUCTURED_CONTENT_TYPE = b"application/cloudevents+json; charset=UTF-8"
# CloudEvent attributes that travel as `ce_*` headers in binary mode (everything but data).
_NOT_HEADERS = frozenset({"data", "datacontenttype"})


def lookup(event: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`data.id`, `partitionkey`), or None when absent."""
    value: Any = event
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif (
            isinstance(value, list)
            and (index := ascii_int(part, 9)) is not None
            and index < len(value)
        ):
            value = value[index]
        else:
            return None
    return value


def record(
    event: Mapping[str, Any],
    dest: KafkaDestination,
    key_from: Mapping[str, Any] | None = None,
) -> tuple[bytes | None, bytes, list[Header]]:
    """Key, value and headers of the record for `event` in the destination's binding mode.

    The key is read from `key_from` when given (the event before a transform replaced `data`).
    """
    key_value = lookup(event if key_from is None else key_from, dest.key)
    key = None if key_value is None else str(key_value).encode()
    if dest.mode == "structured":
        return key, encode(event), [("content-type", STRUCTURED_CONTENT_TYPE)]
    headers: list[Header] = [
        (f"ce_{name}", str(value).encode())
        for name, value in event.items()
        if name not in _NOT_HEADERS and value is not None
    ]
    headers.append(("content-type", str(event.get("datacontenttype", "application/json")).encode()))
    return key, encode(event.get("data")), headers


async def cancel_follower(task: asyncio.Task[None] | None) -> None:
    """Stop a background task that follows a topic (cancel it and wait until it has ended)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _ssl_context(cfg: KafkaConfig) -> ssl.SSLContext | None:
    if not cfg.security_protocol.endswith("SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=cfg.ssl_cafile, certfile=cfg.ssl_certfile, keyfile=cfg.ssl_keyfile
    )
    context.check_hostname = cfg.ssl_check_hostname
    return context


def client_options(cfg: KafkaConfig) -> dict[str, Any]:
    """Connection settings shared by producers, consumers and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
        "request_timeout_ms": int(cfg.request_timeout * 1000),
        "metadata_max_age_ms": int(cfg.metadata_max_age * 1000),
    }
    context = _ssl_context(cfg)
    if context is not None:
        options["ssl_context"] = context
    if cfg.sasl_mechanism:
        options["sasl_mechanism"] = cfg.sasl_mechanism
        options["sasl_plain_username"] = cfg.sasl_username
        options["sasl_plain_password"] = (
            cfg.sasl_password.reveal()[0] if cfg.sasl_password else None
        )
    return options


_MASK = 0xFFFFFFFF
_MURMUR_M = 0x5BD1E995


@lru_cache(maxsize=64)
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}I")


def murmur2(data: bytes) -> int:
    """The Java client's murmur2 of `data` (unsigned), as aiokafka's, bit for bit.

    aiokafka's pure-Python version assembles every 4-byte word from single bytes and masks
    after each operation; this unpacks the words at once and masks only where a product can
    overflow. Fast path `partitioner` (gateway/fastpaths.py; tests/test_partitioner.py
    checks it against aiokafka's), justified by benchmarks/ingest_bench.py --fast-paths.
    """
    length = len(data)
    h = 0x9747B28C ^ length
    count = length >> 2
    if count:
        for k in _words(count).unpack_from(data):
            k = (k * _MURMUR_M) & _MASK
            k = ((k ^ (k >> 24)) * _MURMUR_M) & _MASK
            h = ((h * _MURMUR_M) & _MASK) ^ k
    tail = length & 3
    if tail:
        end = length & ~3
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _MURMUR_M) & _MASK
    h ^= h >> 13
    h = (h * _MURMUR_M) & _MASK
    return h ^ (h >> 15)


_murmur2 = murmur2 if fast("partitioner") else aiokafka_murmur2


def partition_for(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """aiokafka's default partitioner: a key's records land where the Java client puts them.

    The same partition for the same key as every other Kafka client (and as gateway pods
    running the library's own implementation), so per-key order holds across a rollout.
    """
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[(_murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


def producer_options(cfg: KafkaConfig, max_request_size: int | None = None) -> dict[str, Any]:
    """aiokafka producer settings: durable (`kafka.acks`, which only admits "all"/-1) and batched."""
    sizes = {} if max_request_size is None else {"max_request_size": max_request_size}
    return {
        **sizes,
        **client_options(cfg),
        "acks": cfg.acks,
        "enable_idempotence": cfg.enable_idempotence,
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "linger_ms": cfg.linger_ms,
        "max_batch_size": cfg.max_batch_size,
        "partitioner": partition_for,
    }


def topics_of(config: Config) -> list[str]:
    """Every topic the gateway produces to."""
    topics = {d.topic for d in config.kafka_destinations().values()}
    if config.webhook_destinations():
        topics |= {config.kafka.delivery_topic, config.kafka.dead_letter_topic}
        topics |= set(tier_topics(config.kafka))
    if config.spool is not None:  # the drainer dead-letters records the broker refuses
        topics.add(config.kafka.dead_letter_topic)
    return sorted(topics)


# Broker answers that no retry can change: the record is refused for good (SPEC §9 poison).
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
_INVALID = (InvalidTopicError, CorruptRecordException, UnsupportedForMessageFormatError)


def record_size(key: bytes | None, value: bytes, headers: Sequence[Header]) -> int:
    """The size aiokafka checks against `max_request_size` for one record (an upper bound)."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers))
    return size


def permanent(exc: BaseException) -> str | None:
    """`"size"` or `"invalid"` when the broker or producer refused a record for good, else None."""
    if isinstance(exc, _TOO_LARGE):
        return "size"
    if isinstance(exc, _INVALID):
        return "invalid"
    return None


async def create_topics(cfg: KafkaConfig, topics: Iterable[str]) -> None:
    """Create missing topics (dev and tests: `kafka.create_topics: true`)."""
    admin = AIOKafkaAdminClient(**client_options(cfg))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t, cfg.topic_partitions, cfg.topic_replication)
            for t in topics
            if t not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            log.info("topics_created", topics=[t.name for t in missing])
    finally:
        await admin.close()


class Producer:
    """The process's one Kafka producer; connects in the background until the broker answers."""

    def __init__(self, config: Config, probe_interval: float = 2.0) -> None:
        self._config = config
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self._probe_interval = probe_interval
        self._last_ok = float("-inf")

    @property
    def ready(self) -> bool:
        """Connected, and the broker answered within `server.unready_after`."""
        fresh = time.monotonic() - self._last_ok < self._config.server.unready_after
        return self._producer is not None and fresh

    async def start(self, wait: bool = False) -> None:
        """Start connecting (and then watching the broker); with `wait`, return once connected."""
        self._connecting = asyncio.create_task(self._connect(), name="kafka-connect")
        self._watching = asyncio.create_task(self._watch(), name="kafka-watch")
        if wait:
            await asyncio.shield(self._connecting)

    async def _watch(self) -> None:
        """Probe the cluster's metadata so readiness notices an unreachable broker."""
        while True:
            await asyncio.sleep(self._probe_interval)
            producer = self._producer
            if producer is None:
                continue
            try:
                async with asyncio.timeout(self._probe_interval * 2):
                    ok = await producer.client.force_metadata_update()
            except (KafkaError, OSError, TimeoutError):
                ok = False
            if ok:
                self._last_ok = time.monotonic()
            metrics.KAFKA_CONNECTED.set(1 if self.ready else 0)

    async def _connect(self) -> None:
        cfg = self._config.kafka
        delay = 0.2
        while True:
            try:
                if cfg.create_topics:
                    await create_topics(cfg, topics_of(self._config))
                producer = AIOKafkaProducer(
                    **producer_options(cfg, self._config.max_request_size())
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
            except (KafkaError, OSError) as exc:
                log.warning("kafka_connect_failed", error=type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._producer = producer
            self._last_ok = time.monotonic()
            metrics.KAFKA_CONNECTED.set(1)
            log.info("kafka_connected", bootstrap_servers=cfg.bootstrap_servers)
            return

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[Header] | None = None,
    ) -> Any:
        """Produce one record and wait for the broker's ack (`acks=all`)."""
        producer = self._producer
        if producer is None:
            raise KafkaError("producer is not connected")
        partition = None  # aiokafka's partitioner (partition_for): keyless, or no metadata yet
        if key is not None:
            known = producer.client.cluster.partitions_for_topic(topic)
            if known:  # asked directly: aiokafka would list the partitions twice per record
                partition = partition_for(key, sorted(known), ())
        result = await producer.send_and_wait(
            topic, value, key=key, partition=partition, headers=headers
        )
        self._last_ok = time.monotonic()
        return result

    async def enqueue(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[Header] | None = None,
    ) -> asyncio.Future[Any]:
        """Append one record to the producer's batches; the returned future is its ack.

        Records enqueued one after another reach a partition in that order (aiokafka keeps
        one request in flight per broker), so a caller can have many in flight and still
        keep per-key order: the spool drainer does.
        """
        producer = self._producer
        if producer is None:
            raise KafkaError("producer is not connected")
        partition = None
        if key is not None:
            known = producer.client.cluster.partitions_for_topic(topic)
            if known:
                partition = partition_for(key, sorted(known), ())
        future: asyncio.Future[Any] = await producer.send(
            topic, value, key=key, partition=partition, headers=headers
        )
        future.add_done_callback(self._acked)
        return future

    def _acked(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._last_ok = time.monotonic()

    async def stop(self) -> None:
        """Flush what is buffered and close (aiokafka's `stop()` flushes)."""
        for task in (self._watching, self._connecting):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
