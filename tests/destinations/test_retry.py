"""Backoff with full jitter, Retry-After handling, and the circuit breaker's transitions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.destinations.retry import (
    BREAKER_THRESHOLD,
    RETRY_AFTER_CEILING,
    BreakerState,
    CircuitBreaker,
    backoff_ceiling,
    backoff_delay,
    breaker_for,
    retry_delay,
)


class Fixed:
    """An rng whose `uniform` returns a fixed fraction of the range (0: low end, 1: high end)."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


def test_ceiling_doubles_from_initial_up_to_max() -> None:
    """The ceiling after n failed attempts is initial * 2**(n-1), never above max."""
    assert [backoff_ceiling(n, 1.0, 60.0) for n in range(0, 9)] == [
        0.0,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        32.0,
        60.0,
        60.0,
    ]


def test_ceiling_does_not_overflow() -> None:
    """Thousands of attempts stay at max instead of overflowing a float."""
    assert backoff_ceiling(5000, 0.5, 3600.0) == 3600.0


@given(
    attempts=st.integers(min_value=1, max_value=200),
    initial=st.floats(min_value=0.001, max_value=10.0),
    extra=st.floats(min_value=0.0, max_value=7200.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_full_jitter_stays_within_zero_and_ceiling(
    attempts: int, initial: float, extra: float, seed: int
) -> None:
    """Every jittered delay lies in [0, min(max, initial * 2**(n-1))]."""
    maximum = initial + extra
    delay = backoff_delay(attempts, initial, maximum, random.Random(seed))
    assert 0.0 <= delay <= backoff_ceiling(attempts, initial, maximum) <= maximum


def test_jitter_spreads_over_the_whole_range() -> None:
    """Full jitter: delays cover the range from near zero to near the ceiling."""
    rng = random.Random(7)
    delays = [backoff_delay(4, 1.0, 60.0, rng) for _ in range(2000)]
    assert min(delays) < 0.2 and max(delays) > 7.8
    assert 3.5 < sum(delays) / len(delays) < 4.5  # mean of uniform(0, 8)


def test_injected_rng_makes_delays_reproducible() -> None:
    """Same seed, same delays."""
    a = [backoff_delay(n, 0.1, 10.0, random.Random(3)) for n in range(1, 10)]
    b = [backoff_delay(n, 0.1, 10.0, random.Random(3)) for n in range(1, 10)]
    assert a == b


def test_retry_after_is_a_floor() -> None:
    """A `Retry-After` longer than the jittered backoff wins; a shorter one does not shorten it."""
    assert retry_delay(1, 0.01, 0.1, 2.0, Fixed(1.0)) == 2.0
    assert retry_delay(5, 1.0, 60.0, 1.0, Fixed(1.0)) == 16.0
    assert retry_delay(1, 0.01, 0.1, None, Fixed(1.0)) == pytest.approx(0.01)
    assert retry_delay(1, 0.01, 0.1, 0.0, Fixed(0.5)) == pytest.approx(0.005)


def test_retry_after_is_capped() -> None:
    """An absurd `Retry-After` is capped at the larger of backoff max and the ceiling."""
    assert retry_delay(1, 1.0, 60.0, 10 * 86400.0, Fixed(0.0)) == RETRY_AFTER_CEILING
    assert retry_delay(1, 1.0, 7200.0, 10 * 86400.0, Fixed(0.0)) == 7200.0


def _open(breaker: CircuitBreaker, now: float) -> None:
    for _ in range(breaker.threshold):
        assert breaker.allow(now)
        breaker.record_failure(now)


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    """Closed until `threshold` failures in a row; then attempts are refused."""
    breaker = CircuitBreaker(threshold=3, cooldown=10.0, max_cooldown=100.0)
    for _ in range(2):
        assert breaker.allow(0.0)
        breaker.record_failure(0.0)
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(1.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(5.0)
    assert breaker.retry_at() == 11.0


def test_success_resets_the_failure_count() -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    breaker = CircuitBreaker(threshold=3, cooldown=10.0, max_cooldown=100.0)
    breaker.record_failure(0.0)
    breaker.record_failure(0.0)
    breaker.record_success()
    breaker.record_failure(0.0)
    breaker.record_failure(0.0)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_lets_exactly_one_probe_through() -> None:
    """After the cool-down one caller gets the probe; the others are refused meanwhile."""
    breaker = CircuitBreaker(threshold=2, cooldown=10.0, max_cooldown=100.0)
    _open(breaker, 0.0)
    assert not breaker.allow(9.9)
    assert breaker.allow(10.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(10.0)
    assert not breaker.allow(50.0)


def test_successful_probe_closes() -> None:
    """The probe succeeding closes the breaker: everyone may send again."""
    breaker = CircuitBreaker(threshold=2, cooldown=10.0, max_cooldown=100.0)
    _open(breaker, 0.0)
    assert breaker.allow(10.0)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow(10.0) and breaker.allow(10.0)


def test_failed_probe_reopens_with_a_longer_cooldown() -> None:
    """A failed probe re-opens the breaker; each failed probe doubles the cool-down, up to max."""
    breaker = CircuitBreaker(threshold=2, cooldown=10.0, max_cooldown=30.0)
    _open(breaker, 0.0)
    assert breaker.allow(10.0)
    breaker.record_failure(10.5, probe=True)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_at() == 30.5
    assert not breaker.allow(30.0)
    assert breaker.allow(30.5)
    breaker.record_failure(31.0, probe=True)
    assert breaker.retry_at() == 61.0  # 20 doubled to 40, capped at 30
    assert breaker.allow(61.0)
    breaker.record_success()
    _open(breaker, 100.0)
    assert breaker.retry_at() == 110.0  # closing forgot the grown cool-down


def test_stragglers_do_not_move_an_open_breaker() -> None:
    """Failures of requests sent before it opened neither extend the cool-down nor end a probe."""
    breaker = CircuitBreaker(threshold=2, cooldown=10.0, max_cooldown=100.0)
    _open(breaker, 0.0)
    breaker.record_failure(5.0)  # a straggler while open
    assert breaker.retry_at() == 10.0
    assert breaker.allow(10.0)  # probe granted
    breaker.record_failure(10.0, probe=True)  # this is the probe's failure
    assert breaker.state is BreakerState.OPEN


def test_a_straggler_failing_while_the_probe_is_out_is_no_news() -> None:
    """Only the probe's own failure re-opens a half-open breaker.

    Taken for the probe's answer, a straggler's failure would re-open the breaker and, one
    cool-down later, grant a second probe while the first is still out.
    """
    breaker = CircuitBreaker(threshold=2, cooldown=10.0, max_cooldown=100.0)
    _open(breaker, 0.0)
    assert breaker.allow(10.0)  # the probe goes out
    breaker.record_failure(10.5)  # a request sent before the breaker opened fails now
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(100.0)  # the probe is still out: nobody else is let through
    breaker.record_failure(11.0, probe=True)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_at() == 31.0


def test_straggler_success_closes() -> None:
    """Any answer from the receiver, even from before it opened, proves it is up."""
    breaker = CircuitBreaker(threshold=2, cooldown=10.0, max_cooldown=100.0)
    _open(breaker, 0.0)
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_released_probe_lets_another_through() -> None:
    """A probe cancelled without an answer does not wedge the breaker half-open."""
    breaker = CircuitBreaker(threshold=2, cooldown=10.0, max_cooldown=100.0)
    _open(breaker, 0.0)
    assert breaker.allow(10.0)
    assert not breaker.allow(10.0)
    breaker.release_probe()
    assert breaker.allow(10.0)


def test_breaker_for_scales_to_the_destination() -> None:
    """The first cool-down is the timeout clamped into [initial, max]."""
    assert breaker_for(1.0, 3600.0, 15.0).cooldown == 15.0
    assert breaker_for(0.01, 0.2, 2.0).cooldown == 0.2
    assert breaker_for(30.0, 3600.0, 5.0).cooldown == 30.0
    assert breaker_for(1.0, 3600.0, 15.0).threshold == BREAKER_THRESHOLD
