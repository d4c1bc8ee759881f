"""Prometheus metrics. Labels are low-cardinality: names from config, never from requests.

With several worker processes (`gateway serve --workers N`) set `PROMETHEUS_MULTIPROC_DIR`
to an empty writable directory: every process then writes its samples there and `/metrics`
aggregates them (prometheus-client's multiprocess mode). Without it, `/metrics` reports the
process that answered, which is exact for the default single worker.
"""

from __future__ import annotations

import os
from typing import Any

import prometheus_client
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
)

from gateway import __version__


class _CachedLabels:
    """`labels(...)` as a dict lookup after the first call per label set.

    prometheus-client validates, converts and locks on every `labels()` call (several
    microseconds, a few times per request); label values here come from config and fixed
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


class Counter(_CachedLabels, prometheus_client.Counter):
    """prometheus-client's Counter with cached `labels(...)`."""


class Histogram(_CachedLabels, prometheus_client.Histogram):
    """prometheus-client's Histogram with cached `labels(...)`."""


_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_MULTIPROC = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

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
KAFKA_PRODUCE = Counter(
    "gateway_kafka_produce", "Kafka produce results, by topic and result", ["topic", "result"]
)
KAFKA_PRODUCE_LATENCY = Histogram(
    "gateway_kafka_produce_latency_seconds",
    "Time from produce to broker ack, by topic",
    ["topic"],
    buckets=_LATENCY,
)
KAFKA_CONNECTED = Gauge(
    "gateway_kafka_connected",
    "1 while the producer has recently reached the broker",
    multiprocess_mode="min",
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
DEAD_LETTERED = Counter(
    "gateway_dead_lettered", "Deliveries sent to the dead-letter topic", ["destination"]
)
DELIVERY_QUEUE_LAG = Gauge(
    "gateway_delivery_queue_lag",
    "Delivery tasks on the queue not yet consumed by this worker (per partition, summed)",
    multiprocess_mode="sum",
)
CIRCUIT_STATE = Gauge(
    "gateway_circuit_state",
    "Circuit breaker per destination: 0 closed, 1 half-open, 2 open",
    ["destination"],
    multiprocess_mode="max",
)
SPOOL_DEPTH = Gauge("gateway_spool_depth", "Events in the local spool", multiprocess_mode="max")
SPOOL_BYTES = Gauge("gateway_spool_bytes", "Bytes in the local spool", multiprocess_mode="max")
SPOOL_OLDEST_AGE = Gauge(
    "gateway_spool_oldest_age_seconds",
    "Age of the oldest spooled event (0 when empty)",
    multiprocess_mode="max",
)
SPOOLED = Counter("gateway_spooled", "Events acknowledged from the local spool")
SPOOL_DRAINED = Counter("gateway_spool_drained", "Spooled events forwarded to the broker")
BUILD_INFO = Gauge(
    "gateway_build_info", "Always 1; labels carry the build", ["version"], multiprocess_mode="max"
)
BUILD_INFO.labels(version=__version__).set(1)


def render() -> tuple[bytes, str]:
    """The metrics page and its content type (aggregated across processes when configured)."""
    if _MULTIPROC:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
