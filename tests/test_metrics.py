"""The lock-free metric families expose exactly what prometheus-client's own would."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway import metrics
from gateway.metrics import _Family

BUCKETS = (0.001, 0.01, 0.1, 1, 10)


def _exposition(registry: CollectorRegistry) -> tuple[list[str], list[str]]:
    """Sample lines apart from `_created` ones, and the label sets of those."""
    lines = generate_latest(registry).decode().splitlines()
    created = [line.rsplit(" ", 1)[0] for line in lines if "_created" in line and line[0] != "#"]
    return [line for line in lines if "_created" not in line], created


def test_counter_matches_prometheus_client() -> None:
    """Same HELP, TYPE, names, label order and values as prometheus-client's Counter."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = _Family("demo_events_total", "Events, by a and b", ["b", "a"])
    ours.register(mine)
    real = prometheus_client.Counter(
        "demo_events", "Events, by a and b", ["b", "a"], registry=theirs
    )
    for labels, amount in [(("x", "1"), 1.0), (("y", "2"), 2.5), (("x", "1"), 3.0)]:
        mine.labels(*labels).inc(amount)
        real.labels(*labels).inc(amount)
    assert _exposition(ours) == _exposition(theirs)


def test_unlabelled_counter_starts_at_zero() -> None:
    """An unlabelled counter is exposed at 0 before its first increment, as prometheus-client's."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = _Family("demo_spooled", "Spooled", [])
    ours.register(mine)
    prometheus_client.Counter("demo_spooled", "Spooled", registry=theirs)
    assert _exposition(ours) == _exposition(theirs)
    mine.inc()
    assert "demo_spooled_total 1.0" in generate_latest(ours).decode()


def test_histogram_matches_prometheus_client() -> None:
    """Buckets (cumulative, `le` as prometheus writes it), count and sum are identical."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = _Family("demo_seconds", "Latency", ["source"], BUCKETS)
    ours.register(mine)
    real = prometheus_client.Histogram(
        "demo_seconds", "Latency", ["source"], buckets=BUCKETS, registry=theirs
    )
    # Bounds themselves, values between, below the first and above the last bound.
    for value in (0.0, 0.001, 0.0011, 0.01, 0.5, 1, 9.99, 10, 11, 1e9):
        for source in ("a", "b"):
            mine.labels(source).observe(value)
            real.labels(source).observe(value)
    assert _exposition(ours) == _exposition(theirs)


def test_label_values_are_strings_and_counted_once() -> None:
    """A non-string label value is the same child as its string, exposed once."""
    registry = CollectorRegistry()
    family = _Family("demo_status_total", "By status", ["status"])
    registry.register(family)
    family.labels(200).inc()
    family.labels("200").inc()
    text = generate_latest(registry).decode()
    assert 'demo_status_total{status="200"} 2.0' in text
    with pytest.raises(ValueError, match="expected labels"):
        family.labels("a", "b")


def test_gateway_metrics_render() -> None:
    """The gateway's own families appear on the page with their increments."""
    metrics.WEBHOOKS.labels("metrics-test", "accepted").inc()
    metrics.REQUEST_DURATION.labels("metrics-test").observe(0.002)
    page = metrics.render()[0].decode()
    assert 'gateway_webhooks_received_total{outcome="accepted",source="metrics-test"} 1.0' in page
    assert 'gateway_request_duration_seconds_count{source="metrics-test"} 1.0' in page


def test_multiprocess_mode_uses_prometheus_client(tmp_path: object) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, samples go through prometheus-client's shared files."""
    import os
    import subprocess
    import sys

    script = (
        "from gateway import metrics\n"
        "metrics.WEBHOOKS.labels('mp', 'accepted').inc(3)\n"
        "metrics.REQUEST_DURATION.labels('mp').observe(0.2)\n"
        "assert type(metrics.WEBHOOKS).__name__ == '_PromCounter'\n"
        "print(metrics.render()[0].decode())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert 'gateway_webhooks_received_total{outcome="accepted",source="mp"} 3.0' in out
    assert 'gateway_request_duration_seconds_count{source="mp"} 1.0' in out


def test_collected_families_match_prometheus_client() -> None:
    """Collectors yield the same families and sample names (what dashboards and tests read)."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = _Family("demo_c_total", "C", ["a"])
    histogram = _Family("demo_h_seconds", "H", ["a"], BUCKETS)
    ours.register(counter)
    ours.register(histogram)
    real_counter = prometheus_client.Counter("demo_c", "C", ["a"], registry=theirs)
    real_histogram = prometheus_client.Histogram(
        "demo_h_seconds", "H", ["a"], buckets=BUCKETS, registry=theirs
    )
    for family, real in ((counter, real_counter), (histogram, real_histogram)):
        child, real_child = family.labels("x"), real.labels("x")
        if hasattr(child, "observe"):
            child.observe(0.5)
            real_child.observe(0.5)
        else:
            child.inc()
            real_child.inc()

    def shape(registry: CollectorRegistry) -> list[tuple[str, str, list[str]]]:
        return [(m.name, m.type, [s.name for s in m.samples]) for m in registry.collect()]

    assert shape(ours) == shape(theirs)
