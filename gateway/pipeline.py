"""The one flow of a webhook: verify, decode, normalize, dedupe, route, hand off.

Everything a request does after the HTTP layer has read its body is readable top to bottom
in `Pipeline.accept`. The hand-off is the durability point: the provider gets its 2xx
only after every Kafka record of the event (its topic records and its outbound-webhook
delivery tasks) has been acknowledged by the broker with `acks=all`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import msgspec
import structlog
from aiokafka.errors import KafkaError

from gateway import metrics, tracing
from gateway.config import Config, Source
from gateway.deadline import Deadline
from gateway.destinations import kafka as kafka_records
from gateway.destinations.tasks import ENCODER, DeliveryTask, task_key
from gateway.errors import RecordTooLarge, SignatureError, Unavailable, UnknownSource, Unproducible
from gateway.event import CloudEvent, encode, reject_duplicate_keys, to_builtins
from gateway.journal import Journal
from gateway.providers import Provider, Verifier, registry
from gateway.spool import Spool, SpooledRecord, SpoolFull
from gateway.state import ClaimResult, Store, store_for
from gateway.transform import compile_all
from routing import Routed

Status = Literal["accepted", "duplicate", "unrouted"]
log = structlog.get_logger("gateway.pipeline")


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
    """A source ready to take requests: its settings, provider and verifier."""

    source: Source
    provider: Provider
    verifier: Verifier
    # The key a verified request claims against replays (providers whose signature leaves
    # part of the request unsigned), or None.
    replay_key: Callable[[Mapping[str, str]], tuple[str, float] | None] | None = None


def _ingress(source: Source, provider: Provider) -> _Ingress:
    provider = provider.for_source(source.settings)
    verifier = provider.build_verifier(source.settings)
    return _Ingress(source, provider, verifier, getattr(verifier, "replay_key", None))


class Pipeline:
    """Turns authenticated provider requests into acknowledged, routed events."""

    def __init__(
        self,
        config: Config,
        sender: Sender,
        spool: Spool | None = None,
        store: Store | None = None,
    ) -> None:
        self.config = config
        self._sender = sender
        self._spool = spool
        self.on_spooled: Callable[[], None] | None = None  # the drainer's wake-up
        self.journal: Journal | None = None  # what the ingress records for the console
        providers = registry()
        self._sources = {
            name: _ingress(s, providers[s.provider]) for name, s in config.sources.items()
        }
        self._kafka = config.kafka_destinations()
        # Dedupe and replay protection live in the state store: this process's memory, or
        # the fleet's Redis (SPEC §9). Copies of one event inside this process share one
        # hand-off through `_in_flight` without asking the store.
        self.store = store if store is not None else store_for(config)
        self._prefix = config.state.key_prefix
        self._window = float(config.server.dedupe_window)
        handoff = float(config.server.handoff_timeout)
        # A claim outlives its hand-off a little, so a copy that crashed mid-hand-off
        # frees the id soon after the hand-off could have finished.
        self._claim_ttl = handoff * 1.25 + 1.0
        self._max_record = config.max_request_size()
        self._spooling = False  # this process's hand-offs go to the spool (logged on change)
        self._spooling_since = 0.0
        self._transforms = compile_all(config.destinations)
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
        return self._sources[name].provider.media_types

    def provider(self, name: str) -> Provider:
        """The provider value serving a configured source (its answer bodies, media types)."""
        return self._ingress(name).provider

    def event(self, name: str, raw: bytes, headers: Mapping[str, str], now: float) -> CloudEvent:
        """Verify, decode and normalize one request (no side effects)."""
        ingress = self._ingress(name)
        content = ingress.verifier.verify(raw, headers, now)
        provider = ingress.provider
        if not provider.signs_envelope:  # the unsigned envelope must not be ambiguous either
            reject_duplicate_keys(raw)
        decoded = provider.decode(content)  # refuses duplicate keys too
        received = datetime.fromtimestamp(now, tz=UTC)
        return provider.normalize(decoded, name, received, headers)

    async def accept(
        self, name: str, raw: bytes, headers: Mapping[str, str], now: float
    ) -> Outcome:
        """Process one request end to end; raises a `GatewayError` for anything but a 2xx."""
        event = self.event(name, raw, headers, now)
        ingress = self._sources[name]
        replay = None if ingress.replay_key is None else ingress.replay_key(headers)
        if replay is None:
            return await self._accept_event(event, now)
        key, ttl = replay
        key = f"{self._prefix}nonce:{name}:{key}"
        if (
            ingress.provider.replay == "refuse"
        ):  # claimed only now: a refused request never burns it
            if not await self.store.once(key, ttl):
                raise SignatureError("the request was already received (its nonce is used)")
            return await self._accept_event(event, now)
        # A signed body: the same signed bytes again are a duplicate, whatever unsigned
        # headers (an id) changed; remembered like an event id, only once durable.
        if await self._claim(key) == "seen":
            return Outcome("duplicate", event)
        try:
            outcome = await self._accept_event(event, now)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release(key))
            raise
        await self.store.confirm(key, ttl)
        return outcome

    async def _accept_event(self, event: CloudEvent, now: float) -> Outcome:
        pending = self._in_flight.get(event.id)
        if pending is not None:  # the same event is being handed off right now: share its fate
            first = await asyncio.shield(pending)
            return Outcome("duplicate", first.event, first.routes, first.destinations)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._in_flight[event.id] = future
        try:
            outcome = await self._dedupe_and_hand_off(event, now)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        else:
            future.set_result(outcome)
            return outcome
        finally:
            del self._in_flight[event.id]

    async def _dedupe_and_hand_off(self, event: CloudEvent, now: float) -> Outcome:
        """Two-phase dedupe around the hand-off: claim, hand off, confirm (or release)."""
        key = f"{self._prefix}dedupe:{event.id}"
        if await self._claim(key) == "seen":
            return Outcome("duplicate", event)
        try:
            outcome = await self._route_and_hand_off(event, now)
        except BaseException:
            # Not durable: forget the claim so the provider's retry (or a waiting copy)
            # hands the event off. Shielded: a cancelled request still frees its claim.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release(key))
            raise
        # Only a durable event is remembered as seen (SPEC §9).
        await self.store.confirm(key, self._window)
        return outcome

    async def _claim(self, key: str) -> ClaimResult:
        """Claim the event's id; while another copy holds it, wait for that copy's outcome.

        The wait is bounded by the claim's lifetime: by then the other copy has confirmed
        (`seen`: answer duplicate), released or crashed (`claimed`: hand off here), or a
        third copy holds a fresh claim (503: the provider retries later).
        """
        result = await self.store.claim(key, self._claim_ttl)
        if result != "pending":
            return result
        deadline = time.monotonic() + self._claim_ttl
        delay = 0.005
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            result = await self.store.claim(key, self._claim_ttl)
            if result != "pending":
                return result
            delay = min(delay * 2, 0.1)
        raise Unavailable(
            "another copy of this event is still being handed off", retry_after=self._retry_after
        )

    def route(self, event: CloudEvent) -> Routed:
        """The routing decision for an event."""
        return self.config.router.route(to_builtins(event))

    def preview(self, event: CloudEvent, now: float) -> list[tuple[str, SpooledRecord]]:
        """The record each destination would get from the hand-off (`gateway explain`)."""
        routed = self.route(event)
        return [
            (d.destination, self._record(d.destination, d.event, event, now))
            for d in routed.deliveries
        ]

    async def _route_and_hand_off(self, event: CloudEvent, now: float) -> Outcome:
        routed = self.route(event)
        for name in routed.routes:
            metrics.ROUTE_MATCHES.labels(name).inc()
        if not routed.deliveries:
            return Outcome("unrouted", event)
        records = [self._record(d.destination, d.event, event, now) for d in routed.deliveries]
        destinations = tuple(d.destination for d in routed.deliveries)
        if self._spool is not None and self._spool.depth and self._queue_behind(records):
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
            if isinstance(exc, KafkaError) and (kind := kafka_records.permanent(exc)):
                # No retry and no spool can change the broker's mind: a permanent 4xx now.
                raise (RecordTooLarge if kind == "size" else Unproducible)(
                    f"the broker refused a record of the event for good ({type(exc).__name__})"
                ) from exc
            if self._spool is None:
                reason = (
                    f"the broker did not acknowledge the event within {timeout:g}s"
                    if isinstance(exc, TimeoutError)
                    else f"the event could not be handed off ({type(exc).__name__}) after "
                    f"{time.monotonic() - started:.1f}s"
                )
                raise Unavailable(reason, retry_after=self._retry_after) from exc
            self._spooling_since = time.time()
            if not self._spooling:
                self._spooling = True
                log.warning(
                    "handoff_spooling",
                    error=type(exc).__name__,
                    note="the broker did not ack in time: events go to the local spool",
                )
            await self._spool_event(event, records, now)
            return Outcome("accepted", event, routed.routes, destinations, spooled=True)
        if self._spooling:
            self._spooling = False
            log.info("handoff_direct", note="the broker acks again: events go direct")
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
                self.config.kafka.delivery_topic,
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
