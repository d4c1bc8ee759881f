"""Property tests: the compiled router against a naive reference evaluator written here.

The reference reads the raw rules directly, route by route, with the semantics the routing
reference documents; it shares no code with `routing`. Hypothesis generates rule sets
(nested combinators, globs, overlapping `eq` tables and omits) and events (missing paths,
nulls, lists, decimal edge cases) and checks that `route` and `explain` agree with it.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import routing
from routing.conditions import compile_where
from routing.paths import EventView
from routing.program import compile_holds
from tests.routing.reference import ABSENT, ref_holds, ref_route

DESTINATIONS = ("a", "b", "c")

# -- strategies ---------------------------------------------------------------------------

PATHS = (
    "type",
    "data.status",
    "data.fiat.amount",
    "data.fiat.currency",
    "data.payload.n",
    "data.payload.items.0.v",
    "data.payload.items.1",
    "data.payload.txt",
)
STRINGS = ("USD", "EUR", "completed", "failed", "1000", "1000.00", "1e3", "abc", "-0", "é", "")
EVENT_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 5, 1000, -1, 2]),
    st.sampled_from((*STRINGS, "NaN", "Infinity", "1_000", " 5", "٣", "9.99e2", "order.x")),
    st.sampled_from(
        [Decimal("1000.0"), Decimal("-0"), Decimal("1E+3"), Decimal("NaN"), Decimal("sNaN")]
    ),
    st.decimals(min_value=-2000, max_value=2000, places=2),
)
CONFIG_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 5, 1000, -1]),
    st.sampled_from([s for s in STRINGS if s]),
    st.sampled_from([1000.0, 0.5, -0.0]),
)
DECIMALS = st.sampled_from(["1000", "999.99", "0", "-1", "1e3", 5, 1000, 0.5])
PATTERNS = {
    "prefix": st.sampled_from(["US", "1", "com", "é", "ord"]),
    "suffix": st.sampled_from(["D", "0", "ted", ".completed"]),
    "glob": st.sampled_from(["*", "US?", "[A-E]*", "*ed", "order.*", "[!U]*", "1*0"]),
    "regex": st.sampled_from(["^U", "D$", "[0-9]", "é", "^$", "(?i)usd"]),
}


@st.composite
def predicates(draw: st.DrawFn) -> dict[str, Any]:
    """One predicate with a valid value for its operator."""
    op = draw(st.sampled_from(routing.OPERATORS))
    value: Any
    if op in ("eq", "ne"):
        value = draw(CONFIG_SCALARS)
    elif op in ("in", "not_in"):
        value = draw(st.lists(CONFIG_SCALARS, min_size=1, max_size=3))
    elif op == "exists":
        value = draw(st.booleans())
    elif op in PATTERNS:
        value = draw(PATTERNS[op])
    else:
        value = draw(DECIMALS)
    return {"path": draw(st.sampled_from(PATHS)), op: value}


def _combine(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    some = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        st.builds(lambda cs: {"any": cs}, some),
        st.builds(lambda cs: {"all": cs}, some),
        st.builds(lambda c: {"not": c}, children),
        st.builds(lambda cs: {"not": cs}, some),
    )


CONDITIONS = st.recursive(predicates(), _combine, max_leaves=6)
# A string `eq`/`in` on a shared path, so several routes land in one hash-index table.
STATUSES = ("completed", "failed", "USD")
STATUS_EQ = st.one_of(
    st.builds(lambda v: {"path": "data.status", "eq": v}, st.sampled_from(STATUSES)),
    st.builds(
        lambda vs: {"path": "data.status", "in": vs},
        st.lists(st.sampled_from(STATUSES), min_size=1, max_size=2, unique=True),
    ),
)
TYPES = st.sampled_from(["order.completed", "order.*", "*.completed", "transaction.failed", "*"])
TWO_ITEMS = ["data.payload.items.0", "data.payload.items.1"]
OMITS = st.sampled_from(
    [
        "data.fiat",
        "data.fiat.amount",
        "data.payload.items.0",
        "data.payload.items.1",
        "data.payload.n",
    ]
)


def _route(
    draw: st.DrawFn, i: int, match: dict[str, Any], where: list[Any], most_to: int
) -> dict[str, Any]:
    """Route `r{i}` with `match` (and `where`, if any) to 1..`most_to` distinct destinations."""
    if where:
        match["where"] = where
    return {
        "name": f"r{i}",
        "match": match,
        "to": draw(
            st.lists(st.sampled_from(DESTINATIONS), min_size=1, max_size=most_to, unique=True)
        ),
    }


@st.composite
def rule_sets(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[str]]:
    """A list of valid routes plus `unmatched` destinations."""
    routes = []
    for i in range(draw(st.integers(0, 8))):
        match: dict[str, Any] = {}
        if draw(st.booleans()):
            match["type"] = draw(
                st.one_of(TYPES, st.lists(TYPES, min_size=1, max_size=2, unique=True))
            )
        if draw(st.integers(0, 3)) == 0:
            match["provider"] = draw(st.sampled_from(["whitepay", ["whitepay", "fatpay"]]))
        if draw(st.integers(0, 3)) == 0:
            match["source"] = draw(st.sampled_from(["wp", ["wp", "fp"]]))
        where = draw(st.lists(CONDITIONS, max_size=3))
        if draw(st.booleans()):
            where.insert(0, draw(STATUS_EQ))
        route = _route(draw, i, match, where, 3)
        # Removing two items of one list must use the original indices for both.
        omit = draw(st.one_of(st.lists(OMITS, max_size=2, unique=True), st.just(TWO_ITEMS)))
        if omit:
            route["omit"] = omit
        routes.append(route)
    unmatched = draw(st.lists(st.sampled_from(DESTINATIONS), max_size=2, unique=True))
    return routes, unmatched


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(ABSENT), strategy)


def _present(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not ABSENT}


EVENTS = st.builds(
    lambda source, provider, kind, status, fiat, payload: _present(
        specversion="1.0",
        id="x",
        source=source,
        provider=provider,
        type=kind,
        data=_present(status=status, fiat=fiat, payload=payload),
    ),
    _maybe(st.sampled_from(["/webhooks/wp", "/webhooks/fp", "wp", "other"])),
    _maybe(st.sampled_from(["whitepay", "fatpay", "w3block"])),
    _maybe(st.sampled_from(["order.completed", "order.failed", "transaction.failed", "x"])),
    st.integers(0, 3).flatmap(
        lambda i: st.sampled_from(STATUSES) if i < 2 else _maybe(EVENT_SCALARS)
    ),
    _maybe(
        st.one_of(
            st.none(),
            st.builds(
                lambda c, a: _present(currency=c, amount=a),
                _maybe(EVENT_SCALARS),
                _maybe(EVENT_SCALARS),
            ),
        )
    ),
    _maybe(
        st.builds(
            lambda n, items, txt: _present(n=n, items=items, txt=txt),
            _maybe(EVENT_SCALARS),
            _maybe(
                st.lists(
                    st.one_of(
                        EVENT_SCALARS, st.builds(lambda v: _present(v=v), _maybe(EVENT_SCALARS))
                    ),
                    max_size=3,
                )
            ),
            _maybe(EVENT_SCALARS),
        )
    ),
)


# Rule sets built for the hash index: many routes AND a string `eq`/`in` on one shared path
# (a plain key, a list item, a payload field), next to keys it cannot index (numbers,
# booleans, null, mixed lists) and extra conditions, type globs and omits.
KEY_PATHS = ("data.status", "data.payload.items.0.v", "data.payload.n")
KEY_STRINGS = ("completed", "failed", "USD", "5", "1e3")
STRING_KEYS = st.one_of(
    st.builds(lambda v: ("eq", v), st.sampled_from(KEY_STRINGS)),
    st.builds(
        lambda vs: ("in", vs),
        st.lists(st.sampled_from(KEY_STRINGS), min_size=1, max_size=3, unique=True),
    ),
)
OTHER_KEYS = st.one_of(  # on the same path, but not indexable: numbers, booleans, null, mixed
    st.builds(lambda v: ("eq", v), st.sampled_from([5, 1000, True, None])),
    st.builds(
        lambda vs: ("in", vs),
        st.lists(st.sampled_from(["5", 5, "USD", None]), min_size=1, max_size=3),
    ),
)
KEYS = st.integers(0, 3).flatmap(lambda i: OTHER_KEYS if i == 0 else STRING_KEYS)


@st.composite
def indexed_rule_sets(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[str], str]:
    """Routes most of which key on one path, the `unmatched` destinations, and that path."""
    path = draw(st.sampled_from(KEY_PATHS))
    routes = []
    for i in range(draw(st.integers(2, 20))):
        match: dict[str, Any] = {}
        if draw(st.integers(0, 3)) == 0:
            match["type"] = draw(TYPES)
        where = draw(st.lists(CONDITIONS, max_size=2))
        if draw(st.integers(0, 9)) > 0:
            op, value = draw(KEYS)
            where.insert(draw(st.integers(0, len(where))), {"path": path, op: value})
        route = _route(draw, i, match, where, 2)
        if draw(st.booleans()):
            route["omit"] = draw(st.lists(OMITS, min_size=1, max_size=2, unique=True))
        routes.append(route)
    unmatched = draw(st.lists(st.sampled_from(DESTINATIONS), max_size=1))
    return routes, unmatched, path


def _put(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `event` with `value` at `path` (ABSENT removes it), lists for digits."""
    event = copy.deepcopy(event)
    *parents, last = path.split(".")
    node: Any = event
    for part, after in zip(parents, [*parents[1:], last], strict=True):
        child = node.get(part) if isinstance(node, dict) else None
        if after.isdigit():
            if not isinstance(child, list) or not child:
                child = [{}]
            if not isinstance(child[0], dict):
                child[0] = {}
            node[part] = child
            node = child[0]
            continue
        if part.isdigit():  # already stepped into the list item above
            continue
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if value is ABSENT:
        node.pop(last, None)
    else:
        node[last] = value
    return event


