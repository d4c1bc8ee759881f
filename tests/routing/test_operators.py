"""Every predicate operator and combinator, table-driven, through the public router."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

import routing

ABSENT = object()  # the table's marker for "the path does not exist in the event"


def _router(where: list[Any]) -> routing.Router:
    return routing.compile_routes(
        [{"name": "r", "match": {"where": where}, "to": ["d"]}], None, ["d"]
    )


def _event(value: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {} if value is ABSENT else {"v": value}
    return {"type": "order.completed", "data": {"payload": payload}}


def _holds(where: list[Any], event: dict[str, Any]) -> bool:
    router = _router(where)
    routed = router.route(event)
    [trace] = router.explain(event)
    assert trace.matched is (not routed.unmatched)  # explain never disagrees
    assert (trace.reason is None) is trace.matched
    return trace.matched


# (operator, configured value, event value, holds)
CASES: list[tuple[str, Any, Any, bool]] = [
    # eq: strings by exact value, numbers as decimals, booleans and null by identity
    ("eq", "USD", "USD", True),
    ("eq", "USD", "usd", False),
    ("eq", "USD", None, False),
    ("eq", "USD", ABSENT, False),
    ("eq", "USD", ["USD"], False),
    ("eq", "café", "café", True),
    ("eq", "café", "cafe\u0301", False),  # no Unicode normalization: NFC != NFD
    ("eq", "日本", "日本", True),
    ("eq", 200, "200.00", True),
    ("eq", 200, "2E+2", True),
    ("eq", 200, Decimal("200.0"), True),
    ("eq", 200, 200, True),
    ("eq", 1000, "1e3", True),
    ("eq", 0, "-0", True),
    ("eq", 200, "abc", False),
    ("eq", 200, True, False),
    ("eq", 1.5, Decimal("1.5"), True),
    ("eq", 0.1, Decimal("0.1"), True),  # a YAML float is read as its decimal literal
    ("eq", "200", 200, False),  # a string never equals a number
    ("eq", "200", "200.0", False),
    ("eq", True, True, True),
    ("eq", True, 1, False),
    ("eq", 1, True, False),
    ("eq", False, 0, False),
    ("eq", None, None, True),
    ("eq", None, ABSENT, False),
    ("eq", None, "", False),
    # ne: present and different
    ("ne", "USD", "EUR", True),
    ("ne", "USD", "USD", False),
    ("ne", "USD", ABSENT, False),
    ("ne", "USD", None, True),
    ("ne", 200, "200.0", False),
    ("ne", 200, "201", True),
    # in / not_in
    ("in", ["USD", "EUR"], "EUR", True),
    ("in", ["USD", "EUR"], "GBP", False),
    ("in", ["USD", "EUR"], ABSENT, False),
    ("in", ["USD", "EUR"], None, False),
    ("in", ["USD", None], None, True),
    ("in", [1, 2], "2.0", True),
    ("in", [1, 2], Decimal("1E0"), True),
    ("in", [1, 2], True, False),
    ("in", [True], 1, False),
    ("in", ["1"], 1, False),
    ("in", [1], Decimal("NaN"), False),
    ("in", [1], Decimal("sNaN"), False),
    ("in", ["a"], ["a"], False),
    ("in", ["ü"], "ü", True),
    ("not_in", ["USD"], "EUR", True),
    ("not_in", ["USD"], "USD", False),
    ("not_in", ["USD"], ABSENT, False),
    ("not_in", ["USD"], None, True),
    ("not_in", [5], "5.00", False),
    # exists: presence, where null counts as present
    ("exists", True, None, True),
    ("exists", True, "", True),
    ("exists", True, ABSENT, False),
    ("exists", False, ABSENT, True),
    ("exists", False, None, False),
    # prefix / suffix: strings only, case-sensitive
    ("prefix", "ord", "order", True),
    ("prefix", "ord", "ORDER", False),
    ("prefix", "ord", ABSENT, False),
    ("prefix", "1", 12, False),
    ("prefix", "é", "école", True),
    ("suffix", ".completed", "order.completed", True),
    ("suffix", ".completed", "order.complete", False),
    ("suffix", "x", None, False),
    # glob: whole-string match
    ("glob", "order.*", "order.completed", True),
    ("glob", "order.*", "order", False),
    ("glob", "*.completed", "transaction.completed", True),
    ("glob", "o?der", "order", True),
    ("glob", "o?der", "oder", False),
    ("glob", "[!a]*", "b", True),
    ("glob", "[!a]*", "a", False),
    ("glob", "[a-c]x", "bx", True),
    ("glob", "[a-c]x", "dx", False),
    ("glob", "a\\*", "a*", True),
    ("glob", "a\\*", "ab", False),
    ("glob", "*", "", True),
    ("glob", "*", "multi\nline", True),
    ("glob", "*", 5, False),
    ("glob", "ç*", "ça", True),
    ("glob", "a.b", "axb", False),  # `.` is literal
    # regex: search anywhere, Python syntax, strings only
    ("regex", "^ord", "order", True),
    ("regex", "ord", "border", True),
    ("regex", "^ord", "border", False),
    ("regex", r"^\d+$", "123", True),
    ("regex", r"^\d+$", 123, False),
    ("regex", "(?i)usd", "USD", True),
    ("regex", "^\\w+$", "żółw", True),
    ("regex", "x", None, False),
    # ordering: exact decimals; anything that is not a finite decimal is false
    ("gte", "1000", "1000.00", True),
    ("gte", "1000", "999.99", False),
    ("gt", "1000", "1000", False),
    ("gt", "1000", "1e3", False),
    ("gte", "1000", "1E3", True),
    ("gt", "1000", "1.0001e3", True),
    ("lt", "1000", "9.99e2", True),
    ("lte", "0", "-0", True),
    ("gt", "0", "-0.0", False),
    ("gt", "1000", "1000.000000000000000000000001", True),  # beyond float precision
    ("gt", "0.5", Decimal("0.50001"), True),
    ("gt", "0", 2, True),
    ("gt", 1000, "1000.5", True),
    ("gt", 0.1, "0.10000000000000001", True),
    ("gt", "1", "abc", False),
    ("gt", "1", "", False),
    ("gt", "1", "NaN", False),
    ("lt", "1", "NaN", False),
    ("gt", "1", "Infinity", False),
    ("lt", "1", "-Infinity", False),
    ("gt", "1", Decimal("Infinity"), False),
    ("gt", "1", Decimal("NaN"), False),
    ("lt", "1", Decimal("sNaN"), False),
    ("gt", "1", "1_000", False),  # Decimal() accepts these; a decimal string does not
    ("gt", "1", " 2 ", False),
    ("gt", "1", "٣", False),  # Arabic-Indic digit three
    ("gt", "1", "1,000.00", False),
    ("gt", "1", "1e999999999", True),  # huge exponents compare exactly
    ("lt", "1", "1e-999999999", True),
    ("gt", "1", "1e99999999999999999999", False),  # beyond Decimal: not a number
    ("gt", "1", None, False),
    ("gt", "1", True, False),
    ("gt", "1", ABSENT, False),
    ("gt", "1", ["2"], False),
    ("gt", "1", {"amount": "2"}, False),
    ("gt", "1", 2.5, True),  # floats never come from the decoders, but compare exactly
    ("lt", "-5", "-5.01", True),
    ("lte", "+5", "5", True),
]


@pytest.mark.parametrize(("op", "value", "actual", "expected"), CASES)
def test_operator(op: str, value: Any, actual: Any, expected: bool) -> None:
    """Each operator holds exactly for the documented values, and explain agrees."""
    assert _holds([{"path": "data.payload.v", op: value}], _event(actual)) is expected


def test_every_operator_has_table_cases() -> None:
    """The table covers every operator the engine accepts."""
    assert {case[0] for case in CASES} == set(routing.OPERATORS)


PATH_EVENT = {
    "type": "order.completed",
    "data": {
        "payload": {
            "items": [{"amount": "5"}, {"amount": "7", "tags": ["a", "b"]}],
            "by_key": {"0": "zero"},
            "text": "abc",
            "empty": None,
            "ünï": {"ç": "ok"},
        }
    },
}


@pytest.mark.parametrize(
    ("path", "holds"),
    [
        ("data.payload.items.0.amount", True),  # list index
        ("data.payload.items.1.tags.1", True),
        ("data.payload.items.2.amount", False),  # out of range
        ("data.payload.items.01.amount", True),  # leading zero is still index 1
        ("data.payload.by_key.0", True),  # a digit segment on a mapping is a key
        ("data.payload.text.0", False),  # strings are not indexable
        ("data.payload.empty.x", False),  # through null
        ("data.payload.missing.x", False),
        ("data.payload.ünï.ç", True),
        ("data.payload.items.x", False),  # a name on a list
    ],
)
def test_paths_resolve_lists_and_keys(path: str, holds: bool) -> None:
    """Dotted paths index lists by digit segments and never raise on odd shapes."""
    assert _holds([{"path": path, "exists": True}], PATH_EVENT) is holds


def test_paths_reach_event_attributes() -> None:
    """A predicate can test CloudEvent attributes as well as `data`."""
    assert _holds([{"path": "type", "glob": "order.*"}], PATH_EVENT)
    assert not _holds([{"path": "subject", "exists": True}], PATH_EVENT)


P_USD = {"path": "data.payload.currency", "eq": "USD"}
P_BIG = {"path": "data.payload.amount", "gte": "1000"}
P_TEST = {"path": "data.payload.ref", "prefix": "test-"}

COMBINATOR_CASES: list[tuple[str, list[Any], dict[str, Any], bool]] = [
    ("all holds", [{"all": [P_USD, P_BIG]}], {"currency": "USD", "amount": "1000"}, True),
    ("all fails", [{"all": [P_USD, P_BIG]}], {"currency": "USD", "amount": "999"}, False),
    ("any first", [{"any": [P_USD, P_BIG]}], {"currency": "USD", "amount": "1"}, True),
    ("any second", [{"any": [P_USD, P_BIG]}], {"currency": "EUR", "amount": "5000"}, True),
    ("any none", [{"any": [P_USD, P_BIG]}], {"currency": "EUR", "amount": "1"}, False),
    ("not holds", [{"not": P_TEST}], {"ref": "prod-1"}, True),
    ("not fails", [{"not": P_TEST}], {"ref": "test-1"}, False),
    ("not of missing", [{"not": P_TEST}], {}, True),  # the predicate is false, so not holds
    ("not list", [{"not": [P_USD, P_BIG]}], {"currency": "USD", "amount": "1"}, True),
    ("not list all", [{"not": [P_USD, P_BIG]}], {"currency": "USD", "amount": "2000"}, False),
    (
        "nested",
        [{"any": [{"all": [P_USD, P_BIG]}, {"not": {"any": [P_TEST, P_USD]}}]}],
        {"currency": "EUR", "ref": "prod"},
        True,
    ),
    (
        "nested fails",
        [{"any": [{"all": [P_USD, P_BIG]}, {"not": {"any": [P_TEST, P_USD]}}]}],
        {"currency": "USD", "amount": "5"},
        False,
    ),
    ("double not", [{"not": {"not": P_USD}}], {"currency": "USD"}, True),
    ("where ands", [P_USD, {"not": P_TEST}], {"currency": "USD", "ref": "test-9"}, False),
]


@pytest.mark.parametrize(
    ("where", "payload", "expected"),
    [c[1:] for c in COMBINATOR_CASES],
    ids=[c[0] for c in COMBINATOR_CASES],
)
def test_combinator(where: list[Any], payload: dict[str, Any], expected: bool) -> None:
    """any/all/not combine and nest as boolean logic over the predicates' results."""
    event = {"type": "order.completed", "data": {"payload": payload}}
    assert _holds(where, event) is expected


