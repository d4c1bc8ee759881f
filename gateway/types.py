"""Custom config value types (durations, secret lists) and the msgspec hook that builds them."""

from __future__ import annotations

import re
from typing import Any

from gateway.secrets import Secret


def ascii_int(text: str, max_digits: int) -> int | None:
    """`text` as an integer if it is 1 to `max_digits` ASCII digits, else None.

    `str.isdigit` also takes `²` (which `int()` refuses) and other scripts' digits (which
    `int()` takes); the length bound keeps a huge number away from `int()` and the caller.
    """
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Duration(float):
    """Seconds, written in config as `500ms`, `30s`, `5m`, `24h` or `1d`."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        """Parse a duration string; bare numbers are rejected (the unit must be explicit)."""
        if isinstance(value, str):
            m = _DURATION.match(value)
            if m:
                return cls(float(m.group(1)) * _UNIT_SECONDS[m.group(2)])
        raise ValueError("expected a duration like `500ms`, `30s`, `5m` or `24h`")


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m)\s*$")


class RateLimit(float):
    """Requests per second, written in config as `50/s` or `600/m`."""

    @classmethod
    def parse(cls, value: object) -> RateLimit:
        """Parse `N/s` or `N/m` (N > 0)."""
        if isinstance(value, str):
            m = _RATE.match(value)
            if m and float(m.group(1)) > 0:
                return cls(float(m.group(1)) / (1.0 if m.group(2) == "s" else 60.0))
        raise ValueError("expected a rate like `50/s` or `600/m`")

    @property
    def burst(self) -> int:
        """Requests allowed at once: a tenth of a second's worth, at least one."""
        return max(1, int(self / 10))


class Secrets(tuple[Secret, ...]):
    """One secret or a list of them (key rotation); never empty."""

    @classmethod
    def parse(cls, value: object) -> Secrets:
        """Accept a string or a non-empty list of strings."""
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValueError("expected a secret or a non-empty list of secrets")
        out = []
        for item in items:
            if isinstance(item, Secret):
                out.append(item)
            elif isinstance(item, str) and item.strip():
                out.append(Secret(item))
            else:
                raise ValueError("expected a non-empty string or a list of non-empty strings")
        return cls(out)

    def reveal(self) -> list[str]:
        """The secret values, in configured order."""
        return [s.reveal() for s in self]

    def __repr__(self) -> str:
        return f"Secrets(<{len(self)} hidden>)"


def dec_hook(type_: type, value: Any) -> Any:
    """msgspec `dec_hook` building the custom config types above."""
    if type_ is Duration:
        return Duration.parse(value)
    if type_ is Secrets:
        return Secrets.parse(value)
    if type_ is RateLimit:
        return RateLimit.parse(value)
    if type_ is Secret:
        if isinstance(value, str):
            return Secret(value)
        raise ValueError("expected a string")
    raise NotImplementedError(f"no decoder for {type_!r}")
