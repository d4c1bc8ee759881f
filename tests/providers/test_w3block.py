"""W3Block Commerce: hex (or base64) HMAC-SHA256 of the body; `event` `order.<status>` decides."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hmac_helpers import BAD, NOW, hmac_b64, hmac_hex, js_json, php_json, sample, sample_names
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import PayloadError, SignatureError
from gateway.event import Money, encode, event_id, to_builtins
from gateway.providers import w3block
from gateway.types import dec_hook

SECRET = "w3block-signature-key-3f1c9a7e5b"
OTHER = "w3block-rotated-signature-key-11"
HEADER = "x-w3block-commerce-signature"
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def verifier(*secrets: str) -> w3block.W3BlockVerifier:
    """A verifier built from settings as the config loader converts them."""
    raw = {"secret": list(secrets) if len(secrets) > 1 else secrets[0]}
    return w3block.build_verifier(msgspec.convert(raw, w3block.Settings, dec_hook=dec_hook))


VERIFIER = verifier(SECRET)


def body_of(event: str, status: str | None = "pending", **fields: Any) -> bytes:
    """A minimal W3Block order notification."""
    order = {"id": "ord-1", "status": status, "currencyAmount": "1.2", **fields}
    return json.dumps({"data": order, "event": event, "timestamp": 1666201874688}).encode()


def event_of(body: bytes, source: str = "w3block") -> Any:
    """Verify (hex over the raw body), decode and normalize one request."""
    content = VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, body)}, NOW)
    return w3block.normalize(w3block.decode(content), source, RECEIVED)


# --- verification ---------------------------------------------------------------------------


def test_lowercase_hex_over_raw_body_is_accepted() -> None:
    """The primary reading: lowercase hex HMAC-SHA256 of the raw body."""
    body = sample("w3block", "order-created.json")
    assert VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, body)}, NOW) == body


def test_uppercase_hex_is_accepted() -> None:
    """Hex digits in upper case are the same MAC."""
    body = sample("w3block", "order-created.json")
    assert VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, body).upper()}, NOW) == body


@pytest.mark.parametrize("variant", ["standard", "unpadded", "urlsafe", "spaced"])
def test_base64_signature_is_accepted_as_fallback(variant: str) -> None:
    """Base64 (either alphabet, padding optional) is the fallback encoding."""
    body = sample("w3block", "order-concluded.json")
    signature = hmac_b64(SECRET, body)
    header = {
        "standard": signature,
        "unpadded": signature.rstrip("="),
        "urlsafe": signature.replace("+", "-").replace("/", "_"),
        "spaced": f"  {signature} ",
    }[variant]
    assert VERIFIER.verify(body, {HEADER: header}, NOW) == body


def test_js_style_reserialization_is_accepted_as_fallback() -> None:
    """The body as sent (pretty-printed) also passes if `JSON.stringify(body)` was signed."""
    body = sample("w3block", "order-failed.json")
    compact = js_json(json.loads(body))
    assert compact != body
    assert VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, compact)}, NOW) == body
    assert VERIFIER.verify(body, {HEADER: hmac_b64(SECRET, compact)}, NOW) == body


def test_php_style_reserialization_is_not_a_candidate() -> None:
    """Only the JS-style re-serialization is documented for W3Block; PHP-style fails."""
    body = b'{\n  "data": {"id": "a/b", "status": "pending"},\n  "event": "order.created"\n}'
    php = php_json(json.loads(body))
    assert php != js_json(json.loads(body))
    with pytest.raises(SignatureError):
        VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, php)}, NOW)


def test_tampered_body_is_rejected() -> None:
    """Changing the amount after signing fails."""
    body = sample("w3block", "order-concluded.json")
    signature = hmac_hex(SECRET, body)
    with pytest.raises(SignatureError, match="does not match"):
        VERIFIER.verify(body.replace(b'"1.2"', b'"9.2"'), {HEADER: signature}, NOW)


def test_wrong_secret_is_rejected() -> None:
    """A MAC with another key fails, in either encoding."""
    body = sample("w3block", "order-concluded.json")
    for signature in (hmac_hex(OTHER, body), hmac_b64(OTHER, body)):
        with pytest.raises(SignatureError):
            VERIFIER.verify(body, {HEADER: signature}, NOW)


def test_rotated_secrets_both_verify() -> None:
    """With old and new signature keys configured, both pass."""
    both = verifier(SECRET, OTHER)
    body = sample("w3block", "order-expired.json")
    assert both.verify(body, {HEADER: hmac_hex(SECRET, body)}, NOW) == body
    assert both.verify(body, {HEADER: hmac_b64(OTHER, body)}, NOW) == body
    with pytest.raises(SignatureError):
        both.verify(body, {HEADER: hmac_hex("third", body)}, NOW)


def test_missing_header_is_rejected() -> None:
    """No signature header (a differently named one does not count): SignatureError."""
    body = b"{}"
    with pytest.raises(SignatureError, match="missing"):
        VERIFIER.verify(body, {"signature": hmac_hex(SECRET, body)}, NOW)


_DIGEST = hmac.new(SECRET.encode(), b"{}", hashlib.sha256).digest()


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "zz" * 32,
        _DIGEST.hex()[:-1],
        _DIGEST.hex() + "00",
        base64.b64encode(_DIGEST).decode()[:-3],
        base64.b64encode(_DIGEST + b"x").decode(),
        base64.b64encode(_DIGEST).decode().replace("=", "==="),
        "!" * 44,
        "sha256=" + _DIGEST.hex(),
        "A" * 100_000,
        "é" * 44,
    ],
)
def test_malformed_header_is_rejected(header: str) -> None:
    """Neither 64 hex digits nor base64 of 32 bytes (truncated, huge, empty): SignatureError."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(b"{}", {HEADER: header}, NOW)


