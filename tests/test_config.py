"""Config: parsed once into frozen Structs; every problem reported at once with line and path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import msgspec
import pytest

from gateway.config import ConfigError, load_config, parse_config
from gateway.types import ascii_int
from tests.conftest import Keys, write_config

MINIMAL = """\
sources:
  wp:
    provider: whitepay
    secret: s3cr3t-value
destinations:
  orders:
    kafka: {topic: payments.orders}
routes:
  - name: all
    match: {type: "order.*"}
    to: [orders]
"""


def problems(text: str, monkeypatch: pytest.MonkeyPatch | None = None) -> list[str]:
    """The problems `parse_config` reports for `text`."""
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "cfg.yaml")
    return info.value.problems


def test_minimal_config_has_documented_defaults() -> None:
    """A minimal file gets SPEC defaults: 1 MiB body, 24h dedupe, acks=all, idempotence on."""
    config = parse_config(MINIMAL, "cfg.yaml")
    assert config.server.max_body_bytes == 1_048_576
    assert config.server.dedupe_window == 86_400
    assert config.server.handoff_timeout == 10
    assert config.kafka.acks == "all" and config.kafka.enable_idempotence is True
    assert config.kafka.compression == "zstd"
    assert config.destinations["orders"].kafka.topic == "payments.orders"
    assert config.destinations["orders"].kafka.key == "partitionkey"
    with pytest.raises((AttributeError, TypeError)):
        config.server.max_body_bytes = 5


def test_full_test_config_loads(tmp_path: Path, keys: Keys) -> None:
    """The integration-test config (all five providers, file and env references, lists) loads."""
    config = load_config(write_config(tmp_path, keys))
    assert set(config.sources) == {"fatpay", "velafi", "pay3", "whitepay", "w3block"}
    assert config.sources["pay3"].settings.secret.reveal() == [keys.pay3, keys.pay3_old]
    assert config.sources["fatpay"].settings.tolerance == 300


def test_every_error_reported_at_once_with_line_and_path() -> None:
    """Several independent mistakes are all reported, each with file:line and its path."""
    found = problems(
        """\
        server:
          max_body_bytes: lots
          dedupe_windw: 24h
        kafka:
          compression: brotli
        sources:
          wp:
            provider: whitepay
            secret: abc
            tolerance: 5m
          fp:
            provider: nopay
        destinations:
          a: {kafka: {topic: t}, webhook: {url: "http://x", secret: "whsec_QUJD"}}
        """
    )
    text = "\n".join(found)
    assert "cfg.yaml:2: server.max_body_bytes:" in text
    assert "cfg.yaml:3: server.dedupe_windw: unknown key" in text
    assert "cfg.yaml:5: kafka.compression:" in text
    assert (
        "cfg.yaml:10: sources.wp.tolerance: unknown key" in text
        or "cfg.yaml:10: sources.wp" in text
    )
    assert "cfg.yaml:12: sources.fp.provider:" in text
    assert "cfg.yaml:14: destinations.a: a destination needs exactly one" in text
    assert len(found) >= 6


def test_route_errors_name_route_path_and_line() -> None:
    """Routing errors come back with the route's path and line (`routes[1].to[0]`)."""
    found = problems(
        MINIMAL
        + """\
  - name: second
    match: {type: "order.*"}
    to: [nowhere]
"""
    )
    assert any(p.startswith("cfg.yaml:14: routes[1].to[0]") for p in found), found


def test_env_references_with_default_and_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """`${env:X}` and `${env:X:-default}` resolve; a missing one is an error naming X."""
    monkeypatch.setenv("GW_TEST_BOOT", "broker-a:9092")
    monkeypatch.delenv("GW_TEST_MISSING", raising=False)
    config = parse_config(
        MINIMAL
        + "kafka:\n  bootstrap_servers: ${env:GW_TEST_BOOT}\n  client_id: ${env:GW_TEST_NOPE:-fallback}\n",
        "cfg.yaml",
    )
    assert config.kafka.bootstrap_servers == "broker-a:9092"
    assert config.kafka.client_id == "fallback"
    found = problems(MINIMAL + "kafka:\n  client_id: ${env:GW_TEST_MISSING}\n")
    assert found == [
        "cfg.yaml:13: kafka.client_id: environment variable GW_TEST_MISSING is not set"
    ]


