"""pay3: HS384 JWS in a JSON envelope, claims nested or flat, `orderStatus` drives the type."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime
from typing import Any

import jwt
import msgspec
import pytest
from hmac_helpers import BAD, NOW, b64url, envelope, jws, raw_jws, rsa_key, rsa_public_pem, sample
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import PayloadError, SignatureError
from gateway.event import encode, event_id
from gateway.providers import pay3
from gateway.types import dec_hook

SECRET = "pay3-client-secret-" + "k" * 48
OTHER = "pay3-rotated-secret-" + "r" * 48
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def make_settings(**raw: Any) -> pay3.Settings:
    """Settings exactly as the config loader builds them from YAML."""
    return msgspec.convert({"secret": SECRET, **raw}, pay3.Settings, dec_hook=dec_hook)


VERIFIER = pay3.build_verifier(make_settings())


def claims(**data: Any) -> bytes:
    """Nested claims JSON as pay3 documents it."""
    order = {"orderType": "CHECKOUT", "orderId": "9c4dd5b3-64de-4d94-b696-3e92cd6b12ba"}
    order.update({"orderStatus": "COMPLETED", **data})
    body = {"requestId": "r-1", "data": order, "type": "pay3-sdk-transaction-status"}
    return json.dumps(body).encode()


def request(content: bytes, secret: str | bytes = SECRET, alg: str = "HS384") -> bytes:
    """The body pay3 POSTs for these claims."""
    return envelope(jws(content, secret, alg))


def event_of(body: bytes, source: str = "pay3-prod") -> Any:
    """Verify, decode and normalize one request."""
    content = VERIFIER.verify(body, {}, NOW)
    return pay3.normalize(pay3.decode(content), source, RECEIVED)


# --- verification ---------------------------------------------------------------------------


def test_valid_request_returns_the_exact_claims_bytes() -> None:
    """A correctly signed token verifies and yields the signed claims JSON byte for byte."""
    content = claims()
    assert VERIFIER.verify(request(content), {}, NOW) == content


def test_header_is_alg_only_without_typ() -> None:
    """The token pay3 sends has header `{"alg":"HS384"}` and no `typ`; it is accepted as is."""
    token = jws(claims(), SECRET)
    assert base64.urlsafe_b64decode(token.split(".")[0] + "==") == b'{"alg":"HS384"}'
    assert VERIFIER.verify(envelope(token), {}, NOW) == claims()


def test_typ_jwt_header_is_also_accepted() -> None:
    """A `typ: JWT` header does not change what is signed, so it is tolerated."""
    token = jws(claims(), SECRET, header={"typ": "JWT"})
    assert VERIFIER.verify(envelope(token), {}, NOW) == claims()


def test_whitespace_around_the_token_is_tolerated() -> None:
    """Stray whitespace around the token is not part of the JWS."""
    token = jws(claims(), SECRET)
    assert VERIFIER.verify(envelope(f" {token}\n"), {}, NOW) == claims()


def test_tampered_claims_are_rejected() -> None:
    """Swapping in other claims under the original signature fails."""
    header, _, signature = jws(claims(), SECRET).split(".")
    forged = f"{header}.{b64url(claims(orderStatus='FAILED'))}.{signature}"
    with pytest.raises(SignatureError):
        VERIFIER.verify(envelope(forged), {}, NOW)


def test_tampered_header_is_rejected() -> None:
    """The header is part of the signing input: adding a field breaks the signature."""
    _, payload, signature = jws(claims(), SECRET).split(".")
    header = b64url(b'{"alg":"HS384","kid":"x"}')
    forged = f"{header}.{payload}.{signature}"
    with pytest.raises(SignatureError, match="does not match"):
        VERIFIER.verify(envelope(forged), {}, NOW)


def test_tampered_signature_is_rejected() -> None:
    """Flipping one signature byte fails."""
    header, payload, signature = jws(claims(), SECRET).split(".")
    mac = bytearray(base64.urlsafe_b64decode(signature + "=="))
    mac[0] ^= 1
    with pytest.raises(SignatureError):
        VERIFIER.verify(envelope(f"{header}.{payload}.{b64url(bytes(mac))}"), {}, NOW)


def test_wrong_secret_is_rejected() -> None:
    """A token signed with another secret fails."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(request(claims(), OTHER), {}, NOW)