def test_non_utf8_body() -> None:
    """A non-UTF-8 body fails unless raw-signed; then decoding raises PayloadError."""
    body = b'{"data": {"id": "\xff"}, "event": "order.created"}'
    with pytest.raises(SignatureError):
        VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, b"x")}, NOW)
    content = VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, body)}, NOW)
    with pytest.raises(PayloadError):
        w3block.decode(content)


# --- samples, decoding and normalization ---------------------------------------------------

EXPECTED: dict[str, tuple[str, str, str]] = {
    "order-created.json": ("order.created", "8e29703b-3706-466a-ba14-cd12749c9dcc", "1.2"),
    "order-concluded.json": ("order.completed", "8e29703b-3706-466a-ba14-cd12749c9dcc", "1.2"),
    "order-failed.json": ("order.failed", "f090722e-3349-43f4-a78d-7670756cb1f2", "50"),
    "order-expired.json": ("order.expired", "890a49d1-dc4e-4ee2-b595-a9f19710a927", "1.1"),
    "order-cancelled.json": ("order.cancelled", "890a49d1-dc4e-4ee2-b595-a9f19710a927", "1.1"),
}


@pytest.mark.parametrize("name", sample_names("w3block"))
def test_sample_signed_verifies_decodes_and_normalizes(name: str) -> None:
    """Each docs sample, signed over its raw bytes, becomes the expected CloudEvent."""
    body = sample("w3block", name)
    whole = json.loads(body)
    type_, subject, amount = EXPECTED[name]
    event = event_of(body, "w3b")
    key = (subject, whole["event"], whole["data"]["status"], whole["data"]["updatedAt"])
    assert event.specversion == "1.0"
    assert event.id == event_id("w3b", *key)
    assert event.source == "/webhooks/w3b"
    assert event.type == type_
    assert event.subject == event.partitionkey == subject
    expected_time = datetime.fromtimestamp(whole["timestamp"] / 1000, tz=UTC)
    assert event.time == expected_time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert event.provider == "w3block"
    assert event.providerevent == whole["event"]
    assert event.integrity == "signed"
    assert event.data.kind == "order"
    assert event.data.id == subject
    assert event.data.external_id is None
    assert event.data.status == type_.split(".")[1]
    assert event.data.provider_status == whole["data"]["status"]
    assert event.data.fiat == Money(whole["data"]["currencyId"], amount)
    assert event.data.crypto is None
    assert event.data.payload == whole
    assert event_of(body, "w3b").id == event.id  # a retry keeps its id


