"""structlog setup: JSON lines in production, console on a TTY, secrets redacted always.

Plus `webhook_line`, the one line per webhook, written without structlog's processor chain
when the output is JSON (see its docstring).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

import msgspec
import structlog

from gateway.fastpaths import fast
from gateway.secrets import Secret

# Keys whose values are never logged, at any depth (`clientSecret`, `x-fp-signature`, ...).
SECRET_KEY = re.compile(
    r"secret|password|passwd|token|signature|authorization|api[-_]?key|private", re.I
)
REDACTED = "[redacted]"


_PLAIN = frozenset({int, float, bool, type(None)})


class Redactor:
    """structlog processor: masks secret-looking keys and every configured secret value."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        # Log keys are a small fixed vocabulary: decide once per key instead of running the
        # (comparatively slow) case-insensitive regex on every key of every line.
        self._secret_keys: dict[str, bool] = {}
        self.line_pattern: re.Pattern[str] | None = None
        self.add(secret_values)

    def add(self, secret_values: Iterable[str]) -> None:
        """Also mask these literal values wherever they appear in a log line."""
        for value in secret_values:
            # A PEM or multi-line key also leaks line by line; mask each substantial line too.
            for piece in [value, *value.splitlines()]:
                piece = piece.strip()
                if len(piece) >= 6 and piece not in self._values and not piece.startswith("-----"):
                    self._values.append(piece)
        # Longest first: where two secrets overlap, the longer one is masked whole. One
        # alternation scans a string once, however many secrets there are.
        self._values.sort(key=len, reverse=True)
        if self._values:
            self._pattern = re.compile("|".join(re.escape(v) for v in self._values))
            # A rendered JSON line shows a secret with quotes, backslashes, control or
            # non-ASCII characters escaped: look for those spellings too.
            spellings = {v for value in self._values for v in _json_spellings(value)}
            self.line_pattern = re.compile(
                "|".join(re.escape(v) for v in sorted(spellings, key=len, reverse=True))
            )

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        return {k: self._clean(k, v) for k, v in event.items()}

    def _is_secret_key(self, key: str) -> bool:
        known = self._secret_keys.get(key)
        if known is None:
            known = key != "event" and SECRET_KEY.search(key) is not None
            if len(self._secret_keys) < 4096:  # keys from payload dicts are unbounded
                self._secret_keys[key] = known
        return known

    def scrub(self, text: str) -> str:
        """`text` with every configured secret value masked."""
        pattern = self._pattern
        if pattern is None or pattern.search(text) is None:
            return text
        return pattern.sub(REDACTED, text)

    def _clean(self, key: object, value: Any) -> Any:
        if type(key) is str and self._is_secret_key(key):
            return REDACTED
        kind = type(value)
        if kind is str:
            return self.scrub(value)
        if kind in _PLAIN:
            return value
        if isinstance(value, Secret):
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(None, v) for v in value]
        if isinstance(value, bytes | bytearray):
            return f"<{len(value)} bytes>"
        return value


def _json_spellings(value: str) -> set[str]:
    """How `value` can appear inside a JSON string: as is, msgspec- and json.dumps-escaped."""
    return {value, msgspec.json.encode(value).decode()[1:-1], json.dumps(value)[1:-1]}


REDACTOR = Redactor()


def _fallback(value: Any) -> Any:
    """What structlog's own JSONRenderer writes for a value JSON has no type for."""
    method = getattr(value, "__structlog__", None)
    return method() if callable(method) else repr(value)


_LINE_ENCODER = msgspec.json.Encoder(enc_hook=_fallback)


def _json_line(event: Any, **_: Any) -> str:
    """One JSON log line: msgspec (faster than `json.dumps`) when ASCII.

    A line with non-ASCII text goes through `json.dumps` instead, whose `\\u` escapes keep
    every line ASCII whatever the encoding of the stream it is written to.
    """
    try:
        line = _LINE_ENCODER.encode(event).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        line = ""
    return line if line and line.isascii() else json.dumps(event, default=_fallback)


