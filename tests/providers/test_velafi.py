"""VelaFi: hex SHA256withRSA over the raw body, field aliases, event types, status codes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rsa_keys import (
    ec_public_pem,
    private_key,
    private_pem,
    public_der_b64,
    public_pem,
    rsa_sign,
    sample_bytes,
)

from gateway.errors import PayloadError, SignatureError
from gateway.event import STATUSES, CloudEvent, encode, event_id
from gateway.providers import velafi
from gateway.types import dec_hook

NOW = 1735280600.0
RECEIVED = datetime(2024, 12, 27, 6, 30, 0, tzinfo=UTC)
DOCUMENTED = sample_bytes("velafi", "order-webhook-documented-fields.json")
EXAMPLE = sample_bytes("velafi", "order-webhook-example.json")
ORDER_ID = "473130522693193728"
OTHER_TYPES = {
    "GLOBAL_PAYMENT_WEBHOOK": "global_payment",
    "FUNDING_WEBHOOK": "funding",
    "ON_RAMP_WITHDRAW_WEBHOOK": "on_ramp_withdraw",
    "MERCHANT_TRADE_WEBHOOK": "merchant_trade",
    "STABLE_COIN_PAYMENT_WEBHOOK": "stable_coin_payment",
}


def signed(body: bytes, key: str = "velafi-a", *, upper: bool = False) -> dict[str, str]:
    """Headers as VelaFi sends them: `signature` = hex RSA SHA-256 of the raw body."""
    text = rsa_sign(key, body).hex()
    return {"content-type": "application/json", "signature": text.upper() if upper else text}


def make_verifier(public_key: Any = None) -> velafi.VelaFiVerifier:
    """A verifier built from settings the way the config loader builds them."""
    raw = {"public_key": public_der_b64("velafi-a") if public_key is None else public_key}
    return velafi.build_verifier(msgspec.convert(raw, velafi.Settings, dec_hook=dec_hook))


def variant(base: bytes = DOCUMENTED, **fields: Any) -> bytes:
    """The documented sample with fields replaced (None removes a field)."""
    body = json.loads(base)
    for name, value in fields.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return json.dumps(body).encode()


def event_for(body: bytes, source: str = "velafi") -> CloudEvent:
    """decode + normalize."""
    return velafi.normalize(velafi.decode(body), source, RECEIVED)


# --- signature --------------------------------------------------------------------------


@pytest.mark.parametrize("upper", [False, True])
def test_valid_request_accepted_hex_either_case(upper: bool) -> None:
    """A body signed by the configured key verifies, lower- or upper-case hex."""
    assert make_verifier().verify(DOCUMENTED, signed(DOCUMENTED, upper=upper), NOW) == DOCUMENTED


def test_public_key_pem_or_bare_base64_der() -> None:
    """The key works as VelaFi returns it (base64 DER) and as PEM."""
    headers = signed(DOCUMENTED)
    assert make_verifier(public_pem("velafi-a")).verify(DOCUMENTED, headers, NOW) == DOCUMENTED
    assert make_verifier(public_der_b64("velafi-a")).verify(DOCUMENTED, headers, NOW)


def test_tampered_body_rejected() -> None:
    """Changing one byte of the signed body breaks the signature."""
    tampered = DOCUMENTED.replace(b'"99"', b'"98"')
    assert tampered != DOCUMENTED
    with pytest.raises(SignatureError, match="does not match"):
        make_verifier().verify(tampered, signed(DOCUMENTED), NOW)


def test_reserialized_body_rejected() -> None:
    """Only the raw bytes count: the same JSON re-serialized does not verify."""
    compact = json.dumps(json.loads(DOCUMENTED), separators=(",", ":")).encode()
    with pytest.raises(SignatureError):
        make_verifier().verify(compact, signed(DOCUMENTED), NOW)


def test_wrong_key_rejected() -> None:
    """A body signed by a key that is not configured fails."""
    with pytest.raises(SignatureError, match="does not match"):
        make_verifier().verify(DOCUMENTED, signed(DOCUMENTED, "velafi-b"), NOW)


def test_rotated_keys_old_and_new_both_pass() -> None:
    """With two configured keys, bodies signed by either verify."""
    verifier = make_verifier([public_der_b64("velafi-a"), public_pem("velafi-b")])
    assert verifier.verify(DOCUMENTED, signed(DOCUMENTED, "velafi-a"), NOW) == DOCUMENTED
    assert verifier.verify(DOCUMENTED, signed(DOCUMENTED, "velafi-b"), NOW) == DOCUMENTED
    with pytest.raises(SignatureError):
        verifier.verify(DOCUMENTED, signed(DOCUMENTED, "velafi-c"), NOW)


@pytest.mark.parametrize("headers", [{}, {"signature": ""}, {"signature": "  "}, {"sig": "ab"}])
def test_missing_signature_header_rejected(headers: dict[str, str]) -> None:
    """No (or an empty) `signature` header fails."""
    with pytest.raises(SignatureError, match="missing"):
        make_verifier().verify(DOCUMENTED, headers, NOW)


def _good() -> str:
    return signed(DOCUMENTED)["signature"]


@pytest.mark.parametrize(
    "signature",
    [
        "zz" * 256,
        _good()[:-1],
        _good()[:-2],
        "0x" + _good(),
        "ab cd",
        "é" * 4,
        "00" * 256,
        "ab" * 100_000,
        base64.b64encode(bytes.fromhex(_good())).decode(),
    ],
)
def test_malformed_signature_rejected(signature: str) -> None:
    """Non-hex, odd-length, truncated, prefixed, base64, zero and huge signatures all fail."""
    with pytest.raises(SignatureError) as caught:
        make_verifier().verify(DOCUMENTED, {"signature": signature}, NOW)
    assert signature not in str(caught.value)


def test_non_utf8_body_verifies_then_fails_decode() -> None:
    """Signed non-UTF-8 bytes pass the signature check and then are a PayloadError."""
    body = b'{"eventType": "ORDER_WEBHOOK", "orderId": "\xff"}'
    assert make_verifier().verify(body, signed(body), NOW) == body
    with pytest.raises(PayloadError):
        velafi.decode(body)


@pytest.mark.parametrize(
    "public_key",
    ["bm90IGEga2V5", ["-----BEGIN PUBLIC KEY-----\nSECRETSTUFF\n-----END PUBLIC KEY-----"]],
)
def test_bad_key_material_names_the_setting_not_the_value(public_key: Any) -> None:
    """Unparseable key material fails at build time naming `public_key`, not echoing it."""
    with pytest.raises(ValueError, match="public_key") as caught:
        make_verifier(public_key)
    assert "SECRETSTUFF" not in str(caught.value)
    assert "bm90IGEga2V5" not in str(caught.value)


def test_non_rsa_key_rejected() -> None:
    """An EC public key is refused at build time."""
    with pytest.raises(ValueError, match="public_key"):
        make_verifier(ec_public_pem())


def test_settings_reject_unknown_keys() -> None:
    """A typo in the source config is an error."""
    with pytest.raises(msgspec.ValidationError, match="public_keys"):
        msgspec.convert(
            {"public_key": public_pem("velafi-a"), "public_keys": "x"},
            velafi.Settings,
            dec_hook=dec_hook,
        )


# --- samples ------------------------------------------------------------------------------


def test_documented_sample_signed_verifies_decodes_and_normalizes() -> None:
    """The documented-fields sample becomes the expected CloudEvent, field by field."""
    content = make_verifier().verify(DOCUMENTED, signed(DOCUMENTED), NOW)
    event = velafi.normalize(velafi.decode(content), "velafi", RECEIVED)
    assert event.source == "/webhooks/velafi"
    assert event.type == "order.completed"
    assert (event.subject, event.partitionkey) == (ORDER_ID, ORDER_ID)
    assert event.time == "2024-12-27T06:23:02Z"  # updateTime 1735280582000
    assert (event.provider, event.providerevent, event.integrity) == (
        "velafi",
        "ORDER_WEBHOOK",
        "signed",
    )
    assert event.id == event_id("velafi", "ORDER_WEBHOOK", ORDER_ID, "60")
    data = event.data
    assert (data.kind, data.id, data.external_id) == ("order", ORDER_ID, None)
    assert (data.status, data.provider_status) == ("completed", "60")
    assert data.fiat is not None and data.crypto is not None
    assert (data.fiat.currency, data.fiat.amount) == ("MXN", "99")
    assert (data.crypto.currency, data.crypto.amount) == ("USDT", "5.00")
    assert data.payload == json.loads(DOCUMENTED)
    assert msgspec.json.decode(encode(event))["data"]["payload"] == json.loads(DOCUMENTED)


def test_example_sample_with_aliases_normalizes_like_documented() -> None:
    """The docs' example (`orderAmount`, `quantity`) yields the same event but its amounts."""
    content = make_verifier().verify(EXAMPLE, signed(EXAMPLE), NOW)
    event = velafi.normalize(velafi.decode(content), "velafi", RECEIVED)
    documented = event_for(DOCUMENTED)
    assert (event.id, event.type, event.subject, event.time) == (
        documented.id,
        documented.type,
        documented.subject,
        documented.time,
    )
    assert event.data.fiat is not None and event.data.crypto is not None
    assert (event.data.fiat.currency, event.data.fiat.amount) == ("MXN", "99")
    assert (event.data.crypto.currency, event.data.crypto.amount) == ("USDT", "5")
    assert event.data.payload["orderAmount"] == "99"
    assert event.data.payload == json.loads(EXAMPLE)


