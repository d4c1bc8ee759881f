"""Routing micro-benchmark: compiled router vs a naive linear evaluator of the same rules.

Prints the median match time per event for 10, 100 and 1,000 routes, both ways, measured
in the same run, and writes the figures to benchmarks/results/routing.json.

    .venv/bin/python benchmarks/routing_bench.py          # full run (~1 minute)
    .venv/bin/python benchmarks/routing_bench.py --quick  # a few seconds

The rule set mimics a platform with many teams, spread over five providers and 28 event
types: 60% per-merchant subscriptions (a string `eq` on a payload field, by exact type or
kind glob), 15% type-to-topic routes, 15% currency + amount thresholds, 9% nested
any/not/regex conditions (8% by type or kind glob, 1% on every event of a provider) and 1%
kind-wide globs; 10% of routes omit a field. Events are drawn
from the same vocabulary, so a realistic share of them match several routes. Timings
are steady state: each router sees every event once before the clock starts, which fills
its memo of (source, provider, type) plans exactly as the first requests of a server do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import routing  # noqa: E402
from tests.routing.reference import ref_matches  # noqa: E402

PROVIDERS = ("fatpay", "velafi", "pay3", "whitepay", "w3block")
KINDS = ("order", "transaction", "withdrawal", "funding")
STATUSES = ("created", "pending", "processing", "completed", "failed", "declined", "cancelled")
CURRENCIES = ("USD", "EUR", "UAH", "BRL", "GBP")
DESTINATIONS = tuple(f"team-{i}" for i in range(40))
MERCHANTS = 400


def make_routes(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """`n` valid routes in the mix described in the module docstring."""
    routes: list[dict[str, Any]] = []
    for i in range(n):
        provider = rng.choice(PROVIDERS)
        kind = rng.choice(KINDS)
        exact = f"{kind}.{rng.choice(STATUSES)}"
        roll = rng.random()
        match: dict[str, Any]
        if roll < 0.6:  # one merchant's events of one type or kind
            match = {
                "provider": provider,
                "type": rng.choice([exact, f"{kind}.*"]),
                "where": [{"path": "data.payload.merchant", "eq": f"m-{rng.randrange(MERCHANTS)}"}],
            }
        elif roll < 0.75:  # a type to a topic
            match = {"provider": provider, "type": exact}
        elif roll < 0.9:  # large amounts in some currencies
            match = {
                "provider": rng.sample(PROVIDERS, 2),
                "type": exact,
                "where": [
                    {"path": "data.fiat.currency", "in": rng.sample(CURRENCIES, 2)},
                    {"path": "data.fiat.amount", "gte": str(rng.randrange(100, 10000))},
                ],
            }
        elif roll < 0.99:  # nested combinators; one in nine on every type of a provider
            match = {
                "provider": provider,
                "where": [
                    {
                        "any": [
                            {"path": "data.fiat.amount", "gt": f"{rng.randrange(100, 9000)}.50"},
                            {"path": "data.crypto.amount", "gte": str(rng.randrange(1, 5))},
                        ]
                    },
                    {"not": {"path": "data.external_id", "prefix": rng.choice(["test-", "qa-"])}},
                    {
                        "path": "data.payload.items.0.sku",
                        "regex": f"^sku-[0-{rng.randrange(1, 9)}]+$",
                    },
                ],
            }
            if roll < 0.98:
                match["type"] = rng.choice([exact, f"{kind}.*"])
        else:  # every event of a kind
            match = {"type": f"{kind}.*"}
        route: dict[str, Any] = {
            "name": f"route-{i}",
            "match": match,
            "to": [rng.choice(DESTINATIONS)],
        }
        if rng.random() < 0.1:
            route["omit"] = ["data.payload.secret"]
        routes.append(route)
    return routes


def make_events(m: int, rng: random.Random) -> list[dict[str, Any]]:
    """`m` normalized events over the same vocabulary as the routes."""
    events = []
    for i in range(m):
        provider = rng.choice(PROVIDERS)
        amount = rng.choice(["99.99", "1000.00", "2500.51", "7.5e3", "12", "abc"])
        events.append(
            {
                "specversion": "1.0",
                "id": f"{i:032x}",
                "source": f"/webhooks/{provider}",
                "type": f"{rng.choice(KINDS)}.{rng.choice(STATUSES)}",
                "provider": provider,
                "subject": f"order-{i}",
                "partitionkey": f"order-{i}",
                "data": {
                    "kind": "order",
                    "id": f"order-{i}",
                    "external_id": rng.choice(["test-1", "prod-1", None]),
                    "status": "completed",
                    "fiat": {"currency": rng.choice(CURRENCIES), "amount": amount},
                    "crypto": rng.choice([None, {"currency": "USDC", "amount": "2"}]),
                    "payload": {
                        "merchant": f"m-{rng.randrange(MERCHANTS)}",
                        "secret": "s3cr3t",
                        "items": [{"sku": rng.choice(["sku-1", "x"]), "qty": 1}],
                    },
                },
            }
        )
    return events


# -- the baseline: interpret the raw rules for every event, route by route -----------------
# Matching is the reference model of the property tests (tests/routing/reference.py).


def _drop(node: Any, parts: list[str]) -> Any:
    if not isinstance(node, dict) or parts[0] not in node:
        return node
    copy = dict(node)
    if len(parts) == 1:
        del copy[parts[0]]
    else:
        copy[parts[0]] = _drop(node[parts[0]], parts[1:])
    return copy


def naive_route(routes: list[dict[str, Any]], unmatched: list[str], event: dict[str, Any]) -> Any:
    """The baseline router: every route in order, then per-destination copies with omits."""
    matched = [r for r in routes if ref_matches(r, event)]
    if not matched:
        return [], [(d, event) for d in unmatched]
    omits: dict[str, set[str]] = {}
    for route in matched:
        for destination in route["to"]:
            omits.setdefault(destination, set()).update(route.get("omit", ()))
    deliveries = []
    for destination, paths in omits.items():
        copy = event
        for path in sorted(paths):
            copy = _drop(copy, path.split("."))
        deliveries.append((destination, copy))
    return [r["name"] for r in matched], deliveries


# -- measurement ---------------------------------------------------------------------------


def per_event_us(
    fns: dict[str, Any], events: list[dict[str, Any]], rounds: int
) -> dict[str, tuple[float, float]]:
    """Per function: median and minimum over `rounds` of the mean CPU µs per event.

    The functions take turns within each round, so a burst of load on a shared machine
    hits both sides of the comparison alike. CPU time of this process, not wall time:
    time spent descheduled behind other processes is not the router's cost.
    """
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.process_time()
            for event in events:
                fn(event)
            samples[name].append((time.process_time() - start) / len(events) * 1e6)
    return {name: (statistics.median(s), min(s)) for name, s in samples.items()}


def calibration_ns(rounds: int) -> float:
    """The CPU time of one empty Python call in a loop (ns): this machine's speed, for scale."""
    calls = [None] * 100_000

    def nothing(_: Any) -> None:
        return None

    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for item in calls:
            nothing(item)
        samples.append((time.process_time() - start) / len(calls) * 1e9)
    return statistics.median(samples)


