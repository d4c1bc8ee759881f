"""Generic sources (SPEC §10): HMAC over the body or a template, and presets as data over it.

One verifier serves `hmac`, `standard-webhooks`, `github`, `shopify` and `stripe`: a preset is
a named set of the `hmac` keys (`PRESETS`), turned into the same `Scheme` a custom `hmac`
source compiles to. A scheme names its signature header, how signatures are listed and
encoded in it, what is MACed (a template over the body, the timestamp and other headers)
and, optionally, where the timestamp is and how old or new it may be.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import msgspec

from gateway.destinations.kafka import lookup
from gateway.errors import PayloadError, SignatureError
from gateway.event import (
    CloudEvent,
    build_event,
    decode_payload,
    event_data,
    event_id,
    from_epoch,
    from_iso,
)
from gateway.providers import NO_HEADERS, Headers, Provider, Signed, Signer, _common
from gateway.types import Duration, Secrets

MEDIA_TYPES = frozenset({"application/json"})
Algorithm = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64", "base64url"]
_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
_STAMP = re.compile(r"[0-9]{1,15}")  # not \d: int() would take any Unicode digit
_MAX_SIGNATURES = 16  # per request: bounds the MACs an unauthenticated request costs
_MAX_SIGNATURE_CHARS = 1024  # a SHA-512 in hex is 128


# --- settings ------------------------------------------------------------------------------


class Field(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where one CloudEvent attribute comes from: exactly one of `path`, `header`, `value`."""

    path: str | None = None
    header: str | None = None
    value: str | None = None
    map: dict[str, str] = {}
    default: str | None = None


class EventMapping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`event:` how a generic source's CloudEvent is built (SPEC §10); every key optional."""

    type: Field | None = None
    subject: Field | None = None
    time: Field | None = None
    id: Field | None = None


