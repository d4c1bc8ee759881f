"""Destination transforms: compiled at start-up, checked with locations, same as jmespath."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import jmespath
import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.transform import MAX_AMPLIFICATION, Transform, TransformError, amplification, parse

EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "e1",
    "type": "order.completed",
    "subject": "o-1",
    "data": {
        "kind": "order",
        "fiat": {"currency": "USD", "amount": "12.50"},
        "payload": {"items": [{"price": Decimal("1.25")}, {"price": Decimal("2.5")}, {"price": 3}]},
    },
}


# -- the closure fast path is jmespath ------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "id", "data"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=4),
    max_leaves=12,
)


def _expressions() -> st.SearchStrategy[str]:
    path = st.lists(
        st.one_of(NAMES, st.integers(-3, 3).map(lambda i: f"[{i}]")), min_size=1, max_size=4
    ).map(lambda parts: ".".join(parts).replace(".[", "["))
    atom = st.one_of(path, st.just("@"), st.sampled_from(["`1`", "'x'", "`null`", "`true`"]))

    def combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        pairs = st.lists(st.tuples(NAMES, inner), min_size=1, max_size=3, unique_by=lambda p: p[0])
        hashes = pairs.map(lambda ps: "{" + ", ".join(f"{k}: {v}" for k, v in ps) + "}")
        lists = st.lists(inner, min_size=1, max_size=3).map(lambda vs: "[" + ", ".join(vs) + "]")
        prefixed = st.tuples(path, hashes | lists).map(lambda pv: f"{pv[0]}.{pv[1]}")
        return hashes | lists | prefixed

    return st.recursive(atom, combine, max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(expression=_expressions(), document=json_values)
def test_fast_path_equals_jmespath(expression: str, document: Any) -> None:
    """Paths, indexes, literals and multi-selects run as closures with jmespath's results."""
    transform = Transform(expression)
    assert transform.fast, expression
    assert transform.evaluate(document) == jmespath.search(expression, document)


def test_other_expressions_use_jmespath_itself() -> None:
    """Projections, filters, pipes and functions run on jmespath's interpreter, same results."""
    for expression in (
        "data.payload.items[*].price",
        "data.payload.items[?price > `2`]",
        "data | keys(@)",
        "{n: length(data.payload.items), t: type(data.fiat)}",
    ):
        transform = Transform(expression)
        assert not transform.fast
        assert transform.evaluate(EVENT) == jmespath.search(expression, EVENT)


# -- semantics -----------------------------------------------------------------------------


def test_envelope_stays_and_data_is_replaced() -> None:
    """`apply` keeps every attribute but `data`, which becomes the expression's result."""
    shaped = Transform("{order: subject, amount: data.fiat.amount}").apply(EVENT)
    assert shaped["data"] == {"order": "o-1", "amount": "12.50"}
    assert {k: v for k, v in shaped.items() if k != "data"} == {
        k: v for k, v in EVENT.items() if k != "data"
    }
    assert EVENT["data"]["kind"] == "order", "the input event is not modified"


def test_nothing_is_null() -> None:
    """A transform that yields nothing (an absent path) makes `data: null`."""
    assert Transform("data.nowhere.at_all").apply(EVENT)["data"] is None


def test_exact_decimals_are_numbers() -> None:
    """Decimal amounts (non-integer JSON numbers) work in numeric functions, exactly."""
    prices = "data.payload.items[*].price"
    assert Transform(f"sum({prices})").data(EVENT) == Decimal("6.75")
    assert Transform(f"max({prices})").data(EVENT) == 3
    assert Transform("to_number(data.payload.items[0].price)").data(EVENT) == Decimal("1.25")
    assert Transform("type(data.payload.items[1].price)").data(EVENT) == "number"
    assert Transform(f"to_string({prices})").data(EVENT) == "[1.25,2.5,3]"


def test_a_failing_evaluation_is_null_and_counted() -> None:
    """A function given the wrong type on one event yields `data: null`, counted, never raises."""
    name = "gateway_transform_errors_total"
    before = prometheus_client.REGISTRY.get_sample_value(name, {"destination": "d-fail"}) or 0
    transform = Transform("abs(data.fiat.currency)", "d-fail")
    assert transform.apply(EVENT)["data"] is None
    after = prometheus_client.REGISTRY.get_sample_value(name, {"destination": "d-fail"})
    assert after == before + 1


# -- checked at start-up ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("{order: subject", "invalid JMESPath expression"),
        ("data.[", "invalid JMESPath expression"),
        ("nosuch(data)", "unknown function `nosuch()`"),
        ("length(data, id)", "`length()` takes 1 argument(s), got 2"),
        ("not_null()", "`not_null()` takes at least 1 argument(s), got 0"),
        ("   ", "non-empty"),
        ("a" * 5000, "longer than"),
        ("{a: " * 100 + "b" + "}" * 100, "levels deep"),  # evaluation would recurse 100 deep
        ("a" + " | b" * 300, "levels deep"),
        ("[" * 1500 + "b" + "]" * 1500, "levels deep|nested too deeply"),
    ],
)
def test_bad_expressions_are_refused(expression: str, message: str) -> None:
    """Syntax errors, unknown functions and wrong arity are found before any event."""
    with pytest.raises(TransformError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(expression)  # a TransformError: never a RecursionError or another leak


def test_output_amplification_is_bounded() -> None:
    """An expression that could copy the event into its result many times is refused."""
    assert amplification(parse("{a: subject, b: data.fiat.amount, c: `1`}")) == 2
    assert amplification(parse("data.payload.items[*].{p: price, q: @}")) == 2
    bomb = "@"
    for _ in range(4):
        bomb = "{a: " + bomb + ", b: " + bomb + ", c: " + bomb + "}"
    assert amplification(jmespath.compile(bomb).parsed) == 81  # type: ignore[arg-type]
    assert 81 > MAX_AMPLIFICATION
    with pytest.raises(TransformError, match="81 times"):
        parse(bomb)


def test_config_errors_name_file_line_and_path(tmp_path: Path) -> None:
    """Every bad transform is a config error with file:line: path, reported all at once."""
    config = tmp_path / "gateway.yaml"
    config.write_text(
        textwrap.dedent("""\
        sources:
          pay3: {provider: pay3, secret: s3cret-value}
        destinations:
          good:
            kafka: {topic: good}
            transform: "{order: subject}"
          broken:
            kafka: {topic: broken}
            transform: "{order: subject"
          unknown:
            kafka: {topic: unknown}
            transform: "frobnicate(data)"
        routes:
          - {name: all, match: {provider: pay3}, to: [good, broken, unknown]}
        """)
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    problems = caught.value.problems
    assert any(
        p.startswith(f"{config}:9: destinations.broken.transform: invalid JMESPath expression")
        for p in problems
    ), problems
    assert any(
        p.startswith(f"{config}:12: destinations.unknown.transform: unknown function")
        for p in problems
    ), problems
    assert not any("destinations.good" in p for p in problems)
