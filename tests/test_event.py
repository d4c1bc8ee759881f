"""The event helpers every provider shares: ids, times, the routing view, the one body parse."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import PayloadError
from gateway.event import decode_payload, event_id, from_epoch, rfc3339

SAMPLES = Path(__file__).parent / "samples"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (
            ("whitepay-live", "order", "df57e8c0", "completed", "COMPLETE", None),
            "f960be3434b7047effbf0c81ce5085f7",
        ),
        (("velafi", "ORDER_WEBHOOK", 123456, "60"), "ee90b610f51e067d2de9f9198b582fc4"),
        (("pay3", "tx", Decimal("10.50"), "é✓"), "1252a89586c7f995b2380140847c8f04"),
        (("fatpay",), "1fb250c087b24e01c85627635731d55c"),
    ],
)
def test_event_ids_never_change(parts: tuple[object, ...], expected: str) -> None:
    """Ids are pinned: a release that changed them would re-deliver every retried event."""
    assert event_id(*parts) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 3, 22, 14, 3, 34, tzinfo=UTC), "2024-03-22T14:03:34Z"),
        (datetime(2024, 3, 22, 14, 3, 34, 123456, tzinfo=UTC), "2024-03-22T14:03:34.123Z"),
        (datetime(2024, 3, 22, 14, 3, 34, 500, tzinfo=UTC), "2024-03-22T14:03:34.000Z"),
        (
            datetime(2024, 3, 22, 16, 3, 34, tzinfo=timezone(timedelta(hours=2))),
            "2024-03-22T14:03:34Z",
        ),
        (datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), "0999-01-02T03:04:05Z"),
    ],
)
def test_rfc3339_is_utc_with_z_and_milliseconds_only_when_present(
    moment: datetime, expected: str
) -> None:
    """Any zone becomes UTC with `Z`; sub-second times carry milliseconds; years are 4 digits."""
    assert rfc3339(moment) == expected


_MSGSPEC = msgspec.json.Decoder(float_hook=Decimal)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json_values, st.booleans())
def test_payload_parse_reads_json_as_msgspec_does(value: object, ascii_only: bool) -> None:
    """The one-pass parser (stdlib, for its duplicate-key check) yields msgspec's values."""
    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert decode_payload(raw) == _MSGSPEC.decode(raw)


@pytest.mark.parametrize(
    "raw",
    [b'{"a": 1, "a": 2}', b'[{"x": {"k": 1, "j": 2, "k": 3}}]', b'{"": 1, "": 1}'],
)
def test_payload_parse_refuses_duplicate_keys_at_any_depth(raw: bytes) -> None:
    """A repeated key anywhere is a PayloadError naming the key."""
    with pytest.raises(PayloadError, match="duplicate key"):
        decode_payload(raw)


@pytest.mark.parametrize(
    "raw",
    [b'"\\ud800"', b'{"a": "\\udfff x"}', b"NaN", b"[Infinity]", b"\xff", b"1 2", b"9" * 5000],
)
def test_payload_parse_refuses_what_msgspec_refuses(raw: bytes) -> None:
    """Lone surrogates, NaN/Infinity, bad UTF-8, trailing data, absurd integers: PayloadError."""
    with pytest.raises(PayloadError):
        decode_payload(raw)


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    """A proper pair, and text that only looks like a surrogate escape, parse normally."""
    assert decode_payload(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert decode_payload(b'"C:\\\\ud800"') == "C:\\ud800"


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-(2**45), max_value=2**60), st.booleans(), st.booleans())
def test_epoch_fast_path_equals_the_decimal_path(value: int, millis: bool, as_text: bool) -> None:
    """Whole-number epochs (int or digit string) read exactly as their Decimal spelling does."""
    given_value: int | str = str(value) if as_text else value
    assert from_epoch(given_value, millis=millis) == from_epoch(Decimal(value), millis=millis)