def test_rotated_secrets_both_verify() -> None:
    """With two secrets configured, tokens from the old and the new one both pass."""
    verifier = pay3.build_verifier(make_settings(secret=[SECRET, OTHER]))
    for secret in (SECRET, OTHER):
        assert verifier.verify(request(claims(), secret), {}, NOW) == claims()
    with pytest.raises(SignatureError):
        verifier.verify(request(claims(), "third-secret-" + "t" * 60), {}, NOW)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b"[]",
        b'{"payload": 1}',
        b'{"payload": null}',
        b'{"token": "a.b.c"}',
        b"not json",
        b'{"payload": "\xff\xfe"}',
        b"\xff\xfe\xfd",
    ],
)
def test_missing_or_malformed_envelope_is_a_signature_error(body: bytes) -> None:
    """Without a `{"payload": "<JWS>"}` envelope there is no signature: SignatureError."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(body, {}, NOW)


def _valid_parts() -> list[str]:
    return jws(claims(), SECRET).split(".")


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        ".".join(_valid_parts()[:2]),
        ".".join(_valid_parts())[:-10],  # truncated signature
        ".".join(_valid_parts())[:40],  # truncated mid-payload
        ".".join(_valid_parts()) + ".",
        "!!!." + ".".join(_valid_parts()[1:]),  # not base64url
        "a." + ".".join(_valid_parts()[1:]),  # 1 char: impossible base64 length
        b64url(b"not json") + "." + ".".join(_valid_parts()[1:]),
        b64url(b'["HS384"]') + "." + ".".join(_valid_parts()[1:]),
        b64url(b"\xff\xfe") + "." + ".".join(_valid_parts()[1:]),
        ".".join(_valid_parts()[:2]) + ".",  # empty signature
        ".".join(_valid_parts()[:2]) + "." + "A" * 200_000,  # huge signature
        ".".join(_valid_parts()[:2]) + "." + _valid_parts()[2] + "AAAA",  # too long
        "é." + ".".join(_valid_parts()[1:]),  # non-ASCII
    ],
)
def test_malformed_jws_is_a_signature_error(token: str) -> None:
    """Truncated, mis-segmented or mis-encoded tokens raise SignatureError and nothing else."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(envelope(token), {}, NOW)


def test_alg_none_is_rejected() -> None:
    """`alg: none` (unsigned) tokens are refused, with or without a signature segment."""
    unsigned = b64url(b'{"alg":"none"}') + "." + b64url(claims())
    for token in (unsigned + ".", unsigned + "." + b64url(b"x" * 48)):
        with pytest.raises(SignatureError, match="algorithm"):
            VERIFIER.verify(envelope(token), {}, NOW)


@pytest.mark.parametrize("alg", ["HS256", "HS512"])
def test_other_hs_sizes_are_rejected_by_default(alg: str) -> None:
    """A token correctly signed with the right secret but HS256/HS512 fails: HS384 is pinned."""
    with pytest.raises(SignatureError, match="algorithm"):
        VERIFIER.verify(request(claims(), SECRET, alg), {}, NOW)


@pytest.mark.parametrize(
    "alg", ["RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA", "hs384", "HS384 ", "", "none"]
)
def test_every_other_alg_header_is_rejected_even_with_a_valid_hs384_mac(alg: str) -> None:
    """Only the exact `HS384` header passes, even when the MAC itself is a valid HS384 MAC."""
    header = json.dumps({"alg": alg}).encode()
    token = raw_jws(header, claims(), SECRET.encode())
    with pytest.raises(SignatureError, match="algorithm"):
        VERIFIER.verify(envelope(token), {}, NOW)


