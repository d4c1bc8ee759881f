"""Delivery workers: consume the delivery queue, POST every task, record every outcome.

The queue is `kafka.delivery_topic`, read by the consumer group `kafka.consumer_group`, so
workers scale across processes and pods. Each record becomes one job, run concurrently:

- Destinations are isolated. Each has its own concurrency limit and circuit breaker, and
  nothing is paused per partition, so a dead receiver's retries never hold back another
  destination's deliveries (tasks of both share partitions: their keys hash together).
- An offset is committed only when every record before it has a recorded outcome:
  delivered, dead-lettered (the `DeadLetter` acked on `kafka.dead_letter_topic`), or
  re-queued (a `DeliveryTask` carrying its attempt count and `not_before`, acked on the
  delivery topic). A crash at any point leaves the task uncommitted: it is delivered again
  (at least once; receivers dedupe on `webhook-id`), never lost.
- A retry waits in memory, holding its partition's commit, for at most `hold_limit`
  seconds; a longer wait (backoff grows to `backoff.max`) is handed back to the queue as a
  re-queued task. So a crash redelivers at most about `hold_limit` of already-delivered
  traffic, and a re-queued task's attempts survive restarts.
- Memory is bounded: past `max_pending` jobs in flight the worker pauses fetching (and
  resumes below 80%). Only a very long, very busy outage gets there.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any

import msgspec
import structlog
import uvloop
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from gateway.config import Config, WebhookDestination
from gateway.destinations.kafka import Producer, client_options
from gateway.destinations.retry import BreakerState, CircuitBreaker, breaker_for, retry_delay
from gateway.destinations.tasks import ENCODER, TASK_DECODER, DeadLetter, DeliveryTask
from gateway.destinations.webhook import AttemptResult, Endpoint, WebhookClient

log = structlog.get_logger("gateway.delivery")

# How often finished offsets are committed (a crash redelivers at most this much more).
COMMIT_INTERVAL = 0.5
# A rebalance waits this long for in-flight requests of revoked partitions (the group's
# rebalance timeout must not expire meanwhile); the rest are redone by the new owner.
REVOKE_WAIT = 3.0
_FETCH_TIMEOUT_MS = 200
_FETCH_MAX_RECORDS = 500
_RESUME_FRACTION = 0.8


@dataclass(eq=False, slots=True)
class Entry:
    """One consumed record's place in its partition; `done` once its outcome is recorded."""

    offset: int
    done: bool = False


class PartitionProgress:
    """Consumed offsets of one partition and the commit point: the first one not yet done."""

    __slots__ = ("_end", "_open", "committed")

    def __init__(self) -> None:
        self._open: deque[Entry] = deque()
        self._end: int | None = None
        self.committed: int | None = None

    def add(self, offset: int) -> Entry:
        """Track a newly consumed offset (offsets arrive in increasing order)."""
        entry = Entry(offset)
        self._open.append(entry)
        self._end = offset + 1
        return entry

    def commit_point(self) -> int | None:
        """The offset to commit: every record before it is done (None: nothing consumed)."""
        while self._open and self._open[0].done:
            self._open.popleft()
        return self._open[0].offset if self._open else self._end


@dataclass(eq=False)
class _Lane:
    """One destination's delivery state: endpoint, concurrency slots, breaker."""

    endpoint: Endpoint
    settings: WebhookDestination
    slots: asyncio.Semaphore
    breaker: CircuitBreaker
    # Set when the current half-open probe has its answer; attempts due meanwhile wait on it.
    probe_done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False, slots=True)
