"""Lanes: one per webhook destination, deciding when each of its deliveries may be sent.

A lane holds the destination's due jobs and serves them with at most `concurrency`
runners, gated by the destination's circuit breaker, its `rate_limit` (through the state
store: fleet-wide with `state.backend: redis`, per process with `memory`), a pause, and,
with `ordering: key`, one job at a time per key in arrival order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from gateway import metrics
from gateway.config import WebhookDestination
from gateway.destinations.offsets import Entry
from gateway.destinations.retry import BreakerState, breaker_for
from gateway.destinations.tasks import DeliveryTask
from gateway.destinations.webhook import Endpoint

_CIRCUIT_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass(eq=False, slots=True)
class Job:
    """One consumed record being worked on."""

    tp: TopicPartition
    entry: Entry
    key: bytes | None
    value: bytes
    task: DeliveryTask | None
    decode_error: str = ""
    attempts: int = 0  # attempts made so far, across hand-offs to delay topics
    not_before: float = 0.0  # wall-clock time of the next attempt
    busy: bool = False  # a request is in flight or its outcome is being recorded
    released: bool = False  # stop or rebalance: finish what is in flight, start nothing new
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    runner: asyncio.Task[None] | None = field(default=None, repr=False)
    settled: asyncio.Future[None] | None = field(default=None, repr=False)


class Lane:
    """One destination: endpoint, breaker, limits, due jobs, and up to `concurrency` runners."""

    def __init__(self, name: str, settings: WebhookDestination) -> None:
        self.name = name
        self.settings = settings
        self.endpoint = Endpoint.of(name, settings)
        self.breaker = breaker_for(settings.backoff.initial, settings.backoff.max, settings.timeout)
        self.ready: deque[Job] = deque()
        self.runners: set[asyncio.Task[None]] = set()
        # Set when the current half-open probe has its answer; attempts due meanwhile wait.
        self.probe_done = asyncio.Event()
        self.ordered = settings.ordering == "key"
        # ordering: key -> the key's jobs in arrival order; only the first one is scheduled.
        self.chains: dict[bytes | None, deque[Job]] = {}
        # `rate_limit` as the state store's GCRA takes it: requests per second, burst.
        rate = settings.rate_limit
        self.rate = (float(rate), rate.burst) if rate is not None else None
        self.paused = False
        # Metric children resolved once: outcomes are counted thousands of times a second.
        self.outcomes = {
            outcome: metrics.DELIVERIES.labels(name, outcome)
            for outcome in ("delivered", "retry", "dead_letter", "delayed")
        }
        self.latency = metrics.DELIVERY_ATTEMPT_LATENCY.labels(name)
        self.dead_lettered = metrics.DEAD_LETTERED.labels(name)
        self.circuit = metrics.CIRCUIT_STATE.labels(name)
        self.circuit.set(0)
        self.paused_gauge = metrics.DESTINATION_PAUSED.labels(name)
        self.paused_gauge.set(0)

    def breaker_changed(self) -> None:
        """Publish the breaker's state (0 closed, 1 half-open, 2 open)."""
        self.circuit.set(_CIRCUIT_VALUE[self.breaker.state])

    def set_paused(self, paused: bool) -> None:
        """Pause (runners take nothing new) or resume."""
        self.paused = paused
        self.paused_gauge.set(1 if paused else 0)

    def join(self, job: Job) -> bool:
        """Admit a job; True if it may be scheduled now (False: it waits behind its key)."""
        if not self.ordered:
            return True
        chain = self.chains.get(job.key)
        if chain is None:
            self.chains[job.key] = deque([job])
            return True
        chain.append(job)
        return False

    def leave(self, job: Job) -> Job | None:
        """The job is finished (delivered, dead-lettered or released); its key's next job."""
        if not self.ordered:
            return None
        chain = self.chains.get(job.key)
        if chain is None:
            return None
        if chain and chain[0] is job:
            chain.popleft()
        else:
            try:
                chain.remove(job)
            except ValueError:
                return None
            return None  # not the head: the head is still the one scheduled
        while chain and chain[0].released:
            chain.popleft()
        if not chain:
            del self.chains[job.key]
            return None
        return chain[0]

    def forget(self, jobs: set[Job]) -> None:
        """Drop released jobs from the key chains (rebalance or stop)."""
        if not self.ordered:
            return
        for key in list(self.chains):
            chain = deque(j for j in self.chains[key] if j not in jobs)
            if chain:
                self.chains[key] = chain
            else:
                del self.chains[key]
