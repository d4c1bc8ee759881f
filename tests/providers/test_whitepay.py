"""Whitepay: hex HMAC-SHA256 over raw / PHP / JS bodies; `event_type` wins over `status`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hmac_helpers import BAD, NOW, hmac_hex, js_json, php_json, sample
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import PayloadError, SignatureError
from gateway.event import Money, encode, event_id
from gateway.providers import _common, whitepay
from gateway.providers._common import compact_json, restyled_json
from gateway.types import dec_hook

SECRET = "whitepay-webhook-signature-token-0123456789"
OTHER = "whitepay-rotated-token-9876543210"
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

VERIFIER = whitepay.build_verifier(
    msgspec.convert({"secret": SECRET}, whitepay.Settings, dec_hook=dec_hook)
)

# A pretty-printed body with escapes, non-ASCII, an astral character, DEL, a control
# character, U+2028 and slashes, and the bytes JS and PHP re-encode it to. JS_VECTOR is
# node's `JSON.stringify(JSON.parse(body))`; PHP_VECTOR follows `json_encode`'s default
# flags (lowercase \uXXXX, `\/`, DEL left raw).
VECTOR = (
    b'{\n  "order": {\n    "id": "08d585b1/86c6",\n    "note": "caf\\u00e9 \xc3\xbc '
    b'\\ud83d\\ude00 \\u007f\\u001f\\t \\"q\\" \\\\ \\/ \\u2028 \xe2\x82\xb4",\n'
    b'    "value": "200.50",\n    "rate": 100,\n    "b": [],\n    "a": {}\n  },\n'
    b'  "event_type": "order::completed"\n}\n'
)
JS_VECTOR = (
    b'{"order":{"id":"08d585b1/86c6","note":"caf\xc3\xa9 \xc3\xbc \xf0\x9f\x98\x80 \x7f'
    b'\\u001f\\t \\"q\\" \\\\ / \xe2\x80\xa8 \xe2\x82\xb4","value":"200.50","rate":100,'
    b'"b":[],"a":{}},"event_type":"order::completed"}'
)
PHP_VECTOR = (
    b'{"order":{"id":"08d585b1\\/86c6","note":"caf\\u00e9 \\u00fc \\ud83d\\ude00 \x7f'
    b'\\u001f\\t \\"q\\" \\\\ \\/ \\u2028 \\u20b4","value":"200.50","rate":100,'
    b'"b":[],"a":{}},"event_type":"order::completed"}'
)


def verifier(*secrets: str) -> whitepay.WhitepayVerifier:
    """A verifier built from settings as the config loader converts them."""
    raw = {"secret": list(secrets)}
    return whitepay.build_verifier(msgspec.convert(raw, whitepay.Settings, dec_hook=dec_hook))


def body_of(event_type: str, obj: str = "order", **fields: Any) -> bytes:
    """A minimal Whitepay body with an order or transaction object."""
    item = {"id": "obj-1", "currency": "UAH", "value": "200", "status": "COMPLETE", **fields}
    return json.dumps({obj: item, "event_type": event_type}).encode()


def event_of(body: bytes, source: str = "whitepay") -> Any:
    """Verify (signed over the raw body), decode and normalize one request."""
    content = VERIFIER.verify(body, {"signature": hmac_hex(SECRET, body)}, NOW)
    return whitepay.normalize(whitepay.decode(content), source, RECEIVED)


# --- verification ---------------------------------------------------------------------------


def test_raw_body_signature_is_accepted() -> None:
    """Candidate 1: lowercase hex HMAC-SHA256 of the raw body."""
    body = sample("whitepay", "order-declined.json")
    assert VERIFIER.verify(body, {"signature": hmac_hex(SECRET, body)}, NOW) == body


def test_uppercase_hex_and_surrounding_whitespace_are_accepted() -> None:
    """Hex in either case, with stray whitespace around it, is the same MAC."""
    body = sample("whitepay", "order-declined.json")
    header = f" {hmac_hex(SECRET, body).upper()}\t"
    assert VERIFIER.verify(body, {"signature": header}, NOW) == body


def test_php_style_reencoding_is_accepted() -> None:
    """Candidate 2: a PHP integration's `json_encode(json_decode($body))` signature."""
    body = sample("whitepay", "order-declined.json")
    php = php_json(json.loads(body))
    assert b"\\/" not in body and b"\\/" in php  # the acquiring_url's slashes are escaped
    signature = hmac_hex(SECRET, php)
    assert VERIFIER.verify(body, {"signature": signature}, NOW) == body


