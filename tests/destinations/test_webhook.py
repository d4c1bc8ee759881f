"""Standard Webhooks signing, response classification and one real HTTP attempt."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gateway.broker import free_port
from gateway.config import WebhookDestination
from gateway.destinations.webhook import (
    CONTENT_TYPE,
    Endpoint,
    WebhookClient,
    classify,
    parse_retry_after,
    request_headers,
    signing_keys,
)
from gateway.types import Duration, Secrets
from tests.destinations.receiver import Receiver, event_body, new_secret

BODY = event_body("evt-1", amount="10.50", note="café ✓")


def _endpoint(url: str, secrets: list[str], timeout: float = 2.0, **extra: object) -> Endpoint:
    dest = WebhookDestination(
        url=url, secret=Secrets.parse(secrets), timeout=Duration(timeout), **extra
    )
    return Endpoint.of("hook", dest)


def test_signature_verifies_with_standardwebhooks() -> None:
    """The headers verify with the reference library, over the exact (UTF-8) body bytes."""
    secret = new_secret()
    headers = request_headers(
        {}, signing_keys(Secrets.parse(secret)), "evt-1", int(time.time()), BODY
    )
    assert Webhook(secret).verify(BODY, headers)["id"] == "evt-1"
    assert headers["content-type"] == CONTENT_TYPE
    assert headers["webhook-id"] == "evt-1"


def test_rotation_signs_with_every_secret() -> None:
    """Two configured secrets: two space-separated `v1,` entries, each verifying on its own."""
    old, new = new_secret(), new_secret()
    headers = request_headers(
        {}, signing_keys(Secrets.parse([new, old])), "e", int(time.time()), BODY
    )
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_tampered_body_or_id_does_not_verify() -> None:
    """The MAC covers the id, the timestamp and the body."""
    secret = new_secret()
    headers = request_headers({}, signing_keys(Secrets.parse(secret)), "e", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "other"})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(
            BODY, {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}
        )


def test_unpadded_secret_decodes_like_the_reference() -> None:
    """A `whsec_` secret written without base64 padding signs as the library expects."""
    secret = "whsec_" + base64.b64encode(b"0123456789abcdefghij").decode().rstrip("=")
    assert not secret.endswith("=")
    keys = signing_keys(Secrets.parse(secret))
    assert keys == (b"0123456789abcdefghij",)
    Webhook(secret).verify(BODY, request_headers({}, keys, "e", int(time.time()), BODY))


def test_static_headers_cannot_override_signature_headers() -> None:
    """Configured headers are sent, but never replace content type or `webhook-*`."""
    keys = signing_keys(Secrets.parse(new_secret()))
    static = {"X-Team": "payments", "Webhook-Id": "forged", "Content-Type": "text/plain"}
    headers = request_headers(static, keys, "real", 1_700_000_000, BODY)
    assert headers["X-Team"] == "payments"
    assert headers["webhook-id"] == "real"
    assert headers["content-type"] == CONTENT_TYPE
    assert "Webhook-Id" not in headers and "Content-Type" not in headers


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "success"),
        (201, "success"),
        (204, "success"),
        (299, "success"),
        (301, "permanent"),
        (302, "permanent"),
        (307, "permanent"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (410, "permanent"),
        (413, "permanent"),
        (422, "permanent"),
        (408, "retry"),
        (409, "retry"),
        (425, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
    ],
)
def test_classification(status: int, verdict: str) -> None:
    """2xx success; 408/409/425/429 and 5xx retry; other statuses (3xx, 4xx) permanent."""
    assert classify(status) == verdict


def test_retry_after_seconds_and_dates() -> None:
    """`Retry-After` as delta-seconds or an HTTP date (relative to now); junk is ignored."""
    now = 1_700_000_000.0
    later = dt.datetime.fromtimestamp(now + 90, tz=dt.UTC)
    earlier = dt.datetime.fromtimestamp(now - 90, tz=dt.UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 5 ", now) == 5.0
    assert parse_retry_after(format_datetime(later, usegmt=True), now) == pytest.approx(90.0)
    assert parse_retry_after(format_datetime(earlier, usegmt=True), now) == 0.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after("1.5", now) is None


# -- one real attempt ---------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A verifying receiver on 127.0.0.1."""
    instance = Receiver([new_secret(), new_secret()])
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def client() -> AsyncIterator[WebhookClient]:
    """The webhook HTTP client, started."""
    instance = WebhookClient()
    await instance.start()
    yield instance
    await instance.close()


async def test_success_is_signed_with_every_secret(
    receiver: Receiver, client: WebhookClient
) -> None:
    """A 2xx is success; the request carries the body, content type and static headers."""
    endpoint = _endpoint(receiver.url + "/ok", receiver.secrets, headers={"X-Team": "payments"})
    result = await client.send(endpoint, "evt-1", BODY, time.time())
    assert (result.verdict, result.status, result.error) == ("success", 200, "")
    [got] = receiver.on("/ok")
    assert got.body == BODY
    assert got.verified_by == (0, 1)
    assert got.headers["content-type"] == CONTENT_TYPE
    assert got.headers["x-team"] == "payments"