# Strings and keys full of what could confuse a count of `":`: quotes, colons, backslashes.
_TRICKY = st.text(alphabet=['"', ":", "\\", "a", "b", " ", "é"], max_size=6)
_pairs_trees = st.recursive(
    st.none() | st.integers(-5, 5) | _TRICKY,
    lambda children: (
        st.lists(children, max_size=3).map(lambda items: ("list", items))
        | st.lists(st.tuples(_TRICKY, children), max_size=4).map(lambda pairs: ("object", pairs))
    ),
    max_leaves=12,
)


def _spell_string(text: str, data: st.DataObject) -> str:
    """A JSON string literal for `text`, each character plain or as a `\\u` escape."""
    out = []
    for char in text:
        if data.draw(st.booleans()):
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append({'"': '\\"', "\\": "\\\\"}.get(char, char))
    return '"' + "".join(out) + '"'


def _spell(node: object, data: st.DataObject) -> str:
    """JSON text for a tree whose objects are pair lists (so keys can repeat), odd spacing."""

    def space() -> str:
        return data.draw(st.sampled_from(["", "", " ", "\n "]))

    if isinstance(node, tuple) and node[0] == "list":
        return "[" + ",".join(space() + _spell(item, data) + space() for item in node[1]) + "]"
    if isinstance(node, tuple) and node[0] == "object":
        members = (
            space() + _spell_string(key, data) + space() + ":" + space() + _spell(value, data)
            for key, value in node[1]
        )
        return "{" + ",".join(members) + "}"
    if isinstance(node, str):
        return _spell_string(node, data)
    return json.dumps(node)


def _has_duplicates(text: str) -> bool:
    found = False

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        nonlocal found
        found = found or len(dict(items)) != len(items)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return found


@settings(max_examples=1500, deadline=None)
@given(_pairs_trees, st.data())
def test_duplicate_keys_are_found_however_the_body_is_spelled(
    tree: object, data: st.DataObject
) -> None:
    """Refused exactly when some object repeats a key (escapes, spacing, `":` in strings)."""
    raw = _spell(tree, data).encode()
    if _has_duplicates(raw.decode()):
        with pytest.raises(PayloadError, match="duplicate key"):
            decode_payload(raw)
    else:
        assert decode_payload(raw) == _MSGSPEC.decode(raw)


# --- fast path `amounts`: one regex for plain amounts, the Decimal check for the rest -------


def _amount_both_ways(value: object) -> tuple[object, object]:
    """`event.amount(value)` with the fast path and with the Decimal check alone."""
    from gateway import event as event_module

    def answer() -> object:
        try:
            return event_module.amount(value, "$.x")
        except PayloadError as exc:
            return ("PayloadError", str(exc))

    saved = event_module._FAST_AMOUNTS
    try:
        event_module._FAST_AMOUNTS = True
        fast = answer()
        event_module._FAST_AMOUNTS = False
        reference = answer()
    finally:
        event_module._FAST_AMOUNTS = saved
    return fast, reference


_AMOUNT_TEXT = st.one_of(
    st.from_regex(r"\A[+-]?[0-9]{0,45}(\.[0-9]{0,45})?([eE][+-]?[0-9]{1,4})?\Z"),
    st.from_regex(r"\A[+-]?0{0,60}[0-9]{0,3}(\.[0-9]{0,3}0{0,50})?\Z"),
    st.text(alphabet="0123456789.+-eE _\u0663\n", max_size=50),
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(_AMOUNT_TEXT, st.integers(), st.decimals(allow_nan=True), st.none()))
def test_amount_fast_path_answers_like_the_decimal_check(value: object) -> None:
    """Same value or the same PayloadError, for every string, number and edge of the bounds."""
    fast, reference = _amount_both_ways(value)
    assert fast == reference


@pytest.mark.parametrize(
    "value",
    ["9" * 40, "9" * 41, "0" * 60 + "1", "1." + "0" * 40, "1." + "0" * 41, "1.", "-0", "+5",
     ".5", "1e3", "1_000", " 1", "1\n", "\u0663", ""],
)  # fmt: skip
def test_amount_fast_path_at_the_bounds(value: str) -> None:
    """The 40-digit bounds, leading zeros and the spellings only the Decimal check reads."""
    fast, reference = _amount_both_ways(value)
    assert fast == reference
