"""The one place that maps errors to HTTP: RFC 9457 problem details (VelaFi: its own body)."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException

from gateway.errors import (
    BodyTooLarge,
    Forbidden,
    GatewayError,
    PayloadError,
    SignatureError,
    Unavailable,
    UnknownSource,
    UnsupportedMediaType,
)

log = structlog.get_logger("gateway.http")

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://webhook-gateway.dev/problems/"

# status, title, problem type slug
_PROBLEMS: dict[type[GatewayError], tuple[int, str, str]] = {
    PayloadError: (400, "Invalid payload", "invalid-payload"),
    SignatureError: (401, "Authentication failed", "authentication-failed"),
    Forbidden: (403, "Source address not allowed", "forbidden"),
    UnknownSource: (404, "Unknown source", "unknown-source"),
    BodyTooLarge: (413, "Body too large", "body-too-large"),
    UnsupportedMediaType: (415, "Unsupported media type", "unsupported-media-type"),
    Unavailable: (503, "Event could not be made durable", "unavailable"),
}

_ENCODER = msgspec.json.Encoder()
VELAFI_SUCCESS = b'{"callbackStatus":"SUCCESS"}'
VELAFI_FAIL = b'{"callbackStatus":"FAIL"}'


def _spec(exc: GatewayError) -> tuple[int, str, str]:
    for kind, spec in _PROBLEMS.items():
        if isinstance(exc, kind):
            return spec
    return 500, "Internal error", "internal"


def status_of(exc: GatewayError) -> int:
    """The HTTP status a domain error maps to."""
    return _spec(exc)[0]


def problem(exc: GatewayError, provider: str | None = None) -> Response[bytes]:
    """The response for a domain error: problem+json, or VelaFi's `callbackStatus` body."""
    status, title, slug = _spec(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, Unavailable):
        headers["retry-after"] = str(exc.retry_after)
    if provider == "velafi":
        return Response(
            VELAFI_FAIL, status_code=status, media_type="application/json", headers=headers
        )
    body: dict[str, Any] = {
        "type": _TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": str(exc),
    }
    if isinstance(exc, PayloadError):
        body["path"] = exc.path
    return Response(
        _ENCODER.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def accepted(event_id: str, status: str, provider: str) -> Response[bytes]:
    """The 200 for accepted, duplicate and unrouted events."""
    if provider == "velafi":
        return Response(VELAFI_SUCCESS, status_code=200, media_type="application/json")
    return Response(
        _ENCODER.encode({"id": event_id, "status": status}),
        status_code=200,
        media_type="application/json",
    )


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own errors (unknown path, wrong method, ...) as problem details too."""
    status = exc.status_code
    body = {
        "type": _TYPE_BASE + "http",
        "title": exc.__class__.__name__,
        "status": status,
        "detail": exc.detail if status < 500 else "internal error",
    }
    headers = dict(exc.headers or {})
    return Response(
        _ENCODER.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A bug: logged with its traceback, answered with a bare 500 (never the traceback)."""
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    body = {
        "type": _TYPE_BASE + "internal",
        "title": "Internal error",
        "status": 500,
        "detail": "internal error",
    }
    return Response(_ENCODER.encode(body), status_code=500, media_type=PROBLEM_JSON)
