"""Fan-out, unmatched, omit, explain text and the engine's boundaries (schema, purity)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

import routing
from routing.paths import EVENT_SHAPE
from tests.routing.test_spec_example import ROUTES as SPEC_ROUTES

ROOT = Path(__file__).resolve().parents[2]
DESTINATIONS = ("orders", "ledger", "audit", "risk")


def _event(**data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "e1",
        "source": "/webhooks/w3block",
        "provider": "w3block",
        "type": "order.completed",
        "data": {
            "fiat": {"currency": "USD", "amount": "1500.00"},
            "payload": {
                "data": {"paymentInfo": {"clientSecret": "cs_live", "publicKey": "pk"}},
                "items": [{"sku": "a", "pin": "1"}, {"sku": "b", "pin": "2"}, {"sku": "c"}],
                "note": "n",
            },
            **data,
        },
    }


def _compile(routes: list[dict[str, Any]], unmatched: list[str] | None = None) -> routing.Router:
    return routing.compile_routes(routes, unmatched, DESTINATIONS)


def test_every_matching_route_fires_and_each_destination_once() -> None:
    """Routes are independent; a destination named by several matched routes gets one delivery."""
    router = _compile(
        [
            {"name": "orders", "match": {"type": "order.*"}, "to": ["orders", "audit"]},
            {"name": "miss", "match": {"type": "withdrawal.*"}, "to": ["risk"]},
            {
                "name": "usd",
                "match": {"where": [{"path": "data.fiat.currency", "eq": "USD"}]},
                "to": ["audit", "ledger"],
            },
        ]
    )
    routed = router.route(_event())
    assert routed.routes == ("orders", "usd")
    assert [(d.destination, d.routes) for d in routed.deliveries] == [
        ("orders", ("orders",)),
        ("audit", ("orders", "usd")),
        ("ledger", ("usd",)),
    ]
    assert not routed.unmatched


def test_unmatched_destinations_only_when_nothing_matches() -> None:
    """`unmatched` receives exactly the events no route matched, untouched."""
    router = _compile(
        [{"name": "w", "match": {"type": "withdrawal.*"}, "to": ["risk"]}], ["audit", "orders"]
    )
    event = _event()
    routed = router.route(event)
    assert routed.unmatched and routed.routes == ()
    assert [(d.destination, d.routes) for d in routed.deliveries] == [("audit", ()), ("orders", ())]
    assert all(d.event is event for d in routed.deliveries)
    assert not router.route({**event, "type": "withdrawal.completed"}).unmatched


def test_omit_applies_only_to_that_routes_destinations() -> None:
    """`omit` strips paths from one route's copy; others share the untouched input object."""
    router = _compile(
        [
            {"name": "all", "match": {}, "to": ["orders"]},
            {
                "name": "ledger",
                "match": {},
                "to": ["ledger", "audit"],
                "omit": ["data.payload.data.paymentInfo.clientSecret", "data.payload.note"],
            },
        ]
    )
    event = _event()
    before = copy.deepcopy(event)
    routed = router.route(event)
    by_dest = {d.destination: d.event for d in routed.deliveries}
    assert by_dest["orders"] is event
    stripped = by_dest["ledger"]
    assert stripped == {
        **before,
        "data": {
            **before["data"],
            "payload": {
                "data": {"paymentInfo": {"publicKey": "pk"}},
                "items": before["data"]["payload"]["items"],
            },
        },
    }
    assert by_dest["audit"] is stripped  # one copy per distinct omit set, shared
    assert event == before  # the input is never mutated
    # Copy-on-write: branches without omitted paths are the input's own objects.
    assert stripped["data"]["fiat"] is event["data"]["fiat"]
    assert stripped["data"]["payload"]["items"] is event["data"]["payload"]["items"]


