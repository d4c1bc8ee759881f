"""`gateway replay`: re-drive dead-lettered deliveries as fresh delivery tasks.

Each destination has its own replay consumer group on the dead-letter topic,
`<kafka.consumer_group>.replay.<name>`, whose committed offsets mark how far that
destination's dead letters have been re-driven. Offsets are committed only after the
broker has acked the re-driven tasks, so a replay that crashes half-way re-drives some
dead letters again on the next run (a duplicate delivery, which receivers dedupe on
`webhook-id`), and never skips one.

- **Two runs at once** never re-drive the same dead letter twice: a run is a *member* of
  the replay group (it subscribes, it does not assign itself partitions), so the broker
  gives each partition to one run at a time. A rebalance waits for the batch in hand to be
  acked and committed before the partition moves.
- **`since` and `event_id` never skip for good.** A filtered run re-drives what matches
  and leaves the rest pending: the group's offset only moves over a stretch where every
  dead letter is done. What it re-drove past that point is written to the control topic
  (`replayed/<dest>/<partition>/<offset>`), so a later run skips exactly those and still
  re-drives the older ones; entries are tombstoned once the offset passes them.
- **`dry_run`** reads from the same position without joining the group and without
  writing anything, and lists what a run with the same filters would re-drive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from gateway.config import Config
from gateway.destinations.control import ensure_control_topic, read_control
from gateway.destinations.kafka import client_options, create_topics, producer_options
from gateway.destinations.tasks import DEAD_LETTER_DECODER, ENCODER, DeadLetter, DeliveryTask

log = structlog.get_logger("gateway.replay")

# Stop reading if the dead-letter topic yields nothing for this long before we reach the
# end we saw (a broker that stopped answering fetches); what was re-driven so far stays done.
_IDLE_LIMIT = 10.0
# How long a run waits to be given its share of the dead-letter topic's partitions before
# it leaves the group and joins again as a new member, and how many times it does. A member
# can be left re-joining one generation forever when another member leaves mid-join (seen
# with tansu); a fresh member id gets it out. Nothing is lost by it: every batch is acked
# and committed under `lock` before partitions are given up.
_JOIN_LIMIT = 12.0
_JOIN_ATTEMPTS = 4


class _NotAssigned(TimeoutError):
    """This member was not given partitions within `_JOIN_LIMIT`."""


@dataclass(frozen=True, slots=True)
class Redriven:
    """One dead letter a run re-drove (or, dry, would re-drive)."""

    destination: str
    event_id: str
    partition: int
    offset: int
    failed_at: float
    attempts: int
    last_error: str


@dataclass
class ReplayResult:
    """What a run did: the dead letters re-driven (or listed), and how many were left."""

    redriven: list[Redriven] = field(default_factory=list)
    left: int = 0  # not matching `since`/`event_id`: still pending for a later run
    already: int = 0  # re-driven before by a filtered run

    def __len__(self) -> int:
        return len(self.redriven)


def replay_group(config: Config, destination: str) -> str:
    """The consumer group that remembers how far a destination's dead letters were re-driven."""
    return f"{config.kafka.consumer_group}.replay.{destination}"


def ledger_key(destination: str, partition: int, offset: int) -> bytes:
    """Control-topic key marking one dead letter as re-driven past the committed offset."""
    return f"replayed/{destination}/{partition}/{offset}".encode()


async def replay(
    config: Config,
    destination: str | None,
    since: float | None,
    now: float,
    *,
    event_id: str | None = None,
    events: Collection[str] | None = None,
    dry_run: bool = False,
) -> ReplayResult:
    """Re-drive dead letters (of one destination, or every webhook destination).

    `event_id` (the CLI's `--event`) or `events` (the console's "replay one / a selection")
    re-drive only the dead letters of those event ids; the others stay pending.
    """
    wanted: frozenset[str] | None = None
    if event_id is not None or events is not None:
        wanted = frozenset(events or ()) | ({event_id} if event_id is not None else set())
    hooks = config.webhook_destinations()
    if destination is not None and destination not in hooks:
        raise ValueError(f"no webhook destination named {destination!r}")
    names = [destination] if destination is not None else sorted(hooks)
    cutoff = None if since is None else now - since
    cfg = config.kafka
    if cfg.create_topics:
        await create_topics(cfg, [cfg.delivery_topic, cfg.dead_letter_topic])
        await ensure_control_topic(cfg)
    producer = AIOKafkaProducer(**producer_options(cfg))
    await producer.start()
    result = ReplayResult()
    try:
        for name in names:
            run = _Run(config, producer, name, cutoff, wanted, now, dry_run, result)
            await run.go()
        return result
    finally:
        await producer.stop()


