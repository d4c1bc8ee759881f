"""W3Block Commerce: HMAC-SHA256 in `x-w3block-commerce-signature` over the body."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

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
from gateway.providers._common import convert_struct
from gateway.types import Secrets

NAME = "w3block"
MEDIA_TYPES = JSON

HEADER = "x-w3block-commerce-signature"
# Paths into `data.payload` with live secrets (logs mask them by key name, SECRET_KEY); routes
# may `omit` them (`data.payload.` + path). The Stripe `publicKey` beside it is publishable.
SECRET_PATHS: tuple[str, ...] = ("data.paymentInfo.clientSecret",)

_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{43}={0,1}")


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`sources.<name>` keys of a W3Block source."""

    secret: Secrets


def _signature(headers: Mapping[str, str]) -> bytes:
    value = headers.get(HEADER)
    if value is None:
        raise SignatureError(f"missing `{HEADER}` header")
    value = value.strip()
    # The encoding is undocumented: lowercase hex first, base64 (either alphabet) otherwise.
    if _common.HEX_SHA256.fullmatch(value):
        return bytes.fromhex(value)
    if _BASE64.fullmatch(value):
        # 43 alphabet characters always decode to exactly 32 bytes: nothing left to fail.
        return _common.b64_lenient(value)
    raise SignatureError(f"`{HEADER}` is neither hex nor base64 HMAC-SHA256")


# After the raw body: a sender that signs `JSON.stringify(body)` but sends it pretty-printed
# (or through a proxy that re-serializes it).
_STYLES: tuple[Literal["js", "php"], ...] = ("js",)
W3BlockVerifier = _common.BodyMacVerifier


def build_verifier(settings: Settings) -> W3BlockVerifier:
    """HMAC keys are the UTF-8 bytes of the webhook configuration's `signatureKey`(s)."""
    return W3BlockVerifier(_common.utf8_keys(settings.secret), _signature, _STYLES)


class W3BlockOrder(msgspec.Struct, frozen=True):
    """`data` of an order event (the fields the gateway reads; `paymentInfo` deliberately not)."""

    id: str
    status: str | None = None
    currencyId: str | None = None
    currencyAmount: Any = None
    updatedAt: str | None = None


class _Body(msgspec.Struct, frozen=True):
    data: W3BlockOrder
    event: str
    timestamp: int | str | None = None


class W3BlockEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded W3Block notification and the whole body."""

    event: str
    order: W3BlockOrder
    timestamp: int | str | None
    payload: Any


def decode(content: bytes) -> W3BlockEvent:
    """Decode `{"data": Order, "event": "order.<status>", "timestamp": <epoch ms>}`."""
    payload = decode_object(content)  # also rejects duplicate keys and bad UTF-8
    body = convert_struct(payload, _Body)
    amount(body.data.currencyAmount, "$.data.currencyAmount")
    return W3BlockEvent(
        event=body.event, order=body.data, timestamp=body.timestamp, payload=payload
    )


_STATUS = {
    "created": "created",
    "pending": "created",
    "confirming_payment": "pending",
    "waiting_delivery": "processing",
    "delivering": "processing",
    "partially_cancelled": "partially_paid",
    "concluded": "completed",
    "failed": "failed",
    "cancelling": "cancelled",
    "cancelled": "cancelled",
    "expired": "expired",
}


def normalize(
    decoded: W3BlockEvent, source: str, received: datetime, headers: Headers = NO_HEADERS
) -> CloudEvent:
    """The CloudEvent of one W3Block notification; `event` (`order.<status>`) decides."""
    order = decoded.order
    kind, sep, action = decoded.event.strip().lower().partition(".")
    if not sep or not kind:  # no `<kind>.<status>` name: fall back to the order's own status
        kind, action = "order", (order.status or "").lower()
    status = _STATUS.get(action, "unknown")
    moment = from_epoch(decoded.timestamp, millis=True) or received
    # W3Block names the currency by its id (a UUID), not by an ISO code.
    fiat = _common.priced(order.currencyId, order.currencyAmount)
    data = event_data(kind, order.id, status, order.status, decoded.payload, fiat)
    # `updatedAt` moves with every state change of the order and stays put across
    # W3Block's retries of one notification.
    eid = event_id(source, order.id, decoded.event, order.status, order.updatedAt)
    return build_event(source, NAME, eid, data, moment, decoded.event)


def sign(key: str, body: bytes, now: float, **_: str | None) -> Signed:
    """What W3Block would send: the body and its lowercase hex HMAC-SHA256."""
    mac = _common.hmac_hex(key, body)
    return {"content-type": "application/json", HEADER: mac}, body


PROVIDER = builtin(NAME, Settings, build_verifier, decode, normalize, sign)