class Timestamp(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`timestamp:` where the signed timestamp is (unix seconds or milliseconds), how fresh."""

    header: str
    prefix: str = ""  # the timestamp is the header's list item with this prefix (Stripe `t=`)
    tolerance: Duration = Duration(300.0)


class HmacSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A `provider: hmac` source: every part of the scheme is configuration."""

    secret: Secrets
    header: str
    algorithm: Algorithm = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""
    separator: str = ","  # several signatures in one header (the sender rotates its secret)
    signed: str = "{body}"
    timestamp: Timestamp | None = None
    # base64: a `whsec_` prefix is dropped first
    secret_encoding: Literal["utf-8", "base64"] = "utf-8"  # noqa: S105 - a name, not a secret
    event: EventMapping = EventMapping()


class TimestampedPresetSettings(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True
):
    """A `provider: standard-webhooks` (also `svix-*` headers) or `provider: stripe` source."""

    secret: Secrets
    tolerance: Duration = Duration(300.0)
    event: EventMapping = EventMapping()


class GitHubSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A `provider: github` source; `accept_sha1` also takes the legacy `X-Hub-Signature`."""

    secret: Secrets
    accept_sha1: bool = False
    event: EventMapping = EventMapping()


class ShopifySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A `provider: shopify` source."""

    secret: Secrets
    event: EventMapping = EventMapping()


# --- presets: the `hmac` keys each one stands for -------------------------------------------

_SW: dict[str, Any] = {
    "header": "webhook-signature",
    "algorithm": "sha256",
    "encoding": "base64",
    "prefix": "v1,",
    "separator": " ",
    "signed": "{header:webhook-id}.{timestamp}.{body}",
    "secret_encoding": "base64",
}


def _svix(scheme: dict[str, Any]) -> dict[str, Any]:
    """The same scheme under Svix's header names (`svix-id`, `svix-timestamp`, ...)."""
    out = {**scheme, "header": "svix-signature", "signed": "{header:svix-id}.{timestamp}.{body}"}
    out["timestamp"] = {**scheme["timestamp"], "header": "svix-timestamp"}
    return out


def _preset_schemes(provider: str, settings: Any) -> list[dict[str, Any]]:
    """The `hmac` keys of a preset source, most preferred first (without secret and event)."""
    if provider == "standard-webhooks":
        sw = {**_SW, "timestamp": {"header": "webhook-timestamp", "tolerance": settings.tolerance}}
        return [sw, _svix(sw)]
    if provider == "github":
        schemes = [{"header": "X-Hub-Signature-256", "prefix": "sha256=", "encoding": "hex"}]
        if settings.accept_sha1:
            schemes.append({"header": "X-Hub-Signature", "prefix": "sha1=", "algorithm": "sha1"})
        return schemes
    if provider == "shopify":
        return [{"header": "X-Shopify-Hmac-Sha256", "encoding": "base64"}]
    if provider == "stripe":
        return [
            {
                "header": "Stripe-Signature",
                "prefix": "v1=",
                "signed": "{timestamp}.{body}",
                "timestamp": {
                    "header": "Stripe-Signature",
                    "prefix": "t=",
                    "tolerance": settings.tolerance,
                },
            }
        ]
    raise AssertionError(provider)  # pragma: no cover - the registry names only these


# What each preset's CloudEvent is built from unless `event:` says otherwise.
PRESET_EVENTS: dict[str, dict[str, Field]] = {
    "hmac": {},
    "standard-webhooks": {
        "id": Field(header="webhook-id"),
        "type": Field(path="type"),
        "time": Field(path="timestamp"),
    },
    "github": {
        "id": Field(header="X-GitHub-Delivery"),
        "type": Field(header="X-GitHub-Event"),
    },
    "shopify": {
        "id": Field(header="X-Shopify-Webhook-Id"),
        "type": Field(header="X-Shopify-Topic"),
        "time": Field(header="X-Shopify-Triggered-At"),
    },
    "stripe": {
        "id": Field(path="id"),
        "type": Field(path="type"),
        "time": Field(path="created"),
        "subject": Field(path="data.object.id"),
    },
}


# --- the compiled scheme and its verifier ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scheme:
    """One way a request can carry its signature (a source has one or two)."""

    header: str  # lowercase
    digest: Any
    encoding: Encoding
    prefix: str
    separator: str
    template: tuple[tuple[str, str], ...]  # ("text"|"body"|"timestamp"|"header", value)
    timestamp_header: str | None
    timestamp_prefix: str
    tolerance: float


def _template(text: str, timestamped: bool) -> tuple[tuple[str, str], ...]:
    """`{body}`, `{timestamp}`, `{header:Name}` and literal text; `ValueError` otherwise."""
    parts: list[tuple[str, str]] = []
    at = 0
    for m in _PLACEHOLDER.finditer(text):
        if m.start() > at:
            parts.append(("text", text[at : m.start()]))
        name = m.group(1)
        if name == "body":
            parts.append(("body", ""))
        elif name == "timestamp":
            if not timestamped:
                raise ValueError("`signed` names {timestamp} but no `timestamp:` is configured")
            parts.append(("timestamp", ""))
        elif name.startswith("header:") and _HEADER_NAME.fullmatch(name[7:]):
            parts.append(("header", name[7:].lower()))
        else:
            raise ValueError(
                f"`signed` names an unknown placeholder {{{name}}} "
                "(expected {body}, {timestamp} or {header:Name})"
            )
        at = m.end()
    if at < len(text):
        parts.append(("text", text[at:]))
    if "{" in "".join(v for k, v in parts if k == "text") or "}" in "".join(
        v for k, v in parts if k == "text"
    ):
        raise ValueError("`signed` has an unbalanced `{` or `}`")
    if ("body", "") not in parts:
        raise ValueError(
            "`signed` must include {body}: a MAC that leaves the body out proves nothing"
        )
    if timestamped and ("timestamp", "") not in parts:
        raise ValueError(
            "with `timestamp:`, `signed` must include {timestamp} (else it is unsigned)"
        )
    return tuple(parts)


def compile_scheme(keys: Mapping[str, Any]) -> Scheme:
    """A `Scheme` from `hmac` keys (a source's or a preset's); `ValueError` says what is wrong."""
    header = keys["header"]
    if not _HEADER_NAME.fullmatch(header):
        raise ValueError(f"`header` {header!r} is not a valid HTTP header name")
    stamp = keys.get("timestamp")
    stamp_header = stamp_prefix = None
    tolerance = 0.0
    if stamp is not None:
        stamp_header, stamp_prefix = stamp["header"], stamp.get("prefix", "")
        tolerance = float(stamp.get("tolerance", 300.0))
        if not _HEADER_NAME.fullmatch(stamp_header):
            raise ValueError(f"`timestamp.header` {stamp_header!r} is not a valid HTTP header name")
        if tolerance <= 0:
            raise ValueError("`timestamp.tolerance` must be positive")
        if stamp_header.lower() == header.lower() and not stamp_prefix:
            raise ValueError(
                "`timestamp.prefix` is required when the timestamp shares the signature header"
            )
    separator = keys.get("separator", ",")
    if not separator:
        raise ValueError("`separator` must not be empty")
    return Scheme(
        header=header.lower(),
        digest=_DIGESTS[keys.get("algorithm", "sha256")],
        encoding=keys.get("encoding", "hex"),
        prefix=keys.get("prefix", ""),
        separator=separator,
        template=_template(keys.get("signed", "{body}"), stamp is not None),
        timestamp_header=None if stamp_header is None else stamp_header.lower(),
        timestamp_prefix=stamp_prefix or "",
        tolerance=tolerance,
    )


def _secret_bytes(value: str, encoding: str) -> bytes:
    if encoding == "utf-8":
        return value.encode("utf-8")
    try:
        key = _common.b64_lenient(value.strip().removeprefix("whsec_"))
    except ValueError:
        key = b""
    if not key:
        raise ValueError("`secret` is not base64 (a Standard Webhooks secret is `whsec_<base64>`)")
    return key


def _items(header: str, scheme: Scheme) -> list[str]:
    return [item.strip() for item in header.split(scheme.separator) if item.strip()]


def _decode_mac(text: str, encoding: Encoding) -> bytes:
    if len(text) > _MAX_SIGNATURE_CHARS:
        raise SignatureError("signature is too long")
    if encoding == "hex":
        try:
            return bytes.fromhex(text)
        except ValueError as exc:
            raise SignatureError("signature is not valid hex") from exc
    return _common.b64decode_lenient(text)


class HmacVerifier:
    """Checks the timestamp window, then the MAC of the signed template over every key.

    Reads like the Standard Webhooks verifier: find the header, check the timestamp, compute
    the MAC once per key, compare in constant time against every listed signature.
    """

    __slots__ = ("_keys", "_schemes")

    def __init__(self, keys: list[bytes], schemes: list[Scheme]) -> None:
        self._keys = keys
        self._schemes = schemes

    def _scheme(self, headers: Mapping[str, str]) -> tuple[Scheme, str]:
        for scheme in self._schemes:
            value = headers.get(scheme.header)
            if value is not None:
                return scheme, value
        raise SignatureError(f"missing {self._schemes[0].header} header")

    def _timestamp(self, scheme: Scheme, headers: Mapping[str, str], now: float) -> str:
        assert scheme.timestamp_header is not None
        value = headers.get(scheme.timestamp_header)
        if value is not None and scheme.timestamp_prefix:
            p = scheme.timestamp_prefix
            value = next((i[len(p) :] for i in _items(value, scheme) if i.startswith(p)), None)
        if not value:
            raise SignatureError(f"missing timestamp in {scheme.timestamp_header}")
        stamp = value.strip()
        if not _STAMP.fullmatch(stamp):
            raise SignatureError("timestamp is not unix seconds or milliseconds")
        seconds = int(stamp) / 1000 if len(stamp) >= 12 else int(stamp)  # 12+ digits: ms
        if abs(now - seconds) > scheme.tolerance:
            raise SignatureError("timestamp is outside the tolerance window")
        return stamp

    def verify(self, raw: bytes, headers: Mapping[str, str], now: float) -> bytes:
        """Raise `SignatureError` unless a configured secret signed this request; return `raw`."""
        scheme, header = self._scheme(headers)
        stamp = "" if scheme.timestamp_header is None else self._timestamp(scheme, headers, now)
        p = scheme.prefix
        listed = [i[len(p) :] for i in _items(header, scheme) if i.startswith(p)]
        if not listed:
            raise SignatureError(f"{scheme.header} holds no signature")
        received = [_decode_mac(text, scheme.encoding) for text in listed[:_MAX_SIGNATURES]]
        message = _message(scheme, raw, stamp, headers)
        if _common.mac_match(self._keys, (message,), received, scheme.digest):
            return raw
        raise SignatureError("signature does not match")

    def replay_key(self, headers: Mapping[str, str]) -> tuple[str, float] | None:
        """A verified timestamped request's key (its timestamp and signatures), 2x tolerance.

        A timestamp is accepted within +-tolerance of now, so a captured request can be
        replayed for at most 2x tolerance after it first arrives.
        """
        scheme = next(s for s in self._schemes if s.header in headers)
        if scheme.timestamp_header is None:
            return None
        seen = f"{headers.get(scheme.timestamp_header, '')}\x1f{headers[scheme.header]}"
        return hashlib.sha256(seen.encode("utf-8", "replace")).hexdigest()[
            :32
        ], 2 * scheme.tolerance


def _message(scheme: Scheme, raw: bytes, stamp: str, headers: Mapping[str, str]) -> bytes:
    if len(scheme.template) == 1:  # "{body}": the usual case, no copy
        return raw
    out: list[bytes] = []
    for kind, value in scheme.template:
        if kind == "body":
            out.append(raw)
        elif kind == "timestamp":
            out.append(stamp.encode("ascii"))
        elif kind == "header":
            text = headers.get(value)
            if text is None:
                raise SignatureError(f"missing {value} header")
            out.append(text.encode("latin-1", "replace"))  # the bytes as received
        else:
            out.append(value.encode("utf-8"))
    return b"".join(out)


def hmac_keys(settings: Any, provider: str) -> dict[str, Any]:
    """A source's scheme keys: its own for `hmac`, else its preset's first scheme."""
    if provider == "hmac":
        keys = {
            f: getattr(settings, f)
            for f in ("header", "algorithm", "encoding", "prefix", "separator", "signed")
        }
        if settings.timestamp is not None:
            keys["timestamp"] = msgspec.structs.asdict(settings.timestamp)
        return keys
    return _preset_schemes(provider, settings)[0]


def build_verifier_for(provider: str, settings: Any) -> HmacVerifier:
    """The verifier of a generic source; `ValueError` names the bad setting."""
    if provider == "hmac":
        schemes = [compile_scheme(hmac_keys(settings, provider))]
        encoding = settings.secret_encoding
    else:
        schemes = [compile_scheme(keys) for keys in _preset_schemes(provider, settings)]
        encoding = "base64" if provider == "standard-webhooks" else "utf-8"
    keys = [_secret_bytes(value, encoding) for value in settings.secret.reveal()]
    _check_mapping(settings.event)
    return HmacVerifier(keys, schemes)


# --- decode and normalize -------------------------------------------------------------------


def _check_mapping(mapping: EventMapping) -> None:
    for name in ("type", "subject", "time", "id"):
        field = getattr(mapping, name)
        if field is None:
            continue
        given = [k for k in ("path", "header", "value") if getattr(field, k) is not None]
        if len(given) != 1:
            raise ValueError(f"`event.{name}` needs exactly one of `path`, `header` or `value`")
        if field.header is not None and not _HEADER_NAME.fullmatch(field.header):
            raise ValueError(f"`event.{name}.header` is not a valid HTTP header name")
        if field.path is not None and not all(field.path.split(".")):
            raise ValueError(f"`event.{name}.path` must be dot-separated keys like `data.id`")
        if (field.map or field.default is not None) and name != "type":
            raise ValueError(f"`event.{name}`: `map` and `default` apply to `type` only")


def decode(content: bytes) -> Any:
    """The body as plain JSON values (floats exact); `PayloadError` if it is not JSON."""
    return decode_payload(content)


def _text(field: Field | None, payload: Any, headers: Mapping[str, str]) -> str | None:
    """The attribute's value as text, None when absent; `PayloadError` for an object/array."""
    if field is None:
        return None
    if field.value is not None:
        return field.value
    if field.header is not None:
        return headers.get(field.header.lower()) or None
    assert field.path is not None
    value = lookup(payload, field.path) if isinstance(payload, dict) else None
    if value is None or value == "":
        return None
    if isinstance(value, dict | list):
        raise PayloadError(
            f"Expected a string or number, got an object or array - at `$.{field.path}`",
            path=f"$.{field.path}",
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    if _STAMP.fullmatch(text):
        return from_epoch(int(text), millis=len(text) >= 12)
    return from_iso(text.replace("Z", "+00:00") if text.endswith("Z") else text)


@dataclass(frozen=True, slots=True)
class Normalizer:
    """A generic source's CloudEvent builder: its provider name and `event:` mapping."""

    provider: str
    mapping: dict[str, Field]

    def __call__(
        self, decoded: Any, source: str, received: datetime, headers: Headers = NO_HEADERS
    ) -> CloudEvent:
        """The CloudEvent of one verified request (SPEC §10)."""
        payload = decoded
        m = self.mapping
        natural = _text(m.get("id"), payload, headers)
        if natural is None:
            natural = "sha256:" + hashlib.sha256(msgspec.json.encode(payload)).hexdigest()
        kind = m.get("type")
        raw_type = _text(kind, payload, headers)
        if kind is not None and raw_type is not None and raw_type in kind.map:
            type_ = kind.map[raw_type]
        elif raw_type is not None:
            type_ = raw_type
        elif kind is not None and kind.default is not None:
            type_ = kind.default
        else:
            type_ = f"{self.provider}.received"
        subject = _text(m.get("subject"), payload, headers) or natural
        happened = _time(_text(m.get("time"), payload, headers)) or received
        data = event_data(type_.partition(".")[0], natural, "unknown", None, payload)
        eid = event_id(source, natural)
        return build_event(
            source, self.provider, eid, data, happened, raw_type or type_, "signed", type_, subject
        )


def normalizer(provider: str, settings: Any) -> Normalizer:
    """The preset's event defaults, overridden key by key by the source's `event:`."""
    mapping = dict(PRESET_EVENTS[provider])
    for name in ("type", "subject", "time", "id"):
        field = getattr(settings.event, name)
        if field is not None:
            mapping[name] = field
    return Normalizer(provider, mapping)


# --- sign: what the sender would send (`gateway sign`, docs, `make dev`) ---------------------


def sign_with(
    provider: str, settings: Any, key: str, body: bytes, now: float, headers: Mapping[str, str]
) -> dict[str, str]:
    """Headers that make `body` a valid request of this scheme, signed with secret `key`."""
    keys = hmac_keys(settings, provider)
    scheme = compile_scheme(keys)
    encoding = (
        "base64"
        if provider == "standard-webhooks"
        else getattr(settings, "secret_encoding", "utf-8")
    )
    out = {"content-type": "application/json", **headers}
    for kind, name in scheme.template:
        if kind == "header" and name not in out:
            out[name] = f"msg_{hashlib.sha256(body).hexdigest()[:24]}"
    stamp = str(int(now))
    message = _message(scheme, body, stamp, out)
    mac = hmac.new(_secret_bytes(key, encoding), message, scheme.digest).digest()
    text = (
        mac.hex()
        if scheme.encoding == "hex"
        else base64.urlsafe_b64encode(mac).decode()
        if scheme.encoding == "base64url"
        else base64.b64encode(mac).decode()
    )
    signature = scheme.prefix + text
    if scheme.timestamp_header == scheme.header:  # Stripe: `t=...,v1=...` in one header
        out[scheme.header] = f"{scheme.timestamp_prefix}{stamp}{scheme.separator}{signature}"
    else:
        out[scheme.header] = signature
        if scheme.timestamp_header is not None:
            out[scheme.timestamp_header] = scheme.timestamp_prefix + stamp
    return out


# --- the five generic provider values -------------------------------------------------------

_SETTINGS: dict[str, type[msgspec.Struct]] = {
    "hmac": HmacSettings,
    "standard-webhooks": TimestampedPresetSettings,
    "github": GitHubSettings,
    "shopify": ShopifySettings,
    "stripe": TimestampedPresetSettings,
}


def _signer(provider: str, settings: Any | None) -> Signer:
    """`sign` of a source with these settings, or (None) of a preset with its defaults."""

    def sign(key: str, body: bytes, now: float, **_: str | None) -> Signed:
        if settings is None and provider == "hmac":
            raise ValueError(
                "an hmac source's scheme is its config: sign with --config FILE --source NAME"
            )
        own = _SETTINGS[provider](secret=Secrets.parse(key)) if settings is None else settings
        return sign_with(provider, own, key, body, now, {}), body

    return sign


def _bind(provider: Provider, settings: Any) -> Provider:
    normalize = normalizer(provider.name, settings)
    sign = _signer(provider.name, settings)
    return replace(provider, normalize=normalize, sign=sign, bind=None)


def _provider(name: str) -> Provider:
    def build(settings: Any) -> HmacVerifier:
        return build_verifier_for(name, settings)

    return Provider(
        name=name,
        settings=_SETTINGS[name],
        build_verifier=build,
        decode=decode,
        normalize=Normalizer(name, dict(PRESET_EVENTS[name])),
        sign=_signer(name, None),
        media_types=MEDIA_TYPES,
        replay="duplicate",
        bind=_bind,
    )


PROVIDERS = tuple(_provider(name) for name in _SETTINGS)