def test_documented_spelling_wins_over_alias() -> None:
    """With both spellings present, `fiatAmount` / `cryptoAmount` are used."""
    event = event_for(variant(orderAmount="1", quantity="2"))
    assert event.data.fiat is not None and event.data.crypto is not None
    assert (event.data.fiat.amount, event.data.crypto.amount) == ("99", "5.00")


def test_numeric_amounts_kept_exact() -> None:
    """Amounts sent as JSON numbers stay exact decimal strings, never floats."""
    body = DOCUMENTED.replace(b'"fiatAmount": "99"', b'"fiatAmount": 99.10')
    body = body.replace(b'"cryptoAmount": "5.00"', b'"cryptoAmount": 0.1000000000000000055')
    event = event_for(body)
    assert event.data.fiat is not None and event.data.crypto is not None
    assert (event.data.fiat.amount, event.data.crypto.amount) == ("99.10", "0.1000000000000000055")
    assert event.data.payload["fiatAmount"] == Decimal("99.10")


def test_event_id_stable_per_state_change() -> None:
    """A retry keeps its id; another status, order or source gets another id."""
    first = event_for(DOCUMENTED)
    assert velafi.normalize(velafi.decode(DOCUMENTED), "velafi", datetime.now(UTC)).id == first.id
    assert event_for(variant(orderStatus="50")).id != first.id
    assert event_for(variant(orderId="473130522693193729")).id != first.id
    assert event_for(DOCUMENTED, source="velafi-mx").id != first.id


