"""structlog setup: JSON lines in production, console on a TTY, secrets redacted always."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import msgspec
import structlog

from gateway.secrets import Secret

# Keys whose values are never logged, at any depth (`clientSecret`, `x-fp-signature`, ...).
SECRET_KEY = re.compile(
    r"secret|password|passwd|token|signature|authorization|api[-_]?key|private", re.I
)
REDACTED = "[redacted]"


class Redactor:
    """structlog processor: masks secret-looking keys and every configured secret value."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        # Log keys are a small fixed vocabulary: decide once per key instead of running the
        # (comparatively slow) case-insensitive regex on every key of every line.
        self._secret_keys: dict[str, bool] = {}
        self.add(secret_values)

    def add(self, secret_values: Iterable[str]) -> None:
        """Also mask these literal values wherever they appear in a log line."""
        for value in secret_values:
            # A PEM or multi-line key also leaks line by line; mask each substantial line too.
            for piece in [value, *value.splitlines()]:
                piece = piece.strip()
                if len(piece) >= 6 and piece not in self._values and not piece.startswith("-----"):
                    self._values.append(piece)
        self._values.sort(key=len, reverse=True)

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        return {k: self._clean(k, v) for k, v in event.items()}

    def _is_secret_key(self, key: str) -> bool:
        known = self._secret_keys.get(key)
        if known is None:
            known = key != "event" and SECRET_KEY.search(key) is not None
            if len(self._secret_keys) < 4096:  # keys from payload dicts are unbounded
                self._secret_keys[key] = known
        return known

    def _clean(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and self._is_secret_key(key):
            return REDACTED
        if isinstance(value, Secret):
            return REDACTED
        if isinstance(value, str):
            for secret in self._values:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(None, v) for v in value]
        if isinstance(value, bytes | bytearray):
            return f"<{len(value)} bytes>"
        return value


REDACTOR = Redactor()


def _fallback(value: Any) -> Any:
    """What structlog's own JSONRenderer writes for a value JSON has no type for."""
    method = getattr(value, "__structlog__", None)
    return method() if callable(method) else repr(value)


_LINE_ENCODER = msgspec.json.Encoder(enc_hook=_fallback)


def _json_line(event: Any, **_: Any) -> str:
    """One JSON log line: msgspec (several times faster than `json.dumps`) when ASCII.

    A line with non-ASCII text goes through `json.dumps` instead, whose `\\u` escapes keep
    every line ASCII whatever the encoding of the stream it is written to.
    """
    try:
        line = _LINE_ENCODER.encode(event).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        line = ""
    return line if line and line.isascii() else json.dumps(event, default=_fallback)


def configure_logging(
    level: str = "info", fmt: str = "auto", stream: Any = None, *, final: bool = False
) -> None:
    """Configure structlog (and stdlib logging) once per process.

    `final`: the configuration will not change again (a server process), so loggers may
    cache it on first use instead of rebinding on every call.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_json_line)
    )
    numeric = logging.getLevelName(level.upper())
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
