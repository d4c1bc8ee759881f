"""structlog setup: JSON lines in production, console on a TTY, secrets redacted always."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from gateway.secrets import Secret

# Keys whose values are never logged, at any depth (`clientSecret`, `x-fp-signature`, ...).
SECRET_KEY = re.compile(r"secret|password|passwd|token|signature|authorization|api[-_]?key|private", re.I)
REDACTED = "[redacted]"


class Redactor:
    """structlog processor: masks secret-looking keys and every configured secret value."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self._values: list[str] = []
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

    def _clean(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and SECRET_KEY.search(key) and key != "event":
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


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog (and stdlib logging) once per process."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
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
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=stream, format="%(name)s %(levelname)s %(message)s")


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