def test_match_attributes_and() -> None:
    """`source`, `provider` and `type` (value, list or glob) are ANDed with `where`."""
    router = routing.compile_routes(
        [
            {
                "name": "r",
                "match": {
                    "source": ["whitepay", "w3block"],
                    "provider": "w3block",
                    "type": ["order.*", "withdrawal.completed"],
                    "where": [{"path": "data.status", "eq": "completed"}],
                },
                "to": ["d"],
            }
        ],
        None,
        ["d"],
        {"whitepay": "whitepay", "w3block": "w3block"},
    )
    base = {
        "source": "/webhooks/w3block",
        "provider": "w3block",
        "type": "order.completed",
        "data": {"status": "completed"},
    }
    assert router.route(base).routes == ("r",)
    assert router.route({**base, "source": "w3block"}).routes == ("r",)  # bare name too
    assert router.route({**base, "type": "withdrawal.completed"}).routes == ("r",)
    for change in (
        {"source": "/webhooks/fatpay"},
        {"provider": "whitepay"},
        {"type": "withdrawal.failed"},
        {"type": None},
        {"data": {"status": "failed"}},
    ):
        assert router.route({**base, **change}).unmatched, change
    assert router.route({k: v for k, v in base.items() if k != "type"}).unmatched


@pytest.mark.parametrize("depth", [59, 60])
@pytest.mark.parametrize("combinator", ["not", "any", "all"])
def test_explaining_deep_nesting_is_fast(combinator: str, depth: int) -> None:
    """Combinators nested 60 deep explain at once (`not` and `any` used to explain each
    inner condition twice per level)."""
    inner: dict[str, Any] = P_USD
    for _ in range(depth):
        inner = {"not": inner} if combinator == "not" else {combinator: [inner, P_TEST]}
    payload = {"currency": "EUR", "ref": "prod-1"}  # every alternative fails: all explained
    expected = combinator == "not" and depth % 2 == 1
    assert _holds([inner], {"type": "order.completed", "data": {"payload": payload}}) is expected
