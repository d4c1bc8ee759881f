"""FaTPay: SHA256withRSA over the X-FP-* headers and the configured URL; the body is unsigned."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

from gateway.errors import SignatureError
from gateway.event import (
    CloudEvent,
    amount,
    build_event,
    decode_object,
    event_data,
    event_id,
    from_epoch,
)
from gateway.providers import JSON, NO_HEADERS, Headers, Signed, _common, builtin
from gateway.types import Duration, Secrets

NAME = "fatpay"
MEDIA_TYPES = JSON

_SIGNATURE = "x-fp-signature"
_PARTNER = "x-fp-partner-id"
_NONCE = "x-fp-nonce"
_TIMESTAMP = "x-fp-timestamp"
_SECONDS = re.compile(r"[0-9]{1,15}")  # not \d: int() would take any Unicode digit
_MAX_SIGNATURE_CHARS = 4096  # RSA-8192 is 1368 base64 chars; refuse to decode anything huge
_STATUSES = {"3": "completed"}


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A FaTPay source's config (SPEC §4)."""

    public_key: Secrets
    partner_id: str
    url: str
    tolerance: Duration = Duration(300.0)


def _url_parts(url: str) -> tuple[tuple[str, ...], str, list[tuple[str, str]]]:
    """Host candidates, path and query parameters of the webhook URL registered with FaTPay."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError("fatpay setting `url` is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("fatpay setting `url` must be the absolute http(s) URL given to FaTPay")
    host = parts.netloc.rpartition("@")[2]
    # "host" is ambiguous about an explicit port (WHATWG URL.host keeps it, Java's
    # URL.getHost() drops it), so both readings are accepted when the URL has one.
    hosts = (host,) if port is None else (host, host.rsplit(":", 1)[0])
    return hosts, parts.path or "/", parse_qsl(parts.query)


def _message(host: str, path: str, params: Iterable[tuple[str, str]]) -> bytes:
    """`POST` + host + path + `?` + the ASCII-sorted non-empty `key=value` pairs, UTF-8."""
    joined = "&".join(f"{k}={v}" for k, v in sorted(p for p in params if p[1] != ""))
    return f"POST{host}{path}?{joined}".encode()


def _header_params(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every X-FP-* header except the signature, names lowercased, values as received."""
    pairs = ((name.lower(), value) for name, value in headers.items())
    return [(n, v) for n, v in pairs if n.startswith("x-fp-") and n != _SIGNATURE]


def signing_message(url: str, headers: Mapping[str, str]) -> bytes:
    """The exact bytes FaTPay signs for these headers and this registered webhook URL."""
    hosts, path, query = _url_parts(url)
    return _message(hosts[0], path, _header_params(headers) + query)


class FatPayVerifier:
    """Checks partner id, timestamp window and the header signature; names the nonce to claim.

    Nonce reuse is the pipeline's check (`replay_key`, claimed in the fleet's state store
    once the request is otherwise accepted), so a refused request never burns its nonce.
    """

    def __init__(self, settings: Settings) -> None:
        self._keys = _common.rsa_keys(NAME, settings.public_key)
        if not settings.partner_id.strip():
            raise ValueError("fatpay setting `partner_id` must not be empty")
        if settings.tolerance <= 0:
            raise ValueError("fatpay setting `tolerance` must be positive")
        self._hosts, self._path, self._query = _url_parts(settings.url)
        self._partner_id = settings.partner_id
        self._tolerance = float(settings.tolerance)

    def verify(self, raw: bytes, headers: Mapping[str, str], now: float) -> bytes:
        """Raise `SignatureError` unless the headers are authentic and fresh; return `raw`."""
        signature = headers.get(_SIGNATURE, "").strip()
        if not signature:
            raise SignatureError("missing X-FP-Signature header")
        for name in (_PARTNER, _NONCE, _TIMESTAMP):
            if not headers.get(name):
                raise SignatureError(f"missing {name} header")
        if headers[_PARTNER] != self._partner_id:
            raise SignatureError("X-FP-Partner-Id is not the configured partner id")
        stamp = headers[_TIMESTAMP]
        if not _SECONDS.fullmatch(stamp) or abs(now - int(stamp)) > self._tolerance:
            raise SignatureError("X-FP-Timestamp is outside the tolerance window")
        if len(signature) > _MAX_SIGNATURE_CHARS:
            raise SignatureError("X-FP-Signature is too long")
        decoded = _common.b64decode_lenient(signature)
        params = _header_params(headers) + self._query
        try:
            messages = [_message(host, self._path, params) for host in self._hosts]
        except UnicodeEncodeError as exc:
            raise SignatureError("X-FP-* header is not encodable") from exc
        if not any(_common.rsa_sha256_valid(self._keys, decoded, m) for m in messages):
            raise SignatureError("X-FP-Signature does not match")
        return raw

    def replay_key(self, headers: Mapping[str, str]) -> tuple[str, float]:
        """The nonce of a verified request and how long to remember it (2x the tolerance).

        A timestamp is accepted within +-tolerance of now, so its request can be replayed
        for at most 2x tolerance after it first arrives; the body is unsigned, so the same
        nonce with any body is the same request.
        """
        return headers[_NONCE], 2 * self._tolerance