def test_file_references_relative_to_config_and_missing(tmp_path: Path) -> None:
    """`${file:}` reads a file (relative to the config file); a missing file is an error."""
    (tmp_path / "secret.txt").write_text("from-a-file\n")
    cfg = tmp_path / "g.yaml"
    cfg.write_text(MINIMAL.replace("s3cr3t-value", "${file:secret.txt}"))
    config = load_config(cfg)
    assert config.sources["wp"].settings.secret.reveal() == ["from-a-file"]
    cfg.write_text(MINIMAL.replace("s3cr3t-value", "${file:/nonexistent/secret}"))
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert "cannot read `${file:/nonexistent/secret}`" in info.value.problems[0]


def test_secret_values_never_appear_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A referenced value that fails validation is not echoed in the message."""
    monkeypatch.setenv("GW_TEST_COMPRESSION", "super-secret-compression")
    found = problems(MINIMAL + "kafka:\n  compression: ${env:GW_TEST_COMPRESSION}\n")
    assert found and all("super-secret-compression" not in p for p in found)


def test_secrets_mask_themselves() -> None:
    """Secrets show as masked in repr/str of the loaded config."""
    config = parse_config(MINIMAL, "cfg.yaml")
    assert "s3cr3t-value" not in repr(config)
    assert "s3cr3t-value" not in str(config.sources["wp"].settings)


def test_durations() -> None:
    """Durations need a unit; `500ms`, `30s`, `5m`, `24h` parse to seconds."""
    config = parse_config(MINIMAL + "server:\n  handoff_timeout: 500ms\n  dedupe_window: 5m\n", "c")
    assert config.server.handoff_timeout == 0.5 and config.server.dedupe_window == 300
    found = problems(MINIMAL + "server:\n  handoff_timeout: 10\n")
    assert "server.handoff_timeout" in found[0] and "duration" in found[0]


def test_invalid_yaml_reports_line() -> None:
    """Broken YAML is one clear error with the line."""
    found = problems("sources:\n  a: [1, 2\n")
    assert found[0].startswith("cfg.yaml:") and "invalid YAML" in found[0]


def test_bad_public_key_is_an_error_without_key_material() -> None:
    """A public key that is neither PEM nor base64 DER is reported at its source."""
    found = problems(
        """\
        sources:
          vf:
            provider: velafi
            public_key: not-a-key-at-all
        """
    )
    assert found[0].startswith("cfg.yaml:3: sources.vf") and "not-a-key-at-all" not in found[0]


def test_webhook_destination_validation() -> None:
    """Webhook destinations need an http(s) URL and whsec_ secrets."""
    found = problems(
        MINIMAL.replace(
            "    kafka: {topic: payments.orders}\n",
            '    kafka: {topic: payments.orders}\n  hook:\n    webhook: {url: "ftp://x", secret: "whsec_!!!"}\n',
        )
    )
    text = "\n".join(found)
    assert "destinations.hook.webhook.url" in text
    assert "destinations.hook.webhook.secret[0]" in text


def test_duplicate_keys_rejected() -> None:
    """A key given twice in one mapping is an error, not a silent override."""
    found = problems(MINIMAL + "server:\n  max_body_bytes: 1\n  max_body_bytes: 2\n")
    assert any("server.max_body_bytes: duplicate key" in p for p in found)


def test_structs_are_msgspec() -> None:
    """Config sections are msgspec Structs (frozen)."""
    config = parse_config(MINIMAL, "cfg.yaml")
    assert isinstance(config.server, msgspec.Struct)


def test_request_timeout_must_exceed_session_timeout() -> None:
    """A Kafka request timeout not above the session timeout would make group joins time out."""
    found = problems(MINIMAL + "kafka:\n  request_timeout: 5s\n  session_timeout: 10s\n")
    assert found == [
        "cfg.yaml:13: kafka.request_timeout: must exceed `session_timeout`, or consumer-group joins time out"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("8081", 8081),
        ("00042", 42),
        ("12345", 12345),
        ("123456", None),  # over the bound: never reaches int()
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("\u00b2", None),  # superscript two: str.isdigit says yes, int() raises
        ("\u0663", None),  # Arabic-Indic three: int() would take it
        ("\uff11", None),  # fullwidth one
    ],
)
def test_ascii_int_takes_only_bounded_ascii_digits(text: str, expected: int | None) -> None:
    """Every digit check before `int()` (ports, counts, cookie expiry, row ids, list indexes)."""
    assert ascii_int(text, 5) == expected
