"""Providers as values: the five built-ins and the generic sources, one `Provider` type.

The pipeline and the HTTP layer ask a source's `Provider` (how to verify, decode and
normalize, which media types, which answer bodies); they never name one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

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
    """A verifier that names a key per request to claim against replays.

    The pipeline claims `replay_key(headers)` (a key and for how many seconds) in the
    fleet's state store after the request is verified, decoded and normalized: a key seen
    before within that time is a replay (FaTPay: 401 whatever the body; a signed-body
    generic source: `duplicate`).
    """

    def replay_key(self, headers: Mapping[str, str]) -> tuple[str, float] | None:
        """The replay key of a verified request and its lifetime in seconds, or None."""
        ...


class Signer(Protocol):
    """Builds the headers and body a provider would send (`gateway sign`, tests, dev)."""

    def __call__(
        self,
        key: str,
        body: bytes,
        now: float,
        *,
        url: str | None = None,
        partner_id: str | None = None,
    ) -> Signed: ...


Headers = Mapping[str, str]
NO_HEADERS: Headers = {}


class Normalize(Protocol):
    """`normalize(decoded, source, received, headers=NO_HEADERS)` of a provider."""

    def __call__(
        self, decoded: Any, source: str, received: datetime, headers: Headers = ...
    ) -> CloudEvent: ...


Signed = tuple[dict[str, str], bytes]
JSON = frozenset({"application/json"})


@dataclass(frozen=True, slots=True, eq=False)
class Provider:
    """One provider: what a source of it is configured with and how its requests become events.

    `signs_envelope` is False where the signed content is not the body that arrived
    (pay3: a JWS inside an unsigned envelope, which must not be ambiguous either).
    `success_body` / `error_body`: the provider's own answer bodies (VelaFi), else the
    gateway's JSON and problem details. `replay` says what a replayed request gets.
    `bind` turns a generic provider into the value of one configured source.
    """

    name: str
    settings: type[msgspec.Struct]
    build_verifier: Callable[[Any], Verifier]
    decode: Callable[[bytes], Any]
    # normalize(decoded, source, received, headers): the CloudEvent of a decoded request
    # (generic sources also read headers; the built-ins' `headers` defaults to none).
    normalize: Normalize
    sign: Signer
    media_types: frozenset[str] = JSON
    success_body: bytes | None = None
    error_body: bytes | None = None
    signs_envelope: bool = True
    replay: Literal["refuse", "duplicate"] = "refuse"
    bind: Callable[[Provider, Any], Provider] | None = None

    def for_source(self, settings: Any) -> Provider:
        """The value serving one source with these settings (the same value for built-ins)."""
        return self if self.bind is None else self.bind(self, settings)

    # The module-style names the tests and older callers use.
    @property
    def NAME(self) -> str:
        """The provider's name (as in `provider:`)."""
        return self.name

    @property
    def MEDIA_TYPES(self) -> frozenset[str]:
        """Content types the provider sends."""
        return self.media_types

    @property
    def Settings(self) -> type[msgspec.Struct]:
        """The settings Struct of a source of this provider."""
        return self.settings


def builtin(
    name: str,
    settings: type[msgspec.Struct],
    build_verifier: Callable[[Any], Verifier],
    decode: Callable[[bytes], Any],
    normalize: Normalize,
    sign: Signer,
    answers: tuple[bytes, bytes] | None = None,
    *,
    signs_envelope: bool = True,
) -> Provider:
    """A built-in provider's value from its module's functions (`answers`: success, error)."""
    ok, failed = answers if answers is not None else (None, None)
    return Provider(
        name, settings, build_verifier, decode, normalize, sign, JSON, ok, failed, signs_envelope
    )


__all__ = [
    "NO_HEADERS",
    "Headers",
    "Normalize",
    "Provider",
    "ReplayGuarded",
    "Signed",
    "Signer",
    "Verifier",
    "builtin",
    "registry",
]


def registry() -> dict[str, Provider]:
    """Provider name -> value, imported lazily so importing the package stays cheap."""
    from gateway.providers import fatpay, generic, pay3, velafi, w3block, whitepay

    builtins = [m.PROVIDER for m in (fatpay, velafi, pay3, whitepay, w3block)]
    return {p.name: p for p in (*builtins, *generic.PROVIDERS)}