@pytest.mark.parametrize("header", [b"{}", b'{"alg":null}', b'{"alg":["HS384"]}', b'{"alg":384}'])
def test_missing_or_non_string_alg_is_rejected(header: bytes) -> None:
    """A header without a string `alg` is refused."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(envelope(raw_jws(header, claims(), SECRET.encode())), {}, NOW)


def test_rs256_token_is_rejected() -> None:
    """A genuine RS256 token (signed with an RSA private key) is refused: asymmetric algs never."""
    with pytest.raises(SignatureError, match="algorithm"):
        VERIFIER.verify(envelope(jws(claims(), rsa_key(), "RS256")), {}, NOW)


def test_rs_hs_confusion_is_rejected() -> None:
    """HS-signing with the RSA public key as secret (the classic confusion) fails at the pin."""
    for alg, digest in (("HS256", hashlib.sha256), ("HS384", hashlib.sha384)):
        header = json.dumps({"alg": alg}).encode()
        token = raw_jws(header, claims(), rsa_public_pem(), digest)
        with pytest.raises(SignatureError):
            VERIFIER.verify(envelope(token), {}, NOW)


def test_public_key_configured_as_secret_is_refused_at_build() -> None:
    """A PEM key is never accepted as an HMAC secret, so the confusion cannot be configured."""
    pem = rsa_public_pem().decode()
    with pytest.raises(ValueError, match="asymmetric") as info:
        pay3.build_verifier(make_settings(secret=pem))
    assert pem not in str(info.value)


def test_crit_and_unencoded_payload_headers_are_rejected() -> None:
    """Unknown critical extensions (`crit`, RFC 7797 `b64: false`) make the token invalid."""
    for header in (b'{"alg":"HS384","crit":["exp"]}', b'{"alg":"HS384","b64":false}'):
        with pytest.raises(SignatureError, match="critical"):
            VERIFIER.verify(envelope(raw_jws(header, claims(), SECRET.encode())), {}, NOW)


def test_configured_hs256_is_accepted_alongside_hs384() -> None:
    """`algorithms: [HS256, HS384]` admits both sizes and still refuses HS512."""
    verifier = pay3.build_verifier(make_settings(algorithms=["HS256", "HS384"]))
    for alg in ("HS256", "HS384"):
        assert verifier.verify(request(claims(), SECRET, alg), {}, NOW) == claims()
    with pytest.raises(SignatureError):
        verifier.verify(request(claims(), SECRET, "HS512"), {}, NOW)


def test_base64_secret_alternative() -> None:
    """With `secret_base64`, the MAC key is the decoded secret, not its UTF-8 text."""
    key = os.urandom(48)
    encoded = base64.b64encode(key).decode()
    verifier = pay3.build_verifier(make_settings(secret=encoded, secret_base64=True))
    assert verifier.verify(request(claims(), key), {}, NOW) == claims()
    with pytest.raises(SignatureError):
        verifier.verify(request(claims(), encoded), {}, NOW)
    # Default: the UTF-8 bytes of the configured text.
    plain = pay3.build_verifier(make_settings(secret=encoded))
    assert plain.verify(request(claims(), encoded), {}, NOW) == claims()


def test_base64_secret_accepts_urlsafe_alphabet_without_padding() -> None:
    """The base64 alternative tolerates the URL-safe alphabet and missing padding."""
    key = bytes(range(250, 256)) * 8 + b"\xfb"
    encoded = base64.urlsafe_b64encode(key).decode().rstrip("=")
    verifier = pay3.build_verifier(make_settings(secret=encoded, secret_base64=True))
    assert verifier.verify(request(claims(), key), {}, NOW) == claims()


def test_invalid_base64_secret_names_the_setting_not_the_value() -> None:
    """Bad key material is a ValueError that names `secret` and never echoes it."""
    with pytest.raises(ValueError, match="`secret` #1") as info:
        pay3.build_verifier(make_settings(secret=[SECRET, "not*base64!"], secret_base64=True))
    assert "not*base64!" not in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        {"algorithms": []},
        {"algorithms": ["RS256"]},
        {"algorithms": ["none"]},
        {"secret": ""},
        {"secret": []},
        {"secrets": "typo"},
        {"secret_base64": "yes"},
    ],
)
def test_bad_settings_are_config_errors(raw: dict[str, Any]) -> None:
    """Empty/asymmetric algorithm lists, empty secrets and unknown keys fail conversion."""
    with pytest.raises(msgspec.ValidationError):
        make_settings(**raw)


def test_settings_defaults() -> None:
    """By default: UTF-8 secret, HS384 only."""
    settings = make_settings()
    assert settings.algorithms == ("HS384",)
    assert settings.secret_base64 is False


def test_headers_are_ignored() -> None:
    """pay3 sends no signature header; unrelated headers change nothing."""
    body = request(claims())
    assert VERIFIER.verify(body, {"signature": "00", "authorization": "x"}, NOW) == claims()


# --- samples, decoding and normalization ---------------------------------------------------

EXPECTED = {
    "claims-nested.json": {
        "type": "order.completed",
        "subject": "9c4dd5b3-64de-4d94-b696-3e92cd6b12ba",
        "providerevent": "pay3-sdk-transaction-status",
        "provider_status": "COMPLETED",
        "key": ("9c4dd5b3-64de-4d94-b696-3e92cd6b12ba", "CHECKOUT", "COMPLETED", "SUCCESS"),
    },
    "claims-flat.json": {
        "type": "order.completed",
        "subject": "7aed064b-cb2d-42f8-9560-77413dcc5fc4",
        "providerevent": "order.COMPLETED",
        "provider_status": "COMPLETED",
        "key": ("7aed064b-cb2d-42f8-9560-77413dcc5fc4", "FIAT", "COMPLETED", None),
    },
    "claims-failed-with-error.json": {
        "type": "order.failed",
        "subject": "3f0e1b6a-8a55-4f7c-a0a1-2c4e9d6b7f30",
        "providerevent": "pay3-sdk-transaction-status",
        "provider_status": "FAILED",
        "key": ("3f0e1b6a-8a55-4f7c-a0a1-2c4e9d6b7f30", "CRYPTO", "FAILED", "DECLINED"),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_signed_verifies_decodes_and_normalizes(name: str) -> None:
    """Each docs sample, signed as pay3 does, becomes the expected CloudEvent field by field."""
    content = sample("pay3", name)
    expected = EXPECTED[name]
    event = event_of(request(content))
    assert event.specversion == "1.0"
    assert event.id == event_id("pay3-prod", *expected["key"])
    assert event.source == "/webhooks/pay3-prod"
    assert event.type == expected["type"]
    assert event.subject == event.partitionkey == expected["subject"]
    assert event.time == "2024-05-01T12:00:00Z"  # pay3 sends no time: the receive time
    assert event.datacontenttype == "application/json"
    assert event.provider == "pay3"
    assert event.providerevent == expected["providerevent"]
    assert event.integrity == "signed"
    assert event.data.kind == "order"
    assert event.data.id == expected["subject"]
    assert event.data.external_id is None
    assert event.data.status == expected["type"].split(".")[1]
    assert event.data.provider_status == expected["provider_status"]
    assert event.data.fiat is None and event.data.crypto is None
    assert event.data.payload == json.loads(content)
    # Same claims re-sent (pay3 retries up to 10 times): same id.
    assert event_of(request(content)).id == event.id


def test_failed_with_declined_payment_keeps_payment_status_and_error_in_payload() -> None:
    """FAILED + DECLINED is `order.failed`; paymentStatus and error stay in the payload."""
    event = event_of(request(sample("pay3", "claims-failed-with-error.json")))
    assert event.type == "order.failed"
    assert event.data.payload["data"]["paymentStatus"] == "DECLINED"
    assert event.data.payload["data"]["error"] == {
        "code": 4012,
        "message": "payment declined by issuer",
    }


def test_flat_and_nested_shapes_decode_to_the_same_order() -> None:
    """The docs' flat token and the schema's nested claims carry the same order fields."""
    order = {"orderType": "FIAT", "orderId": "o-1", "orderStatus": "COMPLETED", "offerId": "f"}
    flat = pay3.decode(json.dumps(order).encode())
    nested = pay3.decode(json.dumps({"data": order, "requestId": "r"}).encode())
    assert flat.order == nested.order
    assert flat.order.orderId == "o-1"
    assert nested.request_id == "r" and flat.request_id is None
    assert flat.payload["offerId"] == "f"  # unknown fields kept


def test_flat_claims_with_a_non_object_data_field_are_read_flat() -> None:
    """Only an object under `data` means the nested shape; otherwise the top level is read."""
    content = b'{"orderId": "o-2", "orderStatus": "CREATED", "data": "opaque"}'
    decoded = pay3.decode(content)
    assert decoded.order.orderId == "o-2"
    assert decoded.payload["data"] == "opaque"


def test_crypto_and_fiat_legs_share_order_id_but_not_event_id() -> None:
    """An order's crypto and fiat legs: same subject, different event ids."""
    crypto = event_of(request(claims(orderType="CRYPTO")))
    fiat = event_of(request(claims(orderType="CHECKOUT")))
    assert crypto.subject == fiat.subject
    assert crypto.id != fiat.id
    assert crypto.data.payload["data"]["orderType"] == "CRYPTO"


