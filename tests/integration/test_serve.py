"""`gateway serve` as a real process (uvicorn) on 127.0.0.1: streaming limits, logs, metrics, readiness."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.broker import Broker, free_port, tansu_binary
from tests import faults
from tests.conftest import Keys, write_config
from tests.faults import Served, wait_ready
from tests.ingress_helpers import sample, signed, with_field

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def serve(tmp_path: Path, keys: Keys, bootstrap: str, server: str) -> Served:
    """`gateway serve` on a test config with the given `server:` settings."""
    return faults.serve(
        write_config(tmp_path, keys, bootstrap=bootstrap, server=server), tmp_path / "gateway.log"
    )


def stop(served: Served) -> None:
    """SIGTERM and wait (graceful shutdown)."""
    served.stop(timeout=30)


@pytest.fixture
def gateway(tmp_path: Path, keys: Keys, broker: Broker) -> Iterator[Served]:
    """A served gateway on the session broker, with a 64 KiB body limit."""
    served = serve(
        tmp_path,
        keys,
        broker.bootstrap,
        "max_body_bytes: 65536\n  log_format: json\n  unready_after: 3s",
    )
    wait_ready(served.url, 200)
    yield served
    stop(served)


def test_streamed_oversized_body_is_refused_early(gateway: Served) -> None:
    """A huge chunked body gets 413 after about the limit, not after it was all sent or buffered."""
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    sock.sendall(
        b"POST /webhooks/whitepay HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 16384
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    response = b""
    try:
        while sent < 100 * 1024 * 1024:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                response = sock.recv(65536)
                break
            sock.sendall(frame)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        response = response or sock.recv(65536)
    finally:
        sock.close()
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 8 * 1024 * 1024, f"sent {sent} bytes before the 413"


def test_logs_metrics_and_no_secrets(gateway: Served, keys: Keys) -> None:
    """One JSON log line per webhook with the SPEC fields; metrics count it; no secret is logged."""
    headers, body = signed("w3block", sample("w3block", "order-expired.json"), keys)
    ok = httpx.post(
        f"{gateway.url}/webhooks/w3block",
        content=body,
        headers={**headers, "x-request-id": "req-42"},
    )
    assert ok.status_code == 200, ok.text
    dup = httpx.post(f"{gateway.url}/webhooks/w3block", content=body, headers=headers)
    assert dup.json()["status"] == "duplicate"
    bad = dict(headers)
    bad["x-w3block-commerce-signature"] = "ab" * 32
    assert (
        httpx.post(f"{gateway.url}/webhooks/w3block", content=body, headers=bad).status_code == 401
    )
    assert (
        httpx.post(
            f"{gateway.url}/webhooks/w3block", content=b"x", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )

    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'gateway_webhooks_received_total{outcome="accepted",source="w3block"} 1.0' in metrics
    assert 'gateway_webhooks_received_total{outcome="duplicate",source="w3block"} 1.0' in metrics
    assert 'gateway_webhooks_received_total{outcome="signature",source="w3block"} 1.0' in metrics
    assert 'gateway_webhooks_received_total{outcome="media_type",source="w3block"} 1.0' in metrics
    assert 'gateway_route_matches_total{route="orders"}' in metrics
    assert "gateway_kafka_produce_latency_seconds_bucket" in metrics
    assert "gateway_request_duration_seconds_bucket" in metrics
    assert 'gateway_build_info{version="' in metrics

    time.sleep(0.3)
    lines = [line for line in gateway.log_lines() if line.get("event") == "webhook"]
    accepted = [line for line in lines if line.get("outcome") == "accepted"]
    assert len(accepted) == 1
    line = accepted[0]
    for field in ("source", "provider", "event_id", "type", "routes", "status", "duration_ms"):
        assert field in line, field
    assert line["request_id"] == "req-42" and line["type"] == "order.expired"
    everything = gateway.log.read_text()
    for secret in keys.all_secrets():
        assert secret not in everything
    assert "pi_3LuNCGLjgooBZGqL2d3ZCF1z_secret" not in everything  # W3Block clientSecret
    assert "ab" * 32 not in everything  # the (forged) signature


def test_readiness_flips_with_broker(tmp_path: Path, keys: Keys) -> None:
    """/readyz turns 503 when the broker has been unreachable past the threshold, and back to 200."""
    own = Broker(tansu_binary(), free_port(), log_path=str(tmp_path / "tansu.log"))
    own.start()
    served = serve(tmp_path, keys, own.bootstrap, "log_format: json\n  unready_after: 3s")
    try:
        wait_ready(served.url, 200)
        assert httpx.get(f"{served.url}/healthz").status_code == 200
        own.stop()
        took = wait_ready(served.url, 503)
        print(f"readiness went false {took:.1f}s after the broker stopped")
        assert httpx.get(f"{served.url}/healthz").status_code == 200  # alive all along
        own.start()
        back = wait_ready(served.url, 200)
        print(f"readiness recovered {back:.1f}s after the broker returned")
        # And a webhook goes through again.
        body = with_field(
            sample("whitepay", "order-declined.json"), ["order", "id"], "after-recovery"
        )
        headers, payload = signed("whitepay", body, keys)
        assert (
            httpx.post(
                f"{served.url}/webhooks/whitepay", content=payload, headers=headers, timeout=15
            ).status_code
            == 200
        )
        metrics = httpx.get(f"{served.url}/metrics").text
        assert "gateway_kafka_connected 1.0" in metrics
    finally:
        stop(served)
        own.stop()


@pytest.fixture
def impatient(tmp_path: Path, keys: Keys, broker: Broker) -> Iterator[Served]:
    """A served gateway with a 2 s request read deadline."""
    served = serve(tmp_path, keys, broker.bootstrap, "request_read_timeout: 2s\n  log_format: json")
    yield served
    stop(served)


def _closed_within(sock: socket.socket, trickle: bytes, seconds: float) -> float | None:
    """Send `trickle` every 0.5 s; return when the server closed the connection, or None."""
    started = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            try:
                sock.sendall(trickle)
            except OSError:
                return time.monotonic() - started
        except OSError:
            return time.monotonic() - started
    return None


@pytest.mark.parametrize(
    "opening,trickle",
    [
        (b"", b""),  # connects and sends nothing
        (b"POST /webhooks/whitepay HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n"),  # slow headers
        (
            b"POST /webhooks/whitepay HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{",
            b" ",
        ),  # slow body
    ],
    ids=["idle", "slow-headers", "slow-body"],
)
def test_slow_loris_connections_are_closed(
    impatient: Served, opening: bytes, trickle: bytes
) -> None:
    """Idle, slow-header and slow-body connections are closed at the read deadline, not held forever."""
    sock = socket.create_connection(("127.0.0.1", impatient.port), timeout=5)
    try:
        sock.sendall(opening)
        took = _closed_within(sock, trickle, seconds=10)
    finally:
        sock.close()
    print(f"closed after {took}s")
    assert took is not None and took < 5
    # The server still serves others.
    assert httpx.get(f"{impatient.url}/healthz").status_code == 200


def test_allow_ips_and_trusted_proxies(tmp_path: Path, keys: Keys, broker: Broker) -> None:
    """A source's allow_ips gives 403 to other addresses before any parsing; XFF only via trusted proxies."""
    config = write_config(
        tmp_path,
        keys,
        bootstrap=broker.bootstrap,
        server="trusted_proxies: [127.0.0.1/32]\n  log_format: json",
    )
    text = config.read_text()
    text = text.replace(
        "    provider: whitepay\n", "    provider: whitepay\n    allow_ips: [203.0.113.0/24]\n"
    )
    text = text.replace(
        "    provider: w3block\n", "    provider: w3block\n    allow_ips: [127.0.0.0/8]\n"
    )
    config.write_text(text)
    served = faults.serve(config, tmp_path / "gw.log")
    try:
        wait_ready(served.url, 200)
        headers, body = signed("whitepay", sample("whitepay", "order-declined.json"), keys)
        denied = httpx.post(
            f"{served.url}/webhooks/whitepay",
            content=b"not even json",
            headers={"content-type": "text/plain"},
        )
        assert denied.status_code == 403  # before media type, body or signature are looked at
        forwarded = httpx.post(
            f"{served.url}/webhooks/whitepay",
            content=body,
            headers={**headers, "x-forwarded-for": "203.0.113.50"},
        )
        assert forwarded.status_code == 200, forwarded.text
        spoofed = httpx.post(
            f"{served.url}/webhooks/whitepay",
            content=body,
            headers={**headers, "x-forwarded-for": "203.0.113.50, 198.51.100.9"},
        )
        assert spoofed.status_code == 403
        headers, body = signed("w3block", sample("w3block", "order-failed.json"), keys)
        assert (
            httpx.post(f"{served.url}/webhooks/w3block", content=body, headers=headers).status_code
            == 200
        )
    finally:
        served.stop()