def test_created_sample_time_is_the_epoch_millisecond_timestamp() -> None:
    """`timestamp` 1666201874688 (epoch ms) is the event time, to the millisecond."""
    assert event_of(sample("w3block", "order-created.json")).time == "2022-10-19T17:51:14.688Z"


def test_timestamp_as_string_and_missing_timestamp() -> None:
    """A string timestamp is read the same; without one the receive time is used."""
    body = json.dumps({"data": {"id": "o"}, "event": "order.created", "timestamp": "1666201874688"})
    assert event_of(body.encode()).time == "2022-10-19T17:51:14.688Z"
    body = json.dumps({"data": {"id": "o"}, "event": "order.created"})
    assert event_of(body.encode()).time == "2024-05-01T12:00:00Z"


def test_client_secret_stays_in_the_payload_and_is_listed_as_secret() -> None:
    """`paymentInfo.clientSecret` is kept whole in `data.payload` and named in SECRET_PATHS."""
    body = sample("w3block", "order-concluded.json")
    event = to_builtins(event_of(body))
    secret = json.loads(body)["data"]["paymentInfo"]["clientSecret"]
    for path in w3block.SECRET_PATHS:
        node: Any = event["data"]["payload"]
        for part in path.split("."):
            node = node[part]
        assert node == secret
    assert w3block.SECRET_PATHS == ("data.paymentInfo.clientSecret",)


def test_typed_order_does_not_carry_the_client_secret() -> None:
    """The typed Struct never reads paymentInfo, so no code path handles the secret by accident."""
    decoded = w3block.decode(sample("w3block", "order-concluded.json"))
    assert "paymentInfo" not in msgspec.structs.asdict(decoded.order)
    assert "clientSecret" not in repr(decoded.order)


@pytest.mark.parametrize(
    ("event", "status", "expected"),
    [
        ("order.created", "pending", "order.created"),
        ("order.pending", "pending", "order.created"),
        ("order.confirming_payment", "confirming_payment", "order.pending"),
        ("order.waiting_delivery", "waiting_delivery", "order.processing"),
        ("order.delivering", "delivering", "order.processing"),
        ("order.concluded", "concluded", "order.completed"),
        ("order.failed", "failed", "order.failed"),
        ("order.cancelling", "cancelling", "order.cancelled"),
        ("order.cancelled", "cancelled", "order.cancelled"),
        ("order.partially_cancelled", "partially_cancelled", "order.partially_paid"),
        ("order.expired", "expired", "order.expired"),
        ("order.refunded", "refunded", "order.unknown"),
        ("order.concluded", "failed", "order.completed"),  # the event wins over data.status
        ("order.something_new", "concluded", "order.unknown"),
        ("ORDER.CONCLUDED", "concluded", "order.completed"),
        ("order", "delivering", "order.processing"),  # no status in the name: data.status
        ("", "expired", "order.expired"),
        ("", None, "order.unknown"),
    ],
)
def test_every_status_is_mapped(event: str, status: str | None, expected: str) -> None:
    """providers.md's W3Block column: the `order.<status>` event decides; unknown is `unknown`."""
    normalized = event_of(body_of(event, status))
    assert normalized.type == expected
    assert normalized.data.provider_status == status
    assert normalized.providerevent == event


def test_other_event_kinds_are_kept() -> None:
    """A `<kind>.<status>` event of another kind keeps its kind."""
    assert event_of(body_of("payment.concluded")).type == "payment.completed"


def test_state_changes_get_distinct_ids_and_retries_the_same() -> None:
    """Distinct events/status/updatedAt of one order differ; the identical body repeats its id."""
    ids = [
        event_of(body_of("order.created", "pending", updatedAt="t1")).id,
        event_of(body_of("order.concluded", "concluded", updatedAt="t2")).id,
        event_of(body_of("order.concluded", "concluded", updatedAt="t3")).id,
        event_of(body_of("order.cancelled", "cancelled", updatedAt="t2")).id,
    ]
    assert len(set(ids)) == 4
    again = event_of(body_of("order.created", "pending", updatedAt="t1")).id
    assert again == ids[0]