def test_order_id_number_or_string() -> None:
    """A numeric orderId normalizes exactly like its string form (same subject and id)."""
    numeric = DOCUMENTED.replace(b'"473130522693193728"', b"473130522693193728")
    assert numeric != DOCUMENTED
    event = event_for(numeric)
    assert (event.subject, event.data.id, event.id) == (
        ORDER_ID,
        ORDER_ID,
        event_for(DOCUMENTED).id,
    )


@pytest.mark.parametrize("merchant", [4, "4", "M-17", None])
def test_merchant_id_number_or_string(merchant: Any) -> None:
    """merchantId may be a number, a string or absent."""
    assert event_for(variant(merchantId=merchant)).type == "order.completed"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("10", "created"),
        ("11", "pending"),
        ("12", "pending"),
        ("30", "pending"),
        ("31", "pending"),
        ("40", "pending"),
        ("50", "processing"),
        ("60", "completed"),
        ("70", "cancelled"),
        ("72", "unknown"),
        ("73", "unknown"),
        ("99", "unknown"),
        ("RELEASED", "unknown"),
        (60, "completed"),
    ],
)
def test_order_status_codes(code: Any, status: str) -> None:
    """Every documented code maps per providers.md; undefined codes are `unknown`, kept raw."""
    event = event_for(variant(orderStatus=code))
    assert event.type == f"order.{status}"
    assert (event.data.status, event.data.provider_status) == (status, str(code))


