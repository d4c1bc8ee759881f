"""The SPEC §4 example routes behave as documented (the first end-to-end check)."""

from __future__ import annotations

from typing import Any

import routing

DESTINATIONS = ("orders", "ledger")
SOURCES = {"fatpay": "fatpay", "whitepay": "whitepay", "w3block": "w3block"}
ROUTES: list[dict[str, Any]] = [
    {"name": "all-orders", "match": {"type": "order.*"}, "to": ["orders"]},
    {
        "name": "large-completed-orders-to-ledger",
        "match": {
            "provider": ["whitepay", "w3block"],
            "type": "order.completed",
            "where": [
                {"path": "data.fiat.currency", "in": ["USD", "EUR"]},
                {"path": "data.fiat.amount", "gte": "1000"},
            ],
        },
        "to": ["ledger"],
        "omit": ["data.payload.data.paymentInfo.clientSecret"],
    },
]


def _event(amount: str, currency: str = "USD", kind: str = "order.completed") -> dict[str, Any]:
    return {
        "id": "e1",
        "source": "/webhooks/w3block",
        "provider": "w3block",
        "type": kind,
        "data": {
            "fiat": {"currency": currency, "amount": amount},
            "payload": {"data": {"paymentInfo": {"clientSecret": "cs", "publicKey": "pk"}}},
        },
    }


def test_spec_example_fans_out_and_omits_only_for_the_ledger() -> None:
    """A large USD order reaches both destinations; only the ledger copy loses the secret."""
    router = routing.compile_routes(ROUTES, ["orders"], DESTINATIONS, SOURCES)
    event = _event("1000.00")
    routed = router.route(event)
    assert routed.routes == ("all-orders", "large-completed-orders-to-ledger")
    assert not routed.unmatched
    by_dest = {d.destination: d for d in routed.deliveries}
    assert by_dest["orders"].event is event
    assert "clientSecret" not in by_dest["ledger"].event["data"]["payload"]["data"]["paymentInfo"]
    assert event["data"]["payload"]["data"]["paymentInfo"]["clientSecret"] == "cs"


def test_spec_example_unmatched_goes_to_unmatched_destinations() -> None:
    """An event no route matches is delivered to the `unmatched` destinations, flagged."""
    router = routing.compile_routes(ROUTES, ["orders"], DESTINATIONS, SOURCES)
    routed = router.route(_event("5", kind="withdrawal.completed"))
    assert routed.unmatched
    assert routed.routes == ()
    assert [d.destination for d in routed.deliveries] == ["orders"]
