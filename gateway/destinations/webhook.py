"""Outbound webhooks: Standard Webhooks signing and one classified HTTP attempt.

Signing and classification are pure functions; `WebhookClient` owns the process's one
aiohttp session and turns one POST into an `AttemptResult`, never an exception.
"""

from __future__ import annotations

import base64
import hmac
import ssl
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Literal

import aiohttp
from yarl import URL

from gateway import tracing
from gateway.config import WebhookDestination
from gateway.types import Secrets

CONTENT_TYPE = "application/cloudevents+json"
# Headers the gateway sets itself; a static `headers:` entry of the same name never wins.
_RESERVED = frozenset({"content-type", "webhook-id", "webhook-timestamp", "webhook-signature"})
# Statuses in the 4xx range that mean "try again later" rather than "never".
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
# We only need the status; a chatty receiver's body is read up to this and then dropped.
_MAX_RESPONSE_BYTES = 64 * 1024
# `Retry-After` beyond this is not believed anyway (retry.RETRY_AFTER_CEILING caps it lower);
# parsing stops at this many digits so a huge number is neither slow nor infinite.
_RETRY_AFTER_CAP = 86_400.0 * 365
_MAX_DELTA_DIGITS = 9

Verdict = Literal["success", "retry", "permanent"]


def signing_keys(secrets: Secrets) -> tuple[bytes, ...]:
    """HMAC keys of `whsec_<base64>` secrets (prefix stripped, rest base64-decoded)."""
    keys = []
    for value in secrets.reveal():
        body = value.removeprefix("whsec_")
        # Unpadded base64 is common in the wild; the standardwebhooks libraries accept it too.
        keys.append(base64.b64decode(body + "=" * (-len(body) % 4), validate=True))
    return tuple(keys)


def signature(keys: tuple[bytes, ...], msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: one `v1,<base64 HMAC-SHA256>` per key, space-separated."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode() for key in keys
    )


def request_headers(
    static: dict[str, str], keys: tuple[bytes, ...], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every header of one attempt: configured static headers, then content type and signature."""
    headers = {k: v for k, v in static.items() if k.lower() not in _RESERVED}
    headers["content-type"] = CONTENT_TYPE
    headers["webhook-id"] = msg_id
    headers["webhook-timestamp"] = str(timestamp)
    headers["webhook-signature"] = signature(keys, msg_id, timestamp, body)
    return headers


def classify(status: int) -> Verdict:
    """2xx success; 5xx and 408/409/425/429 retry; every other status (3xx, 4xx) permanent."""
    if 200 <= status < 300:
        return "success"
    if status >= 500 or status in _RETRYABLE_4XX:
        return "retry"
    return "permanent"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date), if valid.

    Whatever a receiver sends, this returns a finite number of seconds or None, never
    raises: only ASCII digits are delta-seconds (`str.isdigit` also accepts `²` and `٣`,
    which `float` refuses), absurd values are capped, and any date the parser chokes on
    (out-of-range years, garbage) is ignored.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        # The digits are never converted whole: a 10,000-digit header costs nothing.
        return float(value) if len(value) <= _MAX_DELTA_DIGITS else _RETRY_AFTER_CAP
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:  # an HTTP date is always GMT; a zone-less one means that too
            return None
        wait = moment.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    if wait != wait:  # NaN cannot come from a date, but a wait must be comparable
        return None
    return min(max(0.0, wait), _RETRY_AFTER_CAP)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one POST came to. `error` is short and safe to log (no body, no secrets)."""

    verdict: Verdict
    status: int | None
    error: str
    retry_after: float | None = None
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A webhook destination prepared for sending: keys decoded, timeout built once."""

    name: str
    url: URL  # parsed once, not on every request
    keys: tuple[bytes, ...] = field(repr=False)
    headers: dict[str, str]
    timeout: aiohttp.ClientTimeout

    @classmethod
    def of(cls, name: str, dest: WebhookDestination) -> Endpoint:
        """Prepare a configured destination."""
        return cls(
            name=name,
            url=URL(dest.url),
            keys=signing_keys(dest.secret),
            headers=dict(dest.headers),
            timeout=aiohttp.ClientTimeout(total=dest.timeout),
        )


class WebhookClient:
    """The process's one HTTP client for outbound webhooks (TLS verified, no redirects)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Create the session (inside the running loop, as aiohttp requires)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,  # per-destination concurrency limits are enforced by the workers
                ssl=ssl.create_default_context(),
                ttl_dns_cache=60,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # no proxy or netrc from the environment: the URL is the URL
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # receivers must not get state across events
            )

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, endpoint: Endpoint, msg_id: str, body: bytes, now: float) -> AttemptResult:
        """POST `body` once, signed with timestamp `now`; classify whatever happens."""
        session = self._session
        if session is None:
            raise RuntimeError("WebhookClient.start() was not called")
        headers = request_headers(endpoint.headers, endpoint.keys, msg_id, int(now), body)
        trace = tracing.traceparent()
        if trace is not None:  # the receiver's trace continues the delivery attempt's span
            headers["traceparent"] = trace
        started = time.monotonic()
        try:
            async with session.post(
                endpoint.url,
                # A ready payload skips aiohttp's per-request payload-type lookup.
                data=aiohttp.BytesPayload(body, content_type=CONTENT_TYPE),
                headers=headers,
                allow_redirects=False,
                timeout=endpoint.timeout,
            ) as response:
                await _drain(response)
                status = response.status
                retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        except TimeoutError:
            return _failed("retry", f"timed out after {endpoint.timeout.total:g}s", started)
        except aiohttp.InvalidURL:
            return _failed("permanent", "invalid URL", started)
        except aiohttp.ClientConnectorDNSError:
            return _failed("retry", "DNS lookup failed", started)
        except aiohttp.ClientConnectorCertificateError:
            return _failed("retry", "TLS certificate verification failed", started)
        except aiohttp.ClientConnectorError as exc:
            return _failed("retry", f"connection failed: {_reason(exc)}", started)
        except aiohttp.ServerDisconnectedError:
            return _failed("retry", "server disconnected", started)
        except (aiohttp.ClientError, OSError) as exc:
            return _failed("retry", f"request failed: {type(exc).__name__}", started)
        verdict = classify(status)
        if verdict == "success":
            error = ""
        elif 300 <= status < 400:
            error = f"HTTP {status} (redirects are not followed)"
        else:
            error = f"HTTP {status}"
        return AttemptResult(
            verdict,
            status,
            error,
            retry_after if verdict == "retry" else None,
            time.monotonic() - started,
        )


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read (and drop) a small body so the connection is reused; close on a large one."""
    remaining = _MAX_RESPONSE_BYTES
    while remaining > 0:
        chunk = await response.content.read(min(remaining, 16384))
        if not chunk:
            return
        remaining -= len(chunk)
    response.close()


def _failed(verdict: Verdict, error: str, started: float) -> AttemptResult:
    return AttemptResult(verdict, None, error, None, time.monotonic() - started)


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    # `os_error.strerror` is e.g. "Connect call failed" / "Connection refused": no URL, no body.
    os_error = exc.os_error
    if os_error is None:
        return type(exc).__name__
    return os_error.strerror or type(os_error).__name__
