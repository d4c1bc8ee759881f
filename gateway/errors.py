"""The domain's one exception tree; `gateway.http.problems` maps it to HTTP in one place."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose.

    `reason` is a short, low-cardinality label for logs and metrics; the message is
    safe to show a caller (it never contains secrets, signatures or body bytes).
    """

    reason = "error"


class SignatureError(GatewayError):
    """Authentication of the request failed (signature, timestamp, nonce, partner id)."""

    reason = "signature"


class PayloadError(GatewayError):
    """The authenticated body is not the provider's documented shape."""

    reason = "payload"

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.path = path


class UnknownSource(GatewayError):
    """No source of that name is configured."""

    reason = "unknown_source"


class Forbidden(GatewayError):
    """The client address is outside the source's allowlist."""

    reason = "forbidden"


class IncompleteRequest(GatewayError):
    """The client went away before its whole body arrived."""

    reason = "incomplete"


class MethodNotAllowed(GatewayError):
    """The ingress takes only `POST`."""

    reason = "method"


class UnsupportedMediaType(GatewayError):
    """The request's content type is not the one the provider sends."""

    reason = "media_type"


class BodyTooLarge(GatewayError):
    """The body exceeds `server.max_body_bytes`."""

    reason = "size"


class RecordTooLarge(GatewayError):
    """A record of the event exceeds what the broker takes (`kafka.max_request_size`): permanent."""

    reason = "record_size"


class Unproducible(GatewayError):
    """The broker refused a record of the event for good (not retriable): permanent."""

    reason = "unproducible"


class Unavailable(GatewayError):
    """The event could not be made durable in time; the provider should retry."""

    reason = "unavailable"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(Exception):
    """The configuration is invalid; carries every problem found, not just the first.

    Deliberately outside the `GatewayError` tree: it is raised at start-up (and by
    `gateway check`), never while answering a request, so the HTTP error mapping has no
    status for it and cannot be asked for one.
    """

    reason = "config"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
