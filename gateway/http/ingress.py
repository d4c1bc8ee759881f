"""`POST /webhooks/{source}`: the HTTP edge of the pipeline, as a plain ASGI endpoint.

The ingress is the one route on every provider's hot path, so it speaks ASGI directly
instead of going through Litestar's request, handler and response layers: that machinery
cost about as much CPU per webhook as all of the gateway's own work before the hand-off
(see the README's performance section). `gateway.app.GatewayApp` sends matching requests
here before Litestar's router; everything else (health, metrics, unknown paths) stays
Litestar. The Litestar route `webhooks_route` below is the same ingress for requests the
shortcut leaves to the router (an app served under a root path), and documents the
endpoint in the OpenAPI schema. Errors still map to HTTP in one place,
`gateway.http.problems`.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Any

import structlog
from litestar import Request, Response, post
from litestar.params import FromPath
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, HTTPScope, Receive, Send

from gateway import metrics, tracing
from gateway.config import IPNetwork
from gateway.errors import (
    BodyTooLarge,
    Forbidden,
    GatewayError,
    IncompleteRequest,
    MethodNotAllowed,
    SignatureError,
    UnsupportedMediaType,
)
from gateway.http.problems import Reply, accepted, internal_error, problem, status_of
from gateway.observability import WebhookLine, webhook_line
from gateway.pipeline import Pipeline
from gateway.providers import Provider

log = structlog.get_logger("gateway.ingress")

PREFIX = "/webhooks/"


def source_of(path: str) -> str | None:
    """The `{source}` of an ingress path (`/webhooks/{source}`, or with a trailing slash)."""
    if path.startswith(PREFIX):
        source = path[len(PREFIX) :]
        if source.endswith("/"):
            source = source[:-1]
        if source and "/" not in source:
            return source
    return None


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


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The body, refusing (413) as soon as it exceeds `limit`, without buffering the rest."""
    # ASCII digits only: `isdigit()` and `int()` also take other scripts' digits ("١٢").
    # More than 18 digits is over any limit, and never reaches `int()`'s slow path.
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared) > 18 or int(declared) > limit)
    ):
        raise BodyTooLarge(f"the body exceeds the {limit}-byte limit")
    message = await receive()
    if message["type"] != "http.request":
        raise IncompleteRequest("the client disconnected before the body arrived")
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False) and len(body) <= limit:
        return body  # the usual case: the whole body in one message
    chunks = [body]
    size = len(body)
    while size <= limit and message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            raise IncompleteRequest("the client disconnected before the body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
    if size > limit:
        raise BodyTooLarge(f"the body exceeds the {limit}-byte limit")
    return b"".join(chunks)


async def _send(send: Send, reply: Reply) -> None:
    headers = reply.asgi_headers()
    await send(
        HTTPResponseStartEvent(type="http.response.start", status=reply.status, headers=headers)
    )
    await send(HTTPResponseBodyEvent(type="http.response.body", body=reply.body, more_body=False))


class Ingress:
    """The ASGI endpoint for `/webhooks/{source}`: verify, normalize, route, hand off."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def __call__(self, scope: HTTPScope, receive: Receive, send: Send, source: str) -> None:
        """Answer one request over ASGI."""
        await _send(send, await self.answer(scope, receive, source))

    async def answer(self, scope: HTTPScope, receive: Receive, source: str) -> Reply:
        """The reply to one request; a bug becomes a bare 500 (logged), never a traceback."""
        try:
            if not tracing.enabled():
                return await self._receive(scope, receive, source)
            return await self._traced(scope, receive, source)
        except Exception as exc:
            log.error("unhandled_error", path=scope.get("path"), exc_info=exc)
            return internal_error()

    async def _traced(self, scope: HTTPScope, receive: Receive, source: str) -> Reply:
        headers = dict(scope["headers"])
        parent = headers.get(b"traceparent")
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        context = {"traceparent": parent.decode("latin-1")} if parent else None
        with tracing.span("webhook", attributes, context) as span:
            reply = await self._receive(scope, receive, source)
            span.set_attribute("http.response.status_code", reply.status)
            return reply

    async def _receive(self, scope: HTTPScope, receive: Receive, source: str) -> Reply:
        started = time.perf_counter()
        pipeline = self.pipeline
        provider: str | None = None
        answers: Provider | None = None  # the provider's own answer bodies, if any
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id")
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(f"{scope['method']} is not allowed here: use POST")
            configured = pipeline.source(source)
            provider = configured.provider
            answers = pipeline.provider(source)
            if configured.allow_ips:
                client = scope.get("client")
                address = client_address(
                    client[0] if client else None,
                    headers.get("x-forwarded-for"),
                    pipeline.config.trusted_proxies,
                )
                if address is None or not any(address in net for net in configured.allow_ips):
                    raise Forbidden("the request's address is not allowed for this source")
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media not in pipeline.media_types(source):
                raise UnsupportedMediaType(
                    f"expected one of: {', '.join(sorted(pipeline.media_types(source)))}"
                )
            limit = pipeline.config.server.max_body_bytes
            raw = await read_body(receive, headers.get("content-length"), limit)
            outcome = await pipeline.accept(source, raw, headers, time.time())
        except GatewayError as exc:
            label = source if provider is not None else "_unknown"  # never a label from the URL
            metrics.WEBHOOKS.labels(label, exc.reason).inc()
            if isinstance(exc, SignatureError):
                metrics.VERIFICATION_FAILURES.labels(label, exc.reason).inc()
            metrics.REQUEST_DURATION.labels(label).observe(time.perf_counter() - started)
            webhook_line(
                WebhookLine(
                    source=source,
                    provider=provider,
                    status=status_of(exc),
                    outcome="rejected",
                    reason=exc.reason,
                    detail=str(exc),
                    request_id=request_id,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    level="warning",
                )
            )
            if pipeline.journal is not None:  # fire and forget: never awaited
                pipeline.journal.rejected(
                    source, provider, status_of(exc), exc, request_id, started
                )
            return problem(exc, answers)
        event = outcome.event
        tracing.annotate(
            source=source, provider=provider, event_id=event.id, outcome=outcome.status
        )
        metrics.WEBHOOKS.labels(source, outcome.status).inc()
        metrics.REQUEST_DURATION.labels(source).observe(time.perf_counter() - started)
        webhook_line(
            WebhookLine(
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
        )
        if pipeline.journal is not None:  # fire and forget: never awaited
            pipeline.journal.answered(source, configured.provider, outcome, request_id, started)
        return accepted(event.id, outcome.status, pipeline.provider(source))


@post(
    "/webhooks/{source:str}",
    status_code=200,
    summary="Receive a provider webhook",
    description="Verify, normalize, route and durably hand off one provider webhook.",
)
async def webhooks_route(request: Request[Any, Any, Any], source: FromPath[str]) -> Response[bytes]:
    """The ingress through Litestar's router (GatewayApp answers the usual paths first)."""
    ingress: Ingress = request.app.state.ingress
    reply = await ingress.answer(request.scope, request.receive, source)
    return reply.response()
