"""Shared fixtures: a real tansu broker, generated keys and secrets, config files."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.broker import Broker, free_port, tansu_binary
from tests.durable_broker import durable_broker, moto_s3  # noqa: F401 - fixtures (SIGKILL tests)
from tests.redis_server import own_redis, redis_server, silent_server  # noqa: F401 - fixtures


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real Kafka-protocol broker (tansu) on a free 127.0.0.1 port for the whole session."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    instance = Broker(tansu_binary(), free_port(), log_path=str(log))
    instance.start()
    yield instance
    instance.stop()


@dataclass(frozen=True)
class RsaPair:
    """An RSA key pair as PEM text (private) and PEM text (public)."""

    private_pem: str
    public_pem: str


def _rsa() -> RsaPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return RsaPair(private, public)


@dataclass(frozen=True)
class Keys:
    """Every key and secret the integration tests sign with (two of each: rotation)."""

    fatpay: RsaPair
    fatpay_old: RsaPair
    velafi: RsaPair
    velafi_old: RsaPair
    pay3: str
    pay3_old: str
    whitepay: str
    whitepay_old: str
    w3block: str
    w3block_old: str
    partner_id: str = "2yQrS9A0xmM8xpfa"

    def all_secrets(self) -> list[str]:
        """Every secret value (private keys, HMAC secrets), for leak checks."""
        out = [
            self.pay3,
            self.pay3_old,
            self.whitepay,
            self.whitepay_old,
            self.w3block,
            self.w3block_old,
        ]
        for pair in (self.fatpay, self.fatpay_old, self.velafi, self.velafi_old):
            out.append(pair.private_pem)
        return out


def make_keys() -> Keys:
    """Fresh RSA keys and HMAC secrets."""
    return Keys(
        fatpay=_rsa(),
        fatpay_old=_rsa(),
        velafi=_rsa(),
        velafi_old=_rsa(),
        pay3="pay3-" + uuid.uuid4().hex,
        pay3_old="pay3-old-" + uuid.uuid4().hex,
        whitepay="wp-" + uuid.uuid4().hex,
        whitepay_old="wp-old-" + uuid.uuid4().hex,
        w3block="w3b-" + uuid.uuid4().hex,
        w3block_old="w3b-old-" + uuid.uuid4().hex,
    )


@pytest.fixture(scope="session")
def keys() -> Keys:
    """Fresh RSA keys and HMAC secrets for this test session."""
    return make_keys()


FATPAY_URL = "https://hooks.example.com/webhooks/fatpay"


def write_config(
    directory: Path,
    keys: Keys,
    *,
    bootstrap: str = "127.0.0.1:1",
    extra: str = "",
    server: str = "handoff_timeout: 3s\n  retry_after: 2s",
    routes: str | None = None,
    destinations: str | None = None,
    topic_suffix: str | None = None,
    unmatched: str = "[other]",
) -> Path:
    """A complete config file for all five providers; keys as files and env references."""
    suffix = topic_suffix or uuid.uuid4().hex[:8]
    (directory / "keys").mkdir(exist_ok=True)
    for name in ("fatpay", "fatpay_old", "velafi", "velafi_old"):
        (directory / "keys" / f"{name}.pem").write_text(getattr(keys, name).public_pem)
    os.environ["TEST_PAY3_SECRET"] = keys.pay3
    os.environ["TEST_WHITEPAY_TOKEN"] = keys.whitepay
    if destinations is None:
        destinations = textwrap.dedent(f"""\
          orders:
            kafka: {{topic: orders-{suffix}}}
          moves:
            kafka: {{topic: moves-{suffix}, mode: binary, key: data.id}}
          other:
            kafka: {{topic: other-{suffix}}}
        """)
    if routes is None:
        routes = textwrap.dedent("""\
          - name: orders
            match: {type: "order.*"}
            to: [orders]
            omit: [data.payload.data.paymentInfo.clientSecret]
          - name: moves
            match: {type: ["transaction.*", "withdrawal.*"]}
            to: [moves]
        """)
    text = f"""\
server:
  {server}
kafka:
  bootstrap_servers: {bootstrap}
  enable_idempotence: false
  compression: gzip
  create_topics: true
  request_timeout: 3s
  topic_partitions: 2
  session_timeout: 2s
  heartbeat_interval: 500ms
sources:
  fatpay:
    provider: fatpay
    public_key: ["${{file:keys/fatpay.pem}}", "${{file:keys/fatpay_old.pem}}"]
    partner_id: {keys.partner_id}
    url: {FATPAY_URL}
    tolerance: 5m
  velafi:
    provider: velafi
    public_key: ["${{file:keys/velafi.pem}}", "${{file:keys/velafi_old.pem}}"]
  pay3:
    provider: pay3
    secret: ["${{env:TEST_PAY3_SECRET}}", {keys.pay3_old}]
  whitepay:
    provider: whitepay
    secret: ["${{env:TEST_WHITEPAY_TOKEN}}", {keys.whitepay_old}]
  w3block:
    provider: w3block
    secret: [{keys.w3block}, {keys.w3block_old}]
destinations:
{textwrap.indent(destinations, "  ")}
routes:
{textwrap.indent(routes, "  ")}
unmatched: {unmatched}
{extra}
"""
    path = directory / "gateway.yaml"
    path.write_text(text)
    return path
