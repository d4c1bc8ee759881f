"""FaTPay: header signature, freshness, nonce replay, partner id, tolerant readings, mapping."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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
from gateway.event import encode, event_id
from gateway.providers import fatpay
from gateway.types import dec_hook

URL = "https://partner.example.com/webhooks/fatpay"
PARTNER = "2yQrS9A0xmM8xpfa"
NOW = 1661346861.0
RECEIVED = datetime(2022, 8, 24, 13, 15, 0, tzinfo=UTC)
BODY = sample_bytes("fatpay", "order-finished.json")


# --- independent signer, written from providers.md -------------------------------------


def expected_message(url: str, headers: dict[str, str]) -> bytes:
    """providers.md steps 1-3: X-FP-* headers + URL query, drop empties, sort, join."""
    parts = urlsplit(url)
    params = [
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower().startswith("x-fp-") and name.lower() != "x-fp-signature"
    ]
    params += parse_qsl(parts.query, keep_blank_values=True)
    joined = "&".join(f"{k}={v}" for k, v in sorted(params) if v)
    return ("POST" + parts.netloc + parts.path + "?" + joined).encode("utf-8")


def signed_headers(
    key: str = "fatpay-a",
    *,
    url: str = URL,
    partner: str = PARTNER,
    nonce: str = "868964",
    timestamp: float = NOW,
    extra: dict[str, str] | None = None,
    encoding: str = "standard",
) -> dict[str, str]:
    """Headers as FaTPay sends them (lowercased, as the ingress hands them over)."""
    headers = {
        "content-type": "application/json",
        "x-fp-partner-id": partner,
        "x-fp-nonce": nonce,
        "x-fp-timestamp": str(int(timestamp)),
        **(extra or {}),
    }
    signature = rsa_sign(key, expected_message(url, headers))
    if encoding == "urlsafe":
        text = base64.urlsafe_b64encode(signature).decode().rstrip("=")
    elif encoding == "wrapped":
        plain = base64.b64encode(signature).decode()
        text = "\r\n ".join(plain[i : i + 64] for i in range(0, len(plain), 64))
    else:
        text = base64.b64encode(signature).decode()
    headers["x-fp-signature"] = text
    return headers


def make_settings(**overrides: Any) -> fatpay.Settings:
    """Settings built the way the config loader builds them."""
    raw: dict[str, Any] = {
        "public_key": public_pem("fatpay-a"),
        "partner_id": PARTNER,
        "url": URL,
        "tolerance": "5m",
    }
    raw.update(overrides)
    return msgspec.convert(raw, fatpay.Settings, dec_hook=dec_hook)


def make_verifier(**overrides: Any) -> fatpay.FatPayVerifier:
    """A verifier for the default source, with setting overrides."""
    return fatpay.build_verifier(make_settings(**overrides))


def order_body(**fields: Any) -> bytes:
    """The sample order with some fields replaced (None removes a field)."""
    order = json.loads(BODY)["order"]
    for name, value in fields.items():
        if value is None:
            order.pop(name, None)
        else:
            order[name] = value
    return json.dumps({"order": order}).encode()


def event_for(body: bytes, source: str = "fatpay") -> Any:
    """decode + normalize."""
    return fatpay.normalize(fatpay.decode(body), source, RECEIVED)


# --- the message builder ----------------------------------------------------------------


def test_documented_message_example_known_answer() -> None:
    """The module builds exactly the example message printed in providers.md."""
    headers = {
        "x-fp-timestamp": "1661346861",
        "x-fp-signature": "ignored",
        "x-fp-partner-id": "2yQrS9A0xmM8xpfa",
        "content-type": "application/json",
        "x-fp-nonce": "868964",
    }
    documented = (
        b"POSTpartner.example.com/webhooks/fatpay"
        b"?x-fp-nonce=868964&x-fp-partner-id=2yQrS9A0xmM8xpfa&x-fp-timestamp=1661346861"
    )
    assert fatpay.signing_message(URL, headers) == documented
    assert expected_message(URL, headers) == documented


def test_message_adds_url_query_drops_empties_and_keeps_values_raw() -> None:
    """URL query params join the headers, empty values go, values are not URL-encoded."""
    headers = {"x-fp-nonce": "a b/c", "x-fp-version": "", "x-fp-partner-id": "p", "x-other": "z"}
    message = fatpay.signing_message("https://h.example/p/q?tenant=acme&blank=&b=2", headers)
    assert message == b"POSTh.example/p/q?b=2&tenant=acme&x-fp-nonce=a b/c&x-fp-partner-id=p"


# --- accepted requests --------------------------------------------------------------------


def test_valid_request_accepted_and_body_returned() -> None:
    """A correctly signed, fresh request from the configured partner verifies."""
    assert make_verifier().verify(BODY, signed_headers(), NOW) == BODY


def test_body_is_not_covered_by_the_signature() -> None:
    """Another body with the same valid headers still verifies: hence `headers-only`."""
    verifier = make_verifier()
    assert verifier.verify(b'{"order": {"orderId": "x"}}', signed_headers(), NOW)
    assert event_for(BODY).integrity == "headers-only"


@pytest.mark.parametrize("encoding", ["standard", "urlsafe", "wrapped"])
def test_signature_base64_variants_tolerated(encoding: str) -> None:
    """Standard, URL-safe unpadded and whitespace-wrapped base64 are all accepted."""
    assert make_verifier().verify(BODY, signed_headers(encoding=encoding), NOW) == BODY


def test_public_key_as_bare_base64_der_accepted() -> None:
    """A public key given as bare base64 DER works like the PEM."""
    verifier = make_verifier(public_key=public_der_b64("fatpay-a"))
    assert verifier.verify(BODY, signed_headers(), NOW) == BODY


def test_rotated_keys_old_and_new_both_pass() -> None:
    """With two configured keys, requests signed by either verify."""
    verifier = make_verifier(public_key=[public_pem("fatpay-a"), public_pem("fatpay-b")])
    assert verifier.verify(BODY, signed_headers("fatpay-a", nonce="1"), NOW) == BODY
    assert verifier.verify(BODY, signed_headers("fatpay-b", nonce="2"), NOW) == BODY


def test_version_header_signed_when_present() -> None:
    """x-fp-version is part of the message when sent; stripping it breaks the signature."""
    headers = signed_headers(extra={"x-fp-version": "v2"})
    assert make_verifier().verify(BODY, headers, NOW) == BODY
    del headers["x-fp-version"]
    with pytest.raises(SignatureError):
        make_verifier().verify(BODY, headers, NOW)


def test_empty_x_fp_header_dropped_from_message() -> None:
    """An X-FP-* header with an empty value is left out of the signed message."""
    headers = signed_headers()
    headers["x-fp-version"] = ""
    assert make_verifier().verify(BODY, headers, NOW) == BODY


def test_configured_url_query_params_are_signed() -> None:
    """The configured URL's query params are in the message; a verifier without them fails."""
    url = URL + "?tenant=acme&empty="
    headers = signed_headers(url=url)
    assert make_verifier(url=url).verify(BODY, headers, NOW) == BODY
    with pytest.raises(SignatureError):
        make_verifier().verify(BODY, headers, NOW)