def test_shared_destination_gets_the_union_of_omits() -> None:
    """When two matched routes name one destination, everything either omits is removed."""
    router = _compile(
        [
            {"name": "a", "match": {}, "to": ["ledger"], "omit": ["data.payload.note"]},
            {"name": "b", "match": {}, "to": ["ledger"], "omit": ["data.payload.data"]},
            {"name": "c", "match": {}, "to": ["ledger"]},
        ]
    )
    [delivery] = router.route(_event()).deliveries
    assert delivery.routes == ("a", "b", "c")
    assert set(delivery.event["data"]["payload"]) == {"items"}


def test_omit_list_items_by_original_index() -> None:
    """Omitting several list items (or fields inside items) uses the original indices."""
    router = _compile(
        [
            {
                "name": "r",
                "match": {},
                "to": ["orders"],
                "omit": [
                    "data.payload.items.0",
                    "data.payload.items.1.pin",
                    "data.payload.items.2",
                    "data.payload.items.9",
                ],
            }
        ]
    )
    event = _event()
    [delivery] = router.route(event).deliveries
    assert delivery.event["data"]["payload"]["items"] == [{"sku": "b"}]
    assert event["data"]["payload"]["items"][1] == {"sku": "b", "pin": "2"}


def test_omit_of_absent_paths_shares_the_input() -> None:
    """An omit whose paths are absent from this event returns the input object itself."""
    router = _compile(
        [
            {
                "name": "r",
                "match": {},
                "to": ["orders"],
                "omit": ["data.payload.nope.x", "data.crypto"],
            }
        ]
    )
    event = _event()
    assert router.route(event).deliveries[0].event is event


def test_omit_through_null_and_scalars_is_harmless() -> None:
    """Omit paths that cross a null, a string or a short list change nothing."""
    router = _compile(
        [
            {
                "name": "r",
                "match": {},
                "to": ["orders"],
                "omit": ["data.payload.note.x", "data.crypto.amount", "data.payload.items.7.sku"],
            }
        ]
    )
    event = _event(crypto=None)
    assert router.route(event).deliveries[0].event is event


def test_explain_names_the_first_failing_condition_with_the_value() -> None:
    """explain() gives each route's verdict; a miss names the failing condition and value."""
    router = _compile(
        [
            {"name": "type", "match": {"type": ["order.failed", "withdrawal.*"]}, "to": ["orders"]},
            {"name": "provider", "match": {"provider": "fatpay"}, "to": ["orders"]},
            {
                "name": "amount",
                "match": {
                    "where": [
                        {"path": "data.fiat.currency", "in": ["USD", "EUR"]},
                        {"path": "data.fiat.amount", "gte": "2000"},
                    ]
                },
                "to": ["ledger"],
            },
            {
                "name": "missing",
                "match": {"where": [{"path": "data.external_id", "prefix": "x"}]},
                "to": ["risk"],
            },
            {
                "name": "nan",
                "match": {"where": [{"path": "data.payload.note", "gt": 1}]},
                "to": ["risk"],
            },
            {
                "name": "any",
                "match": {
                    "where": [
                        {
                            "any": [
                                {"path": "data.fiat.currency", "eq": "EUR"},
                                {"path": "data.kind", "exists": True},
                            ]
                        }
                    ]
                },
                "to": ["risk"],
            },
            {
                "name": "not",
                "match": {"where": [{"not": {"path": "data.payload.note", "eq": "n"}}]},
                "to": ["risk"],
            },
            {
                "name": "hit",
                "match": {"where": [{"path": "data.fiat.amount", "gte": 1000}]},
                "to": ["audit"],
            },
        ],
        ["orders"],
    )
    event = _event()
    reasons = {t.route: t.reason for t in router.explain(event)}
    assert reasons == {
        "type": 'type: expected "order.failed" or "withdrawal.*", got "order.completed"',
        "provider": 'provider: expected fatpay, got "w3block"',
        "amount": 'where[1]: expected data.fiat.amount gte 2000, got "1500.00"',
        "missing": (
            'where[0]: expected data.external_id prefix "x", but data.external_id is missing'
        ),
        "nan": 'where[0]: expected data.payload.note gt 1, got "n" (not a decimal number)',
        "any": (
            "where[0]: none of the `any` alternatives held: "
            'where[0].any[0]: expected data.fiat.currency eq "EUR", got "USD"; '
            "where[0].any[1]: expected data.kind to exist, it is missing"
        ),
        "not": (
            'where[0]: expected not(data.payload.note eq "n"), but it held: data.payload.note = "n"'
        ),
        "hit": None,
    }
    text = routing.format_explanation(router.explain(event), router.route(event))
    assert text.splitlines()[0] == "routes (1 of 8 matched):"
    assert "  MATCH hit" in text
    assert 'miss  amount    where[1]: expected data.fiat.amount gte 2000, got "1500.00"' in text
    assert text.splitlines()[-2:] == ["deliveries:", "  audit <- hit"]