def test_event_id_changes_with_each_part_of_the_natural_key() -> None:
    """orderId, orderType, orderStatus and paymentStatus each make a distinct state change."""
    base = event_of(request(claims(paymentStatus="SUCCESS")))
    variants = [
        claims(paymentStatus="REFUNDED"),
        claims(paymentStatus=None),
        claims(orderStatus="FAILED", paymentStatus="SUCCESS"),
        claims(orderType="PAYOUT", paymentStatus="SUCCESS"),
        claims(orderId="other", paymentStatus="SUCCESS"),
    ]
    ids = {event_of(request(v)).id for v in variants}
    assert base.id not in ids and len(ids) == len(variants)
    # Resigned with a rotated secret, the same state change keeps its id.
    rotated = pay3.build_verifier(make_settings(secret=[SECRET, OTHER]))
    content = rotated.verify(request(claims(paymentStatus="SUCCESS"), OTHER), {}, NOW)
    assert pay3.normalize(pay3.decode(content), "pay3-prod", RECEIVED).id == base.id


def test_event_id_depends_on_the_source_name() -> None:
    """Two pay3 sources receiving the same claims produce different ids."""
    body = request(claims())
    assert event_of(body, "a").id != event_of(body, "b").id


@pytest.mark.parametrize(
    ("order_status", "status"),
    [
        ("CREATED", "created"),
        ("ORDER_STARTED", "created"),
        ("ORDER_PAYMENT_AWAITING", "pending"),
        ("ORDER_PAYMENT_PROCESSING", "processing"),
        ("ORDER_PAYMENT_INITIATED", "processing"),
        ("COMPLETED", "completed"),
        ("FAILED", "failed"),
        ("ABANDONED", "cancelled"),
        ("completed", "completed"),
        ("REFUND_PENDING", "unknown"),
        ("", "unknown"),
    ],
)
def test_every_order_status_is_mapped(order_status: str, status: str) -> None:
    """providers.md's pay3 column; anything else is `unknown`, kept raw, not a 400."""
    event = event_of(request(claims(orderStatus=order_status)))
    assert event.type == f"order.{status}"
    assert event.data.status == status
    assert event.data.provider_status == order_status


