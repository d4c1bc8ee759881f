"""`event.amount`'s Decimal-free fast path decides exactly as the general check does."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from gateway import event
from gateway.errors import PayloadError

_REFUSED = "refused"


def _general(value: object) -> object:
    """The general rule alone (no fast path): a bounded finite decimal, else refused."""
    number = event._number(value)
    if number is not None:
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        if number.adjusted() < 40 and -exponent <= 40:
            return value if isinstance(value, str) else str(value)
    return _REFUSED


def _amount(value: object) -> object:
    try:
        return event.amount(value, "$.amount")
    except PayloadError as exc:
        assert exc.path == "$.amount"
        return _REFUSED


EDGES: list[object] = [
    "0", "-0", "+1", "1.", "1.5", ".5", "-.5", "00012", "0" * 41 + "1", "9" * 40, "9" * 41,
    "1." + "0" * 40, "1." + "0" * 41, "0." + "0" * 40, "9" * 40 + "." + "9" * 40, "-" + "9" * 41,
    "." + "1" * 41, "1e5", ".", "+", "1_0", " 1", "\u0661", "NaN", "1e999999999",
    "8e436641917873619025700", 0, 1, -1, 10**40 - 1, 10**40, -(10**40) + 1, -(10**40),
    10**300, True, False, Decimal("1.50"), Decimal("NaN"), Decimal("1e45"),
]  # fmt: skip


@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_edges_agree_with_the_general_rule(value: object) -> None:
    assert _amount(value) == _general(value)


def test_random_numeric_strings_agree_with_the_general_rule() -> None:
    rng = random.Random(15)
    for _ in range(5000):
        text = "".join(rng.choice("0123456789.+-e") for _ in range(rng.randint(1, 60)))
        assert _amount(text) == _general(text), text


def test_an_exponent_beyond_decimals_context_is_refused_not_raised() -> None:
    # Decimal("8e436641917873619025700") raises InvalidOperation: once a 500.
    assert _amount("8e436641917873619025700") == _REFUSED
    assert event.from_epoch("8e436641917873619025700") is None


TIMES: list[object] = [
    "0", "-1", "+1", "0001661346805", "1661346805", "1735280582000", "-62135596800",
    "-62135596801", "253402300799", "253402300800", "253402300799999", "253402300800000",
    "-62135596800000", "-62135596800001", "9" * 18, "9" * 19, "1.5", "1e3", "\u0661",
]  # fmt: skip


@pytest.mark.parametrize("value", TIMES, ids=repr)
@pytest.mark.parametrize("millis", [False, True])
def test_digit_string_epochs_read_as_the_decimal_rule_reads_them(value: str, millis: bool) -> None:
    """The int fast path for digit strings agrees with the general (Decimal) reading."""
    general = _epoch_general(value, millis)
    assert event.from_epoch(value, millis=millis) == general


def _epoch_general(value: str, millis: bool) -> object:
    from datetime import timedelta
    from decimal import ROUND_FLOOR, ROUND_HALF_EVEN

    number = event._number(value)
    if number is None:
        return None
    total = number / 1000 if millis else number
    whole = int(total.to_integral_value(rounding=ROUND_FLOOR))
    if not event._MIN_EPOCH <= whole <= event._MAX_EPOCH:
        return None
    micros = int(((total - whole) * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN))
    try:
        return event._EPOCH + timedelta(seconds=whole, microseconds=micros)
    except OverflowError:
        return None


def test_a_signed_body_with_such_an_amount_is_a_payload_error() -> None:
    """Once `decimal.InvalidOperation` out of `decode`: the ingress's bare 500."""
    from gateway.providers import whitepay

    body = b'{"event_type":"order::completed","order":{"id":"1","value":"8e436641917873619025700"}}'
    with pytest.raises(PayloadError) as caught:
        whitepay.decode(body)
    assert caught.value.path == "$.order.value"