def test_explain_text_for_unmatched_and_unrouted() -> None:
    """The explanation says where an unmatched event goes, or that it would be unrouted."""
    routes = [{"name": "w", "match": {"type": "withdrawal.*"}, "to": ["risk"]}]
    event = _event()
    with_unmatched = _compile(routes, ["orders"])
    text = routing.format_explanation(with_unmatched.explain(event), with_unmatched.route(event))
    assert text.endswith("no route matched: delivered to the unmatched destinations: orders")
    bare = _compile(routes)
    text = routing.format_explanation(bare.explain(event), bare.route(event))
    assert text.endswith("no route matched and no `unmatched` destinations: status `unrouted`")


def test_eq_index_keeps_config_order_and_checks_the_rest() -> None:
    """Routes found through the `eq` hash index still run their other conditions, in order."""
    routes = [
        {
            "name": f"m{i}",
            "match": {
                "where": [
                    {"path": "data.payload.merchant", "eq": f"m{i % 3}"},
                    {"path": "data.fiat.amount", "gte": i},
                ]
            },
            "to": ["orders"],
        }
        for i in range(9)
    ] + [
        {
            "name": "in",
            "match": {"where": [{"path": "data.payload.merchant", "in": ["m1", "m2"]}]},
            "to": ["audit"],
        }
    ]
    router = _compile(routes)
    event = _event()
    event["data"]["payload"]["merchant"] = "m1"
    event["data"]["fiat"]["amount"] = "4"
    assert router.route(event).routes == ("m1", "m4", "in")
    assert [t.route for t in router.explain(event) if t.matched] == ["m1", "m4", "in"]
    event["data"]["payload"]["merchant"] = 1  # a number never equals a string `eq`
    assert router.route(event).unmatched


def test_decimal_payload_numbers_compare_exactly() -> None:
    """Payload numbers decoded as Decimal or int compare exactly with decimal thresholds."""
    router = _compile(
        [
            {
                "name": "r",
                "match": {"where": [{"path": "data.payload.qty", "gt": "0.1"}]},
                "to": ["orders"],
            }
        ]
    )
    assert not router.route(_event(payload={"qty": Decimal("0.1")})).routes
    assert router.route(_event(payload={"qty": Decimal("0.1000000000000000000001")})).routes
    assert router.route(_event(payload={"qty": 1})).routes


def test_router_accepts_any_mapping() -> None:
    """Events that are read-only mappings (not dicts) route and omit the same way."""
    from types import MappingProxyType

    router = _compile(
        [
            {
                "name": "r",
                "match": {"where": [{"path": "data.fiat.amount", "gte": 1}]},
                "to": ["orders"],
                "omit": ["data.payload"],
            }
        ]
    )
    event = _event()
    frozen = MappingProxyType({**event, "data": MappingProxyType(event["data"])})
    [delivery] = router.route(frozen).deliveries
    assert "payload" not in delivery.event["data"]
    assert "payload" in frozen["data"]


def test_event_shape_matches_the_cloudevent_model() -> None:
    """The paths validation knows are exactly the fields of gateway.event.CloudEvent."""
    from gateway.event import CloudEvent, EventData, Money

    def names(struct: Any) -> set[str]:
        return {f.name for f in msgspec.structs.fields(struct)}

    assert set(EVENT_SHAPE) == names(CloudEvent)
    assert set(EVENT_SHAPE["data"]) == names(EventData)
    assert set(EVENT_SHAPE["data"]["fiat"]) == names(Money) == set(EVENT_SHAPE["data"]["crypto"])