def test_amounts_stay_exact() -> None:
    """A numeric currencyAmount is kept exactly, never as a float."""
    event = event_of(body_of("order.concluded", "concluded", currencyAmount=None))
    assert event.data.fiat is None
    body = b'{"data": {"id": "o", "currencyAmount": 0.30, "currencyId": "c"}, "event": "order.x"}'
    event = event_of(body)
    assert event.data.fiat == Money("c", "0.30")
    assert b'"currencyAmount":"0.30"' in encode(event)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"event": "order.created"}', "$"),
        (b'{"data": {"id": "o"}}', "$"),
        (b'{"data": {"status": "pending"}, "event": "order.created"}', "$.data"),
        (b'{"data": {"id": 5}, "event": "order.created"}', "$.data.id"),
        (b'{"data": {"id": "o", "status": 1}, "event": "order.created"}', "$.data.status"),
        (b'{"data": {"id": "o"}, "event": "order.created", "timestamp": 1.5}', "$.timestamp"),
        (b'{"data": [], "event": "order.created"}', "$.data"),
        (b'{"data": {"id": "o"}, "event": null}', "$.event"),
        (b'{"data": {"id": "o"}, "event": "e", "x": "\xff"}', "$"),
        (b"[]", "$"),
        (b"nope", "$"),
    ],
)
def test_wrong_shape_is_a_payload_error_naming_the_path(body: bytes, path: str) -> None:
    """After a valid signature, a body that is not W3Block's shape is a PayloadError."""
    content = VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, body)}, NOW)
    with pytest.raises(PayloadError) as info:
        w3block.decode(content)
    assert info.value.path == path


# --- the module's own signer ----------------------------------------------------------------


def test_module_sign_output_verifies() -> None:
    """`sign` returns the body unchanged with a lowercase hex header the verifier accepts."""
    body = sample("w3block", "order-created.json")
    headers, signed = w3block.sign(SECRET, body, NOW)
    assert signed == body
    assert headers == {"content-type": "application/json", HEADER: hmac_hex(SECRET, body)}
    assert VERIFIER.verify(signed, headers, NOW) == body


def test_module_constants() -> None:
    """The module exposes its name and JSON media type."""
    assert w3block.NAME == "w3block"
    assert w3block.MEDIA_TYPES == frozenset({"application/json"})


# --- property tests -------------------------------------------------------------------------

_TEXT = st.text(max_size=10)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=80))
def test_random_bodies_and_headers_only_raise_signature_error(body: bytes, header: str) -> None:
    """Arbitrary bodies with arbitrary signature headers raise SignatureError and nothing else."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(body, {HEADER: header}, NOW)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        _JSON,
        st.fixed_dictionaries(
            {
                "data": st.fixed_dictionaries(
                    {"id": _TEXT},
                    optional={
                        "status": _JSON,
                        "currencyAmount": _JSON,
                        "currencyId": _JSON,
                        "updatedAt": _JSON,
                    },
                ),
                "event": _TEXT,
            },
            optional={"timestamp": st.one_of(st.integers(), _TEXT, st.none())},
        ),
    )
)
def test_signed_random_bodies_normalize_or_raise_payload_error(value: Any) -> None:
    """Any correctly signed JSON either normalizes or raises PayloadError, nothing else."""
    body = json.dumps(value).encode()
    content = VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, body)}, NOW)
    try:
        event = w3block.normalize(w3block.decode(content), "w3block", RECEIVED)
    except BAD:
        return
    encode(event)


DEEP = b"[" * 100_000 + b"]" * 100_000


def test_absurdly_nested_json_never_escapes_as_recursion_error() -> None:
    """Deep nesting is a SignatureError when unsigned and a PayloadError once signed."""
    for body in (
        DEEP,
        b'{"x": ' + DEEP + b', "event": "order.created", "data": {"id": "o"}}',
        b'{"event": "order.created", "data": {"id": "o", "currencyAmount": ' + DEEP + b"}}",
    ):
        with pytest.raises(SignatureError):
            VERIFIER.verify(body, {HEADER: hmac_hex(OTHER, body)}, NOW)
        content = VERIFIER.verify(body, {HEADER: hmac_hex(SECRET, body)}, NOW)
        with pytest.raises(PayloadError):
            w3block.decode(content)