class _Run(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """One destination's replay: a member of its replay group, batch by batch."""

    def __init__(
        self,
        config: Config,
        producer: AIOKafkaProducer,
        name: str,
        cutoff: float | None,
        wanted: frozenset[str] | None,
        now: float,
        dry_run: bool,
        result: ReplayResult,
    ) -> None:
        self.config = config
        self.producer = producer
        self.name = name
        self.cutoff = cutoff
        self.wanted = wanted
        self.now = now
        self.dry_run = dry_run
        self.result = result
        self.lock = asyncio.Lock()  # a batch is acked and committed before a rebalance
        self.assigned = asyncio.Event()
        self.ledger: set[bytes] = set()
        self.pending: dict[TopicPartition, int] = {}
        self.consumer: AIOKafkaConsumer | None = None

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.lock:  # the batch in hand finishes (acked, committed) first
            self.assigned.clear()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        # What another run re-drove past its commit point, up to the moment it let go.
        self.ledger = await self._load_ledger()
        self.pending = {tp: o for tp, o in self.pending.items() if tp in set(assigned)}
        self.assigned.set()

    async def _load_ledger(self) -> set[bytes]:
        return set(await read_control(self.config.kafka, f"replayed/{self.name}/".encode()))

    async def go(self) -> None:
        self.ledger = await self._load_ledger()
        for attempt in range(1, _JOIN_ATTEMPTS + 1):
            try:
                await self._member()
                break
            except _NotAssigned:
                if attempt == _JOIN_ATTEMPTS:
                    raise TimeoutError(
                        f"replay of {self.name!r} was never given partitions"
                    ) from None
                log.warning("replay_rejoin", destination=self.name, attempt=attempt)
        log.info(
            "replay_done",
            destination=self.name,
            dry_run=self.dry_run,
            replayed=sum(1 for r in self.result.redriven if r.destination == self.name),
        )

    async def _member(self) -> None:
        """One membership of the replay group: join, re-drive this run's share, leave."""
        cfg = self.config.kafka
        self.assigned.clear()
        consumer = AIOKafkaConsumer(
            **client_options(cfg),
            group_id=replay_group(self.config, self.name),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(cfg.session_timeout * 1000),
            heartbeat_interval_ms=int(cfg.heartbeat_interval * 1000),
        )
        self.consumer = consumer
        await consumer.start()
        try:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(cfg.dead_letter_topic) or set()
            if not partitions:
                return
            if self.dry_run:  # a reader, not a member: it must not take partitions from a run
                consumer.assign([TopicPartition(cfg.dead_letter_topic, p) for p in partitions])
                self.assigned.set()
            else:
                consumer.subscribe([cfg.dead_letter_topic], listener=self)
            await self._read(consumer)
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        deadline = time.monotonic() + _JOIN_LIMIT
        idle_since = time.monotonic()
        ends: dict[TopicPartition, int] = {}
        while True:
            if not self.assigned.is_set():  # joining, or rebalancing: aiokafka does it meanwhile
                try:
                    await asyncio.wait_for(self.assigned.wait(), deadline - time.monotonic())
                except TimeoutError:
                    raise _NotAssigned from None
                deadline = time.monotonic() + _JOIN_LIMIT
            tps = sorted(consumer.assignment(), key=lambda tp: tp.partition)
            missing = [tp for tp in tps if tp not in ends]
            if missing:
                ends.update(await consumer.end_offsets(missing))
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return  # every partition this run owns is re-driven up to where it began
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            if not batch:
                if time.monotonic() - idle_since > _IDLE_LIMIT:
                    log.warning("replay_stopped_idle", destination=self.name)
                    return
                continue
            idle_since = time.monotonic()
            async with self.lock:
                owned = consumer.assignment()
                await self._batch(consumer, {tp: r for tp, r in batch.items() if tp in owned})

    async def _batch(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, Any]) -> None:
        cfg = self.config.kafka
        sends: list[asyncio.Future[Any]] = []
        commits: dict[TopicPartition, int] = {}
        marks: list[bytes] = []
        for tp, records in batch.items():
            committed = await consumer.committed(tp) or 0
            pending = self.pending.get(tp)  # the first offset this run leaves for later
            for record in records:
                mark = ledger_key(self.name, tp.partition, record.offset)
                letter = _letter(record.value)
                if letter is None or letter.destination != self.name:
                    continue  # another destination's, or not ours: nothing to do
                if mark in self.ledger:
                    self.result.already += 1
                    continue
                if not self._wanted(letter):
                    self.result.left += 1
                    if pending is None:
                        pending = self.pending[tp] = record.offset
                    continue
                self.result.redriven.append(
                    Redriven(
                        self.name,
                        letter.event_id,
                        tp.partition,
                        record.offset,
                        letter.failed_at,
                        letter.attempts,
                        letter.last_error,
                    )
                )
                if self.dry_run:
                    continue
                task = DeliveryTask(
                    destination=self.name,
                    event_id=letter.event_id,
                    enqueued_at=self.now,
                    body=letter.body,
                    replayed=True,
                )
                sends.append(
                    await self.producer.send(
                        cfg.delivery_topic, ENCODER.encode(task), key=record.key
                    )
                )
                if pending is not None:  # past the commit point: remembered on the ledger
                    marks.append(mark)
            point = pending if pending is not None else records[-1].offset + 1
            if point > committed:
                commits[tp] = point
        if self.dry_run:
            return
        control = cfg.control_topic
        for mark in marks:
            sends.append(await self.producer.send(control, b"1", key=mark))
        await asyncio.gather(*sends)  # every re-driven task acked before its offset moves
        if commits:
            await consumer.commit(commits)
        self.ledger.update(marks)
        for tp, point in commits.items():  # ledger entries the commit passed: no longer needed
            gone = [
                m
                for m in self.ledger
                if int(m.split(b"/")[-2]) == tp.partition and int(m.rsplit(b"/", 1)[1]) < point
            ]
            for mark in gone:
                await self.producer.send(control, None, key=mark)
                self.ledger.discard(mark)

    def _wanted(self, letter: DeadLetter) -> bool:
        if self.wanted is not None and letter.event_id not in self.wanted:
            return False
        return self.cutoff is None or letter.failed_at >= self.cutoff


def _letter(value: bytes | None) -> DeadLetter | None:
    """The dead letter in a record; None for a record this gateway did not write."""
    try:
        return DEAD_LETTER_DECODER.decode(value or b"")
    except msgspec.DecodeError:
        return None