def test_configured_url_host_used_not_the_host_header() -> None:
    """The Host the gateway sees behind an ingress plays no part; the configured URL does."""
    headers = signed_headers()
    headers["host"] = "gateway.internal:8080"
    assert make_verifier().verify(BODY, headers, NOW) == BODY
    with pytest.raises(SignatureError):
        make_verifier(url="https://other.example.com/webhooks/fatpay").verify(BODY, headers, NOW)


@pytest.mark.parametrize("signed_url", ["https://h.example:8443/wh", "https://h.example/wh"])
def test_explicit_port_in_url_accepts_host_with_or_without_port(signed_url: str) -> None:
    """With a port in the configured URL, both readings of "host" verify."""
    verifier = make_verifier(url="https://h.example:8443/wh")
    assert verifier.verify(BODY, signed_headers(url=signed_url), NOW) == BODY


@pytest.mark.parametrize("offset", [-300, 300, -299.5, 0])
def test_timestamp_inside_window_accepted(offset: float) -> None:
    """Timestamps up to the tolerance in the past or the future are accepted."""
    assert make_verifier().verify(BODY, signed_headers(), NOW + offset) == BODY


def test_tolerance_setting_is_honoured() -> None:
    """A configured 30s tolerance rejects a 31s-old request the 5m default would accept."""
    with pytest.raises(SignatureError, match="tolerance"):
        make_verifier(tolerance="30s").verify(BODY, signed_headers(), NOW + 31)


