"""Prometheus metrics. Labels are low-cardinality: names from config, never from requests.

With several worker processes (`gateway serve --workers N`) set `PROMETHEUS_MULTIPROC_DIR`
to an empty writable directory: every process then writes its samples there and `/metrics`
aggregates them (prometheus-client's multiprocess mode). Without it, `/metrics` reports the
process that answered, which is exact for the default single worker.
"""

from __future__ import annotations

import bisect
import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import prometheus_client
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gateway import __version__
from gateway.fastpaths import fast
from gateway.types import ascii_int


class _CachedLabels:
    """`labels(...)` as a dict lookup after the first call per label set.

    prometheus-client validates, converts and locks on every `labels()` call (a few times
    per request); label values here come from config and fixed
    vocabularies, so the children are few and never removed.
    """

    def labels(self, *values: Any, **named: Any) -> Any:
        """The child for these label values (positional values are cached)."""
        if named:
            return super().labels(*values, **named)  # type: ignore[misc]
        children: dict[tuple[Any, ...], Any] = self.__dict__.setdefault("_cached_children", {})
        child = children.get(values)
        if child is None:
            child = children[values] = super().labels(*values)  # type: ignore[misc]
        return child


class _PromCounter(_CachedLabels, prometheus_client.Counter):
    """prometheus-client's Counter with cached `labels(...)`."""


class _PromHistogram(_CachedLabels, prometheus_client.Histogram):
    """prometheus-client's Histogram with cached `labels(...)`."""