class _Job:
    """One consumed record being worked on."""

    tp: TopicPartition
    entry: Entry
    key: bytes | None
    value: bytes
    task: DeliveryTask | None
    decode_error: str = ""
    busy: bool = False  # a request is in flight or its outcome is being recorded
    released: bool = False  # stop or rebalance: finish what is in flight, start nothing new
    runner: asyncio.Task[None] | None = field(default=None, repr=False)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, workers: DeliveryWorkers) -> None:
        self._workers = workers

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._workers._revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("delivery_partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


class DeliveryWorkers:
    """Consumes the delivery queue and delivers every task at least once (module docstring)."""

    def __init__(
        self,
        config: Config,
        *,
        producer: Producer | None = None,
        consumer_options: Mapping[str, Any] | None = None,
        max_pending: int = 10_000,
        hold_limit: float = 30.0,
        rng: Random | None = None,
    ) -> None:
        self._config = config
        self._lanes = {
            name: _Lane(
                endpoint=Endpoint.of(name, dest),
                settings=dest,
                slots=asyncio.Semaphore(dest.concurrency),
                breaker=breaker_for(dest.backoff.initial, dest.backoff.max, dest.timeout),
            )
            for name, dest in config.webhook_destinations().items()
        }
        self._own_producer = producer is None
        self._producer = producer if producer is not None else Producer(config)
        self._consumer_options = dict(consumer_options or {})
        self._max_pending = max_pending
        self._hold_limit = hold_limit
        self._rng = rng or Random()  # jitter, not cryptography
        self._client = WebhookClient()
        self._jobs: set[_Job] = set()
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._paused = False
        self._grace = self.default_grace()

    @property
    def ready(self) -> bool:
        """True while the workers consume the delivery queue."""
        return self._consumer is not None and not self._stop.is_set()

    def default_grace(self) -> float:
        """Shutdown grace when none is given: the longest destination timeout plus a second."""
        timeouts = [lane.settings.timeout for lane in self._lanes.values()]
        return min(30.0, max(timeouts, default=4.0) + 1.0)

    async def start(self) -> None:
        """Open the HTTP client and start consuming in the background (connects with retries)."""
        await self._client.start()
        if self._own_producer:
            await self._producer.start()
        self._runner = asyncio.create_task(self._run(), name="delivery-workers")

    async def stop(self, grace: float | None = None) -> None:
        """Stop consuming, let in-flight attempts finish within `grace`, commit, flush, close."""
        self._grace = self.default_grace() if grace is None else grace
        self._stop.set()
        runner = self._runner
        if runner is not None and not runner.done():
            if self._consumer is None:  # still connecting: nothing in flight to wait for
                runner.cancel()
            # The runner drains within `grace`; the margin covers the last commit and leaving
            # the group, and the hard limit keeps a wedged broker from blocking shutdown.
            done, _ = await asyncio.wait({runner}, timeout=self._grace + 10.0)
            if not done:
                runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        await self._client.close()
        if self._own_producer:
            await self._producer.stop()

    # -- consuming ------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            while not self._producer.ready:  # outcomes need the producer: no point reading first
                await asyncio.sleep(0.05)
            consumer = AIOKafkaConsumer(**self._options())
            try:
                await consumer.start()
                consumer.subscribe([self._config.kafka.delivery_topic], listener=_Rebalance(self))
                self._consumer = consumer
                log.info("delivery_workers_started", topic=self._config.kafka.delivery_topic)
                await self._consume(consumer)
                await self._drain(consumer, self._grace)
                return
            except (KafkaError, OSError) as exc:
                log.warning("delivery_consumer_failed", error=type(exc).__name__, retry_in=delay)
                await self._abandon(list(self._jobs))
            finally:
                self._consumer = None
                self._progress.clear()
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _options(self) -> dict[str, Any]:
        cfg = self._config.kafka
        return {
            **client_options(cfg),
            "group_id": cfg.consumer_group,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            **self._consumer_options,
        }

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        last_commit = time.monotonic()
        while not self._stop.is_set():
            self._backpressure(consumer)
            room = max(1, min(_FETCH_MAX_RECORDS, self._max_pending - len(self._jobs)))
            batch = await consumer.getmany(timeout_ms=_FETCH_TIMEOUT_MS, max_records=room)
            assigned = consumer.assignment()
            for tp, records in batch.items():
                if (
                    tp not in assigned
                ):  # revoked while the batch was in hand: the new owner reads it
                    continue
                for record in records:
                    self._admit(tp, record)
            if time.monotonic() - last_commit >= COMMIT_INTERVAL:
                await self._commit(consumer)
                last_commit = time.monotonic()

    def _backpressure(self, consumer: AIOKafkaConsumer) -> None:
        # Pausing (rather than not polling) keeps the consumer in its group.
        if len(self._jobs) >= self._max_pending:
            consumer.pause(*consumer.assignment())  # again each round: covers new assignments
            if not self._paused:
                log.warning("delivery_fetch_paused", pending=len(self._jobs))
            self._paused = True
        elif self._paused and len(self._jobs) <= self._max_pending * _RESUME_FRACTION:
            consumer.resume(*consumer.assignment())
            self._paused = False
            log.info("delivery_fetch_resumed", pending=len(self._jobs))

    def _admit(self, tp: TopicPartition, record: Any) -> None:
        progress = self._progress.get(tp)
        if progress is None:
            progress = self._progress[tp] = PartitionProgress()
        value: bytes = record.value or b""
        try:
            task: DeliveryTask | None = TASK_DECODER.decode(value)
            error = ""
        except msgspec.DecodeError as exc:
            task, error = None, str(exc)
        job = _Job(tp, progress.add(record.offset), record.key, value, task, error)
        self._jobs.add(job)
        job.runner = asyncio.create_task(self._deliver(job))
        job.runner.add_done_callback(lambda runner: self._finished(job, runner))

    def _finished(self, job: _Job, runner: asyncio.Task[None]) -> None:
        self._jobs.discard(job)
        if not runner.cancelled() and runner.exception() is not None:
            # A bug, not a delivery failure: the record stays uncommitted (redelivered after
            # a restart) rather than being dropped.
            log.error(
                "delivery_job_crashed", error=repr(runner.exception()), offset=job.entry.offset
            )

    async def _commit(
        self, consumer: AIOKafkaConsumer, only: set[TopicPartition] | None = None
    ) -> None:
        assigned = consumer.assignment()
        offsets: dict[TopicPartition, int] = {}
        for tp, progress in self._progress.items():
            if tp not in assigned or (only is not None and tp not in only):
                continue
            point = progress.commit_point()
            if point is not None and point != progress.committed:
                offsets[tp] = point
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # includes CommitFailedError after a rebalance
            log.warning("delivery_commit_failed", error=type(exc).__name__)
            return
        for tp, point in offsets.items():
            self._progress[tp].committed = point

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        jobs = [job for job in self._jobs if job.tp in revoked]
        await self._settle(jobs, REVOKE_WAIT)
        consumer = self._consumer
        if consumer is not None:
            await self._commit(consumer, only=revoked)
        for tp in revoked:
            self._progress.pop(tp, None)

    async def _drain(self, consumer: AIOKafkaConsumer, grace: float) -> None:
        await self._settle(list(self._jobs), grace)
        await self._commit(consumer)
        log.info("delivery_workers_stopped")

    async def _settle(self, jobs: list[_Job], wait: float) -> None:
        """Let busy jobs finish within `wait`; hand everything else back uncommitted."""
        busy = []
        for job in jobs:
            job.released = True
            if job.busy and job.runner is not None:
                busy.append(job.runner)
        if busy:
            await asyncio.wait(busy, timeout=wait)
        await self._abandon(jobs)

    async def _abandon(self, jobs: list[_Job]) -> None:
        runners = [job.runner for job in jobs if job.runner is not None and not job.runner.done()]
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    # -- delivering -----------------------------------------------------------------------

    async def _deliver(self, job: _Job) -> None:
        task = job.task
        if task is None:
            error = f"undecodable delivery task: {job.decode_error}"
            _log_outcome("", "", 0, None, error, 0.0, "dead_letter")
            await self._dead_letter(job, _undecodable(job), 0, None, error)
            return
        lane = self._lanes.get(task.destination)
        if lane is None:
            error = f"`{task.destination}` is not a configured webhook destination"
            _log_outcome(
                task.destination, task.event_id, task.attempt, None, error, 0.0, "dead_letter"
            )
            await self._dead_letter(job, task, task.attempt, None, error)
            return
        settings = lane.settings
        attempts, not_before = task.attempt, task.not_before
        if attempts >= settings.max_attempts:  # re-queued, then `max_attempts` was lowered
            error = f"max_attempts ({settings.max_attempts}) reached"
            _log_outcome(task.destination, task.event_id, attempts, None, error, 0.0, "dead_letter")
            await self._dead_letter(job, task, attempts, None, error)
            return
        body = bytes(task.body)
        while True:
            wait = not_before - time.time()
            if wait > 0:
                if job.released:  # stopping or revoked: the record stays uncommitted
                    return
                job.busy = False
                if wait > self._hold_limit:
                    await asyncio.sleep(self._hold_limit)
                    job.busy = True
                    await self._requeue(job, task, attempts, not_before)
                    return
                await asyncio.sleep(wait)
            result = await self._attempt(job, lane, task.event_id, body)
            if result is None:
                return
            attempts += 1
            if result.verdict == "success":
                _log_result(task, attempts, result, "delivered")
                job.entry.done = True
                return
            if result.verdict == "permanent" or attempts >= settings.max_attempts:
                _log_result(task, attempts, result, "dead_letter")
                await self._dead_letter(job, task, attempts, result.status, result.error)
                return
            backoff = settings.backoff
            delay = retry_delay(
                attempts, backoff.initial, backoff.max, result.retry_after, self._rng
            )
            _log_result(task, attempts, result, "retry", retry_in=round(delay, 3))
            not_before = time.time() + delay

    async def _attempt(
        self, job: _Job, lane: _Lane, event_id: str, body: bytes
    ) -> AttemptResult | None:
        """One attempt through the destination's slots and breaker; None: released, not sent.

        While the breaker is open an attempt fails without being sent (so a task's schedule
        and its dead-letter deadline are those it would have had anyway, minus the load);
        while its half-open probe is out, attempts wait for the probe's answer.
        """
        breaker = lane.breaker
        while True:
            await lane.slots.acquire()
            if job.released:
                lane.slots.release()
                return None
            if breaker.allow(time.monotonic()):
                break  # keeping the slot
            lane.slots.release()
            if breaker.state is BreakerState.OPEN:
                return AttemptResult(
                    "retry", None, "circuit open: receiver keeps failing; not sent"
                )
            await lane.probe_done.wait()
        probe = breaker.state is BreakerState.HALF_OPEN
        if probe:
            lane.probe_done = asyncio.Event()
        job.busy = True
        try:
            result = await self._client.send(lane.endpoint, event_id, body, time.time())
        except BaseException:
            if probe:  # cancelled mid-probe: the next attempt may probe instead
                breaker.release_probe()
                lane.probe_done.set()
            raise
        finally:
            lane.slots.release()
        if result.verdict == "retry":
            breaker.record_failure(time.monotonic())
        else:  # delivered, or refused for good: either way the receiver is up
            breaker.record_success()
        if probe:
            lane.probe_done.set()
        return result

    async def _dead_letter(
        self, job: _Job, task: DeliveryTask, attempts: int, status: int | None, error: str
    ) -> None:
        job.busy = True
        letter = DeadLetter(
            destination=task.destination,
            event_id=task.event_id,
            enqueued_at=task.enqueued_at,
            failed_at=time.time(),
            attempts=attempts,
            last_status=status,
            last_error=error,
            body=task.body,
        )
        await self._produce(self._config.kafka.dead_letter_topic, ENCODER.encode(letter), job.key)
        job.entry.done = True

    async def _requeue(
        self, job: _Job, task: DeliveryTask, attempts: int, not_before: float
    ) -> None:
        again = msgspec.structs.replace(task, attempt=attempts, not_before=not_before)
        await self._produce(self._config.kafka.delivery_topic, ENCODER.encode(again), job.key)
        log.debug(
            "delivery_requeued",
            destination=task.destination,
            event_id=task.event_id,
            attempt=attempts,
            next_attempt_in=round(not_before - time.time(), 3),
        )
        job.entry.done = True

    async def _produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        """Produce and wait for the ack, retrying until the broker takes it (or we are cancelled)."""
        delay = 0.1
        while True:
            try:
                await self._producer.send(topic, value, key=key)
                return
            except KafkaError as exc:
                log.warning(
                    "delivery_record_failed", topic=topic, error=type(exc).__name__, retry_in=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _undecodable(job: _Job) -> DeliveryTask:
    """A stand-in task for a record that is not a DeliveryTask, so it can be dead-lettered."""
    original = job.value.decode("utf-8", errors="replace")
    return DeliveryTask(
        destination="", event_id="", enqueued_at=0.0, body=msgspec.Raw(ENCODER.encode(original))
    )


def _log_result(
    task: DeliveryTask, attempt: int, result: AttemptResult, outcome: str, **extra: Any
) -> None:
    _log_outcome(
        task.destination,
        task.event_id,
        attempt,
        result.status,
        result.error,
        result.duration,
        outcome,
        replayed=task.replayed,
        **extra,
    )


def _log_outcome(
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
    emit = log.info if outcome == "delivered" else log.warning
    if error:
        extra["error"] = error
    if not extra.get("replayed", True):
        del extra["replayed"]
    emit(
        "delivery",
        destination=destination,
        event_id=event_id,
        attempt=attempt,
        status=status,
        outcome=outcome,
        duration_ms=round(duration * 1000, 1),
        **extra,
    )


def main(config: Config, *, consumer_options: Mapping[str, Any] | None = None) -> int:
    """`gateway worker`: run delivery workers until SIGTERM/SIGINT; 1 if they stop on their own."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(config, consumer_options))


async def _serve(config: Config, consumer_options: Mapping[str, Any] | None) -> int:
    workers = DeliveryWorkers(config, consumer_options=consumer_options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await workers.start()
    assert workers._runner is not None
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stopping, workers._runner}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    crashed = workers._runner in done
    if crashed and not workers._runner.cancelled() and workers._runner.exception() is not None:
        log.error("delivery_workers_crashed", error=repr(workers._runner.exception()))
    await workers.stop()
    return 1 if crashed else 0
