"""The journal: what the ingress and the delivery workers did, on `kafka.journal_topic`.

The operator console (`gateway console`) reads it to answer "what happened to this
webhook". Journaling must never cost a provider its answer, so `Journal.record` only puts a
small dict on a bounded in-memory buffer and returns; a background task encodes and
produces what the buffer holds without anyone awaiting it. When the buffer is full (a
broker outage, a flood) the newest record is dropped and counted in
`gateway_journal_dropped_total{reason}`; a send the broker refuses is counted too. Losing a
journal record is acceptable; delaying or failing an event is not.

The journal has its own small producer (`acks=1`, long linger, no idempotence): its records
are diagnostics, and a backlog of them can then never take the event producer's buffer or
in-flight requests from the records that back a provider's 2xx.

A Kafka record of the journal holds one or more entries, one JSON object per line. Entry
kinds (each with `kind`, `at` in unix seconds and `node`, the pod and process):

- `request`: one webhook request's outcome (`accepted`, `duplicate`, `unrouted` or
  `rejected` with `reason` and `detail`; never a rejected request's body or signature),
  and for an accepted event the CloudEvent, its routes, destinations and records
  (`topic`, `partition`, `offset` per destination).
- `attempt`: one delivery outcome (`delivered`, `retry`, `dead_letter`): attempt number,
  HTTP status, latency, error and, for a retry, when the next attempt is due.
- `action`: an operator action in the console (who, what, how many).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import msgspec
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from gateway import metrics
from gateway.config import Config
from gateway.destinations.kafka import create_topics, producer_options

log = structlog.get_logger("gateway.journal")

_ENCODER = msgspec.json.Encoder(decimal_format="string")


class Attempt(msgspec.Struct, frozen=True):
    """One delivery attempt's outcome, as both the log line and the journal record it."""

    destination: str
    event_id: str
    attempt: int
    status: int | None
    error: str
    duration: float
    outcome: str

    def fields(self) -> dict[str, Any]:
        """The fields the log line and the journal record share (not `error`: the log omits an empty one)."""
        return {
            "destination": self.destination,
            "event_id": self.event_id,
            "attempt": self.attempt,
            "status": self.status,
            "outcome": self.outcome,
            "duration_ms": round(self.duration * 1000, 1),
        }


class Placed(msgspec.Struct, frozen=True):
    """Where one destination's record of an accepted event went."""

    destination: str
    topic: str
    partition: int
    offset: int


class _Answered(msgspec.Struct):
    """A `request` entry of a 200 (a Struct: encoded without building a dict per request)."""

    kind: str
    at: float
    node: str
    source: str
    provider: str
    outcome: str
    status: int
    event_id: str
    type: str
    subject: str | None
    routes: tuple[str, ...]
    destinations: tuple[str, ...]
    records: tuple[Placed, ...]
    spooled: bool
    request_id: str | None
    duration_ms: float
    event: Any


# The node that wrote a record: which pod and process, for the console's event detail.
NODE = f"{socket.gethostname()}:{os.getpid()}"
# Entries are packed into Kafka records of about this size (below the default batch size).
_RECORD_BYTES = 48_000
# How long the drainer lets entries gather after waking (journal latency, not the provider's).
_LINGER = 0.02


