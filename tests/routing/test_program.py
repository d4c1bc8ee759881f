"""The fast paths of the router, each against the reference evaluator of test_properties.

The `eq`/`in` hash index, generated plan programs (shared path lookups, numbers parsed once,
repeated patterns evaluated once), the closure fallback for deep nesting, fan-out builders
and what config text can and cannot do to generated code.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from types import MappingProxyType
from typing import Any
from unittest import mock

import pytest

import routing
from routing import match, program
from tests.routing.reference import ref_route

DESTINATIONS = [f"d{i}" for i in range(24)]


def _compile(routes: list[dict[str, Any]], unmatched: list[str] | None = None) -> routing.Router:
    return routing.compile_routes(routes, unmatched, DESTINATIONS)


def _event(kind: str = "order.completed", **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "1", "source": "/webhooks/wp", "type": kind, "data": data}


def _agrees(
    routes: list[dict[str, Any]],
    events: list[dict[str, Any]],
    unmatched: list[str] | None = None,
    indexed: Collection[str] = (),
) -> None:
    """route() and explain() equal the reference on every event, twice (memos warm), and
    the plans built hash tables on exactly the `indexed` paths."""
    tables: set[str] = set()
    real = match.compile_plan

    def spy(inline: Any, plan_tables: Any) -> Any:
        tables.update(path for path, _ in plan_tables)
        return real(inline, plan_tables)

    with mock.patch.object(match, "compile_plan", spy):
        router = _compile(routes, unmatched)
        for event in events * 2:
            before = copy.deepcopy(event)
            routed = router.route(event)
            names, deliveries = ref_route(routes, unmatched or [], event)
            assert list(routed.routes) == names, event
            assert [(d.destination, d.routes, d.event) for d in routed.deliveries] == deliveries
            traces = router.explain(event)
            assert tuple(t.route for t in traces if t.matched) == routed.routes
            assert event == before
    assert tables == set(indexed)


def _merchant(name: str, value: Any, *extra: dict[str, Any], **match: Any) -> dict[str, Any]:
    where = [{"path": "data.payload.merchant", "eq": value}, *extra]
    return {"name": name, "match": {**match, "where": where}, "to": ["d1"]}


def _fillers(path: str = "data.payload.merchant") -> list[dict[str, Any]]:
    """Enough routes keyed on `path` for every plan to index it."""
    return [
        {"name": f"filler{i}", "match": {"where": [{"path": path, "eq": f"f-{i}"}]}, "to": ["d0"]}
        for i in range(match.TABLE_MIN)
    ]


# -- the eq/in hash index ---------------------------------------------------------------------

BIG = {"path": "data.fiat.amount", "gte": "1000"}


def test_index_with_extra_predicates_omits_and_type_globs() -> None:
    """Keyed routes with more conditions, globs and omits: a hit is still fully tested."""
    routes = [
        _merchant("m1", "m-1"),
        _merchant("m1-big", "m-1", BIG),
        {**_merchant("m2-glob", "m-2", type="order.*"), "omit": ["data.payload.secret"]},
        _merchant("m2-failed", "m-2", type="*.failed"),
        {
            "name": "m-any",
            "match": {"where": [{"path": "data.payload.merchant", "in": ["m-1", "m-2", "m-3"]}]},
            "to": ["d2"],
            "omit": ["data.fiat"],
        },
        {"name": "everything", "match": {}, "to": ["d1"]},
        *_fillers(),
    ]
    events = [
        _event(payload={"merchant": m, "secret": "s"}, fiat={"amount": a})
        for m in ("m-1", "m-2", "m-3", "m-9", "f-1")
        for a in ("5", "1500")
    ]
    events += [{**e, "type": "transaction.failed"} for e in events]
    _agrees(routes, events, indexed={"data.payload.merchant"})


@pytest.mark.parametrize(
    "value",
    ["5", 5, "5.0", None, True, ["m-1"], {"m-1": 1}, "M-1", "m-1 ", "", "missing"],
)
def test_index_key_only_routes_need_a_string(value: Any) -> None:
    """A route whose whole `where` is the keyed `eq` matches only that exact string."""
    routes = [_merchant("s", "5"), _merchant("t", "5"), _merchant("m", "m-1"), _merchant("n", 5)]
    payload = {} if value == "missing" else {"merchant": value}
    events = [_event(payload=payload), _event(payload=None), _event()]
    _agrees(routes + _fillers(), events, indexed={"data.payload.merchant"})


def test_index_mixed_numbers_and_strings() -> None:
    """`in` lists mixing strings and numbers are not keyed; strings and numbers stay distinct."""
    routes = [
        {
            "name": "mixed",
            "match": {"where": [{"path": "data.payload.n", "in": ["5", 5, None]}]},
            "to": ["d1"],
        },
        {"name": "str", "match": {"where": [{"path": "data.payload.n", "eq": "5"}]}, "to": ["d2"]},
        {
            "name": "strs",
            "match": {"where": [{"path": "data.payload.n", "in": ["5", "6"]}]},
            "to": ["d3"],
        },
        {"name": "num", "match": {"where": [{"path": "data.payload.n", "eq": 5}]}, "to": ["d4"]},
        {"name": "ne", "match": {"where": [{"path": "data.payload.n", "ne": "5"}]}, "to": ["d5"]},
    ]
    values = ["5", 5, "5.00", "5e0", "6", None, False, [5], "f-0"]
    events = [_event(payload={"n": v}) for v in values] + [_event()]
    _agrees(routes + _fillers("data.payload.n"), events, indexed={"data.payload.n"})


def test_index_on_a_list_item_and_through_missing_paths() -> None:
    """A table keyed on `items.0.sku`: short lists, non-lists and missing parents miss."""
    routes = [
        {
            "name": f"sku-{i}",
            "match": {"where": [{"path": "data.payload.items.0.sku", "in": [f"s{i}", "s"]}]},
            "to": [f"d{i}"],
        }
        for i in range(match.TABLE_MIN)
    ]
    items: list[Any] = [
        [{"sku": "s1"}],
        [{"sku": "s"}, {"sku": "s2"}],
        [],
        [None],
        ["s1"],
        {"0": {"sku": "s1"}},  # a mapping with key "0" is walked like the reference does
        "s1",
        None,
    ]
    events = [_event(payload={"items": i}) for i in items] + [_event(payload=None), _event()]
    _agrees(routes, events, indexed={"data.payload.items.0.sku"})


def test_routes_keyed_on_different_paths_in_one_plan() -> None:
    """Two tables (currency, merchant) and inline routes in the same plan."""
    routes = []
    for i in range(match.TABLE_MIN):
        routes.append(_merchant(f"m{i}", f"m-{i % 3}"))
        routes.append(
            {
                "name": f"c{i}",
                "match": {
                    "where": [
                        {"path": "data.fiat.currency", "in": ["USD", "EUR"][: 1 + i % 2]},
                        {"path": "data.fiat.amount", "gt": str(100 * i)},
                    ]
                },
                "to": [f"d{i}"],
            }
        )
    routes.append({"name": "odd", "match": {"where": [BIG]}, "to": ["d9"]})
    events = [
        _event(payload={"merchant": f"m-{i}"}, fiat={"currency": c, "amount": a})
        for i in range(4)
        for c in ("USD", "EUR", "GBP")
        for a in ("50", "250", "9999", "x")
    ]
    indexed = {"data.payload.merchant", "data.fiat.currency"}
    _agrees(routes, events, unmatched=["d0"], indexed=indexed)


# -- generated programs ---------------------------------------------------------------------


LOOKUP_PATHS = ["items.0.sku", "items.1", "items.x", "items.0", "items", "n", "n.0"]
LOOKUP_NODES: list[Any] = [
    [{"sku": "s"}, "second"],
    [{"sku": 5}],
    [],
    {"0": {"sku": "s"}, "1": "second", "x": "name"},
    "s",
    None,
    5,
]


def _lookup_routes() -> list[dict[str, Any]]:
    return [
        {
            "name": f"{op}={v}:{path}",
            "match": {"where": [{"path": f"data.payload.{path}", op: v}]},
            "to": ["d1"],
        }
        for path in LOOKUP_PATHS
        for op, v in (("exists", True), ("exists", False), ("eq", "s"), ("ne", "second"))
    ]


def test_lookups_through_every_kind_of_node() -> None:
    """Dicts (digit keys too), lists (in and out of range, named segments), scalars, null."""
    events = [_event(payload={"items": node, "n": node}) for node in LOOKUP_NODES]
    _agrees(_lookup_routes(), [*events, _event(payload={}), _event(payload=None), _event()])


def test_lookups_through_other_mappings_and_sequences() -> None:
    """Non-dict mappings and tuples take the slow path, deciding as explain's closures do."""
    router = _compile(_lookup_routes())
    proxy = MappingProxyType({"0": {"sku": "s"}, "x": "name"})
    pair = ({"sku": "s"}, "second")
    expected = [
        (proxy, {"eq=s:items.0.sku", "exists=False:items.1", "exists=True:items.x"}),
        (pair, {"eq=s:items.0.sku", "exists=True:items.1", "exists=False:items.x"}),
    ]
    for node, present in expected:
        event = _event(payload=MappingProxyType({"items": node, "n": node}))
        routed = router.route(event)
        traces = router.explain(event)  # raises if generated code and closures disagree
        assert routed.routes == tuple(t.route for t in traces if t.matched)
        assert present <= set(routed.routes)
        assert "ne=second:items.1" not in routed.routes