# --- rejected requests -------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-301, 301, -86400, 86400])
def test_stale_or_future_timestamp_rejected(offset: float) -> None:
    """Timestamps beyond the tolerance either way fail, even with a valid signature."""
    with pytest.raises(SignatureError, match="tolerance"):
        make_verifier().verify(BODY, signed_headers(), NOW + offset)


@pytest.mark.parametrize(
    "stamp",
    [
        "abc",
        "1661346861.0",
        "-5",
        " 1661346861",
        str(int(NOW)).translate({c: c + 0xFEE0 for c in range(0x30, 0x3A)}),
    ],
)
def test_malformed_timestamp_rejected(stamp: str) -> None:
    """A timestamp that is not plain ASCII unix seconds fails, even when signed as sent."""
    headers = signed_headers(extra={"x-fp-timestamp": stamp})
    with pytest.raises(SignatureError, match="X-FP-Timestamp"):
        make_verifier().verify(BODY, headers, NOW)


def test_replay_key_is_the_nonce_for_twice_the_tolerance() -> None:
    """The verifier names the nonce the pipeline claims, for 2x tolerance; it keeps no state."""
    verifier = make_verifier()
    headers = signed_headers(nonce="n1")
    assert verifier.verify(BODY, headers, NOW) == BODY
    assert verifier.replay_key(headers) == ("n1", 600.0)
    # Reuse is refused by the pipeline through the state store, not here (tests/test_pipeline_state.py).
    assert verifier.verify(BODY, signed_headers(nonce="n1"), NOW + 10) == BODY


def test_wrong_partner_id_rejected() -> None:
    """A request signed for another partner id fails, even with a valid signature."""
    with pytest.raises(SignatureError, match="Partner"):
        make_verifier().verify(BODY, signed_headers(partner="someone-else"), NOW)


def test_wrong_key_rejected() -> None:
    """A request signed by a key that is not configured fails."""
    with pytest.raises(SignatureError, match="does not match"):
        make_verifier().verify(BODY, signed_headers("fatpay-b"), NOW)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-fp-nonce", "868965"),
        ("x-fp-timestamp", str(int(NOW) + 1)),
        ("x-fp-version", "v9"),
        ("x-fp-extra", "unsigned"),
    ],
)
def test_tampered_or_added_header_rejected(name: str, value: str) -> None:
    """Changing or adding any X-FP-* header after signing breaks the signature."""
    headers = signed_headers()
    headers[name] = value
    with pytest.raises(SignatureError, match="does not match"):
        make_verifier().verify(BODY, headers, NOW)


@pytest.mark.parametrize(
    "name", ["x-fp-signature", "x-fp-partner-id", "x-fp-nonce", "x-fp-timestamp"]
)
@pytest.mark.parametrize("blank", [True, False])
def test_missing_or_empty_header_rejected(name: str, blank: bool) -> None:
    """Each documented header is required and must not be empty."""
    headers = signed_headers()
    if blank:
        headers[name] = ""
    else:
        del headers[name]
    with pytest.raises(SignatureError, match="missing"):
        make_verifier().verify(BODY, headers, NOW)


def _truncated() -> str:
    return signed_headers()["x-fp-signature"][:-8]


@pytest.mark.parametrize(
    "signature",
    [
        "not base64 at all!",
        "   ",
        "A",
        "QUJD",
        "é" * 8,
        "A" * 100_000,
        "AAAA" * 256,
        _truncated(),
    ],
)
def test_malformed_signature_rejected(signature: str) -> None:
    """Bad base64, blank, short, non-ASCII, huge and truncated signatures all fail cleanly."""
    headers = signed_headers()
    headers["x-fp-signature"] = signature
    with pytest.raises(SignatureError) as caught:
        make_verifier().verify(BODY, headers, NOW)
    assert signature.strip() == "" or signature not in str(caught.value)