def test_js_style_reencoding_is_accepted() -> None:
    """Candidate 3: `JSON.stringify(payload)` of the pretty-printed body Whitepay sent."""
    body = sample("whitepay", "order-declined.json")
    js = js_json(json.loads(body))
    assert js != php_json(json.loads(body))
    signature = hmac_hex(SECRET, js)
    assert VERIFIER.verify(body, {"signature": signature}, NOW) == body


def test_reencodings_match_node_and_php_byte_for_byte() -> None:
    """The re-encoder reproduces JSON.stringify and json_encode exactly on a hard vector."""
    assert restyled_json(VECTOR, "js") == JS_VECTOR
    assert restyled_json(VECTOR, "php") == PHP_VECTOR
    for message in (JS_VECTOR, PHP_VECTOR):
        assert VERIFIER.verify(VECTOR, {"signature": hmac_hex(SECRET, message)}, NOW) == VECTOR


def test_compaction_keeps_key_order_duplicates_and_numbers_as_written() -> None:
    """The compacted candidate: keys in wire order, duplicate keys kept, numbers as spelled."""
    body = b'{ "z": 1.50, "a": -0, "z": 1E2, "m": [ 1.0 , true, null ] }'
    expected = b'{"z":1.50,"a":-0,"z":1E2,"m":[1.0,true,null]}'
    assert compact_json(body) == expected
    assert VERIFIER.verify(body, {"signature": hmac_hex(SECRET, expected)}, NOW) == body


def test_reencoding_reads_the_body_as_json_parse_would() -> None:
    """Re-encodings: wire key order, a repeated key first-placed with its last value, floats as spelled."""
    body = b'{ "z": 1.50, "a": 7, "z": 1E2, "m": [ 1.0 , "\\u00e9/", null ] }'
    assert restyled_json(body, "js") == b'{"z":1E2,"a":7,"m":[1.0,"\xc3\xa9/",null]}'
    assert restyled_json(body, "php") == b'{"z":1E2,"a":7,"m":[1.0,"\\u00e9\\/",null]}'


def test_reencoding_of_invalid_json_is_none() -> None:
    """A body that is not JSON has no re-encoding; only the raw candidate is tried."""
    assert compact_json(b"{not json") is None
    assert restyled_json(b"{not json", "js") is None
    assert restyled_json(b'{"a":"\xff"}', "php") is None


def test_other_reencodings_are_not_accepted() -> None:
    """Only the documented candidates pass: a sorted-keys re-encoding does not."""
    body = sample("whitepay", "transaction-completed.json")
    sorted_keys = json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(SignatureError):
        VERIFIER.verify(body, {"signature": hmac_hex(SECRET, sorted_keys)}, NOW)


def test_reencodings_are_computed_only_when_the_raw_body_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Candidates 2 and 3 are lazy: a raw-body match never re-encodes."""
    body = sample("whitepay", "order-declined.json")

    def explode(*args: object) -> bytes:
        raise AssertionError("re-encoded although the raw body matched")

    monkeypatch.setattr(_common, "compact_json", explode)
    monkeypatch.setattr(_common, "restyled_json", explode)
    assert VERIFIER.verify(body, {"signature": hmac_hex(SECRET, body)}, NOW) == body


def test_tampered_body_is_rejected() -> None:
    """Changing the amount after signing fails for every candidate."""
    body = sample("whitepay", "order-declined.json")
    signature = hmac_hex(SECRET, body)
    with pytest.raises(SignatureError, match="does not match"):
        VERIFIER.verify(body.replace(b'"200"', b'"900"', 1), {"signature": signature}, NOW)


def test_wrong_secret_is_rejected() -> None:
    """A MAC with another token fails."""
    body = sample("whitepay", "order-declined.json")
    with pytest.raises(SignatureError):
        VERIFIER.verify(body, {"signature": hmac_hex(OTHER, body)}, NOW)


def test_rotated_secrets_both_verify() -> None:
    """With old and new tokens configured, both sign valid requests (any candidate)."""
    both = verifier(SECRET, OTHER)
    body = sample("whitepay", "transaction-completed.json")
    assert both.verify(body, {"signature": hmac_hex(SECRET, body)}, NOW) == body
    php = php_json(json.loads(body))
    assert both.verify(body, {"signature": hmac_hex(OTHER, php)}, NOW) == body
    with pytest.raises(SignatureError):
        both.verify(body, {"signature": hmac_hex("third", body)}, NOW)


def test_missing_header_is_rejected() -> None:
    """No `signature` header: SignatureError."""
    with pytest.raises(SignatureError, match="missing"):
        VERIFIER.verify(b"{}", {"x-signature": hmac_hex(SECRET, b"{}")}, NOW)


_DIGEST = hmac.new(SECRET.encode(), b"{}", hashlib.sha256).digest()


@pytest.mark.parametrize(
    "header",
    [
        "",
        " ",
        "zz" * 32,
        _DIGEST.hex()[:-1],
        _DIGEST.hex() + "0",
        _DIGEST.hex()[:-2],
        "sha256=" + _DIGEST.hex(),
        base64.b64encode(_DIGEST).decode(),
        "f" * 100_000,
        "é" * 64,
        "\uff10" * 64,  # full-width digits are not hex
    ],
)
def test_malformed_header_is_rejected(header: str) -> None:
    """Not exactly 64 hex digits (bad hex, truncated, base64, huge, empty): SignatureError."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(b"{}", {"signature": header}, NOW)