@pytest.mark.parametrize(
    "payment_status",
    [
        "SUCCESS",
        "COMPLETED",
        "DECLINED",
        "CANCELED",
        "REFUNDED",
        "REFUND_INITIATED",
        "REFUND_FAILED",
        "MAX_RETRIES_REACHED",
        "UNDER_PAID",
        "OVER_PAID",
        "REVIEW_CREATED",
        "REVIEW_SUBMITTED",
        "AWAITING_APPROVAL",
        "SOMETHING_NEW",
    ],
)
def test_payment_status_never_changes_the_type(payment_status: str) -> None:
    """paymentStatus stays in the payload; only orderStatus decides (`ORDER_PAYMENT_PROCESSING`)."""
    event = event_of(
        request(claims(orderStatus="ORDER_PAYMENT_PROCESSING", paymentStatus=payment_status))
    )
    assert event.type == "order.processing"
    assert event.data.payload["data"]["paymentStatus"] == payment_status


def test_login_status_claim_type_is_kept_as_provider_event() -> None:
    """The older `pay3-sdk-login-status` claim type is accepted and reported as providerevent."""
    body = {"type": "pay3-sdk-login-status", "data": {"orderId": "o", "orderStatus": "CREATED"}}
    event = event_of(request(json.dumps(body).encode()))
    assert event.providerevent == "pay3-sdk-login-status"
    assert event.type == "order.created"


