"""The one flow of a webhook: verify, decode, normalize, dedupe, route, hand off.

Everything a request does after the HTTP layer has read its body is readable top to bottom
in `Pipeline.accept`. The hand-off is the durability point: the provider gets its 2xx
only after every Kafka record of the event (its topic records and its outbound-webhook
delivery tasks) has been acknowledged by the broker with `acks=all`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from gateway import metrics
from gateway.config import Config, Source
from gateway.errors import SignatureError, Unavailable, UnknownSource
from gateway.event import CloudEvent, reject_duplicate_keys, to_builtins
from gateway.fastpaths import fast
from gateway.handoff import HandOff, Sender
from gateway.journal import Journal, Placed
from gateway.providers import Provider, Verifier, registry
from gateway.spool import Spool, SpooledRecord
from gateway.state import ClaimResult, MemoryStore, Store, store_for
from routing import Routed

__all__ = ["Outcome", "Pipeline", "Sender"]

Status = Literal["accepted", "duplicate", "unrouted"]
_FAST_MEMSTORE = fast("memstore")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one accepted (2xx) webhook."""

    status: Status
    event: CloudEvent
    routes: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()
    spooled: bool = False
    # Where each destination's record went ({destination, topic, partition, offset}): the journal's.
    placed: tuple[Placed, ...] = ()
    # The event's JSON as one of its records already holds it (journal on only), or None.
    encoded: bytes | None = None


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
        self.handoff = HandOff(config, sender, spool)
        self.journal: Journal | None = None  # what the ingress records for the console
        providers = registry()
        self._sources = {
            name: _ingress(s, providers[s.provider]) for name, s in config.sources.items()
        }
        # Dedupe and replay protection live in the state store: this process's memory, or
        # the fleet's Redis (SPEC §9). Copies of one event inside this process share one
        # hand-off through `_in_flight` without asking the store.
        self.store = store if store is not None else store_for(config)
        # Fast path `memstore` (gateway/fastpaths.py; off, every claim and confirm is
        # awaited through `Store`): the memory store never waits, so its claim and confirm
        # are called directly, without a coroutine each. Only for that exact class, so any
        # other store (redis, guarded, a test's) goes through the interface. Equivalence:
        # tests/test_memstore_fastpath.py runs its dedupe cases both ways. Benchmark:
        # benchmarks/ingress_profile.py with and without GATEWAY_SLOW=memstore.
        self._local = self.store if _FAST_MEMSTORE and type(self.store) is MemoryStore else None
        self._prefix = config.state.key_prefix
        self._window = float(config.server.dedupe_window)
        # A claim outlives its hand-off a little, so a copy that crashed mid-hand-off
        # frees the id soon after the hand-off could have finished.
        self._claim_ttl = float(config.server.handoff_timeout) * 1.25 + 1.0
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
        event = self.event(name, raw, headers, now)  # verify, decode, normalize
        ingress = self._sources[name]
        replay = None if ingress.replay_key is None else ingress.replay_key(headers)
        if replay is None:  # the usual case: one coroutine below this one until the sender
            return await self._deduped(event, now)
        nonce, ttl = replay
        key = f"{self._prefix}nonce:{name}:{nonce}"
        if ingress.provider.replay == "refuse":  # claimed only now: a refused one never burns it
            if not await self.store.once(key, ttl):
                raise SignatureError("the request was already received (its nonce is used)")
            return await self._deduped(event, now)
        # A signed body: the same signed bytes again are a duplicate, whatever unsigned
        # headers (an id) changed; remembered like an event id, only once durable.
        return await self._until_durable(key, ttl, event, lambda: self._deduped(event, now))

    async def _deduped(self, event: CloudEvent, now: float) -> Outcome:
        """Dedupe, route and hand off one event, in one coroutine.

        What `_once_in_process(id, _until_durable(dedupe key, window, route and hand off))`
        would do, flattened (the layers cost a coroutine each per webhook): copies in this
        process share the first copy's run; the event id is claimed before the hand-off and
        confirmed for the dedupe window only after it (released, shielded, when it fails).
        """
        event_id = event.id
        pending = self._in_flight.get(event_id)
        if pending is not None:
            first = await asyncio.shield(pending)
            return Outcome("duplicate", first.event, first.routes, first.destinations)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._in_flight[event_id] = future
        try:
            key = f"{self._prefix}dedupe:{event_id}"
            local = self._local
            claimed = "pending" if local is None else local.claim_now(key, self._claim_ttl)
            if claimed == "pending":  # the interface, or another copy holds the key: wait
                claimed = await self._claim(key)
            if claimed == "seen":
                outcome = Outcome("duplicate", event)
            else:
                try:  # route and hand off
                    view = to_builtins(event)
                    routed = self.config.router.route(view)
                    for route in routed.routes:
                        metrics.ROUTE_MATCHES.labels(route).inc()
                    if not routed.deliveries:
                        outcome = Outcome("unrouted", event)
                    else:
                        records = self.handoff.records(event, routed.deliveries, now)
                        acks = await self.handoff(event, records, now)  # None: spooled
                        targets = tuple(d.destination for d in routed.deliveries)
                        outcome = Outcome(
                            "accepted",
                            event,
                            routed.routes,
                            targets,
                            acks is None,
                            self._placed(targets, records, acks),
                            None
                            if self.journal is None
                            else self.handoff.event_bytes(view, routed.deliveries, records),
                        )
                except BaseException:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self.store.release(key))
                    raise
                if local is not None:
                    local.confirm_now(key, self._window)
                else:
                    await self.store.confirm(key, self._window)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        else:
            future.set_result(outcome)
            return outcome
        finally:
            del self._in_flight[event_id]

    async def _until_durable(
        self, key: str, ttl: float, event: CloudEvent, run: Callable[[], Awaitable[Outcome]]
    ) -> Outcome:
        """Two-phase dedupe around `run`: claim `key`, run, confirm it for `ttl` (or release).

        Only a durable event is remembered as seen (SPEC §9); when `run` fails the claim is
        forgotten so the provider's retry (or a waiting copy) hands the event off. Shielded:
        a cancelled request still frees its claim.
        """
        local = self._local
        claimed = "pending" if local is None else local.claim_now(key, self._claim_ttl)
        if claimed == "pending":  # the interface, or another copy holds the key: wait
            claimed = await self._claim(key)
        if claimed == "seen":
            return Outcome("duplicate", event)
        try:
            outcome = await run()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release(key))
            raise
        if local is not None:
            local.confirm_now(key, ttl)
        else:
            await self.store.confirm(key, ttl)
        return outcome

    def _placed(
        self, targets: tuple[str, ...], records: list[SpooledRecord], acks: list[Any] | None
    ) -> tuple[Placed, ...]:
        """Where each record went, for the journal (nothing when there is none, or spooled)."""
        if self.journal is None or acks is None:
            return ()
        return tuple(
            Placed(d, r.topic, a.partition, a.offset)
            for d, r, a in zip(targets, records, acks, strict=True)
            if hasattr(a, "offset")  # a RecordMetadata (test senders may return None)
        )

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
            "another copy of this event is still being handed off",
            retry_after=self.handoff.retry_after,
        )

    def route(self, event: CloudEvent) -> Routed:
        """The routing decision for an event."""
        return self.config.router.route(to_builtins(event))

    def preview(self, event: CloudEvent, now: float) -> list[tuple[str, SpooledRecord]]:
        """The record each destination would get from the hand-off (`gateway explain`)."""
        deliveries = self.route(event).deliveries
        records = self.handoff.records(event, deliveries, now)
        return [(d.destination, r) for d, r in zip(deliveries, records, strict=True)]