KEY_VALUES = st.one_of(
    st.sampled_from(KEY_STRINGS),
    st.sampled_from([ABSENT, None, 5, Decimal("1000"), True, "", "usd", ["USD"], {"USD": 1}]),
)


def _compile(routes: list[dict[str, Any]], unmatched: list[str]) -> routing.Router:
    try:
        return routing.compile_routes(routes, unmatched, DESTINATIONS)
    except routing.RoutingConfigError as exc:
        # Generated `eq`s on one path can contradict each other: that is a config error.
        if all("contradicts" in e.message for e in exc.errors):
            assume(False)
        raise


# -- properties ---------------------------------------------------------------------------

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rule_sets(), st.lists(EVENTS, min_size=1, max_size=6))
def test_router_agrees_with_reference(
    rules: tuple[list[dict[str, Any]], list[str]], events: list[dict[str, Any]]
) -> None:
    """route() picks the reference's routes, destinations, route lists and omitted copies."""
    routes, unmatched = rules
    router = _compile(routes, unmatched)
    for event in events * 2:  # the second pass runs on memoized plans and fan-outs
        before = copy.deepcopy(event)
        routed = router.route(event)
        names, deliveries = ref_route(routes, unmatched, event)
        assert list(routed.routes) == names
        assert routed.unmatched is (not names)
        assert [(d.destination, d.routes) for d in routed.deliveries] == [
            (dest, rs) for dest, rs, _ in deliveries
        ]
        for got, (_, _, want) in zip(routed.deliveries, deliveries, strict=True):
            assert got.event == want
            if want is event:  # nothing omitted: the input itself is shared
                assert got.event is event
        assert event == before  # the input is never mutated