def test_missing_order_status_is_unknown() -> None:
    """An ORDER_WEBHOOK without orderStatus is `order.unknown`, not an error."""
    event = event_for(variant(orderStatus=None))
    assert (event.type, event.data.provider_status) == ("order.unknown", None)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "2024-12-27T06:23:02Z"),
        ({"updateTime": 1735280582123}, "2024-12-27T06:23:02.123Z"),
        ({"updateTime": None}, "2024-12-27T06:11:47Z"),
        ({"updateTime": None, "createTime": None}, "2024-12-27T06:30:00Z"),
    ],
)
def test_time_is_update_then_create_time_else_received(
    fields: dict[str, Any], expected: str
) -> None:
    """Time is updateTime, else createTime (epoch ms, string or number), else received."""
    assert event_for(variant(**fields)).time == expected


# --- other event types --------------------------------------------------------------------


@pytest.mark.parametrize(("event_type", "kind"), sorted(OTHER_TYPES.items()))
def test_other_event_types_accepted_verified_payload_raw(event_type: str, kind: str) -> None:
    """Each other documented event type verifies and becomes `<kind>.unknown`, body kept whole."""
    body = json.dumps(
        {"webhookId": "ab" * 16, "eventType": event_type, "amount": 1.25, "nested": {"x": [1]}}
    ).encode()
    content = make_verifier().verify(body, signed(body), NOW)
    event = velafi.normalize(velafi.decode(content), "velafi", RECEIVED)
    assert event.type == f"{kind}.unknown"
    assert (event.data.kind, event.providerevent, event.integrity) == (kind, event_type, "signed")
    assert event.data.payload == json.loads(body, parse_float=Decimal)
    assert event.time == "2024-12-27T06:30:00Z"
    assert (event.data.fiat, event.data.crypto, event.data.provider_status) == (None, None, None)


@pytest.mark.parametrize(
    ("status", "expected"),
    [("COMPLETED", "completed"), ("failed", "failed"), ("SUCCESS", "unknown"), (3, "unknown")],
)
def test_other_event_status_field(status: Any, expected: str) -> None:
    """Another type's `status` is used when it is a vocabulary word, else `unknown`; kept raw."""
    body = json.dumps({"eventType": "FUNDING_WEBHOOK", "status": status}).encode()
    event = event_for(body)
    assert (event.type, event.data.provider_status) == (f"funding.{expected}", str(status))


def test_other_event_identity() -> None:
    """Other types: subject is orderId when given; the id follows the body (retries dedupe)."""
    base = {"eventType": "GLOBAL_PAYMENT_WEBHOOK", "orderId": 77, "status": "x"}
    first = event_for(json.dumps(base).encode())
    again = event_for(json.dumps(base, indent=2).encode())
    changed = event_for(json.dumps({**base, "status": "y"}).encode())
    assert (first.subject, first.partitionkey, first.data.id) == ("77", "77", "77")
    assert again.id == first.id
    assert changed.id != first.id
    no_id = event_for(b'{"eventType": "FUNDING_WEBHOOK", "updateTime": "1735280582000"}')
    assert no_id.subject == no_id.id == no_id.partitionkey
    assert no_id.time == "2024-12-27T06:23:02Z"


def test_unknown_event_type_accepted() -> None:
    """An event type nobody documented yet is still accepted, kind derived from its name."""
    event = event_for(b'{"eventType": "CARD_ISSUING_WEBHOOK", "id": 1}')
    assert (event.type, event.providerevent) == ("card_issuing.unknown", "CARD_ISSUING_WEBHOOK")


