"""Delivery workers: consume the delivery queue, POST every task, record every outcome.

The queue is `kafka.delivery_topic` plus its delay tiers (`delays.py`), read by the
consumer group `kafka.consumer_group`, so workers scale across processes and pods. Every
consumed record becomes a job; this module is the steps of a job, from admission to its
recorded outcome. The pieces it works with live beside it:

- `consumer.py`: the consumer loop (group membership, fetching, delay-tier ripeness,
  backpressure, commits, rebalances); it hands records to `DeliveryWorkers.admit`.
- `lanes.py`: one lane per destination, so destinations are isolated (a dead receiver's
  retries never hold back another destination; tasks of both share partitions). A lane
  has its own concurrency limit, circuit breaker, `rate_limit`, pause and `ordering: key`.
- `offsets.py`: an offset is committed only when every record before it has a recorded
  outcome: delivered, dead-lettered, or handed to a delay tier (acked there). A crash at
  any point leaves the task uncommitted: delivered again (at least once; receivers dedupe
  on `webhook-id`), never lost. What is done behind a record that still waits is saved
  in the state store, so the partition's next owner skips it instead of re-sending it.
- `delays.py`: a retry waiting longer than the shortest tier is written to a delay topic
  instead of waiting in memory, so it never pins the commit point of finished deliveries
  and costs a bounded number of writes. Shorter waits are timers in memory.
- `outcomes.py`: the outcome log lines, dead letters and delay-topic copies.
- `control.py`: pause/resume from the compacted control topic, fleet-wide.

Only a real request is an attempt: while a destination's circuit is open, or it is over
its rate limit, or paused, its deliveries wait uncharged. Memory is bounded: past
`max_pending` jobs in hand the worker pauses fetching (and resumes below 80%).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping
from random import Random
from typing import Any

import msgspec
import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from gateway import state, tracing
from gateway.config import Config
from gateway.destinations.consumer import QueueConsumer
from gateway.destinations.control import Circuit, ControlFollower, circuit_key
from gateway.destinations.delays import pick_tier, tier_topics
from gateway.destinations.kafka import Producer
from gateway.destinations.lanes import Job, Lane
from gateway.destinations.offsets import PartitionProgress
from gateway.destinations.outcomes import Outcomes
from gateway.destinations.retry import BreakerState, retry_delay
from gateway.destinations.tasks import ENCODER, TASK_DECODER, DeliveryTask
from gateway.destinations.webhook import AttemptResult, WebhookClient
from gateway.journal import Journal

log = structlog.get_logger("gateway.delivery")

# What `_attempt` returns while the circuit is open: nothing was sent, nothing is charged.
_NOT_SENT = AttemptResult("retry", None, "circuit open: not sent")


class DeliveryWorkers:
    """Consumes the delivery queue and delivers every task at least once (module docstring)."""

    def __init__(
        self,
        config: Config,
        *,
        producer: Producer | None = None,
        consumer_options: Mapping[str, Any] | None = None,
        max_pending: int = 10_000,
        hold_limit: float | None = None,
        rng: Random | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._config = config
        # The process's journal (shared with the ingress), or our own when we run alone.
        self._own_journal = journal is None and config.kafka.journal_topic is not None
        self._journal = Journal(config) if self._own_journal else journal
        self._lanes = {
            name: Lane(name, dest) for name, dest in config.webhook_destinations().items()
        }
        self._own_producer = producer is None
        self._producer = producer if producer is not None else Producer(config)
        self._outcomes = Outcomes(config, self._producer, self._journal)
        self._max_pending = max_pending
        self._tiers = tier_topics(config.kafka)  # topic -> seconds
        self._tier_by_seconds = {seconds: topic for topic, seconds in self._tiers.items()}
        # Waits up to the shortest tier are timers in memory; longer ones go to a tier.
        self._hold_limit = (
            min(self._tiers.values(), default=30.0) if hold_limit is None else hold_limit
        )
        self._rng = rng or Random()  # jitter, not cryptography
        self._client = WebhookClient()
        self._jobs: set[Job] = set()
        self._side: set[asyncio.Task[None]] = set()  # dead-lettering orphans, delay hand-offs
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._grace = self.default_grace()
        self._log = self._outcomes.log
        self._control = ControlFollower(config, self.set_paused)
        # Rate limits, and what is done past held-back commit points (`offsets.py`); no
        # dedupe table here, so the memory store's is sized small.
        self._store = state.open_store(config.state, max_entries=1024)
        self._queue = QueueConsumer(
            config,
            self,
            self._tiers,
            self._stop,
            max_pending=max_pending,
            options=consumer_options,
            store=self._store,
        )
        self._rate_prefix = config.state.key_prefix + "rate:"
        self._worker_name = f"{socket.gethostname()}-{os.getpid()}"
        self._published: set[bytes] = set()  # circuit keys this process wrote

    @property
    def ready(self) -> bool:
        """True while the workers consume the delivery queue."""
        return self._queue.consuming and not self._stop.is_set()

    @property
    def consumer_task(self) -> asyncio.Task[None] | None:
        """The consumer loop once started; done when it ends, by `stop` or on its own (a crash)."""
        return self._runner

    @property
    def lanes(self) -> Mapping[str, Lane]:
        """The destinations' lanes, by name."""
        return self._lanes

    def default_grace(self) -> float:
        """Shutdown grace when none is given: the longest destination timeout plus a second."""
        timeouts = [lane.settings.timeout for lane in self._lanes.values()]
        return min(30.0, max(timeouts, default=4.0) + 1.0)

    async def start(self) -> None:
        """Open the HTTP client and start consuming in the background (connects with retries)."""
        await self._client.start()
        session = self._config.kafka.session_timeout
        if session < self.revoke_wait():
            # Brokers that end a rebalance after the session timeout (tansu does; Kafka
            # honours `rebalance_timeout_ms`) then re-send what finished behind a slow request.
            log.warning(
                "delivery_session_timeout_short",
                session_timeout=session,
                revoke_wait=self.revoke_wait(),
                hint="kafka.session_timeout >= the longest destination timeout + 1s",
            )
        limited = sorted(name for name, lane in self._lanes.items() if lane.rate is not None)
        if limited and self._config.state.backend == "memory":
            log.warning(
                "delivery_rate_limit_per_process",
                destinations=limited,
                hint="state.backend: redis makes rate limits fleet-wide",
            )
        if self._own_producer:
            await self._producer.start()
        await self._control.start()
        if self._own_journal and self._journal is not None:
            await self._journal.start()
        self._runner = asyncio.create_task(self._queue.run(), name="delivery-workers")

    async def stop(self, grace: float | None = None) -> None:
        """Stop consuming, let in-flight attempts finish within `grace`, commit, flush, close."""
        self._grace = self.default_grace() if grace is None else grace
        self._stop.set()
        runner = self._runner
        if runner is not None and not runner.done():
            if not self._queue.consuming:  # still connecting: nothing in flight to wait for
                runner.cancel()
            # The runner drains within `grace`; the margin covers the last commit and leaving
            # the group, and the hard limit keeps a wedged broker from blocking shutdown.
            done, _ = await asyncio.wait({runner}, timeout=self._grace + 10.0)
            if not done:
                runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        await self._control.stop()
        await self._unpublish_circuits()
        await self._store.close()
        await self._client.close()
        if self._own_journal and self._journal is not None:
            await self._journal.stop()
        if self._own_producer:
            await self._producer.stop()

    def set_paused(self, name: str, paused: bool) -> None:
        """Pause or resume one destination in this process (the control topic calls this)."""
        lane = self._lanes.get(name)
        if lane is None or lane.paused == paused:
            return
        lane.set_paused(paused)
        self._log.warning(
            "destination_paused" if paused else "destination_resumed", destination=name
        )
        if not paused:
            self._add_runner(lane)

    # -- what the queue consumer drives (consumer.Delivery) -------------------------------

    def pending(self) -> int:
        """Jobs in hand (consumed, no outcome yet)."""
        return len(self._jobs)

    def grace(self) -> float:
        """How long the current stop waits for in-flight requests."""
        return self._grace

    async def wait_until_ready(self) -> None:
        """Outcomes need the producer, and a paused destination must not deliver between
        a restart and reading its pause: wait for both (or a stop)."""
        while not self._producer.ready and not self._stop.is_set():
            await asyncio.sleep(0.05)
        while not self._control.caught_up.is_set() and not self._stop.is_set():
            await asyncio.sleep(0.05)

    async def release(self, tps: set[TopicPartition] | None, wait: float) -> tuple[int, int]:
        """Let in-flight jobs of `tps` (None: all) finish within `wait`; hand back the rest."""
        jobs = [job for job in self._jobs if tps is None or job.tp in tps]
        busy = sum(1 for job in jobs if job.busy)
        await self._settle(jobs, wait)
        return busy, len(jobs) - busy

    def revoke_wait(self) -> float:
        """How long a rebalance waits for in-flight requests: the longest timeout, plus 1 s."""
        timeouts = [lane.settings.timeout for lane in self._lanes.values()]
        return max(timeouts, default=4.0) + 1.0

    def admit(self, tp: TopicPartition, progress: PartitionProgress, record: Any) -> None:
        """Turn one consumed record into a job: scheduled, queued behind its key, or orphaned."""
        value: bytes = record.value or b""
        try:
            task: DeliveryTask | None = TASK_DECODER.decode(value)
            error = ""
        except msgspec.DecodeError as exc:
            task, error = None, str(exc)
        entry = progress.add(record.offset, record.timestamp or 0)
        job = Job(tp, entry, record.key, value, task, error)
        self._jobs.add(job)
        lane = self._lanes.get(task.destination) if task is not None else None
        if task is None or lane is None:
            self._side_task(job, self._orphan(job))
            return
        job.attempts, job.not_before = task.attempt, task.not_before
        if lane.join(job):
            self._schedule(lane, job)

    def _side_task(self, job: Job, work: Any) -> None:
        job.busy = True
        task = asyncio.create_task(work)
        job.runner = task
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def _settle(self, jobs: list[Job], wait: float) -> None:
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
        released = set(jobs)
        for lane in self._lanes.values():
            lane.forget(released)
        if settling and wait > 0:
            await asyncio.wait(settling, timeout=wait)
        late = {job.runner for job in jobs if job.busy and job.runner is not None}
        for runner in late:
            runner.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        for job in jobs:
            self._jobs.discard(job)

    # -- delivering -----------------------------------------------------------------------

    def _schedule(self, lane: Lane, job: Job) -> None:
        """Queue the job now if due, else on a timer; a long wait goes to a delay tier."""
        wait = job.not_before - time.time()
        if wait <= 0:
            self._enqueue(lane, job)
            return
        if wait > self._hold_limit and not lane.ordered:
            tier = pick_tier(wait, list(self._tiers.values()))
            if tier is not None:
                self._side_task(job, self._hand_to_tier(lane, job, self._tier_by_seconds[tier]))
                return
        # uvloop's timers have millisecond resolution: never fire before `not_before`.
        job.timer = asyncio.get_running_loop().call_later(wait + 0.001, self._enqueue, lane, job)

    def _enqueue(self, lane: Lane, job: Job) -> None:
        job.timer = None
        lane.ready.append(job)
        self._add_runner(lane)

    def _add_runner(self, lane: Lane) -> None:
        while lane.ready and not lane.paused and len(lane.runners) < lane.settings.concurrency:
            runner = asyncio.create_task(self._serve_lane(lane))
            lane.runners.add(runner)
            runner.add_done_callback(lambda done: self._runner_done(lane, done))
            if len(lane.ready) <= len(lane.runners):
                break

    def _runner_done(self, lane: Lane, runner: asyncio.Task[None]) -> None:
        lane.runners.discard(runner)
        if not runner.cancelled() and runner.exception() is not None:
            # `_step` turns exceptions into outcomes; this is a bug in the lane itself. The
            # job's record stays uncommitted (redelivered after a restart), never dropped.
            log.error(
                "delivery_runner_crashed", destination=lane.name, error=repr(runner.exception())
            )
        if lane.ready and not self._stop.is_set():  # a cancelled runner left work behind
            self._add_runner(lane)

    async def _serve_lane(self, lane: Lane) -> None:
        """A runner: take due jobs of one destination, one step each, until none is left."""
        while lane.ready and not lane.paused:
            job = lane.ready.popleft()
            if job.released:
                continue
            job.busy = True
            job.runner = asyncio.current_task()
            try:
                await self._step(lane, job)
            except Exception as exc:  # a bug or a surprise: an outcome is still recorded
                await self._crashed(lane, job, exc)
            finally:
                job.busy = False
                if job.settled is not None and not job.settled.done():
                    job.settled.set_result(None)

    async def _step(self, lane: Lane, job: Job) -> None:
        """One step of a due job: an attempt and its outcome (or a wait, uncharged)."""
        task = job.task
        assert task is not None
        settings = lane.settings
        if job.attempts >= settings.max_attempts:  # delayed, then `max_attempts` was lowered
            error = f"max_attempts ({settings.max_attempts}) reached"
            self._outcomes.outcome(
                task.destination, task.event_id, job.attempts, None, error, 0.0, "dead_letter"
            )
            await self._outcomes.dead_letter(job, task, None, error, lane)
            self._finish(lane, job)
            return
        if not await self._within_rate(lane, job):
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
        if result is _NOT_SENT:  # circuit open: wait for the probe, no attempt charged
            job.not_before = time.time() + max(0.0, lane.breaker.retry_at() - time.monotonic())
            self._log.debug(
                "delivery_waiting",
                destination=task.destination,
                event_id=task.event_id,
                reason="circuit open",
                wait=round(job.not_before - time.time(), 3),
            )
            self._again(lane, job)
            return
        job.attempts += 1
        if result.verdict == "success":
            self._outcomes.result(task, job.attempts, result, "delivered")
            lane.outcomes["delivered"].inc()
            self._finish(lane, job)
        elif result.verdict == "permanent" or job.attempts >= settings.max_attempts:
            self._outcomes.result(task, job.attempts, result, "dead_letter")
            await self._outcomes.dead_letter(job, task, result.status, result.error, lane)
            self._finish(lane, job)
        else:
            lane.outcomes["retry"].inc()
            backoff = settings.backoff
            delay = retry_delay(
                job.attempts, backoff.initial, backoff.max, result.retry_after, self._rng
            )
            self._outcomes.result(task, job.attempts, result, "retry", retry_in=round(delay, 3))
            job.not_before = time.time() + delay
            self._again(lane, job)

    def _again(self, lane: Lane, job: Job) -> None:
        """Schedule a job's next try, unless it was released meanwhile (left uncommitted)."""
        if job.released:
            self._jobs.discard(job)
        else:
            self._schedule(lane, job)

    async def _within_rate(self, lane: Lane, job: Job) -> bool:
        """Wait (uncharged) until the destination's rate limit allows one more request.

        The limit is one GCRA bucket in the state store (`<key_prefix>rate:<destination>`),
        shared by every process using that store. False: the job was released or the lane
        paused meanwhile (then it is back in line).
        """
        if lane.rate is None:
            return True
        rate, burst = lane.rate
        key = self._rate_prefix + lane.name
        while True:
            wait = await self._store.acquire_rate(key, rate, burst)
            if wait <= 0:
                return True
            await asyncio.sleep(wait)
            if job.released:
                self._jobs.discard(job)
                return False
            if lane.paused:
                lane.ready.appendleft(job)
                return False

    async def _attempt(
        self, lane: Lane, job: Job, event_id: str, body: bytes
    ) -> AttemptResult | None:
        """One attempt through the destination's breaker; None: released before sending.

        While the breaker is open nothing is sent and `_NOT_SENT` comes back: the job waits
        for the cool-down's end, uncharged. While the half-open probe is out, attempts wait
        for the probe's answer.
        """
        breaker = lane.breaker
        while not breaker.allow(time.monotonic()):
            if breaker.state is BreakerState.OPEN:
                return _NOT_SENT
            await lane.probe_done.wait()
            if job.released:
                return None
        probe = breaker.state is BreakerState.HALF_OPEN
        # The attempts waiting now wait on this probe's own event: it is set when this
        # probe ends, even if a later probe has replaced `lane.probe_done` by then.
        done = lane.probe_done = asyncio.Event() if probe else lane.probe_done
        if probe:
            self._circuit_changed(lane)
        try:
            result = await self._client.send(lane.endpoint, event_id, body, time.time())
        except BaseException:
            if probe:  # cancelled mid-probe: the next attempt may probe instead
                breaker.release_probe()
                done.set()
            raise
        state = breaker.state
        if result.verdict == "retry":
            breaker.record_failure(time.monotonic(), probe=probe)
        else:  # delivered, or refused for good: either way the receiver is up
            breaker.record_success()
        if breaker.state is not state:
            self._circuit_changed(lane)
        if probe:
            done.set()
        lane.latency.observe(result.duration)
        return result

    def _circuit_changed(self, lane: Lane) -> None:
        """Publish a breaker change: the metric now, the control topic in the background."""
        lane.breaker_changed()
        key = circuit_key(lane.name, self._worker_name)
        value = Circuit(state=lane.breaker.state.value, at=time.time())
        self._published.add(key)
        task = asyncio.create_task(self._publish(key, ENCODER.encode(value)))
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    async def _publish(self, key: bytes, value: bytes | None) -> None:
        try:
            await self._producer.send(self._config.kafka.control_topic, value, key=key)
        except KafkaError as exc:  # informational only: `destinations list` may lag
            self._log.warning("circuit_publish_failed", error=type(exc).__name__)

    async def _unpublish_circuits(self) -> None:
        """Tombstone this process's circuit keys (it will not update them any more)."""
        keys, self._published = self._published, set()
        await asyncio.gather(*(self._publish(key, None) for key in keys))

    async def _crashed(self, lane: Lane, job: Job, exc: Exception) -> None:
        """An exception escaped a step: record it as a failed attempt, retried or dead-lettered.

        Charged as an attempt (a bug that always raises must still end in a dead letter
        after `max_attempts`, not loop forever). If recording fails too, the record stays
        uncommitted and is redone after a restart.
        """
        task = job.task
        assert task is not None
        error = f"internal error: {type(exc).__name__}"
        try:
            job.attempts += 1
            result = AttemptResult("retry", None, error)
            if job.attempts >= lane.settings.max_attempts:
                self._outcomes.result(task, job.attempts, result, "dead_letter")
                await self._outcomes.dead_letter(job, task, None, error, lane)
                self._finish(lane, job)
                return
            lane.outcomes["retry"].inc()
            backoff = lane.settings.backoff
            delay = retry_delay(job.attempts, backoff.initial, backoff.max, None, self._rng)
            self._outcomes.result(task, job.attempts, result, "retry", retry_in=round(delay, 3))
            job.not_before = time.time() + delay
            self._again(lane, job)
        except Exception as again:
            self._log.error(
                "delivery_runner_crashed", destination=lane.name, error=repr(exc), then=repr(again)
            )

    async def _hand_to_tier(self, lane: Lane, job: Job, topic: str) -> None:
        """Write a long-waiting job to its delay tier; once acked, its record here is done."""
        task = job.task
        assert task is not None
        try:
            await self._outcomes.delay(job, task, topic)
            lane.outcomes["delayed"].inc()
            self._finish(lane, job)
        finally:
            job.busy = False
            if job.settled is not None and not job.settled.done():
                job.settled.set_result(None)

    async def _orphan(self, job: Job) -> None:
        """Dead-letter a record that cannot be delivered: undecodable, or no such destination."""
        try:
            task = job.task
            if task is None:
                task = _undecodable(job)
                error = f"undecodable delivery task: {job.decode_error}"
            else:
                job.attempts = task.attempt
                error = f"`{task.destination}` is not a configured webhook destination"
            self._outcomes.outcome(
                task.destination, task.event_id, job.attempts, None, error, 0.0, "dead_letter"
            )
            await self._outcomes.dead_letter(job, task, None, error, None)
            self._done(job)
        finally:
            job.busy = False
            if job.settled is not None and not job.settled.done():
                job.settled.set_result(None)

    def _done(self, job: Job) -> None:
        job.entry.done = True
        self._jobs.discard(job)

    def _finish(self, lane: Lane, job: Job) -> None:
        """The job has its outcome: mark it done; with `ordering: key`, start the key's next."""
        self._done(job)
        following = lane.leave(job)
        if following is not None and not following.released:
            self._schedule(lane, following)


def _undecodable(job: Job) -> DeliveryTask:
    """A stand-in task for a record that is not a DeliveryTask, so it can be dead-lettered."""
    original = job.value.decode("utf-8", errors="replace")
    return DeliveryTask(
        destination="", event_id="", enqueued_at=0.0, body=msgspec.Raw(ENCODER.encode(original))
    )