def test_repeated_patterns_are_shared_per_predicate() -> None:
    """A glob/regex several routes repeat is evaluated once, without mixing up its siblings."""
    patterns = ["^a", "b$", "^a", "[0-9]", "b$", "^a"]
    routes: list[dict[str, Any]] = [
        {
            "name": f"re{i}",
            "match": {"where": [{"path": "data.payload.s", "regex": p}]},
            "to": ["d1"],
        }
        for i, p in enumerate(patterns)
    ]
    routes += [
        {
            "name": "glob1",
            "match": {"where": [{"path": "data.payload.s", "glob": "a*"}]},
            "to": ["d2"],
        },
        {
            "name": "glob2",
            "match": {"where": [{"not": {"path": "data.payload.s", "glob": "a*"}}]},
            "to": ["d3"],
        },
        {
            "name": "glob3",
            "match": {"where": [{"path": "data.payload.t", "glob": "a*"}]},
            "to": ["d4"],
        },
    ]
    values = ["ab", "a", "b", "1b", "xx", "", None, 7]
    _agrees(routes, [_event(payload={"s": v, "t": w}) for v in values for w in ("a", "b")])


def test_numbers_are_parsed_once_and_compared_exactly() -> None:
    """Several bounds on one amount (strings, ints, exponents, junk) agree with the reference."""
    routes = [
        {
            "name": f"{op}{bound}",
            "match": {"where": [{"path": "data.payload.a", op: bound}]},
            "to": ["d1"],
        }
        for op in ("gt", "gte", "lt", "lte", "eq", "ne")
        for bound in ("1000", 999.99, 0)
    ]
    amounts = ["1000", "1e3", "1000.001", 1000, "999.99", "-0", 0, "abc", None, True, "NaN", [1]]
    _agrees(routes, [_event(payload={"a": a}) for a in amounts])