async def test_redirect_is_not_followed(receiver: Receiver, client: WebhookClient) -> None:
    """A 3xx is a permanent failure and the Location is never requested."""
    receiver.behaviours["/moved"] = lambda n: web.Response(
        status=301, headers={"Location": receiver.url + "/elsewhere"}
    )
    result = await client.send(
        _endpoint(receiver.url + "/moved", receiver.secrets), "e", BODY, time.time()
    )
    assert (result.verdict, result.status) == ("permanent", 301)
    assert "not followed" in result.error
    assert receiver.on("/elsewhere") == []


async def test_retry_after_is_reported(receiver: Receiver, client: WebhookClient) -> None:
    """A 429 with `Retry-After` is retryable and carries the receiver's wait."""
    receiver.behaviours["/busy"] = lambda n: web.Response(status=429, headers={"Retry-After": "7"})
    result = await client.send(
        _endpoint(receiver.url + "/busy", receiver.secrets), "e", BODY, time.time()
    )
    assert (result.verdict, result.status, result.retry_after) == ("retry", 429, 7.0)


async def test_permanent_failure_ignores_retry_after(
    receiver: Receiver, client: WebhookClient
) -> None:
    """A 400 is permanent, whatever `Retry-After` it carries."""
    receiver.behaviours["/bad"] = lambda n: web.Response(status=400, headers={"Retry-After": "7"})
    result = await client.send(
        _endpoint(receiver.url + "/bad", receiver.secrets), "e", BODY, time.time()
    )
    assert (result.verdict, result.status, result.retry_after) == ("permanent", 400, None)


async def test_large_response_body_is_not_a_failure(
    receiver: Receiver, client: WebhookClient
) -> None:
    """A receiver answering 200 with a big body is still a success (the body is dropped)."""
    receiver.behaviours["/chatty"] = lambda n: web.Response(body=b"x" * 1_000_000)
    result = await client.send(
        _endpoint(receiver.url + "/chatty", receiver.secrets), "e", BODY, time.time()
    )
    assert (result.verdict, result.status) == ("success", 200)


async def test_timeout_is_retryable(receiver: Receiver, client: WebhookClient) -> None:
    """No answer within the destination's timeout: a retryable failure naming the timeout."""

    async def hang(n: int) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    receiver.behaviours["/slow"] = hang
    endpoint = _endpoint(receiver.url + "/slow", receiver.secrets, timeout=0.3)
    result = await client.send(endpoint, "e", BODY, time.time())
    assert (result.verdict, result.status) == ("retry", None)
    assert result.error == "timed out after 0.3s"


async def test_connection_refused_is_retryable(client: WebhookClient) -> None:
    """Nothing listening: a retryable connection failure."""
    endpoint = _endpoint(f"http://127.0.0.1:{free_port()}/x", [new_secret()])
    result = await client.send(endpoint, "e", BODY, time.time())
    assert (result.verdict, result.status) == ("retry", None)
    assert result.error.startswith("connection failed")


def _self_signed(directory: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


async def test_tls_certificate_is_verified(tmp_path: Path, client: WebhookClient) -> None:
    """An HTTPS receiver with an untrusted (self-signed) certificate is never sent the body."""
    seen: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.Response()

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=_self_signed(tmp_path)).start()
    try:
        result = await client.send(
            _endpoint(f"https://127.0.0.1:{port}/", [new_secret()]), "e", BODY, time.time()
        )
    finally:
        await runner.cleanup()
    assert (result.verdict, result.status) == ("retry", None)
    assert result.error == "TLS certificate verification failed"
    assert seen == []


async def test_send_before_start_is_an_error() -> None:
    """Using the client before `start()` is a programming error, not a delivery failure."""
    with pytest.raises(RuntimeError):
        await WebhookClient().send(_endpoint("http://127.0.0.1:1/", [new_secret()]), "e", BODY, 0.0)


@pytest.mark.parametrize(
    "value",
    [
        "²",  # a superscript two: `isdigit()` says yes, `float()` says no
        "٣",  # an Arabic-Indic three
        "9" * 5000,  # more digits than `int()` converts
        "1e400",
        "nan",
        "inf",
        "Tue, 01 Jan 99999 00:00:00 GMT",
        "Mon, 32 Foo 2026 25:61:61 GMT",
        "\x00\xff\ufffd",
        "Wed, 21 Oct 2015 07:28:00 +9999",
        "   ",
        "1, 2",
    ],
)
def test_retry_after_never_raises(value: str) -> None:
    """Whatever a receiver sends as `Retry-After`: a finite non-negative wait or None."""
    wait = parse_retry_after(value, 1_700_000_000.0)
    assert wait is None or 0.0 <= wait <= 86_400.0 * 365


def test_retry_after_far_dates_are_capped() -> None:
    """A date in the distant future is capped, one in the distant past is "now"."""
    now = 1_700_000_000.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == 86_400.0 * 365
    assert parse_retry_after("Mon, 01 Jan 1900 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("9" * 5000, now) == 86_400.0 * 365
