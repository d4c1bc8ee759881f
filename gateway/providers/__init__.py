"""The five providers. Each module exposes the same small, pure surface (see `Provider`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import ModuleType
from typing import Any, Protocol

import msgspec

from gateway.event import CloudEvent


class Verifier(Protocol):
    """Authenticates one source's requests; built once from that source's settings."""

    def verify(self, raw: bytes, headers: Mapping[str, str], now: float) -> bytes:
        """Raise `SignatureError` unless authentic; return the authenticated content.

        `headers` has lowercase names. The return value is what `decode` takes: the raw
        body for most providers, the JWS payload (the claims JSON) for pay3.
        """
        ...


class ReplayGuarded(Verifier, Protocol):
    """A verifier whose signature does not cover the whole request (FaTPay: not the body).

    The pipeline claims `replay_key(headers)` (a key and for how many seconds) in the
    fleet's state store after the request is verified, decoded and normalized: a key seen
    before within that time is a replay, refused with 401 whatever the body.
    """

    def replay_key(self, headers: Mapping[str, str]) -> tuple[str, float] | None:
        """The replay key of a verified request and its lifetime in seconds, or None."""
        ...


class Provider(Protocol):
    """What every module in this package provides (checked by `tests/providers`)."""

    NAME: str
    MEDIA_TYPES: frozenset[str]
    Settings: type[msgspec.Struct]

    def build_verifier(self, settings: Any) -> Verifier: ...

    def decode(self, content: bytes) -> Any: ...

    def normalize(self, decoded: Any, source: str, received: datetime) -> CloudEvent: ...

    def sign(
        self,
        key: str,
        body: bytes,
        now: float,
        *,
        url: str | None = None,
        partner_id: str | None = None,
    ) -> tuple[dict[str, str], bytes]: ...


def registry() -> dict[str, ModuleType]:
    """Provider name -> module, imported lazily so importing the package stays cheap."""
    from gateway.providers import fatpay, pay3, velafi, w3block, whitepay

    return {m.NAME: m for m in (fatpay, velafi, pay3, whitepay, w3block)}
