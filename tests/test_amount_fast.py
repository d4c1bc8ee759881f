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