def test_non_utf8_body() -> None:
    """A non-UTF-8 body fails verification unless raw-signed; then decode is a PayloadError."""
    body = b'{"order": {"id": "\xff"}, "event_type": "order::completed"}'
    with pytest.raises(SignatureError):
        VERIFIER.verify(body, {"signature": hmac_hex(SECRET, b"other")}, NOW)
    content = VERIFIER.verify(body, {"signature": hmac_hex(SECRET, body)}, NOW)
    with pytest.raises(PayloadError):
        whitepay.decode(content)


def test_bad_utf8_in_an_unread_field_is_a_payload_error() -> None:
    """Invalid UTF-8 in a field the Struct skips still fails decoding as PayloadError."""
    body = b'{"extra": "\xff", "order": {"id": "o"}, "event_type": "order::completed"}'
    with pytest.raises(PayloadError):
        whitepay.decode(body)


# --- samples, decoding and normalization ---------------------------------------------------

EXPECTED: dict[str, dict[str, Any]] = {
    "order-declined.json": {
        "type": "order.declined",
        "subject": "08d585b1-86c6-496d-b493-ab17a574fdd6",
        "external_id": "423se231-f351-234g-g324-g35gd3452f45",
        "time": "2024-05-01T12:00:00Z",  # completed_at is null: the receive time
        "provider_status": "DECLINED",
        "fiat": Money("UAH", "200"),
        "crypto": None,
        "key": ("order", "08d585b1-86c6-496d-b493-ab17a574fdd6", "declined", "DECLINED", None),
    },
    "transaction-completed.json": {
        "type": "transaction.completed",
        "subject": "4176141e-bd97-4f13-a71a-6547a230cf4a",
        "external_id": "INV-123",
        "time": "2022-03-22T14:03:34Z",
        "provider_status": "COMPLETE",
        "fiat": Money("UAH", "200"),
        "crypto": None,
        "key": (
            "transaction",
            "4176141e-bd97-4f13-a71a-6547a230cf4a",
            "completed",
            "COMPLETE",
            None,
        ),
    },
    "withdrawal-declined.json": {
        "type": "withdrawal.declined",
        "subject": "4176141e-bd97-4f13-a71a-6547a230cf4a",
        "external_id": "INV-123",
        "time": "2024-05-01T12:00:00Z",
        "provider_status": "CANCELLED",
        "fiat": None,
        "crypto": Money("USDT", "11"),
        "key": (
            "withdrawal",
            "4176141e-bd97-4f13-a71a-6547a230cf4a",
            "declined",
            "CANCELLED",
            None,
        ),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_signed_verifies_decodes_and_normalizes(name: str) -> None:
    """Each docs sample, signed over its raw bytes, becomes the expected CloudEvent."""
    body = sample("whitepay", name)
    expected = EXPECTED[name]
    event = event_of(body, "whitepay-live")
    assert event.specversion == "1.0"
    assert event.id == event_id("whitepay-live", *expected["key"])
    assert event.source == "/webhooks/whitepay-live"
    assert event.type == expected["type"]
    assert event.subject == event.partitionkey == expected["subject"]
    assert event.time == expected["time"]
    assert event.provider == "whitepay"
    assert event.providerevent == json.loads(body)["event_type"]
    assert event.integrity == "signed"
    assert event.data.kind == expected["type"].split(".")[0]
    assert event.data.id == expected["subject"]
    assert event.data.external_id == expected["external_id"]
    assert event.data.status == expected["type"].split(".")[1]
    assert event.data.provider_status == expected["provider_status"]
    assert event.data.fiat == expected["fiat"]
    assert event.data.crypto == expected["crypto"]
    assert event.data.payload == json.loads(body)
    assert event_of(body, "whitepay-live").id == event.id  # a retry keeps its id


def test_withdrawal_declined_body_says_cancelled_but_event_type_wins() -> None:
    """`withdrawal::declined` with a CANCELLED body is `withdrawal.declined`, raw status kept."""
    event = event_of(sample("whitepay", "withdrawal-declined.json"))
    assert event.type == "withdrawal.declined"
    assert event.data.provider_status == "CANCELLED"


@pytest.mark.parametrize(
    ("event_type", "obj", "status", "expected"),
    [
        ("order::completed", "order", "COMPLETE", "order.completed"),
        ("order::declined", "order", "DECLINED", "order.declined"),
        ("order::partially_fulfilled", "order", "PARTIALLY_FULFILLED", "order.partially_paid"),
        ("order::final_amount_was_received", "order", "COMPLETE", "order.completed"),
        ("order::final_amount_was_received", "order", "PARTIALLY_FULFILLED", "order.completed"),
        ("transaction::completed", "transaction", "COMPLETE", "transaction.completed"),
        ("transaction::complete", "transaction", "COMPLETE", "transaction.completed"),
        ("transaction::declined", "transaction", "DECLINED", "transaction.declined"),
        ("transaction::decline", "transaction", "DECLINED", "transaction.declined"),
        ("transaction::was_final_exchange", "transaction", "COMPLETE", "transaction.completed"),
        ("withdrawal::completed", "transaction", "COMPLETE", "withdrawal.completed"),
        ("withdrawal::declined", "transaction", "CANCELLED", "withdrawal.declined"),
        ("rollback::to_merchant", "transaction", "COMPLETE", "rollback.completed"),
        ("rollback::to_client", "transaction", "CANCELLED", "rollback.cancelled"),
        # event names that say nothing about the outcome: the body's status decides
        ("order::updated", "order", "INIT", "order.created"),
        ("order::updated", "order", "OPEN", "order.created"),
        ("order::updated", "order", "COMPLETE", "order.completed"),
        ("order::updated", "order", "DECLINED", "order.declined"),
        ("order::updated", "order", "PARTIALLY_FULFILLED", "order.partially_paid"),
        ("order::updated", "order", "CANCELED", "order.cancelled"),
        ("transaction::updated", "transaction", "CANCELLED", "transaction.cancelled"),
        ("order::updated", "order", "SOMETHING_NEW", "order.unknown"),
        ("order::refunded", "order", None, "order.unknown"),
        ("Order::Completed", "order", "COMPLETE", "order.completed"),
    ],
)
def test_event_type_table(event_type: str, obj: str, status: str | None, expected: str) -> None:
    """providers.md's Whitepay rows: event_type first, then the body status, else unknown."""
    event = event_of(body_of(event_type, obj, status=status))
    assert event.type == expected
    assert event.data.provider_status == status
    assert event.providerevent == event_type


def test_complete_and_completed_spellings_share_an_event_id() -> None:
    """The live `transaction::complete` and the docs' `::completed` are one state change."""
    live = event_of(body_of("transaction::complete", "transaction"))
    docs = event_of(body_of("transaction::completed", "transaction"))
    assert live.id == docs.id
    assert live.providerevent != docs.providerevent


def test_different_state_changes_get_different_ids() -> None:
    """Completed vs declined, final amount vs completed, and a new partial total all differ."""
    ids = {
        event_of(body_of("order::completed")).id,
        event_of(body_of("order::declined", status="DECLINED")).id,
        event_of(body_of("order::final_amount_was_received")).id,
        event_of(body_of("order::partially_fulfilled", received_total="50")).id,
        event_of(body_of("order::partially_fulfilled", received_total="120")).id,
        event_of(body_of("transaction::completed", "transaction")).id,
    }
    assert len(ids) == 6


def test_kind_falls_back_to_the_object_when_event_type_has_no_prefix() -> None:
    """An event name without a `kind::` prefix takes its kind from the object present."""
    no_separator = event_of(body_of("completed", "transaction", status="OPEN"))
    assert no_separator.type == "transaction.created"  # no action: the body status decides
    assert event_of(body_of("::declined", "order", status="OPEN")).type == "order.declined"


def test_object_is_chosen_by_the_event_kind() -> None:
    """With both objects present, `order::` events describe the order, others the transaction."""
    both = {
        "order": {"id": "ord", "status": "COMPLETE"},
        "transaction": {"id": "tx", "status": "COMPLETE"},
    }
    for event_type, subject in (("order::completed", "ord"), ("transaction::completed", "tx")):
        body = json.dumps({**both, "event_type": event_type}).encode()
        assert event_of(body).subject == subject


def test_hash_null_string_and_is_internal_true_string_are_tolerated() -> None:
    """`hash: "null"` reads as no hash, `is_internal: "true"` as true; the payload keeps both."""
    body = body_of("transaction::completed", "transaction", hash="null", is_internal="true")
    decoded = whitepay.decode(body)
    assert isinstance(decoded.object, whitepay.WhitepayTransaction)
    assert decoded.object.tx_hash is None
    assert decoded.object.internal is True
    assert decoded.payload["transaction"]["hash"] == "null"
    assert decoded.payload["transaction"]["is_internal"] == "true"
    real = whitepay.decode(body_of("transaction::completed", "transaction", hash="0xabc"))
    assert isinstance(real.object, whitepay.WhitepayTransaction)
    assert real.object.tx_hash == "0xabc"
    for value, internal in ((False, False), ("false", False), (True, True), (None, False)):
        order = whitepay.decode(body_of("order::completed", is_internal=value)).object
        assert isinstance(order, whitepay.WhitepayOrder)
        assert order.internal is internal


@pytest.mark.parametrize(
    ("completed_at", "time"),
    [
        ("2022-03-22 14:03:34", "2022-03-22T14:03:34Z"),
        ("2022-03-22T14:03:34Z", "2022-03-22T14:03:34Z"),
        ("2022-03-22 14:03:34+02:00", "2022-03-22T12:03:34Z"),
        ("2022-03-22 14:03:34.250", "2022-03-22T14:03:34.250Z"),
        (None, "2024-05-01T12:00:00Z"),
        ("", "2024-05-01T12:00:00Z"),
        ("yesterday", "2024-05-01T12:00:00Z"),
    ],
)
def test_times_are_zoneless_utc_with_receive_time_fallback(
    completed_at: str | None, time: str
) -> None:
    """`YYYY-MM-DD HH:MM:SS` is UTC; missing or unreadable times fall back to the receive time."""
    event = event_of(body_of("order::completed", completed_at=completed_at))
    assert event.time == time


def test_amounts_stay_exact_strings_even_as_json_numbers() -> None:
    """A numeric amount is kept exactly (no float rounding) in `data` and in the payload."""
    body = b'{"order": {"id": "o", "currency": "USD", "value": 0.10, "status": "COMPLETE"}, '
    body += b'"event_type": "order::completed"}'
    event = event_of(body)
    assert event.data.fiat == Money("USD", "0.10")
    assert b'"value":"0.10"' in encode(event)


def test_order_paid_in_crypto_gets_both_legs() -> None:
    """`received_total` in another currency class than the order adds the other leg."""
    body = body_of("order::completed", received_total="6.3", received_currency="USDT")
    event = event_of(body)
    assert event.data.fiat == Money("UAH", "200")
    assert event.data.crypto == Money("USDT", "6.3")
    crypto_order = body_of("order::completed", currency="BTC", value="0.01")
    event = event_of(crypto_order)
    assert event.data.fiat is None and event.data.crypto == Money("BTC", "0.01")
    assert event_of(body_of("order::completed", value=None)).data.fiat is None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"order": {"id": "o"}}', "$"),
        (b'{"event_type": "order::completed"}', "$"),
        (b'{"order": {"status": "X"}, "event_type": "order::completed"}', "$.order"),
        (b'{"order": {"id": 7}, "event_type": "order::completed"}', "$.order.id"),
        (b'{"transaction": {"id": "t", "hash": 5}, "event_type": "x::y"}', "$.transaction.hash"),
        (b'{"order": {"id": "o", "is_internal": 1}, "event_type": "o::c"}', "$.order.is_internal"),
        (b'{"order": [], "event_type": "order::completed"}', "$.order"),
        (b'{"order": {"id": "o"}, "event_type": 3}', "$.event_type"),
        (b"[]", "$"),
        (b"not json", "$"),
        (b"", "$"),
    ],
)
def test_wrong_shape_is_a_payload_error_naming_the_path(body: bytes, path: str) -> None:
    """After a valid signature, a body that is not Whitepay's shape is a PayloadError."""
    content = VERIFIER.verify(body, {"signature": hmac_hex(SECRET, body)}, NOW)
    with pytest.raises(PayloadError) as info:
        whitepay.decode(content)
    assert info.value.path == path


