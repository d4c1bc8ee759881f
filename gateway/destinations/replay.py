"""`gateway replay`: re-drive dead-lettered deliveries as fresh delivery tasks.

Running it twice does not re-drive the same dead letter twice. Each destination has its
own replay consumer group on the dead-letter topic, `<kafka.consumer_group>.replay.<name>`,
whose committed offsets mark how far that destination's dead letters have been re-driven.
Offsets are committed only after the broker has acked the re-driven tasks, so a replay that
crashes half-way re-drives some dead letters again on the next run (a duplicate delivery,
which receivers dedupe on `webhook-id`), and never skips one. Two replays of the same
destination running *at the same time* can both re-drive the same dead letters.

`since` narrows a run to dead letters that failed in the last `since` seconds; older ones
are passed over, and the destination's replay group moves past them for good.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from typing import Any

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gateway.config import Config
from gateway.destinations.kafka import client_options, create_topics, producer_options
from gateway.destinations.tasks import DEAD_LETTER_DECODER, ENCODER, DeadLetter, DeliveryTask

log = structlog.get_logger("gateway.replay")

# Stop reading if the dead-letter topic yields nothing for this long before we reach the
# end we saw (a broker that stopped answering fetches); what was re-driven so far stays done.
_IDLE_LIMIT = 10.0


def replay_group(config: Config, destination: str) -> str:
    """The consumer group that remembers how far a destination's dead letters were re-driven."""
    return f"{config.kafka.consumer_group}.replay.{destination}"


async def replay(
    config: Config,
    destination: str | None,
    since: float | None,
    now: float,
    *,
    events: Collection[str] | None = None,
) -> int:
    """Re-drive dead letters (of one destination, or every webhook destination); the count.

    `events` re-drives only the dead letters of those event ids (the console's "replay
    one / a selection"). The group's offsets then stop before the first dead letter of the
    destination that was passed over, so a later full replay still re-drives it.
    """
    hooks = config.webhook_destinations()
    if destination is not None and destination not in hooks:
        raise ValueError(f"no webhook destination named {destination!r}")
    names = [destination] if destination is not None else sorted(hooks)
    cutoff = None if since is None else now - since
    cfg = config.kafka
    if cfg.create_topics:
        await create_topics(cfg, [cfg.delivery_topic, cfg.dead_letter_topic])
    producer = AIOKafkaProducer(**producer_options(cfg))
    await producer.start()
    try:
        total = 0
        for name in names:
            total += await _replay_destination(config, producer, name, cutoff, now, events)
        return total
    finally:
        await producer.stop()


async def _replay_destination(
    config: Config,
    producer: AIOKafkaProducer,
    name: str,
    cutoff: float | None,
    now: float,
    events: Collection[str] | None = None,
) -> int:
    cfg = config.kafka
    consumer = AIOKafkaConsumer(
        **client_options(cfg),
        group_id=replay_group(config, name),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    replayed = skipped_old = 0
    try:
        await consumer.topics()  # load metadata of every topic, the dead-letter one included
        partitions = consumer.partitions_for_topic(cfg.dead_letter_topic) or set()
        tps = [TopicPartition(cfg.dead_letter_topic, p) for p in sorted(partitions)]
        if not tps:
            return 0
        # Manual assignment with a group id: offsets are stored in the group, but there is
        # no membership (no rebalance wait) since one replay reads every partition itself.
        consumer.assign(tps)
        idle_since = time.monotonic()
        held: set[TopicPartition] = set()  # partitions with a passed-over letter: offsets stay
        while not await _caught_up(consumer, tps):
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            if not batch:
                if time.monotonic() - idle_since > _IDLE_LIMIT:
                    log.warning("replay_stopped_idle", destination=name)
                    break
                continue
            idle_since = time.monotonic()
            sends: list[asyncio.Future[Any]] = []
            positions: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                for record in records:
                    letter = _letter(record.value)
                    if events is not None and letter is not None and letter.destination == name:
                        if letter.event_id not in events:
                            held.add(tp)
                    if tp not in held:
                        positions[tp] = record.offset + 1
                    if letter is None or letter.destination != name:
                        continue
                    if events is not None and letter.event_id not in events:
                        continue
                    if cutoff is not None and letter.failed_at < cutoff:
                        skipped_old += 1
                        continue
                    task = DeliveryTask(
                        destination=name,
                        event_id=letter.event_id,
                        enqueued_at=now,
                        body=letter.body,
                        replayed=True,
                    )
                    value = ENCODER.encode(task)
                    sends.append(await producer.send(cfg.delivery_topic, value, key=record.key))
            await asyncio.gather(*sends)  # every re-driven task acked before its offset moves
            if positions:
                await consumer.commit(positions)
            replayed += len(sends)
    finally:
        await consumer.stop()
    log.info("replay_done", destination=name, replayed=replayed, skipped_older=skipped_old)
    return replayed


async def _caught_up(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    """True once every partition's position reached the end the broker last reported."""
    for tp in tps:
        end = consumer.highwater(tp)  # known after the first fetch of the partition
        if end is None or await consumer.position(tp) < end:
            return False
    return True


def _letter(value: bytes | None) -> DeadLetter | None:
    """The dead letter in a record; None for a record this gateway did not write."""
    try:
        return DEAD_LETTER_DECODER.decode(value or b"")
    except msgspec.DecodeError:
        return None