def test_deep_nesting_falls_back_to_closures() -> None:
    """A condition nested past what generated source allows still routes and explains."""
    inner: dict[str, Any] = {"path": "data.payload.s", "eq": "x"}
    for _ in range(program.MAX_DEPTH + 5):
        inner = {"not": inner}
    routes = [
        {"name": "deep", "match": {"where": [inner]}, "to": ["d1"]},
        {
            "name": "deep-keyed",
            "match": {"where": [{"path": "data.payload.s", "eq": "x"}, inner]},
            "to": ["d2"],
        },
        {
            "name": "other-keyed",
            "match": {"where": [{"path": "data.payload.s", "eq": "x"}]},
            "to": ["d3"],
        },
    ]
    router = _compile(routes)
    assert not program.inlinable(router.routes[0].match.where)
    events = [_event(payload={"s": "x"}), _event(payload={"s": "y"}), _event()]
    _agrees(routes, events)  # the deep routes tested inline
    _agrees(routes + _fillers("data.payload.s"), events, indexed={"data.payload.s"})  # in a table


@pytest.mark.parametrize("combinator", ["not", "any", "all"])
def test_deepest_inlined_nesting_compiles(combinator: str) -> None:
    """At MAX_DEPTH, with the most parenthesized predicate, generated source still compiles."""
    inner: dict[str, Any] = {"path": "data.payload.items.0.v", "ne": 5}
    other = {"path": "data.payload.n", "gt": 1}
    for _ in range(program.MAX_DEPTH):
        inner = {"not": inner} if combinator == "not" else {combinator: [inner, other]}
    routes = [{"name": "r", "match": {"where": [inner]}, "to": ["d1"]}]
    assert program.inlinable(_compile(routes).routes[0].match.where)
    values = [4, 5, "5.0", None]
    _agrees(routes, [_event(payload={"items": [{"v": v}], "n": n}) for v in values for n in (0, 2)])


