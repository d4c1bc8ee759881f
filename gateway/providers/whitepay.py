"""Whitepay: hex HMAC-SHA256 in `Signature` over the raw body or a compact re-encoding of it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import msgspec

from gateway.errors import PayloadError, SignatureError
from gateway.event import (
    CloudEvent,
    amount,
    build_event,
    decimal_str,
    decode_object,
    event_data,
    event_id,
    from_iso,
)
from gateway.providers import JSON, NO_HEADERS, Headers, Signed, _common, builtin
from gateway.providers._common import convert_struct
from gateway.types import Secrets

NAME = "whitepay"
MEDIA_TYPES = JSON


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`sources.<name>` keys of a Whitepay source."""

    secret: Secrets


def _signature(headers: Mapping[str, str]) -> bytes:
    header = headers.get("signature")
    if header is None:
        raise SignatureError("missing `Signature` header")
    header = header.strip()
    if not _common.HEX_SHA256.fullmatch(header):
        raise SignatureError("`Signature` is not a hex HMAC-SHA256")
    return bytes.fromhex(header)


# Raw body first (most senders sign what they send); then what Whitepay integrations sign
# besides: PHP `json_encode`, JS `JSON.stringify`.
_STYLES: tuple[Literal["js", "php"], ...] = ("php", "js")
WhitepayVerifier = _common.BodyMacVerifier


def build_verifier(settings: Settings) -> WhitepayVerifier:
    """HMAC keys are the UTF-8 bytes of the Webhook Signature Token(s)."""
    return WhitepayVerifier(_common.utf8_keys(settings.secret), _signature, _STYLES)


class WhitepayOrder(msgspec.Struct, frozen=True):
    """`order` of an order event (the fields the gateway reads)."""

    id: str
    currency: str | None = None
    value: Any = None
    status: str | None = None
    external_order_id: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    received_total: Any = None
    received_currency: str | None = None
    is_internal: bool | str | None = None

    @property
    def internal(self) -> bool:
        """`is_internal`, which Whitepay sends as a boolean or as the string "true"."""
        return _truthy(self.is_internal)


class WhitepayTransaction(msgspec.Struct, frozen=True):
    """`transaction` of a transaction, withdrawal or rollback event."""

    id: str
    order_id: str | None = None
    external_order_id: str | None = None
    currency: str | None = None
    value: Any = None
    type: str | None = None
    status: str | None = None
    hash: str | None = None
    is_internal: bool | str | None = None
    created_at: str | None = None
    completed_at: str | None = None

    @property
    def tx_hash(self) -> str | None:
        """The chain hash; Whitepay sends the string "null" when there is none."""
        return None if self.hash in (None, "", "null") else self.hash

    @property
    def internal(self) -> bool:
        """`is_internal`, which Whitepay sends as a boolean or as the string "true"."""
        return _truthy(self.is_internal)


def _truthy(value: bool | str | None) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


class _Body(msgspec.Struct, frozen=True):
    event_type: str
    order: WhitepayOrder | None = None
    transaction: WhitepayTransaction | None = None


class WhitepayEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded Whitepay notification: the event's object and the whole body."""

    event_type: str
    object: WhitepayOrder | WhitepayTransaction
    payload: Any


def decode(content: bytes) -> WhitepayEvent:
    """Decode `{"order"|"transaction": {...}, "event_type": "..."}`."""
    payload = decode_object(content)  # also rejects duplicate keys and bad UTF-8
    body = convert_struct(payload, _Body)
    kind = body.event_type.partition("::")[0].lower()
    first, second = (
        (body.order, body.transaction) if kind == "order" else (body.transaction, body.order)
    )
    obj = first or second
    if obj is None:
        raise PayloadError("Expected an `order` or a `transaction` object", path="$")
    at = "$.order" if obj is body.order else "$.transaction"
    amount(obj.value, f"{at}.value")
    if isinstance(obj, WhitepayOrder):
        amount(obj.received_total, f"{at}.received_total")
    return WhitepayEvent(event_type=body.event_type, object=obj, payload=payload)


# What the event name says happened; it wins over the body's `status`
# (`withdrawal::declined` arrives with a CANCELLED transaction).
_ACTION_STATUS = {
    "completed": "completed",
    "complete": "completed",
    "final_amount_was_received": "completed",
    "declined": "declined",
    "decline": "declined",
    "partially_fulfilled": "partially_paid",
}
# The live API's spellings of the same event, so their retries share an id.
_ACTION_CANONICAL = {"complete": "completed", "decline": "declined"}
_BODY_STATUS = {
    "INIT": "created",
    "OPEN": "created",
    "COMPLETE": "completed",
    "COMPLETED": "completed",
    "PARTIALLY_FULFILLED": "partially_paid",
    "DECLINED": "declined",
    "CANCELED": "cancelled",
    "CANCELLED": "cancelled",
}
# ISO 4217 codes; any other currency Whitepay names (USDT, BTC, ...) is a crypto asset.
_FIAT = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BYR BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
    FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
    JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON
    RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND
    TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW
    ZWG ZWL""".split()
)


def normalize(
    decoded: WhitepayEvent, source: str, received: datetime, headers: Headers = NO_HEADERS
) -> CloudEvent:
    """The CloudEvent of one Whitepay notification; the event name decides the status."""
    obj = decoded.object
    kind, sep, action = decoded.event_type.partition("::")
    kind, action = kind.strip().lower(), action.strip().lower()
    if not sep or not kind:
        kind = "order" if isinstance(obj, WhitepayOrder) else "transaction"
    status = _ACTION_STATUS.get(action) or _BODY_STATUS.get((obj.status or "").upper(), "unknown")
    legs = [_common.priced(obj.currency, obj.value)]
    received_total = None
    if isinstance(obj, WhitepayOrder):
        received_total = decimal_str(obj.received_total)
        # An order priced in one currency class and paid in the other has both legs.
        if (obj.received_currency or "").upper() != (obj.currency or "").upper():
            legs.append(_common.priced(obj.received_currency, obj.received_total))
    fiat = crypto = None
    for leg in legs:
        if leg is None:
            continue
        if (leg.currency or "").upper() in _FIAT:
            fiat = fiat or leg
        else:
            crypto = crypto or leg
    payload, external = decoded.payload, obj.external_order_id
    data = event_data(kind, obj.id, status, obj.status, payload, fiat, crypto, external)
    # A second partial payment changes the received total: a new state change.
    canonical = _ACTION_CANONICAL.get(action, action)
    eid = event_id(source, kind, obj.id, canonical, obj.status, received_total)
    # Whitepay writes `YYYY-MM-DD HH:MM:SS` without a zone, meaning UTC; an unreadable time
    # only costs precision (the receive time is used), never the event.
    happened = from_iso(obj.completed_at) or received
    return build_event(source, NAME, eid, data, happened, decoded.event_type)


def sign(key: str, body: bytes, now: float, **_: str | None) -> Signed:
    """What Whitepay would send: the body and its lowercase hex HMAC-SHA256."""
    mac = _common.hmac_hex(key, body)
    return {"content-type": "application/json", "signature": mac}, body


PROVIDER = builtin(NAME, Settings, build_verifier, decode, normalize, sign)