def test_error_messages_never_echo_the_signature() -> None:
    """A mismatch message does not contain the received signature."""
    headers = signed_headers("fatpay-b")
    with pytest.raises(SignatureError) as caught:
        make_verifier().verify(BODY, headers, NOW)
    assert headers["x-fp-signature"] not in str(caught.value)


def test_non_utf8_body_passes_verify_then_fails_decode() -> None:
    """The unsigned body may be anything to verify; decode turns bad bytes into PayloadError."""
    body = b'{"order": {"orderId": "\xff\xfe", "orderStatus": 3}}'
    assert make_verifier().verify(body, signed_headers(), NOW) == body
    with pytest.raises(PayloadError):
        fatpay.decode(body)


# --- settings ---------------------------------------------------------------------------


def test_settings_defaults_and_parsing() -> None:
    """Tolerance defaults to 5 minutes and a key list is accepted."""
    settings = msgspec.convert(
        {"public_key": [public_pem("fatpay-a")], "partner_id": PARTNER, "url": URL},
        fatpay.Settings,
        dec_hook=dec_hook,
    )
    assert settings.tolerance == 300.0
    assert len(settings.public_key) == 1


def test_settings_reject_unknown_keys() -> None:
    """A typo in the source config is an error."""
    with pytest.raises(msgspec.ValidationError, match="partner_idd"):
        make_settings(partner_idd="x")


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"public_key": "bm90IGEga2V5"}, "public_key"),
        (
            {"public_key": "-----BEGIN PUBLIC KEY-----\nSECRETSTUFF\n-----END PUBLIC KEY-----"},
            "public_key",
        ),
        ({"public_key": ec_public_pem()}, "public_key"),
        ({"url": "partner.example.com/webhooks/fatpay"}, "url"),
        ({"url": "ftp://partner.example.com/x"}, "url"),
        ({"url": "https://h.example:99999/x"}, "url"),
        ({"partner_id": " "}, "partner_id"),
    ],
)
def test_bad_settings_raise_value_error_naming_the_setting(
    overrides: dict[str, Any], setting: str
) -> None:
    """Bad key material or URL fails at build time, naming the setting, never the value."""
    with pytest.raises(ValueError, match=setting) as caught:
        make_verifier(**overrides)
    assert "SECRETSTUFF" not in str(caught.value)
    assert "bm90IGEga2V5" not in str(caught.value)


# --- decode + normalize ------------------------------------------------------------------


def test_sample_signed_verifies_decodes_and_normalizes() -> None:
    """The docs-derived sample, signed as FaTPay signs, becomes the expected CloudEvent."""
    content = make_verifier().verify(BODY, signed_headers(), NOW)
    event = fatpay.normalize(fatpay.decode(content), "fatpay", RECEIVED)
    order_id = "20220824152149FP2yQrS9A0xmM8xpfa0001"
    assert event.specversion == "1.0"
    assert event.source == "/webhooks/fatpay"
    assert event.type == "order.completed"
    assert event.subject == order_id
    assert event.partitionkey == order_id
    assert event.time == "2022-08-24T13:14:21Z"  # finishTime 1661346861
    assert event.provider == "fatpay"
    assert event.providerevent == "order:3"
    assert event.integrity == "headers-only"
    assert event.id == event_id("fatpay", order_id, "3")
    data = event.data
    assert (data.kind, data.id, data.external_id) == ("order", order_id, None)
    assert (data.status, data.provider_status) == ("completed", "3")
    assert (data.fiat.currency, data.fiat.amount) == ("USD", "150.25")  # type: ignore[union-attr]
    assert (data.crypto.currency, data.crypto.amount) == ("USDC", "148.731204")  # type: ignore[union-attr]
    assert data.payload["order"]["currencyAmount"] == Decimal("150.25")
    assert data.payload == json.loads(BODY, parse_float=Decimal)
    assert msgspec.json.decode(encode(event))["data"]["payload"] == json.loads(
        BODY, parse_float=str
    )