# --- the module's own signer ----------------------------------------------------------------


def test_module_sign_output_verifies() -> None:
    """`sign` returns the body unchanged with a `signature` header the verifier accepts."""
    body = sample("whitepay", "transaction-completed.json")
    headers, signed = whitepay.sign(SECRET, body, NOW)
    assert signed == body
    assert headers == {"content-type": "application/json", "signature": hmac_hex(SECRET, body)}
    assert VERIFIER.verify(signed, headers, NOW) == body


def test_module_constants() -> None:
    """The module exposes its name and JSON media type."""
    assert whitepay.NAME == "whitepay"
    assert whitepay.MEDIA_TYPES == frozenset({"application/json"})


# --- property tests -------------------------------------------------------------------------

# Printable text plus controls and non-ASCII, without DEL (see hmac_helpers.php_json) and
# without lone surrogates (not representable in a UTF-8 body).
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f"),
    max_size=12,
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.sampled_from([None, 1, 2, 4, "\t"]))
def test_reencoding_matches_independent_js_and_php_encoders(value: Any, indent: Any) -> None:
    """For any JSON (pretty or compact), the re-encodings equal JS's and PHP's compact output."""
    raw = json.dumps(value, indent=indent, ensure_ascii=False).encode()
    assert restyled_json(raw, "js") == js_json(value)
    assert restyled_json(raw, "php") == php_json(value)
    ascii_raw = json.dumps(value, indent=indent, ensure_ascii=True).encode()
    assert restyled_json(ascii_raw, "js") == js_json(value)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=80))