def test_plans_with_the_same_candidates_share_one_program() -> None:
    """Unknown types all reach the same routes: one program serves them, not one each."""
    router = _compile(
        [
            {"name": "glob", "match": {"type": "order.*", "where": [BIG]}, "to": ["d1"]},
            {"name": "all", "match": {"where": [BIG]}, "to": ["d2"]},
        ]
    )
    for i in range(200):
        router.route(_event(f"x{i}.completed", fiat={"amount": "5000"}))
        router.route(_event(f"order.x{i}", fiat={"amount": "5000"}))
    assert len(router._plans) == 400
    assert len(router._programs) == 2


def test_config_text_never_becomes_code() -> None:
    """Quotes, newlines and Python in values and path segments are only ever data."""
    nasty = ["'); raise SystemExit('x') #", '"""\nimport os\n', "{event}", "k0", "MISSING", "\\"]
    routes: list[dict[str, Any]] = []
    for i, text in enumerate(nasty):
        routes.append(_merchant(f"eq{i}", text))
        routes.append(_merchant(f"eq{i}-b", text, {"path": "data.payload.x", "prefix": text}))
        segment = text.replace(".", "").replace("[", "").replace("]", "").strip() or "k"
        routes.append(
            {
                "name": f"path{i}",
                "match": {"where": [{"path": f"data.payload.{segment}", "exists": True}]},
                "to": ["d2"],
            }
        )
        if i < match.TABLE_MIN // 2:  # a few keyed on another path: tested inline
            where = [{"path": "data.payload.x", "eq": text}]
            routes.append({"name": f"inline{i}", "match": {"where": where}, "to": ["d3"]})
    events = [_event(payload={"merchant": t, "x": t + "!", t: 1}) for t in nasty]
    events += [_event(payload={"merchant": "m", "x": t}) for t in nasty]
    events += [_event(payload={s: 1}) for s in ("k", "MISSING", "event")]
    _agrees(routes, events, indexed={"data.payload.merchant"})


# -- fan-outs ------------------------------------------------------------------------------


def test_wide_fan_outs_with_shared_and_distinct_copies() -> None:
    """Up to 24 destinations, a few omit sets: one copy per distinct set, the input shared."""
    routes: list[dict[str, Any]] = [
        {"name": "wide", "match": {}, "to": DESTINATIONS},
        {"name": "strip-a", "match": {}, "to": DESTINATIONS[:5], "omit": ["data.payload.a"]},
        {"name": "strip-b", "match": {}, "to": DESTINATIONS[3:8], "omit": ["data.payload.b"]},
        {"name": "strip-a2", "match": {}, "to": DESTINATIONS[20:], "omit": ["data.payload.a"]},
    ]
    for count in (1, 2, 3, 4):  # narrow (generated builders) to wide (a loop)
        subset = routes[:count]
        subset[0] = {
            **subset[0],
            "to": DESTINATIONS[: 4 * count + 1] if count < 4 else DESTINATIONS,
        }
        _agrees(subset, [_event(payload={"a": 1, "b": 2}), _event(payload={"b": 2}), _event()])
    router = _compile(routes)
    event = _event(payload={"a": 1, "b": 2})
    by = {d.destination: d.event for d in router.route(event).deliveries}
    assert by["d0"] is by["d1"] is by["d20"] is not event  # one copy without `data.a`
    assert by["d3"] is by["d4"] is not by["d0"]  # without both
    assert by["d5"] is by["d7"] is not by["d3"]  # without `data.b`
    assert by["d8"] is by["d19"] is event


def test_unmatched_and_unrouted_results() -> None:
    """No match: the `unmatched` destinations get the input itself, or nothing at all."""
    routes = [{"name": "r", "match": {"type": "never.*"}, "to": ["d1"]}]
    event = _event()
    routed = _compile(routes, ["d2", "d3"]).route(event)
    assert routed.unmatched and routed.routes == ()
    assert [(d.destination, d.routes, d.event is event) for d in routed.deliveries] == [
        ("d2", (), True),
        ("d3", (), True),
    ]
    assert _compile(routes).route(event) == routing.Routed((), (), True)


def test_explain_refuses_to_contradict_route() -> None:
    """If the generated matcher and the explaining closures ever disagree, explain says so."""
    router = _compile([_merchant("m", "m-1")])
    event = _event(payload={"merchant": "m-1"})
    assert [t.matched for t in router.explain(event)] == [True]
    with mock.patch.object(router, "_matches", lambda event: []):
        with pytest.raises(
            RuntimeError, match="route `m` missed but its explanation says it holds"
        ):
            router.explain(event)
    with mock.patch.object(router, "_matches", lambda event: [0]):
        with pytest.raises(RuntimeError, match="route `m` matched but its explanation says"):
            router.explain(_event(payload={"merchant": "m-2"}))