@pytest.mark.parametrize(
    ("content", "path"),
    [
        (b'{"data": {"orderStatus": "COMPLETED"}}', "$.data"),
        (b'{"data": {"orderId": "o", "orderStatus": 3}}', "$.data.orderStatus"),
        (b'{"orderId": "o"}', "$"),
        (b'{"orderId": 5, "orderStatus": "COMPLETED"}', "$.orderId"),
        (b'{"orderId": "o", "orderStatus": "X", "error": {"code": "E1"}}', "$.error.code"),
        (b'{"data": {"orderId": "o", "orderStatus": "X"}, "requestId": 7}', "$.requestId"),
        (b"[1, 2]", "$"),
        (b'"a string"', "$"),
        (b"", "$"),
        (b"{not json", "$"),
        (b'{"orderId": "\xff", "orderStatus": "X"}', "$"),
    ],
)
def test_wrong_claims_shape_is_a_payload_error_naming_the_path(content: bytes, path: str) -> None:
    """After a valid signature, bad claims are a PayloadError (400) that names the JSON path."""
    verified = VERIFIER.verify(request(content), {}, NOW)
    with pytest.raises(PayloadError) as info:
        pay3.decode(verified)
    assert info.value.path == path


def test_event_encodes_to_json_without_floats() -> None:
    """The event serializes; numbers in claims stay exact (Decimal), never floats."""
    content = b'{"data": {"orderId": "o", "orderStatus": "COMPLETED", "amount": 0.1}}'
    event = event_of(request(content))
    assert b'"amount":"0.1"' in encode(event)


# --- the module's own signer ----------------------------------------------------------------


def test_module_sign_output_verifies() -> None:
    """`sign` produces the envelope pay3 sends; the verifier and pyjwt both accept it."""
    content = sample("pay3", "claims-nested.json")
    headers, body = pay3.sign(SECRET, content, NOW)
    assert headers["content-type"] == "application/json"
    assert VERIFIER.verify(body, {}, NOW) == content
    token = json.loads(body)["payload"]
    assert jwt.get_unverified_header(token) == {"alg": "HS384"}
    assert jwt.api_jws.decode(token, SECRET, algorithms=["HS384"]) == content


def test_module_constants() -> None:
    """The module exposes its name and JSON media type."""
    assert pay3.NAME == "pay3"
    assert pay3.MEDIA_TYPES == frozenset({"application/json"})


# --- property tests: nothing but SignatureError / PayloadError escapes ----------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bodies_only_raise_signature_error(body: bytes) -> None:
    """Arbitrary bytes never verify and never raise anything but SignatureError."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(body, {}, NOW)


_SEG = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=80
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.tuples(_SEG, _SEG, _SEG).map(".".join)))
def test_random_tokens_only_raise_signature_error(token: str) -> None:
    """Arbitrary token strings in a well-formed envelope raise SignatureError only."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(envelope(token), {}, NOW)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
_CLAIMS = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {"orderId": _JSON, "orderStatus": _JSON}, optional={"orderType": _JSON, "data": _JSON}
    ),
)


@settings(max_examples=200, deadline=None)
@given(_CLAIMS)
def test_signed_random_claims_decode_or_raise_payload_error(value: Any) -> None:
    """Any correctly signed claims either normalize or raise PayloadError, nothing else."""
    content = VERIFIER.verify(request(json.dumps(value).encode()), {}, NOW)
    try:
        event = pay3.normalize(pay3.decode(content), "pay3", RECEIVED)
    except BAD:
        return
    assert event.type.startswith("order.")
    encode(event)


DEEP = b"[" * 100_000 + b"]" * 100_000


def test_absurdly_nested_json_never_escapes_as_recursion_error() -> None:
    """Deep nesting in the envelope or JWS header is a SignatureError, in claims a PayloadError."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(b'{"x": ' + DEEP + b', "payload": "a.b.c"}', {}, NOW)
    with pytest.raises(SignatureError):
        VERIFIER.verify(envelope(raw_jws(DEEP, claims(), SECRET.encode())), {}, NOW)
    for content in (DEEP, b'{"orderId": "o", "orderStatus": "X", "extra": ' + DEEP + b"}"):
        verified = VERIFIER.verify(request(content), {}, NOW)
        with pytest.raises(PayloadError):
            pay3.decode(verified)
