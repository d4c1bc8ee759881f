"""Reads the journal and dead-letter topics into the console's store, every partition.

No consumer group: each console replica assigns itself every partition of both topics and
keeps its own positions in its store, so every replica sees the whole fleet, and a store
that is gone is rebuilt by reading from the earliest retained offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from gateway.config import Config
from gateway.console.store import Store
from gateway.destinations.kafka import cancel_follower, client_options, create_topics

log = structlog.get_logger("gateway.console")

_PRUNE_INTERVAL = 60.0
_REFRESH_INTERVAL = 10.0  # look for new partitions this often


class Feed:
    """Keeps a `Store` up to date with Kafka (in the background)."""

    def __init__(self, config: Config, store: Store) -> None:
        journal = config.kafka.journal_topic
        assert journal is not None
        self._config = config
        self._store = store
        self._journal = journal
        self._letters = config.kafka.dead_letter_topic
        self._runner: asyncio.Task[None] | None = None
        self.connected = False
        self.last_record_at: float | None = None

    async def start(self) -> None:
        """Start reading in the background (connects with retries)."""
        self._runner = asyncio.create_task(self._run(), name="console-feed")

    async def stop(self) -> None:
        """Stop reading."""
        await cancel_follower(self._runner)

    async def _run(self) -> None:
        delay = 0.2
        while True:
            consumer = AIOKafkaConsumer(
                **client_options(self._config.kafka),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                if self._config.kafka.create_topics:
                    await create_topics(self._config.kafka, [self._journal, self._letters])
                await consumer.start()
                self.connected = True
                await self._consume(consumer)
            except (KafkaError, OSError) as exc:
                log.warning("console_feed_failed", error=type(exc).__name__, retry_in=delay)
            finally:
                self.connected = False
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _assign(self, consumer: AIOKafkaConsumer, known: set[TopicPartition]) -> bool:
        await consumer.topics()
        tps = {
            TopicPartition(topic, p)
            for topic in (self._journal, self._letters)
            for p in consumer.partitions_for_topic(topic) or ()
        }
        if tps == known:
            return False
        consumer.assign(sorted(tps))
        stored = self._store.offsets()
        for tp in tps:
            position = stored.get((tp.topic, tp.partition))
            if position is not None:
                consumer.seek(tp, position)
            else:
                await consumer.seek_to_beginning(tp)
        known.clear()
        known.update(tps)
        log.info("console_feed_assigned", partitions=len(tps))
        return True

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        known: set[TopicPartition] = set()
        await self._assign(consumer, known)
        refreshed = pruned = time.monotonic()
        while True:
            if not known or time.monotonic() - refreshed > _REFRESH_INTERVAL:
                await self._assign(consumer, known)
                refreshed = time.monotonic()
                if not known:
                    await asyncio.sleep(1.0)
                    continue
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            if batch:
                self._apply(batch)
            if time.monotonic() - pruned > _PRUNE_INTERVAL:
                self._store.prune(time.time())
                pruned = time.monotonic()

    def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        journal: list[tuple[str, int, int, bytes | None]] = []
        letters: list[tuple[str, int, int, bytes | None]] = []
        for tp, records in batch.items():
            target = journal if tp.topic == self._journal else letters
            target.extend((tp.topic, tp.partition, r.offset, r.value) for r in records)
        self._store.apply(journal, letters)
        self.last_record_at = time.time()
