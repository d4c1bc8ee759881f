"""Optional OpenTelemetry tracing (off by default; `tracing:` in the config, `otel` extra).

A span per webhook (`webhook <source>`) and per outbound delivery attempt
(`webhook.delivery <destination>`). The W3C trace context travels with the event: as a
`traceparent` header on every Kafka record the webhook produces, inside the delivery task,
and as the `traceparent` header of the outbound webhook request, so a receiver's trace
continues the gateway's. With tracing off every function here is a cheap no-op and
OpenTelemetry is never imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import msgspec

from gateway.types import Duration


class TracingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`tracing:` OpenTelemetry settings."""

    enabled: bool = False
    service_name: str = "webhook-gateway"
    exporter: Literal["otlp", "console"] = "otlp"
    endpoint: str | None = None  # OTLP/HTTP traces URL; default: OTEL_EXPORTER_OTLP_* env vars
    sample_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    export_timeout: Duration = Duration(10)


class _State:
    tracer: Any = None
    provider: Any = None
    propagator: Any = None


_STATE = _State()


def enabled() -> bool:
    """True once `setup` installed a tracer."""
    return _STATE.tracer is not None


def setup(config: TracingConfig, exporter: Any = None) -> None:
    """Install the tracer for this process (`exporter` overrides the configured one, for tests)."""
    if not config.enabled or _STATE.tracer is not None:  # off, or already installed
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:  # pragma: no cover - the image and dev installs carry the extra
        raise RuntimeError(
            "tracing.enabled needs the `otel` extra: pip install 'webhook-gateway[otel]'"
        ) from exc
    if exporter is None:
        if config.exporter == "console":
            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(
                endpoint=config.endpoint, timeout=int(config.export_timeout)
            )
    provider = TracerProvider(
        resource=Resource.create({"service.name": config.service_name}),
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _STATE.provider = provider
    _STATE.tracer = provider.get_tracer("webhook-gateway")
    _STATE.propagator = TraceContextTextMapPropagator()


def shutdown() -> None:
    """Flush and stop exporting (end of process)."""
    if _STATE.provider is not None:
        _STATE.provider.shutdown()
    _STATE.tracer = _STATE.provider = _STATE.propagator = None


@contextlib.contextmanager
def span(
    name: str, attributes: Mapping[str, Any], parent: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """A span around a block (None when tracing is off); `parent` carries a `traceparent`."""
    tracer = _STATE.tracer
    if tracer is None:
        yield None
        return
    context = _STATE.propagator.extract(dict(parent)) if parent else None
    with tracer.start_as_current_span(
        name, context=context, attributes=dict(attributes)
    ) as current:
        yield current


def traceparent() -> str | None:
    """The current span's W3C `traceparent`, or None when tracing is off or no span is active."""
    if _STATE.tracer is None:
        return None
    carrier: dict[str, str] = {}
    _STATE.propagator.inject(carrier)
    return carrier.get("traceparent")


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span (no-op when tracing is off)."""
    if _STATE.tracer is None:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(f"gateway.{key}", value)
