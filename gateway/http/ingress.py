"""`POST /webhooks/{source}`: the HTTP edge of the pipeline."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Any

import structlog
from litestar import Request, Response, post
from litestar.params import FromPath

from gateway import metrics, tracing
from gateway.config import IPNetwork
from gateway.errors import (
    BodyTooLarge,
    Forbidden,
    GatewayError,
    SignatureError,
    UnsupportedMediaType,
)
from gateway.http.problems import accepted, problem, status_of
from gateway.pipeline import Pipeline

log = structlog.get_logger("gateway.ingress")


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address: the peer, or the first untrusted hop of `X-Forwarded-For`.

    `X-Forwarded-For` is believed only when the peer itself is a trusted proxy, and is read
    right to left, skipping trusted proxies, so a client cannot forge its own address.
    """
    try:
        address = ipaddress.ip_address(peer) if peer else None
    except ValueError:
        return None
    if address is None or not forwarded_for or not any(address in net for net in trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return None
        if not any(address in net for net in trusted):
            return address
    return address


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The body, refusing (413) as soon as it exceeds `limit`, without buffering the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@post(
    "/webhooks/{source:str}",
    status_code=200,
    include_in_schema=True,
    summary="Receive a provider webhook",
)
async def receive(request: Request[Any, Any, Any], source: FromPath[str]) -> Response[bytes]:
    """Verify, normalize, route and durably hand off one provider webhook."""
    if not tracing.enabled():
        return await _receive(request, source)
    parent = request.headers.get("traceparent")
    attributes = {"http.request.method": "POST", "url.path": request.url.path}
    with tracing.span("webhook", attributes, {"traceparent": parent} if parent else None) as span:
        response = await _receive(request, source)
        span.set_attribute("http.response.status_code", response.status_code)
        return response


async def _receive(request: Request[Any, Any, Any], source: str) -> Response[bytes]:
    started = time.perf_counter()
    pipeline: Pipeline = request.app.state.pipeline
    provider: str | None = None
    request_id = request.headers.get("x-request-id")
    try:
        configured = pipeline.source(source)
        provider = configured.provider
        if configured.allow_ips:
            peer = request.client.host if request.client else None
            address = client_address(
                peer, request.headers.get("x-forwarded-for"), pipeline.config.trusted_proxies
            )
            if address is None or not any(address in net for net in configured.allow_ips):
                raise Forbidden("the request's address is not allowed for this source")
        if _media_type(request) not in pipeline.media_types(source):
            raise UnsupportedMediaType(
                f"expected one of: {', '.join(sorted(pipeline.media_types(source)))}"
            )
        raw = await read_body(request, pipeline.config.server.max_body_bytes)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
        outcome = await pipeline.accept(source, raw, headers, time.time())
    except GatewayError as exc:
        label = source if provider is not None else "_unknown"  # never a label from the URL
        metrics.WEBHOOKS.labels(label, exc.reason).inc()
        if isinstance(exc, SignatureError):
            metrics.VERIFICATION_FAILURES.labels(label, exc.reason).inc()
        metrics.REQUEST_DURATION.labels(label).observe(time.perf_counter() - started)
        log.warning(
            "webhook",
            source=source,
            provider=provider,
            status=status_of(exc),
            outcome="rejected",
            reason=exc.reason,
            detail=str(exc),
            request_id=request_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return problem(exc, provider)
    event = outcome.event
    tracing.annotate(source=source, provider=provider, event_id=event.id, outcome=outcome.status)
    metrics.WEBHOOKS.labels(source, outcome.status).inc()
    metrics.REQUEST_DURATION.labels(source).observe(time.perf_counter() - started)
    log.info(
        "webhook",
        source=source,
        provider=provider,
        event_id=event.id,
        type=event.type,
        routes=list(outcome.routes),
        destinations=list(outcome.destinations),
        status=200,
        outcome=outcome.status,
        spooled=outcome.spooled,
        request_id=request_id,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return accepted(event.id, outcome.status, configured.provider)