# The SPEC §4 example routes, with one nested `any`/`not` predicate more for the schema.
_LARGE = SPEC_ROUTES[1]
SPEC_EXAMPLE: dict[str, Any] = {
    "routes": [
        SPEC_ROUTES[0],
        _LARGE
        | {
            "match": _LARGE["match"]
            | {
                "where": [
                    *_LARGE["match"]["where"],
                    {
                        "any": [
                            {"path": "data.external_id", "exists": False},
                            {"not": {"path": "data.external_id", "prefix": "test-"}},
                        ]
                    },
                ]
            }
        },
    ],
    "unmatched": ["orders"],
}


def test_schema_accepts_valid_and_rejects_invalid_routes() -> None:
    """schema() is a valid 2020-12 schema that accepts the SPEC example and rejects typos."""
    schema = routing.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(SPEC_EXAMPLE)) == []
    json.dumps(schema)  # plain JSON, ready for `gateway schema`
    bad_routes: list[Any] = [
        [{"name": "r", "match": {"tpye": "x"}, "to": ["o"]}],
        [{"name": "r", "match": {}, "to": []}],
        [{"name": "r", "match": {"where": [{"path": "id", "equals": "x"}]}, "to": ["o"]}],
        [{"name": "r", "match": {"where": [{"path": "id", "eq": "x", "ne": "y"}]}, "to": ["o"]}],
        [{"name": "r", "match": {"where": [{"path": "id", "in": "x"}]}, "to": ["o"]}],
        [{"name": "r", "match": {"where": [{"path": "id", "gte": "abc"}]}, "to": ["o"]}],
        [{"name": "r", "match": {"where": [{"any": [], "path": "x"}]}, "to": ["o"]}],
        [{"match": {}, "to": ["o"]}],
    ]
    for routes in bad_routes:
        assert list(validator.iter_errors({"routes": routes})), routes


def test_spec_example_compiles() -> None:
    """The same example compiles with the engine (schema and engine agree on it)."""
    router = routing.compile_routes(
        SPEC_EXAMPLE["routes"],
        SPEC_EXAMPLE["unmatched"],
        ["orders", "ledger"],
        {"whitepay": "whitepay", "w3block": "w3block"},
    )
    assert [r.name for r in router.routes] == ["all-orders", "large-completed-orders-to-ledger"]


@pytest.mark.parametrize(
    "name", ["asyncio", "socket", "litestar", "aiokafka", "httpx", "aiohttp", "gateway"]
)
def test_routing_is_a_pure_library(name: str) -> None:
    """Importing and using `routing` loads no I/O or service module."""
    code = (
        "import sys, routing\n"
        "routes = [{'name': 'a', 'match': {'type': 'order.*'}, 'to': ['d']}]\n"
        "r = routing.compile_routes(routes, ['d'], ['d'])\n"
        "r.route({'type': 'order.completed'}); r.explain({'type': 'x'}); routing.schema()\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = {m.split(".")[0] for m in result.stdout.split()}
    assert "routing" in loaded
    assert name not in loaded


def test_long_values_route_without_being_memoized() -> None:
    """Oversized attribute values and amounts still route correctly, and are not cached."""
    router = _compile(
        [
            {"name": "glob", "match": {"type": "order.*"}, "to": ["orders"]},
            {
                "name": "big",
                "match": {"where": [{"path": "data.fiat.amount", "gt": "1e99"}]},
                "to": ["risk"],
            },
        ]
    )
    event = _event()
    event["type"] = "order." + "x" * 300
    event["data"]["fiat"]["amount"] = "1" + "0" * 100 + ".5"
    assert router.route(event).routes == ("glob", "big")
    assert router.route(event).routes == ("glob", "big")
    event["data"]["fiat"]["amount"] = "9" * 99
    assert router.route(event).routes == ("glob",)
    assert all(len(k[2]) < 300 for k in router._plans)  # long keys are never memoized
