"""pay3: the body is `{"payload": "<compact JWS>"}`, an HS384 JWS over the claims JSON."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from gateway.errors import SignatureError
from gateway.event import CloudEvent, build_event, decode_object, event_data, event_id
from gateway.providers import JSON, NO_HEADERS, Headers, Signed, _common, builtin
from gateway.providers._common import convert_struct
from gateway.types import Secrets

NAME = "pay3"
MEDIA_TYPES = JSON

Algorithm = Literal["HS256", "HS384", "HS512"]
_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
# A compact JWS segment: base64url without padding (padding tolerated), ASCII only.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*={0,2}", re.ASCII)
# pyjwt refuses these as HMAC secrets too: a public key used as a shared secret is exactly
# what an RS256 -> HS256 confusion attack needs.
_ASYMMETRIC_KEY = re.compile(r"^\s*(-----BEGIN |ssh-(rsa|dss|ed25519) |ecdsa-sha2-)")


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`sources.<name>` keys of a pay3 source."""

    secret: Secrets
    # pay3 documents the UTF-8 bytes of the client secret; some accounts' secrets are meant
    # to be base64-decoded first.
    secret_base64: bool = False
    # HS384 only unless the operator opts in to another HMAC size; never `none` or asymmetric.
    algorithms: Annotated[tuple[Algorithm, ...], msgspec.Meta(min_length=1)] = ("HS384",)


class _Envelope(msgspec.Struct):
    payload: str


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# pay3's own header: exactly `{"alg":"HS384"}`, no `typ`.
_SIGN_HEADER = _b64url_encode(b'{"alg":"HS384"}')


def _secret_bytes(index: int, value: str, *, b64: bool) -> bytes:
    if _ASYMMETRIC_KEY.match(value):
        raise ValueError(f"`secret` #{index} looks like an asymmetric key, not a shared secret")
    if not b64:
        return value.encode("utf-8")
    try:
        key = _common.b64_lenient(value)
    except ValueError as exc:
        raise ValueError(f"`secret` #{index} is not valid base64 (`secret_base64` is set)") from exc
    if not key:
        raise ValueError(f"`secret` #{index} decodes to an empty key")
    return key


class Pay3Verifier:
    """Checks the JWS in the body against every configured secret, algorithm pinned."""

    __slots__ = ("_algorithms", "_keys")

    def __init__(self, keys: list[bytes], algorithms: frozenset[str]) -> None:
        self._keys = keys
        self._algorithms = algorithms

    def verify(self, raw: bytes, headers: Mapping[str, str], now: float) -> bytes:
        """Return the JWS payload (the claims JSON) if a configured secret signed it."""
        try:
            token = _ENVELOPE.decode(raw).payload.strip()
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise SignatureError('body is not a {"payload": "<JWS>"} envelope') from exc
        parts = token.split(".")
        if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts):
            raise SignatureError("payload is not a compact JWS")
        header_b64, payload_b64, signature_b64 = parts
        # ValueError covers binascii, msgspec and unicode errors; RecursionError comes from
        # an absurdly nested header.
        try:
            header = msgspec.json.decode(_common.b64_lenient(header_b64))
            signature = _common.b64_lenient(signature_b64)
            content = _common.b64_lenient(payload_b64)
        except (ValueError, RecursionError) as exc:
            raise SignatureError("JWS is malformed") from exc
        if not isinstance(header, dict):
            raise SignatureError("JWS header is not a JSON object")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise SignatureError("JWS algorithm is not allowed")
        # RFC 7515 §4.1.11: unknown critical extensions (e.g. RFC 7797 `b64`) must be refused.
        if "crit" in header or header.get("b64", True) is not True:
            raise SignatureError("JWS uses unsupported critical extensions")
        digest = _DIGESTS[alg]
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        if _common.mac_match(self._keys, (signing_input,), (signature,), digest):
            return content
        raise SignatureError("JWS signature does not match")


def build_verifier(settings: Settings) -> Pay3Verifier:
    """Decode the secrets once; `ValueError` names the bad setting, never its value."""
    keys = [
        _secret_bytes(i, value, b64=settings.secret_base64)
        for i, value in enumerate(settings.secret.reveal())
    ]
    return Pay3Verifier(keys, frozenset(settings.algorithms))


class Pay3Error(msgspec.Struct, frozen=True):
    """`error` of a failed order."""

    code: int | None = None
    message: str | None = None


class Pay3Order(msgspec.Struct, frozen=True):
    """The order fields, found under `data` or (docs' sample token) flat at the top level."""

    orderId: str
    orderStatus: str
    orderType: str | None = None
    paymentStatus: str | None = None
    error: Pay3Error | None = None


class _Nested(msgspec.Struct, frozen=True):
    data: Pay3Order
    requestId: str | None = None
    type: str | None = None


class _Flat(msgspec.Struct, frozen=True):
    requestId: str | None = None
    type: str | None = None


class Pay3Claims(msgspec.Struct, frozen=True, kw_only=True):
    """Decoded claims: the order (either shape), the claim `type`, and the whole claims."""

    order: Pay3Order
    request_id: str | None
    type: str | None
    payload: Any


def decode(content: bytes) -> Pay3Claims:
    """Decode the claims JSON; `PayloadError` names the path of a wrong shape."""
    payload = decode_object(content)
    if isinstance(payload.get("data"), dict):
        nested = convert_struct(payload, _Nested)
        return Pay3Claims(
            order=nested.data, request_id=nested.requestId, type=nested.type, payload=payload
        )
    flat = convert_struct(payload, _Flat)
    order = convert_struct(payload, Pay3Order)
    return Pay3Claims(order=order, request_id=flat.requestId, type=flat.type, payload=payload)


_STATUS = {
    "CREATED": "created",
    "ORDER_STARTED": "created",
    "ORDER_PAYMENT_AWAITING": "pending",
    "ORDER_PAYMENT_PROCESSING": "processing",
    "ORDER_PAYMENT_INITIATED": "processing",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "ABANDONED": "cancelled",
}


def normalize(
    decoded: Pay3Claims, source: str, received: datetime, headers: Headers = NO_HEADERS
) -> CloudEvent:
    """The CloudEvent of one pay3 notification; `orderStatus` alone decides the status."""
    order = decoded.order
    status = _STATUS.get(order.orderStatus.upper(), "unknown")
    data = event_data("order", order.orderId, status, order.orderStatus, decoded.payload)
    # pay3 retries up to 10 times and sends no timestamp: the state change is its key.
    key = (order.orderId, order.orderType, order.orderStatus, order.paymentStatus)
    event = decoded.type or f"order.{order.orderStatus}"
    return build_event(source, NAME, event_id(source, *key), data, received, event)


def sign(key: str, body: bytes, now: float, **_: str | None) -> Signed:
    """What pay3 would send for the claims JSON `body`: an HS384 JWS in a JSON envelope."""
    signing_input = f"{_SIGN_HEADER}.{_b64url_encode(body)}"
    mac = hmac.new(key.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha384).digest()
    envelope = msgspec.json.encode({"payload": f"{signing_input}.{_b64url_encode(mac)}"})
    return {"content-type": "application/json"}, envelope


PROVIDER = builtin(NAME, Settings, build_verifier, decode, normalize, sign, signs_envelope=False)