def test_event_id_stable_per_state_change() -> None:
    """Same order and status -> same id; another status, order or source -> another id."""
    first = event_for(BODY)
    assert fatpay.normalize(fatpay.decode(BODY), "fatpay", datetime.now(UTC)).id == first.id
    assert event_for(order_body(orderStatus=4)).id != first.id
    assert event_for(order_body(orderId="other")).id != first.id
    assert event_for(BODY, source="fatpay-eu").id != first.id


def test_flat_order_accepted_like_the_wrapped_one() -> None:
    """A flat Order body normalizes to the same event as `{"order": Order}`."""
    flat_payload = json.loads(BODY)["order"]
    flat = event_for(json.dumps(flat_payload).encode())
    wrapped = event_for(BODY)
    assert (flat.id, flat.type, flat.subject, flat.time) == (
        wrapped.id,
        wrapped.type,
        wrapped.subject,
        wrapped.time,
    )
    assert (flat.data.fiat, flat.data.crypto) == (wrapped.data.fiat, wrapped.data.crypto)
    assert flat.data.payload["orderId"] == wrapped.subject


@pytest.mark.parametrize(
    ("status", "expected"),
    [(3, "completed"), ("3", "completed"), (1, "unknown"), (2, "unknown"), (4, "unknown")],
)
def test_status_mapping(status: Any, expected: str) -> None:
    """orderStatus 3 is completed; every other status is decoded, kept raw and `unknown`."""
    event = event_for(order_body(orderStatus=status))
    assert event.type == f"order.{expected}"
    assert event.data.status == expected
    assert event.data.provider_status == str(status)


def test_unknown_large_status_kept_raw() -> None:
    """An undocumented status number is not an error: `order.unknown` with the raw value."""
    event = event_for(order_body(orderStatus=987654321))
    assert (event.type, event.data.provider_status) == ("order.unknown", "987654321")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"finishTime": "1661346861"}, "2022-08-24T13:14:21Z"),
        ({"finishTime": None}, "2022-08-24T13:13:25Z"),  # deliverTime "1661346805"
        ({"finishTime": None, "deliverTime": None}, "2022-08-24T13:12:00Z"),  # payTime
        ({"finishTime": None, "deliverTime": None, "payTime": None}, "2022-08-24T13:15:00Z"),
    ],
)
def test_time_from_order_times_string_or_int_else_received(
    fields: dict[str, Any], expected: str
) -> None:
    """Time is finishTime, else deliverTime, else payTime (string or int), else received."""
    assert event_for(order_body(**fields)).time == expected


def test_crypto_currency_falls_back_to_code_and_legs_may_be_absent() -> None:
    """Without cryptoCurrency the code is used; without any fiat fields fiat is None."""
    body = order_body(
        cryptoCurrency=None, fiatCurrency=None, currencyAmount=None, cryptoCurrencyAmount=2
    )
    event = event_for(body)
    assert event.data.fiat is None
    assert event.data.crypto is not None
    assert (event.data.crypto.currency, event.data.crypto.amount) == ("USDC_Polygon", "2")


@pytest.mark.parametrize(
    ("body", "path", "mentions"),
    [
        (b'{"order": {"orderStatus": 3}}', "$.order", "`orderId`"),
        (b'{"order": {"orderId": 12, "orderStatus": 3}}', "$.order.orderId", "`str`"),
        (b'{"order": {"orderId": "x"}}', "$.order", "`orderStatus`"),
        (b'{"order": {"orderId": "x", "orderStatus": true}}', "$.order.orderStatus", "`bool`"),
        (b'{"order": null}', "$.order", "`null`"),
        (
            b'{"order": {"orderId": "x", "orderStatus": 3, "currencyAmount": "abc"}}',
            "$.order.currencyAmount",
            "decimal",
        ),
        (
            b'{"order": {"orderId": "x", "orderStatus": 3, "cryptoCurrencyAmount": "NaN"}}',
            "$.order.cryptoCurrencyAmount",
            "finite",
        ),
        (
            b'{"orderId": "x", "orderStatus": 3, "currencyAmount": "Infinity"}',
            "$.currencyAmount",
            "",
        ),
        (b'{"orderStatus": 3}', "$", "`orderId`"),
        (b'{"orderId": "x", "orderStatus": 3, "finishTime": [1]}', "$.finishTime", "`array`"),
        (b"[1, 2]", "$", "`object`"),
        (b"not json", "$", "JSON"),
        (b"", "$", "JSON"),
    ],
)
def test_wrong_shape_is_payload_error_with_path(body: bytes, path: str, mentions: str) -> None:
    """A body that is not an Order (flat or wrapped) is a PayloadError naming path and problem."""
    with pytest.raises(PayloadError) as caught:
        fatpay.decode(body)
    assert caught.value.path == path
    assert mentions in str(caught.value)


