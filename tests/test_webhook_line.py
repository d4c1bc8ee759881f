"""The per-webhook log line: the same JSON as structlog would write, redacted, level-filtered."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog

from gateway.observability import REDACTOR, WebhookLine, configure_logging, webhook_line

SECRET = 'hunter2-"quoted"\\-secret'  # JSON escapes both the quotes and the backslash


@contextlib.contextmanager
def logging_into(level: str, fmt: str) -> Iterator[io.StringIO]:
    """Logs at `level` in `fmt` into a buffer; restored to JSON on stderr afterwards."""
    out = io.StringIO()
    configure_logging(level, fmt, stream=out)
    try:
        yield out
    finally:
        configure_logging("info", "json")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """JSON logs into a buffer, with one configured secret; restored to stderr afterwards."""
    REDACTOR.add([SECRET])
    with logging_into("info", "json") as out:
        yield out


_FIELDS: dict[str, object] = {
    "source": "whitepay",
    "provider": "whitepay",
    "event_id": "0123456789abcdef0123456789abcdef",
    "type": "order.completed",
    "routes": ["all-orders"],
    "destinations": ["orders"],
    "status": 200,
    "outcome": "accepted",
    "spooled": False,
    "request_id": "req-1",
    "duration_ms": 1.25,
}


def _accepted(**changes: object) -> WebhookLine:
    return WebhookLine(**{**_FIELDS, **changes})  # type: ignore[arg-type]


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_line_is_what_structlog_writes(stream: io.StringIO) -> None:
    """Same keys, order and values as `log.info("webhook", **fields)`; timestamp in its format."""
    fields = {**_FIELDS, "request_id": None}
    webhook_line(WebhookLine(**fields))  # type: ignore[arg-type]
    structlog.get_logger("gateway.ingress").info("webhook", **fields)
    fast, slow = (json.loads(line) for line in _lines(stream))
    assert list(fast) == list(slow)
    for key in fields:
        assert fast[key] == slow[key], key
    assert fast["event"] == "webhook" and fast["level"] == "info"
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z"
    assert re.fullmatch(stamp, fast["timestamp"]) and re.fullmatch(stamp, slow["timestamp"])


def test_rejection_line_has_reason_and_detail_and_no_unset_fields(stream: io.StringIO) -> None:
    """A rejection logs at warning with reason and detail, and no event fields."""
    webhook_line(
        WebhookLine(
            source="whitepay",
            provider=None,
            status=401,
            outcome="rejected",
            reason="signature",
            detail="signature mismatch",
            request_id=None,
            duration_ms=0.5,
            level="warning",
        )
    )
    (line,) = _lines(stream)
    logged = json.loads(line)
    assert list(logged) == [
        "source", "provider", "status", "outcome", "reason", "detail",
        "request_id", "duration_ms", "event", "level", "timestamp",
    ]  # fmt: skip
    assert logged["level"] == "warning" and logged["provider"] is None


@pytest.mark.parametrize("where", ["request_id", "detail"])
def test_configured_secret_is_masked_even_json_escaped(stream: io.StringIO, where: str) -> None:
    """A secret value in any field is masked, although JSON escapes its quotes and backslash."""
    line = _accepted(request_id=f"x{SECRET}y")
    if where == "detail":
        line = _accepted(outcome="rejected", detail=f"bad {SECRET}!", status=400)
    webhook_line(line)
    text = stream.getvalue()
    assert "hunter2" not in text
    assert "[redacted]" in json.loads(text)[where]


def test_non_ascii_values_are_escaped(stream: io.StringIO) -> None:
    """Every line stays ASCII (as structlog's renderer keeps it), with the value intact."""
    webhook_line(_accepted(request_id="zażółć-✓"))
    (line,) = _lines(stream)
    assert line.isascii()
    assert json.loads(line)["request_id"] == "zażółć-✓"


def test_level_threshold_applies() -> None:
    """At `log_level: warning` accepted (info) lines are dropped and rejections still written."""
    with logging_into("warning", "json") as out:
        webhook_line(_accepted())
        webhook_line(_accepted(outcome="rejected", status=401, level="warning"))
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["level"] == "warning"


def test_console_format_goes_through_structlog() -> None:
    """Console output (a terminal) is structlog's console renderer, not JSON."""
    with logging_into("info", "console") as out:
        webhook_line(_accepted())
    text = out.getvalue()
    assert "webhook" in text and "all-orders" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