class WebhookLine(msgspec.Struct, kw_only=True):
    """The fields of the per-webhook log line (`event: webhook`), in their logged order."""

    source: str
    provider: str | None
    event_id: str | msgspec.UnsetType = msgspec.UNSET
    type: str | msgspec.UnsetType = msgspec.UNSET
    routes: list[str] | msgspec.UnsetType = msgspec.UNSET
    destinations: list[str] | msgspec.UnsetType = msgspec.UNSET
    status: int
    outcome: str
    reason: str | msgspec.UnsetType = msgspec.UNSET
    detail: str | msgspec.UnsetType = msgspec.UNSET
    spooled: bool | msgspec.UnsetType = msgspec.UNSET
    request_id: str | None
    duration_ms: float
    event: str = "webhook"
    level: str = "info"
    timestamp: str = ""


class _Output:
    """Where `webhook_line` writes: set by `configure_logging`."""

    stream: Any = None
    threshold = logging.INFO
    json = False
    lock = threading.Lock()


_LINE = msgspec.json.Encoder()
_FAST_LINE = fast("logline")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING}
_ingress_log = structlog.get_logger("gateway.ingress")


def webhook_line(line: WebhookLine) -> None:
    """Log one webhook's line, as `log.<level>("webhook", **fields)` would.

    This line is written for every request, through structlog's processor chain (bound
    logger, timestamper, redactor walking every value, renderer). For JSON output the line
    is rendered here instead, to the same bytes: its keys are fixed and none is secret, so
    redaction is one search of the rendered line for any configured secret value (the rare
    line with a hit goes the structlog way, which masks it). Console output (a terminal)
    always goes through structlog. Fast path `logline` (gateway/fastpaths.py;
    tests/test_webhook_line.py compares the two), justified by benchmarks/ingest_bench.py
    --fast-paths.
    """
    if _LEVELS[line.level] < _Output.threshold:
        return
    if _Output.json and _FAST_LINE:
        line.timestamp = _timestamp()
        text = _LINE.encode(line).decode()
        pattern = REDACTOR.line_pattern
        if text.isascii() and (pattern is None or pattern.search(text) is None):
            with _Output.lock:
                _Output.stream.write(text + "\n")
                _Output.stream.flush()
            return
    fields = msgspec.structs.asdict(line)
    level = fields.pop("level")
    del fields["event"], fields["timestamp"]
    fields = {k: v for k, v in fields.items() if v is not msgspec.UNSET}
    getattr(_ingress_log, level)("webhook", **fields)


_second = (0, "")


def _timestamp() -> str:
    """Now, as structlog's `TimeStamper(fmt="iso", utc=True)` writes it."""
    global _second
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    micros = int((now - second) * 1_000_000)
    return f"{_second[1]}.{micros:06d}Z" if micros else f"{_second[1]}Z"


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: Any = None,
    *,
    final: bool = False,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog (and stdlib logging) once per process.

    `final`: the configuration will not change again (a server process), so loggers may
    cache it on first use instead of rebinding on every call. `secrets`: values masked in
    every line from now on (a config's are `config_secret_values(config)`), added to those
    of earlier calls.
    """
    REDACTOR.add(secrets)
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_json_line)
    )
    numeric = logging.getLevelName(level.upper())
    _Output.stream, _Output.threshold, _Output.json = stream, numeric, fmt != "console"
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        # Rebinding a logger on every call costs about as much as rendering the line.
        cache_logger_on_first_use=final,
    )
    logging.basicConfig(
        level=max(numeric, logging.WARNING),
        stream=stream,
        format="%(name)s %(levelname)s %(message)s",
    )


def config_secret_values(config: Any) -> list[str]:
    """Every secret value in a loaded config (keys, HMAC secrets, SASL password, whsec_)."""
    from gateway.types import Secrets

    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Secrets):
            found.extend(value.reveal())
        elif isinstance(value, Secret):
            found.append(value.reveal())
        elif hasattr(value, "__struct_fields__"):
            for name in value.__struct_fields__:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(config)
    return found