# --- the module's own signer ----------------------------------------------------------------


def test_module_sign_output_verifies() -> None:
    """`sign` output verifies, matches the message built from providers.md, nonces differ."""
    first, body = fatpay.sign(private_pem("fatpay-a"), BODY, NOW, url=URL, partner_id=PARTNER)
    second, _ = fatpay.sign(private_pem("fatpay-a"), BODY, NOW, url=URL, partner_id=PARTNER)
    assert body == BODY
    assert first["content-type"] == "application/json"
    assert first["x-fp-nonce"] != second["x-fp-nonce"]
    private_key("fatpay-a").public_key().verify(
        base64.b64decode(first["x-fp-signature"]),
        expected_message(URL, first),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    verifier = make_verifier()
    assert verifier.verify(body, first, NOW) == BODY
    assert verifier.verify(body, second, NOW) == BODY


@pytest.mark.parametrize(
    "kwargs", [{}, {"url": URL}, {"partner_id": PARTNER}, {"url": "", "partner_id": PARTNER}]
)
def test_module_sign_needs_url_and_partner_id(kwargs: dict[str, str]) -> None:
    """Without the webhook URL and partner id there is nothing to sign."""
    with pytest.raises(ValueError, match="url"):
        fatpay.sign(private_pem("fatpay-a"), BODY, NOW, **kwargs)


def test_module_sign_rejects_non_rsa_or_garbage_keys() -> None:
    """A key that is not an RSA private key PEM is a ValueError."""
    with pytest.raises(ValueError, match="private key"):
        fatpay.sign("not a key", BODY, NOW, url=URL, partner_id=PARTNER)
    with pytest.raises(ValueError, match="private key"):
        fatpay.sign(public_pem("fatpay-a"), BODY, NOW, url=URL, partner_id=PARTNER)


# --- nothing else escapes ------------------------------------------------------------------

_header_names = st.sampled_from(
    ["x-fp-signature", "x-fp-partner-id", "x-fp-nonce", "x-fp-timestamp", "x-fp-version", "host"]
)
_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.floats()
_orders = st.fixed_dictionaries(
    {"orderId": st.text(max_size=12) | _scalars, "orderStatus": _scalars},
    optional={
        name: _scalars | st.lists(_scalars, max_size=2)
        for name in ("finishTime", "payTime", "currencyAmount", "cryptoCurrency", "fiatCurrency")
    },
)
_bodies = (_orders | st.fixed_dictionaries({"order": _orders})).map(
    lambda v: json.dumps(v).encode()
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.dictionaries(_header_names, st.text(max_size=40), max_size=6),
    body=st.binary(max_size=200) | _bodies,
    keep_valid=st.booleans(),
)
def test_random_requests_raise_only_domain_errors(
    headers: dict[str, str], body: bytes, keep_valid: bool
) -> None:
    """Random headers and bodies: verify raises only SignatureError, decode only PayloadError."""
    merged = {**signed_headers(), **headers} if keep_valid else headers
    try:
        make_verifier().verify(body, merged, NOW)
    except SignatureError:
        pass
    try:
        decoded = fatpay.decode(body)
    except PayloadError:
        return
    assert fatpay.normalize(decoded, "fatpay", RECEIVED).type.startswith("order.")