class Journal:
    """A fire-and-forget journal producer for one process (see the module docstring)."""

    def __init__(self, config: Config, *, buffer: int | None = None) -> None:
        topic = config.kafka.journal_topic
        assert topic is not None, "Journal needs kafka.journal_topic"
        self.topic = topic
        self._config = config
        # Encoded entries: bytes are invisible to the garbage collector, where thousands of
        # buffered dicts (holding CloudEvents) would make every collection slower.
        self._buffer: deque[bytes] = deque()
        self._limit = buffer or config.kafka.journal_buffer
        self._producer: AIOKafkaProducer | None = None
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._idle = True
        self._stopping = False
        self._sending: set[asyncio.Future[Any]] = set()
        self._full = metrics.JOURNAL_DROPPED.labels("buffer_full")
        self._failed = metrics.JOURNAL_DROPPED.labels("send_failed")

    # -- what the gateway records ----------------------------------------------------------

    def record(self, entry: Mapping[str, Any] | msgspec.Struct) -> None:
        """Queue one record; never blocks, never raises (a full buffer drops and counts it)."""
        if len(self._buffer) >= self._limit or self._stopping:
            self._full.inc()
            return
        try:
            line = _ENCODER.encode(entry)
        except (TypeError, ValueError) as exc:  # a bug, not an outage: say so, never raise
            kind = entry.get("kind") if isinstance(entry, Mapping) else getattr(entry, "kind", None)
            log.error("journal_unencodable", kind=kind, error=str(exc))
            self._failed.inc()
            return
        self._buffer.append(line)
        if self._idle:
            self._idle = False
            self._wake.set()

    def rejected(
        self,
        source: str,
        provider: str | None,
        status: int,
        error: Exception,
        request_id: str | None,
        started: float,
    ) -> None:
        """A request answered with an error: the reason, never the body or signature.

        `error` is the `GatewayError` answered (its reason and message, as the log line
        has them); `started` the request's `time.perf_counter()` start.
        """
        self.record(
            {
                "kind": "request",
                "at": time.time(),
                "node": NODE,
                "source": source if provider is not None else "_unknown",
                "provider": provider,
                "outcome": "rejected",
                "status": status,
                "reason": getattr(error, "reason", type(error).__name__),
                "detail": str(error),
                "request_id": request_id,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )

    def answered(
        self,
        source: str,
        provider: str,
        outcome: Any,
        request_id: str | None,
        started: float,
    ) -> None:
        """A 200 (accepted, duplicate, unrouted): the event, its routes and where it went."""
        event = outcome.event
        self.record(
            _Answered(
                "request",
                time.time(),
                NODE,
                source,
                provider,
                outcome.status,
                200,
                event.id,
                event.type,
                event.subject,
                outcome.routes,
                outcome.destinations,
                outcome.placed,
                outcome.spooled,
                request_id,
                round((time.perf_counter() - started) * 1000, 2),
                None
                if outcome.status != "accepted"
                else event
                if outcome.encoded is None
                else msgspec.Raw(outcome.encoded),  # a record's bytes of the same event
            )
        )

    def attempt(self, attempt: Attempt, retry_in: float | None, replayed: bool) -> None:
        """One delivery outcome (delivered, retry, dead_letter)."""
        now = time.time()
        self.record(
            {"kind": "attempt", "at": now, "node": NODE}
            | attempt.fields()
            | {
                "error": attempt.error,
                "next_at": None if retry_in is None else now + retry_in,
                "replayed": replayed,
            }
        )

    def action(self, user: str, action: str, **detail: Any) -> None:
        """An operator action (replay...), with who did it."""
        self.record(
            {"kind": "action", "at": time.time(), "node": NODE, "user": user, "action": action}
            | detail
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background and start producing what the buffer holds."""
        self._runner = asyncio.create_task(self._run(), name="journal")

    async def stop(self, grace: float = 2.0) -> None:
        """Send what is buffered within `grace` seconds (the rest is dropped and counted)."""
        self._stopping = True
        self._wake.set()
        runner = self._runner
        if runner is not None:
            with contextlib.suppress(TimeoutError, KafkaError, OSError):
                await asyncio.wait_for(asyncio.shield(runner), grace)
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        if self._buffer:
            self._full.inc(len(self._buffer))
            self._buffer.clear()
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(producer.stop(), grace)

    @property
    def buffered(self) -> int:
        """Records waiting to be produced."""
        return len(self._buffer)

    async def _connect(self) -> AIOKafkaProducer | None:
        cfg = self._config.kafka
        options = {
            **producer_options(cfg),
            "acks": 1,
            "enable_idempotence": False,
            # Diagnostics, not events: the cheapest codec. aiokafka's lz4 is level 9 (high
            # compression) and cost 5% of a busy ingress process; snappy packs a 48 KB record
            # in a twelfth of lz4's time and a third of zstd's (journal_bench.py prints it).
            "compression_type": None if cfg.compression == "none" else "snappy",
            "linger_ms": max(cfg.linger_ms, 20),
            # Room for several packed records per batch: a record that does not fit the
            # open batch would wait for it to be sent (one linger per record).
            "max_batch_size": max(cfg.max_batch_size, 8 * _RECORD_BYTES),
        }
        delay = 0.2
        while True:
            try:
                if cfg.create_topics:
                    await create_topics(cfg, [self.topic])
                producer = AIOKafkaProducer(**options)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                return producer
            except (KafkaError, OSError) as exc:
                if self._stopping:  # never connected: what is buffered is dropped by stop()
                    return None
                log.warning("journal_connect_failed", error=type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _run(self) -> None:
        self._producer = await self._connect()
        if self._producer is None:
            return
        while True:
            if not self._buffer:
                if self._stopping:
                    break
                self._idle = True
                self._wake.clear()
                await self._wake.wait()
                # Let entries gather so that a few dozen share one Kafka record (and one
                # producer call) instead of each request paying for its own.
                if not self._stopping:
                    await asyncio.sleep(_LINGER)
                continue
            await self._send(self._take(1000))
        if self._sending:
            await asyncio.wait(set(self._sending))

    def _take(self, count: int) -> list[bytes]:
        buffer = self._buffer
        return [buffer.popleft() for _ in range(min(count, len(buffer)))]

    async def _send(self, entries: list[bytes]) -> None:
        """Produce entries packed as JSON lines, up to `_RECORD_BYTES` per Kafka record.

        Packing is what keeps the journal cheap: the producer's per-record work (batching,
        partitioning, futures) is paid once per few dozen entries instead of per request.
        """
        lines: list[bytes] = []
        size = 0
        for line in entries:
            lines.append(line)
            size += len(line) + 1
            if size >= _RECORD_BYTES:
                await self._produce(lines)
                lines, size = [], 0
        if lines:
            await self._produce(lines)

    async def _produce(self, lines: list[bytes]) -> None:
        producer = self._producer
        assert producer is not None
        count = len(lines)
        try:
            # Waits only while the producer's own buffer is full (an outage): meanwhile
            # `record` keeps filling, then dropping from, the bounded buffer.
            future = await producer.send(self.topic, b"\n".join(lines))
        except (KafkaError, OSError) as exc:
            self._failed.inc(count)
            log.debug("journal_send_failed", error=type(exc).__name__)
            return
        self._sending.add(future)
        future.add_done_callback(lambda done: self._sent(done, count))

    def _sent(self, future: asyncio.Future[Any], count: int) -> None:
        self._sending.discard(future)
        if future.cancelled() or future.exception() is not None:
            self._failed.inc(count)
        else:
            metrics.JOURNAL_RECORDS.inc(count)