def build_verifier(settings: Settings) -> FatPayVerifier:
    """The verifier for one FaTPay source; parses the keys and the URL once."""
    return FatPayVerifier(settings)


class Order(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The FaTPay Order fields the gateway reads; every other field is tolerated."""

    order_id: str
    order_status: int | str
    pay_time: int | str | None = None
    deliver_time: int | str | None = None
    finish_time: int | str | None = None
    fiat_currency: str | None = None
    currency_amount: Decimal | None = None
    crypto_currency: str | None = None
    crypto_currency_code: str | None = None
    crypto_currency_amount: Decimal | None = None


class _Wrapped(msgspec.Struct, frozen=True):
    order: Order


class Webhook(msgspec.Struct, frozen=True):
    """A decoded FaTPay webhook: the typed order and the whole body as received."""

    order: Order
    payload: Any


def decode(content: bytes) -> Webhook:
    """Decode `{"order": Order}` or a flat Order; raise `PayloadError` naming the bad path."""
    body = decode_object(content)
    if "order" in body:
        order, at = _common.convert_struct(body, _Wrapped).order, "$.order"
    else:
        order, at = _common.convert_struct(body, Order), "$"
    # msgspec's Decimal accepts "NaN", "Infinity" and "1e999999999"; no amount is ever that.
    amount(order.currency_amount, f"{at}.currencyAmount")
    amount(order.crypto_currency_amount, f"{at}.cryptoCurrencyAmount")
    return Webhook(order=order, payload=body)


def normalize(
    decoded: Webhook, source: str, received: datetime, headers: Headers = NO_HEADERS
) -> CloudEvent:
    """The CloudEvent for a FaTPay order (integrity `headers-only`: the body is unsigned)."""
    order = decoded.order
    raw_status = str(order.order_status)
    status = _STATUSES.get(raw_status, "unknown")
    happened = (
        from_epoch(order.finish_time)
        or from_epoch(order.deliver_time)
        or from_epoch(order.pay_time)
        or received
    )
    fiat = _common.money(order.fiat_currency, order.currency_amount)
    crypto_currency = order.crypto_currency or order.crypto_currency_code
    crypto = _common.money(crypto_currency, order.crypto_currency_amount)
    data = event_data("order", order.order_id, status, raw_status, decoded.payload, fiat, crypto)
    eid = event_id(source, order.order_id, raw_status)
    return build_event(source, NAME, eid, data, happened, f"order:{raw_status}", "headers-only")


def sign(
    key: str,
    body: bytes,
    now: float,
    *,
    url: str | None = None,
    partner_id: str | None = None,
) -> Signed:
    """The headers and body FaTPay would send to `url` (the body is not signed)."""
    if not url or not partner_id:
        raise ValueError("signing a fatpay request needs the webhook `url` and the `partner_id`")
    headers = {
        _PARTNER: partner_id,
        _NONCE: secrets.token_hex(8),
        _TIMESTAMP: str(int(now)),
    }
    signature = _common.rsa_sha256_sign(key, signing_message(url, headers))
    headers[_SIGNATURE] = base64.b64encode(signature).decode("ascii")
    return {"content-type": "application/json", **headers}, body


PROVIDER = builtin(NAME, Settings, build_verifier, decode, normalize, sign)
