"""VelaFi: hex SHA256withRSA of the raw body in header `signature`; flat bodies with `eventType`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from gateway.errors import PayloadError, SignatureError
from gateway.event import (
    STATUSES,
    CloudEvent,
    amount,
    build_event,
    decode_object,
    encode,
    event_data,
    event_id,
    from_epoch,
)
from gateway.providers import JSON, NO_HEADERS, Headers, Signed, _common, builtin
from gateway.types import Secrets

NAME = "velafi"
# VelaFi reads its own answer body (SPEC §2): on 200, and on every error whatever the status.
ANSWERS = (b'{"callbackStatus":"SUCCESS"}', b'{"callbackStatus":"FAIL"}')
MEDIA_TYPES = JSON

ORDER_WEBHOOK = "ORDER_WEBHOOK"
_HEX = re.compile(r"[0-9a-fA-F]+")
_MAX_SIGNATURE_CHARS = 4096  # RSA-8192 is 2048 hex chars; refuse to decode anything huge
# Order status codes; 72 and 73 appear without a definition, so they stay `unknown`.
_ORDER_STATUSES = {
    "10": "created",
    "11": "pending",
    "12": "pending",
    "30": "pending",
    "31": "pending",
    "40": "pending",
    "50": "processing",
    "60": "completed",
    "70": "cancelled",
}


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A VelaFi source's config (SPEC §4)."""

    public_key: Secrets


class VelaFiVerifier:
    """Checks the hex RSA signature VelaFi puts over the raw body."""

    def __init__(self, settings: Settings) -> None:
        self._keys = _common.rsa_keys(NAME, settings.public_key)

    def verify(self, raw: bytes, headers: Mapping[str, str], now: float) -> bytes:
        """Raise `SignatureError` unless some configured key signed `raw`; return `raw`."""
        text = headers.get("signature", "").strip()
        if not text:
            raise SignatureError("missing signature header")
        if len(text) > _MAX_SIGNATURE_CHARS or len(text) % 2 or not _HEX.fullmatch(text):
            raise SignatureError("signature header is not hex")
        if not _common.rsa_sha256_valid(self._keys, bytes.fromhex(text), raw):
            raise SignatureError("signature does not match")
        return raw


def build_verifier(settings: Settings) -> VelaFiVerifier:
    """The verifier for one VelaFi source; parses the keys once."""
    return VelaFiVerifier(settings)


class OrderWebhook(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The `ORDER_WEBHOOK` fields the gateway reads; every other field is tolerated."""

    order_id: int | str
    merchant_id: int | str | None = None
    order_type: str | None = None
    fiat: str | None = None
    fiat_amount: Decimal | None = None
    order_amount: Decimal | None = None  # the docs' own example's name for fiatAmount
    crypto: str | None = None
    crypto_amount: Decimal | None = None
    quantity: Decimal | None = None  # the docs' own example's name for cryptoAmount
    order_status: int | str | None = None
    create_time: int | str | None = None
    update_time: int | str | None = None


class OtherWebhook(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Any other event type: only what identifies it is read; the payload stays raw."""

    event_type: str
    order_id: int | str | None = None
    status: int | str | None = None
    order_status: int | str | None = None
    create_time: int | str | None = None
    update_time: int | str | None = None


class _Head(msgspec.Struct, frozen=True, rename="camel"):
    event_type: str


class Webhook(msgspec.Struct, frozen=True):
    """A decoded VelaFi webhook: the typed view and the whole body as received."""

    body: OrderWebhook | OtherWebhook
    payload: Any


def decode(content: bytes) -> Webhook:
    """Decode by `eventType`; raise `PayloadError` naming the bad path."""
    payload = decode_object(content)
    # The usual type is known without converting the head first.
    event_type = payload.get("eventType")
    if event_type != ORDER_WEBHOOK:
        event_type = _common.convert_struct(payload, _Head).event_type
        if not event_type.strip():
            raise PayloadError("`eventType` is empty", path="$.eventType")
    body: OrderWebhook | OtherWebhook
    if event_type == ORDER_WEBHOOK:
        body = _common.convert_struct(payload, OrderWebhook)
        # msgspec's Decimal accepts "NaN", "Infinity" and "1e999999999"; no amount is that.
        for name, value in (
            ("fiatAmount", body.fiat_amount),
            ("orderAmount", body.order_amount),
            ("cryptoAmount", body.crypto_amount),
            ("quantity", body.quantity),
        ):
            amount(value, f"$.{name}")
    else:
        body = _common.convert_struct(payload, OtherWebhook)
    return Webhook(body=body, payload=payload)


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None and value != "":
            return value
    return None


def normalize(
    decoded: Webhook, source: str, received: datetime, headers: Headers = NO_HEADERS
) -> CloudEvent:
    """The CloudEvent for a VelaFi webhook of any event type."""
    body = decoded.body
    happened = from_epoch(body.update_time, millis=True)
    if happened is None:
        happened = from_epoch(body.create_time, millis=True) or received
    fiat = crypto = None
    if isinstance(body, OrderWebhook):
        event_type, kind = ORDER_WEBHOOK, "order"
        raw = None if body.order_status is None else str(body.order_status)
        status = _ORDER_STATUSES.get(raw or "", "unknown")
        object_id = str(body.order_id)
        eid = event_id(source, event_type, object_id, raw)
        fiat = _common.money(body.fiat, _first(body.fiat_amount, body.order_amount))
        crypto = _common.money(body.crypto, _first(body.crypto_amount, body.quantity))
    else:
        event_type = body.event_type
        kind = event_type.lower().removesuffix("_webhook")
        raw_value = _first(body.status, body.order_status)
        raw = None if raw_value is None else str(raw_value)
        # No documented status table or natural key for these types: a status is taken
        # only when it is already a word of the vocabulary, and the body itself is the key
        # (a retried body dedupes, any change is a new event; nothing is merged wrongly).
        status = raw.lower() if raw is not None and raw.lower() in STATUSES else "unknown"
        eid = event_id(source, event_type, hashlib.sha256(encode(decoded.payload)).hexdigest())
        object_id = eid if body.order_id is None else str(body.order_id)
    data = event_data(kind, object_id, status, raw, decoded.payload, fiat, crypto)
    return build_event(source, NAME, eid, data, happened, event_type)


def sign(key: str, body: bytes, now: float, **_: str | None) -> Signed:
    """The headers and body VelaFi would send: lowercase hex RSA signature of the body."""
    signature = _common.rsa_sha256_sign(key, body)
    return {"content-type": "application/json", "signature": signature.hex()}, body


PROVIDER = builtin(NAME, Settings, build_verifier, decode, normalize, sign, ANSWERS)