def run(sizes: tuple[int, ...], n_events: int, rounds: int) -> list[dict[str, Any]]:
    """Benchmark each route count; check both routers agree on every event first."""
    results = []
    for size in sizes:
        rng = random.Random(size)
        routes = make_routes(size, rng)
        events = make_events(n_events, rng)
        unmatched = ["team-0"]
        sources = {p: p for p in PROVIDERS}
        start = time.perf_counter()
        router = routing.compile_routes(routes, unmatched, DESTINATIONS, sources)
        compile_ms = (time.perf_counter() - start) * 1e3
        matched = 0
        for event in events:  # correctness first, and the warm-up of the plan memo
            routed = router.route(event)
            names, deliveries = naive_route(routes, unmatched, event)
            assert list(routed.routes) == names, (routed.routes, names)
            assert [(d.destination, d.event) for d in routed.deliveries] == deliveries
            matched += len(names)
        timed = per_event_us(
            {"compiled": router.route, "naive": partial(naive_route, routes, unmatched)},
            events,
            rounds,
        )
        (compiled, compiled_min), (naive, naive_min) = timed["compiled"], timed["naive"]
        results.append(
            {
                "routes": size,
                "compiled_us": round(compiled, 3),
                "naive_us": round(naive, 3),
                "speedup": round(naive / compiled, 1),
                "compiled_min_us": round(compiled_min, 3),
                "naive_min_us": round(naive_min, 3),
                "matched_routes_per_event": round(matched / len(events), 2),
                "compile_ms": round(compile_ms, 1),
            }
        )
    return results


def main() -> None:
    """Run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events and rounds")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/routing.json")
    args = parser.parse_args()
    n_events, rounds = (500, 3) if args.quick else (2000, 9)
    results = run((10, 100, 1000), n_events, rounds)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    empty_call = calibration_ns(rounds)
    print(f"routing: median CPU time per event ({n_events} events x {rounds} rounds)")
    print(
        f"{'routes':>7} {'compiled µs':>12} {'naive µs':>10} {'speedup':>8} {'matches/event':>14}"
    )
    for row in results:
        print(
            f"{row['routes']:>7} {row['compiled_us']:>12.2f} {row['naive_us']:>10.2f} "
            f"{row['speedup']:>7.1f}x {row['matched_routes_per_event']:>14.2f}"
        )
    top = results[-1]
    ok = top["speedup"] >= 10 and top["compiled_us"] < 20
    print(f"target at 1,000 routes (>= 10x naive, < 20 µs): {'met' if ok else 'MISSED'}")
    if load is not None:
        print(f"load average while measuring: {load:.2f} on {os.cpu_count()} CPUs")
    print(f"machine speed: an empty Python call costs {empty_call:.0f} ns here")
    report = {
        "benchmark": "routing",
        "quick": args.quick,
        "events": n_events,
        "rounds": rounds,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
        "load_average_1m": load,
        "empty_call_ns": round(empty_call, 1),
        "results": results,
        "target": {"routes": 1000, "min_speedup": 10, "max_compiled_us": 20, "met": ok},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
