"""The hand-off: an event's routed deliveries become Kafka records, acknowledged or spooled.

This is the durability point. `HandOff.records` builds the record of every delivery (a
topic record in the destination's CloudEvents binding, or an outbound-webhook delivery
task), applies the destination's transform, adds the trace header and refuses a record
the broker could never take. `HandOff.__call__` sends them all within
`server.handoff_timeout` with `acks=all`; when the broker does not acknowledge in time, or
while older events of the same keys wait in the spool, the records go to the local spool
instead. Broker and database errors are translated into the gateway's errors here, so
nothing above this module names aiokafka or sqlite3.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import msgspec
import structlog
from aiokafka.errors import KafkaError

from gateway import metrics, tracing
from gateway.config import Config
from gateway.deadline import deadline
from gateway.destinations import kafka as kafka_records
from gateway.destinations.tasks import ENCODER, DeliveryTask, task_key
from gateway.errors import RecordTooLarge, Unavailable, Unproducible
from gateway.event import CloudEvent, encode
from gateway.spool import Spool, SpooledRecord, SpoolFull
from gateway.transform import compile_all
from routing import Delivery

log = structlog.get_logger("gateway.pipeline")


class Sender(Protocol):
    """What the hand-off needs of the Kafka producer."""

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None
    ) -> Any: ...


class HandOff:
    """Sends an event's records to Kafka within the hand-off timeout, or spools them."""

    def __init__(self, config: Config, sender: Sender, spool: Spool | None = None) -> None:
        self._sender = sender
        self._spool = spool
        self.on_spooled: Callable[[], None] | None = None  # the drainer's wake-up
        self._timeout = config.server.handoff_timeout
        self.retry_after = int(config.server.retry_after) or 1
        self._delivery_topic = config.kafka.delivery_topic
        self._kafka = config.kafka_destinations()
        self._transforms = compile_all(config.destinations)
        self._max_record = config.max_request_size()
        self._spooling = False  # this process's hand-offs go to the spool (logged on change)
        self._spooling_since = 0.0

    def records(
        self, event: CloudEvent, deliveries: Iterable[Delivery], now: float
    ) -> list[SpooledRecord]:
        """The Kafka record of each delivery, or `RecordTooLarge` (413)."""
        return [self._record(d.destination, d.event, event, now) for d in deliveries]

    def event_bytes(
        self,
        view: Mapping[str, Any],
        deliveries: Iterable[Delivery],
        records: list[SpooledRecord],
    ) -> bytes | None:
        """The JSON of the whole event `view`, when a record already holds exactly that.

        A structured-mode topic record of a delivery that got the routing input itself (no
        `omit`) and no transform is `encode(view)`: the journal reuses those bytes instead
        of encoding the event again. None when no record is one.
        """
        for delivery, record in zip(deliveries, records, strict=True):
            if delivery.event is not view or delivery.destination in self._transforms:
                continue
            dest = self._kafka.get(delivery.destination)
            if dest is not None and dest.mode == "structured":
                return record.value
        return None

    async def __call__(
        self, event: CloudEvent, records: list[SpooledRecord], now: float
    ) -> list[Any] | None:
        """Hand the records off: the broker's acks, one per record, or None when spooled.

        Raises `Unavailable` (503) or a permanent 4xx.
        """
        if self._spool is not None and self._spool.depth and self._queue_behind(records):
            await self._spool_event(event, records, now)
            return None
        started = time.monotonic()
        try:
            async with deadline(self._timeout):
                if len(records) == 1:  # the usual case: no task, no gathering, no coroutine
                    record = records[0]
                    sent = time.perf_counter()
                    try:
                        ack = await self._sender.send(
                            record.topic, record.value, key=record.key, headers=record.headers
                        )
                    except BaseException as exc:
                        _count_failed(record.topic, exc)
                        raise
                    _count_acked(record.topic, sent)
                    acks = [ack]
                else:
                    acks = list(await asyncio.gather(*(self._produce(r) for r in records)))
        except (TimeoutError, KafkaError) as exc:
            if isinstance(exc, KafkaError) and (kind := kafka_records.permanent(exc)):
                # No retry and no spool can change the broker's mind: a permanent 4xx now.
                raise (RecordTooLarge if kind == "size" else Unproducible)(
                    f"the broker refused a record of the event for good ({type(exc).__name__})"
                ) from exc
            if self._spool is None:
                reason = (
                    f"the broker did not acknowledge the event within {self._timeout:g}s"
                    if isinstance(exc, TimeoutError)
                    else f"the event could not be handed off ({type(exc).__name__}) after "
                    f"{time.monotonic() - started:.1f}s"
                )
                raise Unavailable(reason, retry_after=self.retry_after) from exc
            self._spooling_since = time.time()
            if not self._spooling:
                self._spooling = True
                log.warning(
                    "handoff_spooling",
                    error=type(exc).__name__,
                    note="the broker did not ack in time: events go to the local spool",
                )
            await self._spool_event(event, records, now)
            return None
        if self._spooling:
            self._spooling = False
            log.info("handoff_direct", note="the broker acks again: events go direct")
        return acks

    def _queue_behind(self, records: list[SpooledRecord]) -> bool:
        """Spool at once, while the spool holds events: is direct hand-off pointless or unsafe?

        Pointless while the broker is away: this process's last hand-off failed and no
        drainer has forwarded anything since (waiting `handoff_timeout` again would only
        delay the answer). Unsafe when an older event with one of these keys is still
        spooled: queueing behind it keeps per-key order. Otherwise the event goes direct,
        so the spool's tail never holds back the events of other keys.
        """
        assert self._spool is not None
        if self._spooling and self._spool.drained_at <= self._spooling_since:
            return True
        return self._spool.holds(records)

    async def _spool_event(
        self, event: CloudEvent, records: list[SpooledRecord], now: float
    ) -> None:
        assert self._spool is not None
        try:
            await self._spool.append(event.id, records, now)
        except (SpoolFull, OSError, sqlite3.Error) as exc:
            raise Unavailable(
                "the broker is unavailable and the local spool cannot take the event",
                retry_after=self.retry_after,
            ) from exc
        if self.on_spooled is not None:
            self.on_spooled()

    async def _produce(self, record: SpooledRecord) -> Any:
        """One record of several (a single record is sent inline by `__call__`)."""
        started = time.perf_counter()
        try:
            ack = await self._sender.send(
                record.topic, record.value, key=record.key, headers=record.headers
            )
        except BaseException as exc:
            _count_failed(record.topic, exc)
            raise
        _count_acked(record.topic, started)
        return ack

    def _record(
        self, destination: str, routed_event: Mapping[str, Any], event: CloudEvent, now: float
    ) -> SpooledRecord:
        """The Kafka record one destination gets: a topic record, or a delivery task."""
        trace = tracing.traceparent()
        reshape = self._transforms.get(destination)  # after the route's omit (SPEC §11)
        shaped = routed_event if reshape is None else reshape.apply(routed_event)
        dest = self._kafka.get(destination)
        if dest is not None:
            # The key path reads the event before its transform: per-object order holds.
            key, value, headers = kafka_records.record(shaped, dest, key_from=routed_event)
            if trace is not None:
                headers.append(("traceparent", trace.encode()))
            return self._sized(SpooledRecord(dest.topic, key, value, headers), destination)
        task = DeliveryTask(
            destination=destination,
            event_id=event.id,
            enqueued_at=now,
            body=msgspec.Raw(encode(shaped)),
            traceparent=trace,
        )
        return self._sized(
            SpooledRecord(
                self._delivery_topic,
                task_key(destination, event.partitionkey),
                ENCODER.encode(task),
                [],
            ),
            destination,
        )

    def _sized(self, record: SpooledRecord, destination: str) -> SpooledRecord:
        """The record, or `RecordTooLarge` (413) if the broker could never take it."""
        if len(record.value) + 4096 > self._max_record:  # cheap bound first: most are small
            size = kafka_records.record_size(record.key, record.value, record.headers)
            if size > self._max_record:
                raise RecordTooLarge(
                    f"the event's record for destination {destination!r} is {size} bytes, "
                    f"over the broker's {self._max_record}-byte limit (kafka.max_request_size)"
                )
        return record


def _count_failed(topic: str, exc: BaseException) -> None:
    result = "timeout" if isinstance(exc, asyncio.CancelledError) else "error"
    metrics.KAFKA_PRODUCE.labels(topic, result).inc()


def _count_acked(topic: str, started: float) -> None:
    metrics.KAFKA_PRODUCE.labels(topic, "ok").inc()
    metrics.KAFKA_PRODUCE_LATENCY.labels(topic).observe(time.perf_counter() - started)