def test_random_bodies_and_headers_only_raise_signature_error(body: bytes, header: str) -> None:
    """Arbitrary bodies with arbitrary signature headers raise SignatureError and nothing else."""
    with pytest.raises(SignatureError):
        VERIFIER.verify(body, {"signature": header}, NOW)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        _JSON,
        st.fixed_dictionaries(
            {"event_type": _JSON},
            optional={"order": _JSON, "transaction": st.dictionaries(_TEXT, _JSON)},
        ),
        st.fixed_dictionaries(
            {
                "event_type": _TEXT,
                "order": st.fixed_dictionaries(
                    {"id": _TEXT},
                    optional={
                        "status": _JSON,
                        "value": _JSON,
                        "currency": _JSON,
                        "completed_at": _JSON,
                        "received_total": _JSON,
                        "received_currency": _JSON,
                        "is_internal": _JSON,
                    },
                ),
            }
        ),
    )
)
def test_signed_random_bodies_normalize_or_raise_payload_error(value: Any) -> None:
    """Any correctly signed JSON either normalizes or raises PayloadError, nothing else."""
    body = json.dumps(value).encode()
    content = VERIFIER.verify(body, {"signature": hmac_hex(SECRET, body)}, NOW)
    try:
        event = whitepay.normalize(whitepay.decode(content), "whitepay", RECEIVED)
    except BAD:
        return
    encode(event)


DEEP = b"[" * 100_000 + b"]" * 100_000


def test_absurdly_nested_json_never_escapes_as_recursion_error() -> None:
    """Deep nesting is a SignatureError when unsigned and a PayloadError once signed."""
    assert compact_json(DEEP) is None
    assert restyled_json(DEEP, "js") is None
    for body in (
        DEEP,
        b'{"x": ' + DEEP + b', "event_type": "order::completed", "order": {"id": "o"}}',
        b'{"event_type": "order::completed", "order": {"id": "o", "value": ' + DEEP + b"}}",
    ):
        with pytest.raises(SignatureError):
            VERIFIER.verify(body, {"signature": hmac_hex(OTHER, body)}, NOW)
        content = VERIFIER.verify(body, {"signature": hmac_hex(SECRET, body)}, NOW)
        with pytest.raises(PayloadError):
            whitepay.decode(content)
