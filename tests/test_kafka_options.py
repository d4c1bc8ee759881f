"""Kafka client settings derived from config: durability and TLS verification."""

from __future__ import annotations

import ssl

from gateway.config import KafkaDestination, parse_config
from gateway.destinations.kafka import client_options, producer_options, record
from gateway.errors import ConfigError

BASE = """\
sources:
  wp: {provider: whitepay, secret: s3cr3t-value}
"""


def test_producer_is_durable_and_idempotent_by_default() -> None:
    """acks=all and idempotence on unless configured off; compression from config."""
    options = producer_options(parse_config(BASE, "c").kafka)
    assert options["acks"] == "all" and options["enable_idempotence"] is True
    assert options["compression_type"] == "zstd"
    off = producer_options(
        parse_config(BASE + "kafka: {enable_idempotence: false, compression: none}\n", "c").kafka
    )
    assert off["enable_idempotence"] is False and off["compression_type"] is None


def test_acks_setting_is_honoured_and_only_durable_values_load() -> None:
    """`kafka.acks` reaches the producer; only all/-1 load, since a 200 means durable."""
    numeric = producer_options(parse_config(BASE + "kafka: {acks: -1}\n", "c").kafka)
    assert numeric["acks"] == -1
    for weak in ("1", "0"):
        try:
            parse_config(BASE + f"kafka: {{acks: {weak}}}\n", "c")
        except ConfigError as exc:
            assert "kafka.acks" in str(exc)
        else:
            raise AssertionError(f"acks: {weak} loaded")


def test_ssl_verifies_certificates_and_hostnames() -> None:
    """SSL/SASL_SSL contexts verify the broker's certificate and host name by default."""
    cfg = parse_config(
        BASE + "kafka:\n  security_protocol: SASL_SSL\n  sasl_mechanism: SCRAM-SHA-512\n"
        "  sasl_username: gw\n  sasl_password: pw-secret\n",
        "c",
    ).kafka
    options = client_options(cfg)
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
    assert (
        options["sasl_plain_password"] == "pw-secret"
        and options["sasl_mechanism"] == "SCRAM-SHA-512"
    )
    assert "ssl_context" not in client_options(parse_config(BASE, "c").kafka)


def test_sasl_mechanism_needs_password() -> None:
    """A SASL mechanism without a password is a config error."""
    import pytest

    from gateway.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "kafka: {sasl_mechanism: PLAIN}\n", "c")
    assert "sasl_password" in info.value.problems[0]


def test_record_modes_and_missing_key() -> None:
    """Structured and binary records; a key path that is absent gives a null key."""
    event = {
        "id": "1",
        "type": "order.completed",
        "partitionkey": "o-1",
        "data": {"id": "o-1"},
        "datacontenttype": "application/json",
    }
    key, value, headers = record(event, KafkaDestination(topic="t"))
    assert key == b"o-1" and b'"type":"order.completed"' in value
    key, value, headers = record(
        event, KafkaDestination(topic="t", mode="binary", key="data.nothing")
    )
    assert key is None and value == b'{"id":"o-1"}'
    assert ("ce_type", b"order.completed") in headers and (
        "content-type",
        b"application/json",
    ) in headers
