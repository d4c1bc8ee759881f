"""The one place that maps errors to HTTP: RFC 9457 problem details (or a provider's own body).

Every answer is built here as a `Reply` (status, media type, headers, body). The ingress
sends it straight over ASGI; Litestar's own handlers turn it into a `Response`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException

from gateway.errors import (
    BodyTooLarge,
    Forbidden,
    GatewayError,
    IncompleteRequest,
    MethodNotAllowed,
    PayloadError,
    RecordTooLarge,
    SignatureError,
    Unavailable,
    UnknownSource,
    Unproducible,
    UnsupportedMediaType,
)
from gateway.providers import Provider

log = structlog.get_logger("gateway.http")

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://webhook-gateway.dev/problems/"

# status, title, problem type slug
_PROBLEMS: dict[type[GatewayError], tuple[int, str, str]] = {
    PayloadError: (400, "Invalid payload", "invalid-payload"),
    IncompleteRequest: (400, "Incomplete request", "incomplete-request"),
    SignatureError: (401, "Authentication failed", "authentication-failed"),
    Forbidden: (403, "Source address not allowed", "forbidden"),
    UnknownSource: (404, "Unknown source", "unknown-source"),
    MethodNotAllowed: (405, "Method not allowed", "method-not-allowed"),
    BodyTooLarge: (413, "Body too large", "body-too-large"),
    RecordTooLarge: (413, "Event too large for the broker", "record-too-large"),
    UnsupportedMediaType: (415, "Unsupported media type", "unsupported-media-type"),
    Unproducible: (422, "Event refused by the broker", "unproducible"),
    Unavailable: (503, "Event could not be made durable", "unavailable"),
}

_ENCODER = msgspec.json.Encoder()
_JSON = "application/json"


class Reply(NamedTuple):
    """One HTTP answer, ready to send."""

    status: int
    body: bytes
    media_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()

    def asgi_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers of an ASGI `http.response.start` message."""
        headers = [
            (b"content-type", self.media_type.encode()),
            (b"content-length", str(len(self.body)).encode()),
        ]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        return headers

    def response(self) -> Response[bytes]:
        """The same answer as a Litestar `Response`."""
        return Response(
            self.body,
            status_code=self.status,
            media_type=self.media_type,
            headers=dict(self.headers),
        )


def _spec(exc: GatewayError) -> tuple[int, str, str]:
    for kind, spec in _PROBLEMS.items():
        if isinstance(exc, kind):
            return spec
    return 500, "Internal error", "internal"


def status_of(exc: GatewayError) -> int:
    """The HTTP status a domain error maps to."""
    return _spec(exc)[0]


def _problem_json(status: int, title: str, slug: str, detail: str, **extra: Any) -> bytes:
    body = {"type": _TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    return _ENCODER.encode({**body, **extra})


def problem(exc: GatewayError, provider: Provider | None = None) -> Reply:
    """The answer to a domain error: problem+json, or the provider's own error body."""
    status, title, slug = _spec(exc)
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, Unavailable):
        headers = (("retry-after", str(exc.retry_after)),)
    elif isinstance(exc, MethodNotAllowed):
        headers = (("allow", "POST"),)
    if provider is not None and provider.error_body is not None:
        return Reply(status, provider.error_body, _JSON, headers)
    extra = {"path": exc.path} if isinstance(exc, PayloadError) else {}
    return Reply(
        status, _problem_json(status, title, slug, str(exc), **extra), PROBLEM_JSON, headers
    )


def accepted(event_id: str, status: str, provider: Provider) -> Reply:
    """The 200 for accepted, duplicate and unrouted events."""
    if provider.success_body is not None:
        return Reply(200, provider.success_body)
    return Reply(200, _ENCODER.encode({"id": event_id, "status": status}))


def internal_error() -> Reply:
    """A bug's answer: a bare 500, never a traceback."""
    return Reply(
        500, _problem_json(500, "Internal error", "internal", "internal error"), PROBLEM_JSON
    )


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own errors (unknown path, wrong method, ...) as problem details too."""
    status = exc.status_code
    detail = exc.detail if status < 500 else "internal error"
    body = _problem_json(status, exc.__class__.__name__, "http", detail)
    headers = tuple((exc.headers or {}).items())
    return Reply(status, body, PROBLEM_JSON, headers).response()


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A bug: logged with its traceback, answered with a bare 500 (never the traceback)."""
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return internal_error().response()
