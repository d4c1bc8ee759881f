"""The delivery queue's consumer: group membership, fetching, delay tiers, commit points.

`QueueConsumer` reads `kafka.delivery_topic` and its delay tiers as a member of
`kafka.consumer_group` and hands every record to the workers (`Delivery.admit`). It owns
what is about offsets rather than deliveries:

- commit points (`offsets.PartitionProgress`), committed every `COMMIT_INTERVAL`, and
  what is done beyond them (a retry or a paused destination holds a commit point back),
  saved in the state store then, so that a partition's next owner skips it (`offsets.py`);
- delay tiers: a tier partition whose next record is not ripe is paused and sought back
  to it until it is (`delays.py`);
- backpressure: past `max_pending` jobs in hand, fetching pauses (resumes below 80 %);
- rebalances: a revoked partition's finished work is committed at once, its in-flight
  requests are given `revoke_wait` to finish, and what they finished is committed before
  the partition is given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgspec
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from gateway import metrics
from gateway.config import Config
from gateway.destinations.delays import ripe_at
from gateway.destinations.kafka import client_options
from gateway.destinations.offsets import Done, PartitionProgress
from gateway.destinations.tasks import TASK_DECODER
from gateway.state import Store

log = structlog.get_logger("gateway.delivery")

# How often finished offsets are committed (a crash redelivers at most this much more).
COMMIT_INTERVAL = 0.5
_FETCH_TIMEOUT_MS = 200
_FETCH_MAX_RECORDS = 500
_RESUME_FRACTION = 0.8
# A saved done-window lives this long in the state store, and is saved again (unchanged)
# after `_RESAVE` so that a partition held back for days keeps it.
_DONE_TTL = 86_400.0
_RESAVE = 3_600.0


class Delivery(Protocol):
    """What the consumer drives: the delivery workers."""

    def pending(self) -> int:
        """Jobs in hand (consumed, no outcome yet)."""
        ...

    def admit(self, tp: TopicPartition, progress: PartitionProgress, record: Any) -> None:
        """Take one consumed record (its offset is tracked in `progress`)."""
        ...

    async def release(self, tps: set[TopicPartition] | None, wait: float) -> tuple[int, int]:
        """Let in-flight jobs of `tps` (None: all) finish within `wait`, hand back the rest.

        Returns (in flight, handed back uncommitted).
        """
        ...

    async def wait_until_ready(self) -> None:
        """Return once outcomes can be recorded and pauses are known."""
        ...

    def revoke_wait(self) -> float:
        """How long a rebalance waits for in-flight requests."""
        ...

    def grace(self) -> float:
        """How long a stop waits for in-flight requests."""
        ...


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, queue: QueueConsumer) -> None:
        self._queue = queue

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._queue.revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        tps = set(assigned)
        log.info(
            "delivery_partitions_assigned",
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in tps),
        )
        await self._queue.restore(tps)


class QueueConsumer:
    """Consumes the delivery queue for `Delivery` (module docstring)."""

    def __init__(
        self,
        config: Config,
        delivery: Delivery,
        tiers: Mapping[str, float],
        stop: asyncio.Event,
        *,
        max_pending: int,
        options: Mapping[str, Any] | None = None,
        store: Store | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._done_prefix = (
            f"{config.state.key_prefix}done:{config.kafka.consumer_group}:"  # + topic:partition
        )
        self._restoring: dict[TopicPartition, asyncio.Future[None]] = {}
        self._delivery = delivery
        self._tiers = dict(tiers)  # topic -> seconds
        self._stop = stop
        self._max_pending = max_pending
        self._options_override = dict(options or {})
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._held: dict[TopicPartition, asyncio.TimerHandle] = {}  # delay partitions not ripe
        self._consumer: AIOKafkaConsumer | None = None
        self._paused = False

    @property
    def consuming(self) -> bool:
        """True while a consumer is in the group."""
        return self._consumer is not None

    def _progress_of(self, tp: TopicPartition) -> PartitionProgress:
        progress = self._progress.get(tp)
        if progress is None:
            progress = self._progress[tp] = PartitionProgress()
        return progress

    async def run(self) -> None:
        """Consume until `stop` is set; reconnect (with backoff) after broker errors."""
        delay = 0.2
        topics = [self._config.kafka.delivery_topic, *self._tiers]
        while not self._stop.is_set():
            await self._delivery.wait_until_ready()
            if self._stop.is_set():
                return
            consumer = AIOKafkaConsumer(**self.options())
            try:
                await consumer.start()
                missing = sorted(set(topics) - set(await consumer.topics()))
                if missing:  # long retries would wait forever for a tier that is not there
                    log.error(
                        "delivery_topics_missing",
                        topics=missing,
                        hint="create the delivery topic's delay tiers (or kafka.create_topics)",
                    )
                consumer.subscribe(topics, listener=_Rebalance(self))
                self._consumer = consumer
                log.info("delivery_workers_started", topics=topics)
                await self._consume(consumer)
                await self._delivery.release(None, self._delivery.grace())
                await self._commit(consumer)
                log.info("delivery_workers_stopped")
                return
            except (KafkaError, OSError) as exc:
                log.warning("delivery_consumer_failed", error=type(exc).__name__, retry_in=delay)
                await self._delivery.release(None, 0.0)
            finally:
                self._consumer = None
                self._progress.clear()
                self._unhold_all()
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def options(self) -> dict[str, Any]:
        """The aiokafka consumer's settings (manual commits; the rebalance waits for us)."""
        cfg = self._config.kafka
        return {
            **client_options(cfg),
            "group_id": cfg.consumer_group,
            "session_timeout_ms": int(cfg.session_timeout * 1000),
            "heartbeat_interval_ms": int(cfg.heartbeat_interval * 1000),
            # A rebalance waits for in-flight requests (`_revoke`): the group must wait too.
            "rebalance_timeout_ms": int((self._delivery.revoke_wait() + 5.0) * 1000),
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            **self._options_override,
        }

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        last_commit = time.monotonic()
        while not self._stop.is_set():
            self._backpressure(consumer)
            room = max(1, min(_FETCH_MAX_RECORDS, self._max_pending - self._delivery.pending()))
            batch = await consumer.getmany(timeout_ms=_FETCH_TIMEOUT_MS, max_records=room)
            assigned = consumer.assignment()
            for tp, records in batch.items():
                if tp not in assigned:  # revoked while the batch was in hand: not ours now
                    continue
                restoring = self._restoring.get(tp)
                if restoring is not None:
                    await asyncio.wait({restoring})
                tier = self._tiers.get(tp.topic)
                progress = self._progress_of(tp)
                for record in records:
                    if progress.already_done(record.offset, record.timestamp or 0):
                        continue  # finished by this partition's previous owner
                    if tier is not None and not self._ripe(consumer, tp, record, tier):
                        break  # the rest of this delay partition is due later still
                    self._delivery.admit(tp, progress, record)
            if time.monotonic() - last_commit >= COMMIT_INTERVAL:
                await self._commit(consumer)
                await self._measure_lag(consumer)
                last_commit = time.monotonic()

    def _ripe(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, record: Any, tier: float
    ) -> bool:
        """A delay-tier record is taken once ripe; else its partition waits until it is."""
        now = time.time()
        written = record.timestamp / 1000 if record.timestamp and record.timestamp > 0 else now
        try:
            not_before = TASK_DECODER.decode(record.value or b"").not_before
        except msgspec.DecodeError:
            return True  # dead-lettered as undecodable by the workers
        at = ripe_at(written, tier, not_before)
        if at <= now:
            return True
        consumer.seek(tp, record.offset)
        consumer.pause(tp)
        old = self._held.pop(tp, None)
        if old is not None:
            old.cancel()
        self._held[tp] = asyncio.get_running_loop().call_later(at - now, self._unhold, tp)
        return False

    def _unhold(self, tp: TopicPartition) -> None:
        self._held.pop(tp, None)
        consumer = self._consumer
        if consumer is not None and not self._paused and tp in consumer.assignment():
            consumer.resume(tp)

    def _unhold_all(self, only: set[TopicPartition] | None = None) -> None:
        for tp in list(self._held):
            if only is None or tp in only:
                self._held.pop(tp).cancel()

    def _backpressure(self, consumer: AIOKafkaConsumer) -> None:
        # Pausing (rather than not polling) keeps the consumer in its group.
        pending = self._delivery.pending()
        if pending >= self._max_pending:
            consumer.pause(*consumer.assignment())  # again each round: covers new assignments
            if not self._paused:
                log.warning("delivery_fetch_paused", pending=pending)
            self._paused = True
        elif self._paused and pending <= self._max_pending * _RESUME_FRACTION:
            consumer.resume(*(tp for tp in consumer.assignment() if tp not in self._held))
            self._paused = False
            log.info("delivery_fetch_resumed", pending=pending)

    def _done_key(self, tp: TopicPartition) -> str:
        return f"{self._done_prefix}{tp.topic}:{tp.partition}"

    async def restore(self, tps: set[TopicPartition]) -> None:
        """Newly assigned partitions: load what their previous owner finished past the
        commit point, so those records are skipped instead of delivered again.

        A saved window is trusted only if the partition's committed offset is the window's
        commit point (and, when consumed, the record there is the one it was saved for).
        """
        consumer, store = self._consumer, self._store
        if consumer is None or store is None or not tps:
            return

        async def one(tp: TopicPartition) -> None:
            blob = await store.get(self._done_key(tp))
            done = Done.decode(blob) if blob is not None else None
            if done is None:
                return
            try:
                committed = await consumer.committed(tp)
            except KafkaError:
                return
            if committed != done.point:  # the commit after the save failed, or another topic
                return
            progress = self._progress[tp] = PartitionProgress(known=done)
            progress.saved, progress.saved_at = done, time.monotonic()
            log.info(
                "delivery_progress_restored",
                partition=f"{tp.topic}:{tp.partition}",
                committed=committed,
                done_until=done.end,
            )

        # The fetcher may hand out records of these partitions meanwhile: `_consume`
        # waits for a partition's restore before it takes any of them.
        loading = {tp: asyncio.ensure_future(one(tp)) for tp in tps}
        self._restoring.update(loading)
        try:
            await asyncio.gather(*loading.values(), return_exceptions=True)
        finally:
            for tp, task in loading.items():
                if self._restoring.get(tp) is task:
                    del self._restoring[tp]

    async def _save_done(self, windows: dict[TopicPartition, Done | None]) -> None:
        """Save (or clear) what is done past each partition's (committed) commit point."""
        store = self._store
        if store is None:
            return
        now = time.monotonic()
        writes = []
        for tp, done in windows.items():
            progress = self._progress.get(tp)
            if progress is None:
                continue
            if done is not None and (done != progress.saved or now - progress.saved_at >= _RESAVE):
                writes.append(store.put(self._done_key(tp), done.encode(), _DONE_TTL))
                progress.saved_at = now
            elif done is None and progress.saved is not None:
                writes.append(store.delete(self._done_key(tp)))
            progress.saved = done
        if writes:
            await asyncio.gather(*writes)

    async def _commit(
        self, consumer: AIOKafkaConsumer, only: set[TopicPartition] | None = None
    ) -> None:
        assigned = consumer.assignment()
        offsets: dict[TopicPartition, int] = {}
        windows: dict[TopicPartition, Done | None] = {}
        for tp, progress in self._progress.items():
            if tp not in assigned or (only is not None and tp not in only):
                continue
            point = progress.commit_point()
            if point is not None and point != progress.committed:
                offsets[tp] = point
            # Taken now, at the point being committed (more may finish while it commits).
            windows[tp] = progress.done_beyond()
        if offsets:
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:  # includes CommitFailedError after a rebalance
                log.warning("delivery_commit_failed", error=type(exc).__name__)
                return  # the windows saved before still match what is committed
            for tp, point in offsets.items():
                self._progress[tp].committed = point
        # After the commit: a window is only ever saved for a committed point.
        await self._save_done(windows)

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Queue lag: tasks on this worker's partitions without a recorded outcome yet."""
        lag = 0
        for tp in consumer.assignment():
            end = consumer.highwater(tp)  # known once the partition has been fetched
            if end is None:
                continue
            progress = self._progress.get(tp)
            point = progress.commit_point() if progress is not None else None
            if point is None:
                point = await consumer.position(tp)
            lag += max(0, end - point)
        metrics.DELIVERY_QUEUE_LAG.set(lag)

    async def revoke(self, revoked: set[TopicPartition]) -> None:
        """Finish the revoked partitions' in-flight requests, commit them, give them up."""
        started = time.monotonic()
        consumer = self._consumer
        # What is done is committed at once: a broker that ends the rebalance before our
        # wait is over (shorter rebalance timeout than asked for) then costs only the
        # requests still in flight, not everything since the last periodic commit.
        if consumer is not None:
            await self._commit(consumer, only=revoked)
        busy, handed_back = await self._delivery.release(revoked, self._delivery.revoke_wait())
        if consumer is not None:
            await self._commit(consumer, only=revoked)
        self._unhold_all(revoked)
        for tp in revoked:
            self._progress.pop(tp, None)
        if busy or handed_back:
            log.info(
                "delivery_partitions_revoked",
                in_flight=busy,
                handed_back=handed_back,
                waited=round(time.monotonic() - started, 3),
            )
