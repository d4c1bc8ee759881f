"""Retry policy for outbound webhooks: backoff with full jitter and a per-destination breaker.

Pure logic: no asyncio, no clock reads, no randomness source of its own. Callers pass `now`
(monotonic seconds for the breaker) and an `rng` (a `random.Random`, seeded in tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class Uniform(Protocol):
    """The part of `random.Random` the backoff needs."""

    def uniform(self, a: float, b: float) -> float: ...


# Retry-After is the receiver's own instruction, so it may exceed `backoff.max`; this is the
# ceiling past which we stop believing it (a misconfigured `Retry-After: 31536000`).
RETRY_AFTER_CEILING = 3600.0


def backoff_ceiling(attempts: int, initial: float, maximum: float) -> float:
    """Upper bound of the wait after `attempts` failed attempts: `initial * 2**(attempts-1)`, capped."""
    if attempts < 1:
        return 0.0
    # 2**1024 overflows a float; any exponent past 64 is far beyond every sensible `max` anyway.
    return min(maximum, initial * 2.0 ** min(attempts - 1, 64))


def backoff_delay(attempts: int, initial: float, maximum: float, rng: Uniform) -> float:
    """Full-jitter wait after `attempts` failed attempts: uniform in [0, ceiling]."""
    return rng.uniform(0.0, backoff_ceiling(attempts, initial, maximum))


def retry_delay(
    attempts: int,
    initial: float,
    maximum: float,
    retry_after: float | None,
    rng: Uniform,
) -> float:
    """Wait before the next attempt: jittered backoff, but never less than `Retry-After`.

    `Retry-After` is honoured up to the larger of `maximum` and `RETRY_AFTER_CEILING`.
    """
    delay = backoff_delay(attempts, initial, maximum, rng)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, max(maximum, RETRY_AFTER_CEILING)))
    return delay


class BreakerState(Enum):
    """Where a circuit breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Per-destination breaker: stops sending to a receiver that keeps failing.

    Closed: every attempt is sent. After `threshold` consecutive failures it opens: attempts
    are refused (the caller counts them as failed without sending) until `cooldown` has
    passed. Then it is half-open: exactly one attempt (the probe) is sent; success closes
    it, failure re-opens it with the cool-down doubled (up to `max_cooldown`).
    """

    threshold: int
    cooldown: float
    max_cooldown: float
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    current_cooldown: float = 0.0
    probing: bool = False

    def allow(self, now: float) -> bool:
        """May an attempt be sent now? Grants the half-open probe to exactly one caller."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if now < self.opened_at + self.current_cooldown:
                return False
            self.state = BreakerState.HALF_OPEN
            self.probing = False
        if self.probing:
            return False
        self.probing = True
        return True

    def retry_at(self) -> float:
        """When an open breaker will let a probe through (the cool-down's end)."""
        return self.opened_at + self.current_cooldown

    def record_success(self) -> None:
        """The receiver answered (2xx or a permanent 4xx): close and forget failures."""
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.probing = False
        self.current_cooldown = 0.0

    def record_failure(self, now: float, probe: bool = False) -> None:
        """A retryable failure (5xx, 408/409/425/429, timeout, connection error).

        `probe`: this was the half-open probe. Only the probe's failure re-opens a half-open
        breaker; a straggler sent before it opened, failing while the probe is out, is no
        news (taking it for the probe's answer would hand the probe to a second caller while
        the first one is still out).
        """
        if self.state is BreakerState.HALF_OPEN:
            if not (probe and self.probing):
                return
            self.probing = False
            self._open(now, min(self.max_cooldown, max(self.current_cooldown, self.cooldown) * 2))
            return
        if self.state is BreakerState.OPEN:
            return  # stragglers sent before it opened: it is open already
        self.failures += 1
        if self.failures >= self.threshold:
            self._open(now, self.cooldown)

    def release_probe(self) -> None:
        """The probe ended without telling us anything (cancelled): let another one through."""
        self.probing = False

    def _open(self, now: float, cooldown: float) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = now
        self.current_cooldown = cooldown


# A receiver is treated as down after this many consecutive failed attempts.
BREAKER_THRESHOLD = 5


def breaker_for(initial: float, maximum: float, timeout: float) -> CircuitBreaker:
    """The breaker of one destination, its cool-down scaled to the destination's own settings.

    The first cool-down is the request timeout clamped into [initial, max] (a receiver that
    is down gets roughly one probe per timeout), doubling per failed probe up to `max`.
    """
    cooldown = min(maximum, max(initial, timeout))
    return CircuitBreaker(threshold=BREAKER_THRESHOLD, cooldown=cooldown, max_cooldown=maximum)
