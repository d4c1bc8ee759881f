"""Config validation: every problem is reported at once, each at its exact config path."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

import routing
from routing import RoutingConfigError, RuleError, format_path

DESTINATIONS = ("orders", "ledger")
SOURCES = {"fatpay": "fatpay", "whitepay": "whitepay", "w3block": "w3block"}
OK_MATCH: dict[str, Any] = {"type": "order.*"}


def _errors(routes: object, unmatched: object = None, **kwargs: Any) -> list[RuleError]:
    with pytest.raises(RoutingConfigError) as info:
        routing.compile_routes(routes, unmatched, DESTINATIONS, SOURCES, **kwargs)
    return info.value.errors


def _route(**overrides: Any) -> dict[str, Any]:
    route: dict[str, Any] = {"name": "r", "match": OK_MATCH, "to": ["orders"]}
    route.update(overrides)
    return {k: v for k, v in route.items() if v is not DROP}


def _where(*conds: Any) -> list[dict[str, Any]]:
    return [_route(match={"where": list(conds)})]


DROP = object()
W = ("routes", 0, "match", "where")

# (id, routes, unmatched, [(path, fragment of the message)])
CASES: list[tuple[str, Any, Any, list[tuple[tuple[Any, ...], str]]]] = [
    ("routes not a list", {"name": "r"}, None, [(("routes",), "expected a list of routes")]),
    ("route not a mapping", ["r"], None, [(("routes", 0), "expected a route mapping")]),
    ("unknown route key", [_route(too=["x"])], None, [(("routes", 0, "too"), "did you mean `to`")]),
    ("missing name", [_route(name=DROP)], None, [(("routes", 0), "missing required key `name`")]),
    ("empty name", [_route(name="")], None, [(("routes", 0, "name"), "non-empty string")]),
    ("name not a string", [_route(name=5)], None, [(("routes", 0, "name"), "got number")]),
    (
        "duplicate name",
        [_route(), _route()],
        None,
        [(("routes", 1, "name"), "duplicate route name `r` (routes[0])")],
    ),
    ("missing match", [_route(match=DROP)], None, [(("routes", 0), "`match: {}`")]),
    ("null match", [_route(match=None)], None, [(("routes", 0, "match"), "got null")]),
    ("missing to", [_route(to=DROP)], None, [(("routes", 0), "missing required key `to`")]),
    ("empty to", [_route(to=[])], None, [(("routes", 0, "to"), "send events nowhere")]),
    ("to a string", [_route(to="orders")], None, [(("routes", 0, "to"), "write [orders]")]),
    (
        "unknown destination",
        [_route(to=["orders", "ledgr"])],
        None,
        [(("routes", 0, "to", 1), "unknown destination `ledgr`; did you mean `ledger`")],
    ),
    (
        "destination twice",
        [_route(to=["orders", "orders"])],
        None,
        [(("routes", 0, "to", 1), "listed twice")],
    ),
    ("unmatched unknown", [], ["orders", "nope"], [(("unmatched", 1), "unknown destination")]),
    ("unmatched not a list", [], "orders", [(("unmatched",), "expected a list")]),
    (
        "unknown match key",
        [_route(match={"tpye": "order.*"})],
        None,
        [(("routes", 0, "match", "tpye"), "did you mean `type`")],
    ),
    (
        "combinator at match level",
        [_route(match={"any": []})],
        None,
        [(("routes", 0, "match", "any"), "put it in the `where` list")],
    ),
    (
        "unknown source",
        [_route(match={"source": "fatpy"})],
        None,
        [(("routes", 0, "match", "source"), "unknown source `fatpy`; did you mean `fatpay`")],
    ),
    (
        "unknown source in list",
        [_route(match={"source": ["fatpay", "nope"]})],
        None,
        [(("routes", 0, "match", "source", 1), "unknown source `nope`")],
    ),
    (
        "provider no source uses",
        [_route(match={"provider": "velafi"})],
        None,
        [(("routes", 0, "match", "provider"), "no source uses provider `velafi`")],
    ),
    (
        "source and provider disagree",
        [_route(match={"source": "fatpay", "provider": "whitepay"})],
        None,
        [(("routes", 0, "match", "provider"), "can never match")],
    ),
    (
        "empty type list",
        [_route(match={"type": []})],
        None,
        [(("routes", 0, "match", "type"), "empty")],
    ),
    (
        "invalid type glob",
        [_route(match={"type": ["order.*", "order.[abc"]})],
        None,
        [(("routes", 0, "match", "type", 1), "unclosed `[`")],
    ),
    (
        "type not a string",
        [_route(match={"type": 5})],
        None,
        [(("routes", 0, "match", "type"), "got number")],
    ),
    ("where not a list", [_route(match={"where": {"path": "id", "eq": "x"}})], None, [(W, "list")]),
    ("empty where", _where(), None, [(W, "empty `where`")]),
    ("condition not a mapping", _where("id == x"), None, [((*W, 0), "expected a predicate")]),
    ("missing path", _where({"eq": "x"}), None, [((*W, 0), "missing `path`")]),
    ("missing operator", _where({"path": "id"}), None, [((*W, 0), "missing an operator")]),
    (
        "unknown operator",
        _where({"path": "id", "equals": "x"}),
        None,
        [((*W, 0, "equals"), "unknown operator `equals`")],
    ),
    (
        "two operators",
        _where({"path": "data.fiat.amount", "gte": "1", "lte": "9"}),
        None,
        [((*W, 0, "lte"), "one operator per predicate")],
    ),
    (
        "path typo",
        _where({"path": "data.fiat.ammount", "gte": "1"}),
        None,
        [((*W, 0, "path"), "did you mean `amount`")],
    ),
    (
        "path below a value",
        _where({"path": "type.kind", "eq": "x"}),
        None,
        [((*W, 0, "path"), "`type` is a value")],
    ),
    (
        "unknown attribute",
        _where({"path": "dta.status", "eq": "x"}),
        None,
        [((*W, 0, "path"), "the event has no field `dta`; did you mean `data`")],
    ),
    (
        "jsonpath syntax",
        _where({"path": "$.data.items[0]", "exists": True}),
        None,
        [((*W, 0, "path"), "data.payload.items.0.amount")],
    ),
    (
        "empty segment",
        _where({"path": "data..id", "exists": True}),
        None,
        [((*W, 0, "path"), "empty segment")],
    ),
    (
        "path not a string",
        _where({"path": 5, "exists": True}),
        None,
        [((*W, 0, "path"), "got number")],
    ),
    (
        "in given a scalar",
        _where({"path": "id", "in": "USD"}),
        None,
        [((*W, 0, "in"), "expected a list")],
    ),
    ("empty in", _where({"path": "id", "in": []}), None, [((*W, 0, "in"), "can never hold")]),
    (
        "empty not_in",
        _where({"path": "id", "not_in": []}),
        None,
        [((*W, 0, "not_in"), "always holds")],
    ),
    (
        "in with a list member",
        _where({"path": "id", "in": ["a", ["b"]]}),
        None,
        [((*W, 0, "in", 1), "single value")],
    ),
    ("eq given a list", _where({"path": "id", "eq": ["a"]}), None, [((*W, 0, "eq"), "use `in`")]),
    (
        "ne given a list",
        _where({"path": "id", "ne": ["a"]}),
        None,
        [((*W, 0, "ne"), "use `not_in`")],
    ),
    (
        "eq given a date",
        _where({"path": "time", "eq": datetime.date(2024, 1, 1)}),
        None,
        [((*W, 0, "eq"), "quote it (YAML read it as a date)")],
    ),
    ("eq given nan", _where({"path": "id", "eq": float("nan")}), None, [((*W, 0, "eq"), "finite")]),
    ("gte non-decimal", _where({"path": "id", "gte": "abc"}), None, [((*W, 0, "gte"), "decimal")]),
    ("gt boolean", _where({"path": "id", "gt": True}), None, [((*W, 0, "gt"), "decimal")]),
    ("lt NaN", _where({"path": "id", "lt": "NaN"}), None, [((*W, 0, "lt"), "decimal")]),
    (
        "lte Infinity",
        _where({"path": "id", "lte": float("inf")}),
        None,
        [((*W, 0, "lte"), "decimal")],
    ),
    (
        "exists not bool",
        _where({"path": "id", "exists": "yes"}),
        None,
        [((*W, 0, "exists"), "true or false")],
    ),
    (
        "prefix number",
        _where({"path": "id", "prefix": 12}),
        None,
        [((*W, 0, "prefix"), "quote it")],
    ),
    (
        "empty suffix",
        _where({"path": "id", "suffix": ""}),
        None,
        [((*W, 0, "suffix"), "every string")],
    ),
    (
        "bad regex",
        _where({"path": "id", "regex": "(unclosed"}),
        None,
        [((*W, 0, "regex"), "invalid regex")],
    ),
    ("bad glob", _where({"path": "id", "glob": "a[b"}), None, [((*W, 0, "glob"), "invalid glob")]),
    (
        "lone backslash glob",
        _where({"path": "id", "glob": "a\\"}),
        None,
        [((*W, 0, "glob"), "lone")],
    ),
    (
        "bad glob range",
        _where({"path": "id", "glob": "[z-a]"}),
        None,
        [((*W, 0, "glob"), "invalid character class")],
    ),
    ("empty any", _where({"any": []}), None, [((*W, 0, "any"), "empty `any`")]),
    (
        "combinator with extra key",
        _where({"any": [{"path": "id", "eq": "x"}], "path": "id"}),
        None,
        [((*W, 0, "path"), "must be alone")],
    ),
    (
        "nested error path",
        _where(
            {"any": [{"path": "id", "eq": "x"}, {"not": {"all": [{"path": "id", "gte": "x"}]}}]}
        ),
        None,
        [((*W, 0, "any", 1, "not", "all", 0, "gte"), "decimal")],
    ),
    (
        "not list error path",
        _where({"not": [{"path": "id", "eq": "x"}, {"path": "id", "frob": 1}]}),
        None,
        [((*W, 0, "not", 1, "frob"), "unknown operator")],
    ),
    (
        "contradiction",
        _where(
            {"path": "data.status", "eq": "completed"}, {"path": "data.status", "in": ["failed"]}
        ),
        None,
        [((*W, 1, "in"), "contradicts where[0]")],
    ),
    (
        "contradiction inside all",
        _where({"all": [{"path": "id", "in": ["a", "b"]}, {"path": "id", "eq": "c"}]}),
        None,
        [((*W, 0, "all", 1, "eq"), "contradicts all[0]")],
    ),
    ("omit not a list", [_route(omit="data.x")], None, [(("routes", 0, "omit"), "list of paths")]),
    (
        "omit required attribute",
        [_route(omit=["data.payload.x", "id"])],
        None,
        [(("routes", 0, "omit", 1), "required CloudEvents attribute")],
    ),
    (
        "omit bad path",
        [_route(omit=["data.nope"])],
        None,
        [(("routes", 0, "omit", 0), "no field `nope`")],
    ),
    (
        "omit twice",
        [_route(omit=["data.payload.x", "data.payload.x"])],
        None,
        [(("routes", 0, "omit", 1), "listed twice")],
    ),
]


@pytest.mark.parametrize(
    ("routes", "unmatched", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_validation_error_path(
    routes: Any, unmatched: Any, expected: list[tuple[tuple[Any, ...], str]]
) -> None:
    """Each invalid config yields exactly the expected errors at the most precise path."""
    errors = _errors(routes, unmatched)
    assert [e.path for e in errors] == [path for path, _ in expected], errors
    for error, (_, fragment) in zip(errors, expected, strict=True):
        assert fragment in error.message


def test_every_error_reported_at_once() -> None:
    """Problems in several routes, keys and `unmatched` are all collected in one raise."""
    routes = [
        _route(name="a", to=["nope"]),
        _route(name="a", match={"where": [{"path": "id", "gte": "x"}, {"path": "id", "rx": "."}]}),
        "junk",
    ]
    errors = _errors(routes, ["zzz"])
    assert [format_path(e.path) for e in errors] == [
        "routes[0].to[0]",
        "routes[1].name",
        "routes[1].match.where[0].gte",
        "routes[1].match.where[1].rx",
        "routes[2]",
        "unmatched[0]",
    ]
    message = str(RoutingConfigError(errors))
    assert message.startswith("6 routing config errors:")
    assert "routes[1].match.where[0].gte: expected a decimal number" in message


def test_statuses_reject_type_typos() -> None:
    """With the status vocabulary, `order.complete` is an error; globs are left alone."""
    statuses = ("completed", "failed")
    errors = _errors(
        [_route(match={"type": ["order.complete", "order.*", "nodot"]})], statuses=statuses
    )
    assert [(e.path, e.message) for e in errors] == [
        (
            ("routes", 0, "match", "type", 0),
            "unknown status `complete` in type `order.complete`; did you mean `completed`?",
        ),
        (
            ("routes", 0, "match", "type", 2),
            "expected `<kind>.<status>` such as order.completed, got `nodot`",
        ),
    ]


def test_without_sources_names_are_not_checked() -> None:
    """`sources=None` skips reachability checks (the caller has no source list)."""
    router = routing.compile_routes(
        [_route(match={"source": "anything", "provider": "else"})], None, DESTINATIONS
    )
    assert router.routes[0].match.source == ("anything",)


def test_valid_config_compiles_to_model() -> None:
    """A valid config yields the normalized model in config order (for `gateway check`)."""
    router = routing.compile_routes(
        [
            {"name": "everything", "match": {}, "to": ["orders"]},
            {
                "name": "big",
                "match": {
                    "provider": ["whitepay"],
                    "type": "order.completed",
                    "where": [{"path": "data.fiat.amount", "gte": 1000.5}],
                },
                "to": ["ledger", "orders"],
                "omit": ["data.payload.secret"],
            },
        ],
        ["ledger"],
        DESTINATIONS,
        SOURCES,
    )
    assert [r.name for r in router.routes] == ["everything", "big"]
    assert router.unmatched == ("ledger",)
    big = router.routes[1]
    assert big.match.type == ("order.completed",)
    assert big.match.where == (routing.Predicate("data.fiat.amount", "gte", Decimal("1000.5")),)
    assert big.to == ("ledger", "orders") and big.omit == ("data.payload.secret",)
    assert routing.describe_route(big) == (
        "big: provider whitepay, type order.completed, data.fiat.amount gte 1000.5 "
        "-> ledger, orders (omit data.payload.secret)"
    )
    assert routing.describe_route(router.routes[0]) == "everything: every event -> orders"


def test_empty_config_is_valid() -> None:
    """No routes and no unmatched is a valid (if quiet) config: every event is unrouted."""
    router = routing.compile_routes(None, None, DESTINATIONS)
    routed = router.route({"type": "order.completed"})
    assert routed.unmatched and routed.deliveries == () and routed.routes == ()
