"""The one flow of a webhook: verify, decode, normalize, dedupe, route, hand off.

Everything a request does after the HTTP layer has read its body is readable top to bottom
in `Pipeline.accept`. The hand-off is the durability point: the provider gets its 2xx
only after every Kafka record of the event (its topic records and its outbound-webhook
delivery tasks) has been acknowledged by the broker with `acks=all`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Literal, Protocol

import msgspec
from aiokafka.errors import KafkaError

from gateway import metrics, tracing
from gateway.config import Config, Source
from gateway.dedupe import SeenIds
from gateway.destinations import kafka as kafka_records
from gateway.destinations.tasks import ENCODER, DeliveryTask, task_key
from gateway.errors import Unavailable, UnknownSource
from gateway.event import CloudEvent, encode, reject_duplicate_keys, to_builtins
from gateway.journal import Journal
from gateway.providers import Verifier, registry
from gateway.spool import Spool, SpooledRecord, SpoolFull
from routing import Routed

Status = Literal["accepted", "duplicate", "unrouted"]


class Sender(Protocol):
    """What the pipeline needs of the Kafka producer."""

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one accepted (2xx) webhook."""

    status: Status
    event: CloudEvent
    routes: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()
    spooled: bool = False
    # Where each destination's record went ({destination, topic, partition, offset}): the journal's.
    placed: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class _Ingress:
    """A source ready to take requests: its settings, provider module and verifier."""

    source: Source
    module: ModuleType
    verifier: Verifier


