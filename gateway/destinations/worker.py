"""Delivery workers: consume the delivery queue, POST every task, record every outcome.

The queue is `kafka.delivery_topic`, read by the consumer group `kafka.consumer_group`, so
workers scale across processes and pods. Every consumed record becomes a job:

- Destinations are isolated. Each has its own lane: a queue of due jobs served by at most
  `concurrency` runners, and its own circuit breaker. Nothing is paused per partition, so
  a dead receiver's retries never hold back another destination's deliveries (tasks of
  both share partitions: their keys hash together).
- An offset is committed only when every record before it has a recorded outcome:
  delivered, dead-lettered (the `DeadLetter` acked on `kafka.dead_letter_topic`), or
  re-queued (a `DeliveryTask` carrying its attempt count and `not_before`, acked on the
  delivery topic). A crash at any point leaves the task uncommitted: it is delivered again
  (at least once; receivers dedupe on `webhook-id`), never lost.
- A retry waits in memory on a timer, holding its partition's commit, for at most
  `hold_limit` seconds; a longer wait (backoff grows to `backoff.max`) is handed back to
  the queue as a re-queued task. So a crash redelivers at most about `hold_limit` of
  already-delivered traffic, and a re-queued task's attempt count survives restarts.
- Memory is bounded: past `max_pending` jobs in hand the worker pauses fetching (and
  resumes below 80%). Only a very long, very busy outage gets there.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
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

from gateway import metrics, tracing
from gateway.config import Config, WebhookDestination
from gateway.destinations.kafka import Producer, client_options
from gateway.destinations.retry import BreakerState, breaker_for, retry_delay
from gateway.destinations.tasks import ENCODER, TASK_DECODER, DeadLetter, DeliveryTask
from gateway.destinations.webhook import AttemptResult, Endpoint, WebhookClient
from gateway.journal import Journal

log = structlog.get_logger("gateway.delivery")

# How often finished offsets are committed (a crash redelivers at most this much more).
COMMIT_INTERVAL = 0.5
# A rebalance waits this long for in-flight requests of revoked partitions (the group's
# rebalance timeout must not expire meanwhile); the rest are redone by the new owner.
REVOKE_WAIT = 3.0
_FETCH_TIMEOUT_MS = 200
_FETCH_MAX_RECORDS = 500
_RESUME_FRACTION = 0.8
_CIRCUIT_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
# Dead letters of records no configured destination can take share one label value, so a
# queue full of stale names cannot blow up the metric's cardinality.
_UNCONFIGURED = "(unconfigured)"


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


@dataclass(eq=False, slots=True)
class _Job:
    """One consumed record being worked on."""

    tp: TopicPartition
    entry: Entry
    key: bytes | None
    value: bytes
    task: DeliveryTask | None
    decode_error: str = ""
    attempts: int = 0  # attempts made so far, across re-queues
    not_before: float = 0.0  # wall-clock time of the next attempt
    busy: bool = False  # a request is in flight or its outcome is being recorded
    released: bool = False  # stop or rebalance: finish what is in flight, start nothing new
    hand_back: bool = False  # held for `hold_limit`: re-queue it rather than keep holding
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    runner: asyncio.Task[None] | None = field(default=None, repr=False)
    settled: asyncio.Future[None] | None = field(default=None, repr=False)


class _Lane:
    """One destination: its endpoint, breaker, due jobs, and up to `concurrency` runners."""

    def __init__(self, name: str, settings: WebhookDestination) -> None:
        self.name = name
        self.settings = settings
        self.endpoint = Endpoint.of(name, settings)
        self.breaker = breaker_for(settings.backoff.initial, settings.backoff.max, settings.timeout)
        self.ready: deque[_Job] = deque()
        self.runners: set[asyncio.Task[None]] = set()
        # Set when the current half-open probe has its answer; attempts due meanwhile wait.
        self.probe_done = asyncio.Event()
        # Metric children resolved once: outcomes are counted thousands of times a second.
        self.outcomes = {
            outcome: metrics.DELIVERIES.labels(name, outcome)
            for outcome in ("delivered", "retry", "dead_letter", "requeued")
        }
        self.latency = metrics.DELIVERY_ATTEMPT_LATENCY.labels(name)
        self.dead_lettered = metrics.DEAD_LETTERED.labels(name)
        self.circuit = metrics.CIRCUIT_STATE.labels(name)
        self.circuit.set(0)

    def breaker_changed(self) -> None:
        """Publish the breaker's state (0 closed, 1 half-open, 2 open)."""
        self.circuit.set(_CIRCUIT_VALUE[self.breaker.state])


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
        journal: Journal | None = None,
    ) -> None:
        self._config = config
        # The process's journal (shared with the ingress), or our own when we run alone.
        self._own_journal = journal is None and config.kafka.journal_topic is not None
        self._journal = Journal(config) if self._own_journal else journal
        self._lanes = {
            name: _Lane(name, dest) for name, dest in config.webhook_destinations().items()
        }
        self._own_producer = producer is None
        self._producer = producer if producer is not None else Producer(config)
        self._consumer_options = dict(consumer_options or {})
        self._max_pending = max_pending
        self._hold_limit = hold_limit
        self._rng = rng or Random()  # jitter, not cryptography
        self._client = WebhookClient()
        self._jobs: set[_Job] = set()
        self._orphans: set[asyncio.Task[None]] = set()
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._paused = False
        self._grace = self.default_grace()
        # A concrete logger of the configuration in force now: the module's lazy proxy
        # re-binds on every call, a measurable cost at thousands of outcome lines a second.
        self._log = log.bind()

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
        if self._own_journal and self._journal is not None:
            await self._journal.start()
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
        if self._own_journal and self._journal is not None:
            await self._journal.stop()
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
                await self._settle(list(self._jobs), self._grace)
                await self._commit(consumer)
                log.info("delivery_workers_stopped")
                return
            except (KafkaError, OSError) as exc:
                log.warning("delivery_consumer_failed", error=type(exc).__name__, retry_in=delay)
                await self._settle(list(self._jobs), 0.0)
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
            "session_timeout_ms": int(cfg.session_timeout * 1000),
            "heartbeat_interval_ms": int(cfg.heartbeat_interval * 1000),
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
                if tp in assigned:  # else revoked while the batch was in hand: not ours now
                    for record in records:
                        self._admit(tp, record)
            if time.monotonic() - last_commit >= COMMIT_INTERVAL:
                await self._commit(consumer)
                await self._measure_lag(consumer)
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
        lane = self._lanes.get(task.destination) if task is not None else None
        if task is None or lane is None:
            job.busy = True
            orphan = asyncio.create_task(self._orphan(job))
            job.runner = orphan
            self._orphans.add(orphan)
            orphan.add_done_callback(self._orphans.discard)
            return
        job.attempts, job.not_before = task.attempt, task.not_before
        self._schedule(lane, job)

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

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        await self._settle([job for job in self._jobs if job.tp in revoked], REVOKE_WAIT)
        consumer = self._consumer
        if consumer is not None:
            await self._commit(consumer, only=revoked)
        for tp in revoked:
            self._progress.pop(tp, None)

    async def _settle(self, jobs: list[_Job], wait: float) -> None:
        """Let busy jobs finish within `wait`; hand everything else back uncommitted."""
        loop = asyncio.get_running_loop()
        settling: list[asyncio.Future[None]] = []
        for job in jobs:
            job.released = True
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
            if job.busy:
                job.settled = loop.create_future()
                settling.append(job.settled)
            else:
                self._jobs.discard(job)  # a runner that meets it in a lane queue skips it
        if settling and wait > 0:
            await asyncio.wait(settling, timeout=wait)
        late = {job.runner for job in jobs if job.busy and job.runner is not None}
        for runner in late:
            runner.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        for job in jobs:
            self._jobs.discard(job)

    # -- delivering -----------------------------------------------------------------------

    def _schedule(self, lane: _Lane, job: _Job) -> None:
        """Queue the job now if it is due, else on a timer; past `hold_limit`, hand it back."""
        wait = job.not_before - time.time()
        if wait <= 0:
            self._enqueue(lane, job)
            return
        loop = asyncio.get_running_loop()
        if wait > self._hold_limit:
            job.hand_back = True
            job.timer = loop.call_later(self._hold_limit, self._enqueue, lane, job)
        else:
            # uvloop's timers have millisecond resolution: never fire before `not_before`.
            job.timer = loop.call_later(wait + 0.001, self._enqueue, lane, job)

    def _enqueue(self, lane: _Lane, job: _Job) -> None:
        job.timer = None
        lane.ready.append(job)
        self._add_runner(lane)

    def _add_runner(self, lane: _Lane) -> None:
        if len(lane.runners) < lane.settings.concurrency:
            runner = asyncio.create_task(self._serve_lane(lane))
            lane.runners.add(runner)
            runner.add_done_callback(lambda done: self._runner_done(lane, done))

    def _runner_done(self, lane: _Lane, runner: asyncio.Task[None]) -> None:
        lane.runners.discard(runner)
        if not runner.cancelled() and runner.exception() is not None:
            # A bug, not a delivery failure: the job's record stays uncommitted (redelivered
            # after a restart) rather than being dropped.
            log.error(
                "delivery_runner_crashed", destination=lane.name, error=repr(runner.exception())
            )
        if lane.ready and not self._stop.is_set():  # a cancelled runner left work behind
            self._add_runner(lane)

    async def _serve_lane(self, lane: _Lane) -> None:
        """A runner: take due jobs of one destination, one step each, until none is left."""
        while lane.ready:
            job = lane.ready.popleft()
            if job.released:
                continue
            job.busy = True
            job.runner = asyncio.current_task()
            try:
                await self._step(lane, job)
            finally:
                job.busy = False
                if job.settled is not None and not job.settled.done():
                    job.settled.set_result(None)

    async def _step(self, lane: _Lane, job: _Job) -> None:
        """One step of a due job: an attempt and its outcome, or a hand-back to the queue."""
        task = job.task
        assert task is not None
        settings = lane.settings
        if job.attempts >= settings.max_attempts:  # re-queued, then `max_attempts` was lowered
            error = f"max_attempts ({settings.max_attempts}) reached"
            self._outcome(
                task.destination, task.event_id, job.attempts, None, error, 0.0, "dead_letter"
            )
            await self._dead_letter(job, task, None, error, lane)
            return
        if job.hand_back:
            await self._requeue(job, task, lane)
            return
        if tracing.enabled():
            parent = {"traceparent": task.traceparent} if task.traceparent else None
            attributes = {
                "gateway.destination": task.destination,
                "gateway.event_id": task.event_id,
            }
            with tracing.span("webhook.delivery", attributes, parent) as span:
                result = await self._attempt(lane, job, task.event_id, bytes(task.body))
                if result is not None:
                    span.set_attribute("gateway.verdict", result.verdict)
                    if result.status is not None:
                        span.set_attribute("http.response.status_code", result.status)
        else:
            result = await self._attempt(lane, job, task.event_id, bytes(task.body))
        if result is None:
            return
        job.attempts += 1
        if result.verdict == "success":
            self._result(task, job.attempts, result, "delivered")
            lane.outcomes["delivered"].inc()
            self._done(job)
        elif result.verdict == "permanent" or job.attempts >= settings.max_attempts:
            self._result(task, job.attempts, result, "dead_letter")
            await self._dead_letter(job, task, result.status, result.error, lane)
        else:
            lane.outcomes["retry"].inc()
            backoff = settings.backoff
            delay = retry_delay(
                job.attempts, backoff.initial, backoff.max, result.retry_after, self._rng
            )
            self._result(task, job.attempts, result, "retry", retry_in=round(delay, 3))
            job.not_before = time.time() + delay
            if job.released:  # stopping or revoked: the record stays uncommitted
                self._jobs.discard(job)
            else:
                self._schedule(lane, job)

    async def _attempt(
        self, lane: _Lane, job: _Job, event_id: str, body: bytes
    ) -> AttemptResult | None:
        """One attempt through the destination's breaker; None: released before sending.

        While the breaker is open an attempt fails without being sent (so a task's schedule
        and its dead-letter deadline are those it would have had anyway, minus the load);
        while its half-open probe is out, attempts wait for the probe's answer.
        """
        breaker = lane.breaker
        while not breaker.allow(time.monotonic()):
            if breaker.state is BreakerState.OPEN:
                return AttemptResult(
                    "retry", None, "circuit open: receiver keeps failing; not sent"
                )
            await lane.probe_done.wait()
            if job.released:
                return None
        probe = breaker.state is BreakerState.HALF_OPEN
        if probe:
            lane.probe_done = asyncio.Event()
            lane.breaker_changed()
        try:
            result = await self._client.send(lane.endpoint, event_id, body, time.time())
        except BaseException:
            if probe:  # cancelled mid-probe: the next attempt may probe instead
                breaker.release_probe()
                lane.probe_done.set()
            raise
        state = breaker.state
        if result.verdict == "retry":
            breaker.record_failure(time.monotonic())
        else:  # delivered, or refused for good: either way the receiver is up
            breaker.record_success()
        if breaker.state is not state:
            lane.breaker_changed()
        if probe:
            lane.probe_done.set()
        lane.latency.observe(result.duration)
        return result

    async def _orphan(self, job: _Job) -> None:
        """Dead-letter a record that cannot be delivered: undecodable, or no such destination."""
        try:
            task = job.task
            if task is None:
                task = _undecodable(job)
                error = f"undecodable delivery task: {job.decode_error}"
            else:
                job.attempts = task.attempt
                error = f"`{task.destination}` is not a configured webhook destination"
            self._outcome(
                task.destination, task.event_id, job.attempts, None, error, 0.0, "dead_letter"
            )
            await self._dead_letter(job, task, None, error, None)
        finally:
            job.busy = False
            if job.settled is not None and not job.settled.done():
                job.settled.set_result(None)

    def _done(self, job: _Job) -> None:
        job.entry.done = True
        self._jobs.discard(job)

    async def _dead_letter(
        self, job: _Job, task: DeliveryTask, status: int | None, error: str, lane: _Lane | None
    ) -> None:
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
        await self._produce(self._config.kafka.dead_letter_topic, ENCODER.encode(letter), job.key)
        self._done(job)
        if lane is not None:
            lane.outcomes["dead_letter"].inc()
            lane.dead_lettered.inc()
        else:
            metrics.DELIVERIES.labels(_UNCONFIGURED, "dead_letter").inc()
            metrics.DEAD_LETTERED.labels(_UNCONFIGURED).inc()

    async def _requeue(self, job: _Job, task: DeliveryTask, lane: _Lane) -> None:
        again = msgspec.structs.replace(task, attempt=job.attempts, not_before=job.not_before)
        await self._produce(self._config.kafka.delivery_topic, ENCODER.encode(again), job.key)
        log.debug(
            "delivery_requeued",
            destination=task.destination,
            event_id=task.event_id,
            attempt=job.attempts,
            next_attempt_in=round(job.not_before - time.time(), 3),
        )
        self._done(job)
        lane.outcomes["requeued"].inc()

    async def _produce(self, topic: str, value: bytes, key: bytes | None) -> None:
        """Produce and wait for the ack, retrying until the broker takes it (or cancelled)."""
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

    def _result(
        self, task: DeliveryTask, attempt: int, result: AttemptResult, outcome: str, **extra: Any
    ) -> None:
        if task.replayed:
            extra["replayed"] = True
        self._outcome(
            task.destination,
            task.event_id,
            attempt,
            result.status,
            result.error,
            result.duration,
            outcome,
            **extra,
        )

    def _outcome(
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
        if self._journal is not None:  # fire and forget: never awaited
            self._journal.attempt(
                destination,
                event_id,
                attempt,
                status,
                error,
                duration,
                outcome,
                extra.get("retry_in"),
                bool(extra.get("replayed")),
            )
        if error:
            extra["error"] = error
        emit = self._log.info if outcome == "delivered" else self._log.warning
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


def _undecodable(job: _Job) -> DeliveryTask:
    """A stand-in task for a record that is not a DeliveryTask, so it can be dead-lettered."""
    original = job.value.decode("utf-8", errors="replace")
    return DeliveryTask(
        destination="", event_id="", enqueued_at=0.0, body=msgspec.Raw(ENCODER.encode(original))
    )


def main(config: Config, *, consumer_options: Mapping[str, Any] | None = None) -> int:
    """`gateway worker`: run delivery workers until SIGTERM/SIGINT; 1 if they stop on their own."""
    # Start-up objects (modules, config) never die: keep them out of every GC pass.
    gc.freeze()
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