@SETTINGS
@given(rule_sets(), EVENTS)
def test_explain_agrees_with_route(
    rules: tuple[list[dict[str, Any]], list[str]], event: dict[str, Any]
) -> None:
    """explain() reports exactly the routes route() matched, a reason for every miss."""
    routes, unmatched = rules
    router = _compile(routes, unmatched)
    traces = router.explain(event)
    routed = router.route(event)
    assert [t.route for t in traces] == [r["name"] for r in routes]
    assert tuple(t.route for t in traces if t.matched) == routed.routes
    for trace in traces:
        assert (trace.reason is None) is trace.matched
        assert trace.matched or trace.reason  # a miss always says why
    text = routing.format_explanation(traces, routed)
    assert all(t.route in text for t in traces)


@SETTINGS
@given(rule_sets(), EVENTS, st.sampled_from([["order.completed"], {"k": 1}]))
def test_unhashable_attributes_fall_back(
    rules: tuple[list[dict[str, Any]], list[str]], event: dict[str, Any], odd: Any
) -> None:
    """An event whose type is a list or mapping skips the index and still routes correctly."""
    routes, unmatched = rules
    router = _compile(routes, unmatched)
    event = {**event, "type": odd}
    names, _ = ref_route(routes, unmatched, event)
    assert list(router.route(event).routes) == names


@SETTINGS
@given(indexed_rule_sets(), st.lists(st.tuples(EVENTS, KEY_VALUES), min_size=1, max_size=6))
def test_indexed_router_agrees_with_reference(
    rules: tuple[list[dict[str, Any]], list[str], str],
    cases: list[tuple[dict[str, Any], Any]],
) -> None:
    """With routes grouped in `eq`/`in` tables, route() and explain() still match the reference."""
    routes, unmatched, path = rules
    router = _compile(routes, unmatched)
    events = [_put(event, path, value) for event, value in cases]
    for event in events * 2:  # the second pass runs on memoized plans and fan-outs
        routed = router.route(event)
        names, deliveries = ref_route(routes, unmatched, event)
        assert list(routed.routes) == names
        assert [(d.destination, d.routes, d.event) for d in routed.deliveries] == deliveries
        traces = router.explain(event)  # raises if its closures and the generated code disagree
        assert tuple(t.route for t in traces if t.matched) == routed.routes


@SETTINGS
@given(st.lists(CONDITIONS, min_size=1, max_size=4), EVENTS)
def test_generated_code_agrees_with_closures(
    where: list[dict[str, Any]], event: dict[str, Any]
) -> None:
    """A `where` compiled to source decides exactly as its explaining closures and the reference."""
    router = _compile([{"name": "r", "match": {"where": where}, "to": ["a"]}], [])
    conditions = router.routes[0].match.where
    expected = all(ref_holds(c, event) for c in where)
    assert compile_holds(conditions)(event) is expected
    check = compile_where(conditions)
    assert check is not None
    assert (check(EventView.of(event), False) is None) is expected
    reason = check(EventView.of(event), True)  # explaining changes the reason, not the verdict
    assert (reason is None) is expected