class _CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount` (never negative)."""
        self.value += amount


class _HistogramChild:
    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: list[float]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        """Count one observation in the first bucket whose bound is >= `amount`."""
        self.counts[bisect.bisect_left(self._bounds, amount)] += 1
        self.sum += amount


def _go_float(value: float) -> str:
    """A bucket bound as prometheus-client writes it (`0.001`, `1.0`, `+Inf`)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


class _Family(Collector):
    """A labelled counter or histogram in plain Python numbers, for the request path.

    prometheus-client guards every `inc()` and `observe()` with a lock and several call
    layers, several times per webhook. The gateway updates metrics only
    from its event loop thread, so here a child is a float or a list of bucket counts,
    and this collector writes the same exposition as prometheus-client's own Counter and
    Histogram when `/metrics` is rendered (a test compares them line by line).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float] | None = None,
    ) -> None:
        self._name = name.removesuffix("_total")
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = None if buckets is None else [float(b) for b in buckets] + [math.inf]
        self._children: dict[tuple[str, ...], Any] = {}
        if not self._labelnames:
            self.labels()

    def labels(self, *values: str) -> Any:
        """The child for these label values (created on first use)."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self._labelnames):
                raise ValueError(f"{self._name}: expected labels {self._labelnames}")
            key = tuple(str(v) for v in values)
            child = self._children.get(key)
            if child is None:
                bounds = self._bounds
                child = _CounterChild() if bounds is None else _HistogramChild(bounds)
                self._children[key] = child
            self._children[values] = child
        return child

    def inc(self, amount: float = 1.0) -> None:
        """`inc` of an unlabelled counter."""
        self.labels().inc(amount)

    def describe(self) -> list[Metric]:
        """No samples: the names this collector owns (the registry checks clashes)."""
        kind = "counter" if self._bounds is None else "histogram"
        return [Metric(self._name, self._documentation, kind)]

    def collect(self) -> Iterator[Metric]:
        """The samples, as prometheus-client's Counter/Histogram expose them."""
        children = {
            key: child for key, child in self._children.items() if all(type(v) is str for v in key)
        }
        if self._bounds is None:
            metric = Metric(self._name, self._documentation, "counter")
            for key, child in children.items():
                labels = dict(zip(self._labelnames, key, strict=True))
                metric.add_sample(f"{self._name}_total", labels, child.value)
                metric.add_sample(f"{self._name}_created", labels, child.created)
        else:
            metric = Metric(self._name, self._documentation, "histogram")
            for key, child in children.items():
                labels = dict(zip(self._labelnames, key, strict=True))
                total = 0
                for bound, count in zip(self._bounds, child.counts, strict=True):
                    total += count
                    le = {**labels, "le": _go_float(bound)}
                    metric.add_sample(f"{self._name}_bucket", le, total)
                metric.add_sample(f"{self._name}_count", labels, total)
                metric.add_sample(f"{self._name}_sum", labels, child.sum)
                metric.add_sample(f"{self._name}_created", labels, child.created)
        yield metric


def Counter(name: str, documentation: str, labelnames: Sequence[str] = ()) -> Any:
    """A counter: lock-free in a single process, prometheus-client's across processes."""
    if _MULTIPROC or not _FAST:
        return _PromCounter(name, documentation, labelnames)
    family = _Family(name, documentation, labelnames)
    REGISTRY.register(family)
    return family


def Histogram(
    name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
) -> Any:
    """A histogram: lock-free in a single process, prometheus-client's across processes."""
    if _MULTIPROC or not _FAST:
        return _PromHistogram(name, documentation, labelnames, buckets=buckets)
    family = _Family(name, documentation, labelnames, buckets)
    REGISTRY.register(family)
    return family


_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# Fast path `metrics` (gateway/fastpaths.py), justified by benchmarks/ingest_bench.py --fast-paths.
_FAST = fast("metrics")

WEBHOOKS = Counter(
    "gateway_webhooks_received",
    "Webhooks received, by source and outcome (accepted, duplicate, unrouted, or the rejection reason)",
    ["source", "outcome"],
)
VERIFICATION_FAILURES = Counter(
    "gateway_verification_failures",
    "Requests that failed authentication, by source and reason",
    ["source", "reason"],
)
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Time from request start to response, by source",
    ["source"],
    buckets=_LATENCY,
)
ROUTE_MATCHES = Counter("gateway_route_matches", "Events matched, by route", ["route"])
STATE_FALLBACK = Counter(
    "gateway_state_fallback",
    "State store operations answered without the shared store (unreachable), by operation",
    ["operation"],
)
KAFKA_PRODUCE = Counter(
    "gateway_kafka_produce", "Kafka produce results, by topic and result", ["topic", "result"]
)
KAFKA_PRODUCE_LATENCY = Histogram(
    "gateway_kafka_produce_latency_seconds",
    "Time from produce to broker ack, by topic",
    ["topic"],
    buckets=_LATENCY,
)
# Gauges in multi-process mode: `live*` modes, so a dead process's last value never lingers.
KAFKA_CONNECTED = Gauge(
    "gateway_kafka_connected",
    "1 while the producer has recently reached the broker",
    multiprocess_mode="livemin",
)
DELIVERIES = Counter(
    "gateway_deliveries",
    "Outbound webhook delivery outcomes, by destination",
    ["destination", "outcome"],
)
DELIVERY_ATTEMPT_LATENCY = Histogram(
    "gateway_delivery_attempt_seconds",
    "Duration of one outbound webhook attempt, by destination",
    ["destination"],
    buckets=_LATENCY,
)
TRANSFORM_ERRORS = Counter(
    "gateway_transform_errors",
    "Events whose destination transform failed (sent with `data: null`), by destination",
    ["destination"],
)
DEAD_LETTERED = Counter(
    "gateway_dead_lettered", "Deliveries sent to the dead-letter topic", ["destination"]
)
DELIVERY_QUEUE_LAG = Gauge(
    "gateway_delivery_queue_lag",
    "Delivery tasks on the queue not yet consumed by this worker (per partition, summed)",
    multiprocess_mode="livesum",
)
CIRCUIT_STATE = Gauge(
    "gateway_circuit_state",
    "Circuit breaker per destination: 0 closed, 1 half-open, 2 open",
    ["destination"],
    multiprocess_mode="livemax",
)
# The spool's numbers are the file's (every process sharing it reads the same totals): the
# most recent reading of any live process is the file's, a sum would count it N times.
SPOOL_DEPTH = Gauge(
    "gateway_spool_depth", "Events in the local spool file", multiprocess_mode="livemostrecent"
)
SPOOL_BYTES = Gauge(
    "gateway_spool_bytes", "Bytes in the local spool file", multiprocess_mode="livemostrecent"
)
DESTINATION_PAUSED = Gauge(
    "gateway_destination_paused",
    "1 while a webhook destination is paused (`gateway destinations pause`)",
    ["destination"],
    multiprocess_mode="livemax",
)
SPOOL_OLDEST_AGE = Gauge(
    "gateway_spool_oldest_age_seconds",
    "Age of the oldest spooled event (0 when empty)",
    multiprocess_mode="livemostrecent",
)
SPOOLED = Counter("gateway_spooled", "Events acknowledged from the local spool")
SPOOL_DRAINED = Counter("gateway_spool_drained", "Spooled events forwarded to the broker")
JOURNAL_RECORDS = Counter(
    "gateway_journal_records",
    "Journal entries (for the operator console) acknowledged by the broker",
)
JOURNAL_DROPPED = Counter(
    "gateway_journal_dropped",
    "Journal entries lost (buffer_full: the buffer was full; send_failed: the broker refused)",
    ["reason"],
)
BUILD_INFO = Gauge(
    "gateway_build_info",
    "Always 1; labels carry the build",
    ["version"],
    multiprocess_mode="livemax",
)
BUILD_INFO.labels(version=__version__).set(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def forget_dead_processes() -> list[int]:
    """Multi-process mode: drop the live gauges of processes that are gone (a crashed worker).

    Their counters and histograms stay, so totals never go backwards; `live*` gauges of a
    pid that no longer runs would otherwise be aggregated forever. Called as a process starts.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory or not os.path.isdir(directory):
        return []
    dead: set[int] = set()
    for name in os.listdir(directory):
        pid = ascii_int(name.removesuffix(".db").rpartition("_")[2], 10)
        if name.startswith("gauge_live") and pid is not None and not _alive(pid):
            dead.add(pid)
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return sorted(dead)


def process_exiting() -> None:
    """Multi-process mode: this process stops, so its live gauges leave the aggregate."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.path.isdir(directory):
        multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def render() -> tuple[bytes, str]:
    """The metrics page and its content type (aggregated across processes when configured)."""
    if _MULTIPROC:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
