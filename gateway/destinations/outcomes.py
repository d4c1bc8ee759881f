"""Recording outcomes: the one log line per outcome, dead letters, and acked hand-offs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import structlog
from aiokafka.errors import KafkaError

from gateway import metrics
from gateway.config import Config
from gateway.destinations.kafka import Producer
from gateway.destinations.lanes import Job, Lane
from gateway.destinations.tasks import ENCODER, DeadLetter, DeliveryTask
from gateway.destinations.webhook import AttemptResult
from gateway.journal import Attempt, Journal

log = structlog.get_logger("gateway.delivery")

# Dead letters of records no configured destination can take share one label value, so a
# queue full of stale names cannot blow up the metric's cardinality.
_UNCONFIGURED = "(unconfigured)"


class Outcomes:
    """Writes what became of each delivery: log lines, dead letters, delay-topic copies."""

    def __init__(self, config: Config, producer: Producer, journal: Journal | None = None) -> None:
        self._config = config
        self._producer = producer
        self._journal = journal  # the console's journal: every outcome, fire and forget
        # A concrete logger of the configuration in force now: the module's lazy proxy
        # re-binds on every call, a measurable cost at thousands of outcome lines a second.
        self.log = log.bind()

    async def produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        """Produce and wait for the ack, retrying until the broker takes it (or cancelled)."""
        delay = 0.1
        while True:
            try:
                await self._producer.send(topic, value, key=key)
                return
            except KafkaError as exc:  # includes "not connected yet"
                self.log.warning(
                    "delivery_record_failed", topic=topic, error=type(exc).__name__, retry_in=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def dead_letter(
        self, job: Job, task: DeliveryTask, status: int | None, error: str, lane: Lane | None
    ) -> None:
        """Write the dead letter and wait for its ack (the caller then marks the job done)."""
        letter = DeadLetter(
            destination=task.destination,
            event_id=task.event_id,
            enqueued_at=task.enqueued_at,
            failed_at=time.time(),
            attempts=job.attempts,
            last_status=status,
            last_error=error,
            body=task.body,
        )
        await self.produce(self._config.kafka.dead_letter_topic, ENCODER.encode(letter), job.key)
        if lane is not None:
            lane.outcomes["dead_letter"].inc()
            lane.dead_lettered.inc()
        else:
            metrics.DELIVERIES.labels(_UNCONFIGURED, "dead_letter").inc()
            metrics.DEAD_LETTERED.labels(_UNCONFIGURED).inc()

    async def delay(self, job: Job, task: DeliveryTask, topic: str) -> None:
        """Write the job, with its attempt count and due time, to a delay tier's topic."""
        again = msgspec.structs.replace(task, attempt=job.attempts, not_before=job.not_before)
        await self.produce(topic, ENCODER.encode(again), job.key)
        self.log.debug(
            "delivery_delayed",
            destination=task.destination,
            event_id=task.event_id,
            attempt=job.attempts,
            topic=topic,
            next_attempt_in=round(job.not_before - time.time(), 3),
        )

    def result(
        self, task: DeliveryTask, attempt: int, result: AttemptResult, outcome: str, **extra: Any
    ) -> None:
        """The outcome line of one real attempt."""
        if task.replayed:
            extra["replayed"] = True
        self.outcome(
            task.destination,
            task.event_id,
            attempt,
            result.status,
            result.error,
            result.duration,
            outcome,
            **extra,
        )

    def outcome(
        self,
        destination: str,
        event_id: str,
        attempt: int,
        status: int | None,
        error: str,
        duration: float,
        outcome: str,
        **extra: Any,
    ) -> None:
        """The one log line per delivery outcome (never the body, a secret or a signature)."""
        record = Attempt(destination, event_id, attempt, status, error, duration, outcome)
        if self._journal is not None:  # fire and forget: never awaited
            self._journal.attempt(record, extra.get("retry_in"), bool(extra.get("replayed")))
        if error:
            extra["error"] = error
        emit = self.log.info if outcome == "delivered" else self.log.warning
        emit("delivery", **record.fields(), **extra)