# --- wrong shapes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path", "mentions"),
    [
        (b'{"orderId": "1"}', "$", "`eventType`"),
        (b'{"eventType": 5}', "$.eventType", "`str`"),
        (b'{"eventType": ""}', "$.eventType", "empty"),
        (b'{"eventType": "ORDER_WEBHOOK"}', "$", "`orderId`"),
        (b'{"eventType": "ORDER_WEBHOOK", "orderId": 1.5}', "$.orderId", "`decimal`"),
        (b'{"eventType": "ORDER_WEBHOOK", "orderId": "1", "merchantId": {}}', "$.merchantId", ""),
        (b'{"eventType": "ORDER_WEBHOOK", "orderId": "1", "fiatAmount": "x"}', "$.fiatAmount", ""),
        (b'{"eventType": "ORDER_WEBHOOK", "orderId": "1", "quantity": [1]}', "$.quantity", ""),
        (
            b'{"eventType": "ORDER_WEBHOOK", "orderId": "1", "fiatAmount": "NaN"}',
            "$.fiatAmount",
            "",
        ),
        (
            b'{"eventType": "ORDER_WEBHOOK", "orderId": "1", "quantity": "-Infinity"}',
            "$.quantity",
            "",
        ),
        (b'{"eventType": "FUNDING_WEBHOOK", "status": {"a": 1}}', "$.status", ""),
        (b"[]", "$", "`object`"),
        (b"{", "$", "JSON"),
        (b"\xff\xfe", "$", "JSON"),
    ],
)
def test_wrong_shape_is_payload_error_with_path(body: bytes, path: str, mentions: str) -> None:
    """A body that is not VelaFi's shape is a PayloadError naming the path and the problem."""
    with pytest.raises(PayloadError) as caught:
        velafi.decode(body)
    assert caught.value.path == path
    assert mentions in str(caught.value)


# --- the module's own signer ----------------------------------------------------------------


def test_module_sign_output_verifies() -> None:
    """`sign` gives a lowercase hex signature of the exact body that the verifier accepts."""
    headers, body = velafi.sign(private_pem("velafi-a"), DOCUMENTED, NOW)
    assert body == DOCUMENTED
    assert headers["content-type"] == "application/json"
    assert headers["signature"] == headers["signature"].lower()
    private_key("velafi-a").public_key().verify(
        bytes.fromhex(headers["signature"]), DOCUMENTED, padding.PKCS1v15(), hashes.SHA256()
    )
    assert make_verifier().verify(body, headers, NOW) == DOCUMENTED


def test_module_sign_rejects_non_private_keys() -> None:
    """A key that is not an RSA private key PEM is a ValueError."""
    with pytest.raises(ValueError, match="private key"):
        velafi.sign(public_pem("velafi-a"), DOCUMENTED, NOW)


# --- nothing else escapes ------------------------------------------------------------------


_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.floats()
_bodies = st.fixed_dictionaries(
    {"eventType": st.sampled_from(["ORDER_WEBHOOK", "FUNDING_WEBHOOK", "", "x"]) | _scalars},
    optional={
        name: _scalars | st.lists(_scalars, max_size=2)
        for name in ("orderId", "orderStatus", "status", "fiatAmount", "quantity", "updateTime")
    },
).map(lambda v: json.dumps(v).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    signature=st.text(max_size=600) | st.text("0123456789abcdefABCDEF", max_size=600),
    body=st.binary(max_size=200) | _bodies,
)
def test_random_requests_raise_only_domain_errors(signature: str, body: bytes) -> None:
    """Random signatures and bodies: verify raises SignatureError, decode only PayloadError."""
    with pytest.raises(SignatureError):
        make_verifier().verify(body, {"signature": signature}, NOW)
    try:
        decoded = velafi.decode(body)
    except PayloadError:
        return
    event = velafi.normalize(decoded, "velafi", RECEIVED)
    assert event.type.rsplit(".", 1)[1] in STATUSES