class Deadline:
    """`asyncio.timeout(seconds)` for the hand-off, at a quarter of its cost.

    Same contract: when the time is up the task is cancelled, and the cancellation leaves
    the block as `TimeoutError`, unless the task was also cancelled from outside (then it
    stays a `CancelledError`). One timer per hand-off; the stdlib's state machine around
    it cost ~27k instructions per webhook, this ~7k.
    """

    __slots__ = ("_seconds", "_task", "_timer", "expired")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self.expired = False

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._timer = asyncio.get_running_loop().call_later(self._seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        self._timer.cancel()
        if self.expired and self._task.uncancel() == 0 and kind is asyncio.CancelledError:
            raise TimeoutError from error


class Pipeline:
    """Turns authenticated provider requests into acknowledged, routed events."""

    def __init__(self, config: Config, sender: Sender, spool: Spool | None = None) -> None:
        self.config = config
        self._sender = sender
        self._spool = spool
        self.on_spooled: Callable[[], None] | None = None  # the drainer's wake-up
        self.journal: Journal | None = None  # what the ingress records for the console
        providers = registry()
        self._sources = {
            name: _Ingress(
                s, providers[s.provider], providers[s.provider].build_verifier(s.settings)
            )
            for name, s in config.sources.items()
        }
        self._kafka = config.kafka_destinations()
        self._seen = SeenIds(config.server.dedupe_window, config.server.dedupe_max_entries)
        self._in_flight: dict[str, asyncio.Future[Outcome]] = {}

    def _ingress(self, name: str) -> _Ingress:
        ingress = self._sources.get(name)
        if ingress is None:
            raise UnknownSource(f"no source named {name!r} is configured")
        return ingress

    def source(self, name: str) -> Source:
        """The configured source, or `UnknownSource` (404)."""
        return self._ingress(name).source

    def media_types(self, name: str) -> frozenset[str]:
        """Content types the source's provider sends."""
        media: frozenset[str] = self._sources[name].module.MEDIA_TYPES
        return media

    def event(self, name: str, raw: bytes, headers: Mapping[str, str], now: float) -> CloudEvent:
        """Verify, decode and normalize one request (no side effects beyond the nonce cache)."""
        ingress = self._ingress(name)
        content = ingress.verifier.verify(raw, headers, now)
        if content is not raw:  # pay3: the unsigned envelope must not be ambiguous either
            reject_duplicate_keys(raw)
        decoded = ingress.module.decode(content)  # refuses duplicate keys too
        received = datetime.fromtimestamp(now, tz=UTC)
        event: CloudEvent = ingress.module.normalize(decoded, name, received)
        return event

    async def accept(
        self, name: str, raw: bytes, headers: Mapping[str, str], now: float
    ) -> Outcome:
        """Process one request end to end; raises a `GatewayError` for anything but a 2xx."""
        event = self.event(name, raw, headers, now)
        if self._seen.seen(event.id, now):
            return Outcome("duplicate", event)
        pending = self._in_flight.get(event.id)
        if pending is not None:  # the same event is being handed off right now: share its fate
            first = await asyncio.shield(pending)
            return Outcome("duplicate", first.event, first.routes, first.destinations)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._in_flight[event.id] = future
        try:
            outcome = await self._route_and_hand_off(event, now)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        else:
            future.set_result(outcome)
            self._seen.remember(event.id, now)
            return outcome
        finally:
            del self._in_flight[event.id]

    def route(self, event: CloudEvent) -> Routed:
        """The routing decision for an event."""
        return self.config.router.route(to_builtins(event))

    async def _route_and_hand_off(self, event: CloudEvent, now: float) -> Outcome:
        routed = self.route(event)
        for name in routed.routes:
            metrics.ROUTE_MATCHES.labels(name).inc()
        if not routed.deliveries:
            return Outcome("unrouted", event)
        records = [self._record(d.destination, d.event, event, now) for d in routed.deliveries]
        destinations = tuple(d.destination for d in routed.deliveries)
        if self._spool is not None and self._spool.depth:
            # Older events wait in the spool: queue behind them so per-key order holds.
            await self._spool_event(event, records, now)
            return Outcome("accepted", event, routed.routes, destinations, spooled=True)
        timeout = self.config.server.handoff_timeout
        started = time.monotonic()
        try:
            async with Deadline(timeout):
                if len(records) == 1:  # the usual case: no task and gathering future to build
                    acks = [await self._produce(records[0])]
                else:
                    acks = await asyncio.gather(*(self._produce(r) for r in records))
        except (TimeoutError, KafkaError) as exc:
            if self._spool is None:
                reason = (
                    f"the broker did not acknowledge the event within {timeout:g}s"
                    if isinstance(exc, TimeoutError)
                    else f"the event could not be handed off ({type(exc).__name__}) after "
                    f"{time.monotonic() - started:.1f}s"
                )
                raise Unavailable(reason, retry_after=self._retry_after) from exc
            await self._spool_event(event, records, now)
            return Outcome("accepted", event, routed.routes, destinations, spooled=True)
        placed = (
            tuple(
                {"destination": d, "topic": r.topic, "partition": a.partition, "offset": a.offset}
                for d, r, a in zip(destinations, records, acks, strict=True)
                if hasattr(a, "offset")  # a RecordMetadata (test senders may return None)
            )
            if self.journal is not None
            else ()
        )
        return Outcome("accepted", event, routed.routes, destinations, placed=placed)

    @property
    def _retry_after(self) -> int:
        return int(self.config.server.retry_after) or 1

    async def _spool_event(
        self, event: CloudEvent, records: list[SpooledRecord], now: float
    ) -> None:
        assert self._spool is not None
        try:
            await self._spool.append(event.id, records, now)
        except (SpoolFull, OSError, sqlite3.Error) as exc:
            raise Unavailable(
                "the broker is unavailable and the local spool cannot take the event",
                retry_after=self._retry_after,
            ) from exc
        if self.on_spooled is not None:
            self.on_spooled()

    async def _produce(self, record: SpooledRecord) -> Any:
        started = time.perf_counter()
        try:
            ack = await self._sender.send(
                record.topic, record.value, key=record.key, headers=record.headers
            )
        except BaseException as exc:
            result = "timeout" if isinstance(exc, asyncio.CancelledError) else "error"
            metrics.KAFKA_PRODUCE.labels(record.topic, result).inc()
            raise
        metrics.KAFKA_PRODUCE.labels(record.topic, "ok").inc()
        metrics.KAFKA_PRODUCE_LATENCY.labels(record.topic).observe(time.perf_counter() - started)
        return ack

    def _record(
        self, destination: str, routed_event: Mapping[str, Any], event: CloudEvent, now: float
    ) -> SpooledRecord:
        """The Kafka record one destination gets: a topic record, or a delivery task."""
        trace = tracing.traceparent()
        dest = self._kafka.get(destination)
        if dest is not None:
            key, value, headers = kafka_records.record(routed_event, dest)
            if trace is not None:
                headers.append(("traceparent", trace.encode()))
            return SpooledRecord(dest.topic, key, value, headers)
        task = DeliveryTask(
            destination=destination,
            event_id=event.id,
            enqueued_at=now,
            body=msgspec.Raw(encode(routed_event)),
            traceparent=trace,
        )
        return SpooledRecord(
            self.config.kafka.delivery_topic,
            task_key(destination, event.partitionkey),
            ENCODER.encode(task),
            [],
        )
