"""Human-readable text for `gateway explain` and `gateway check`."""

from __future__ import annotations

from collections.abc import Sequence

from routing.conditions import describe
from routing.model import Route, Routed, RouteTrace


def format_explanation(traces: Sequence[RouteTrace], routed: Routed) -> str:
    """Each route's match or miss (with the reason), then where the event would go."""
    lines = [f"routes ({sum(t.matched for t in traces)} of {len(traces)} matched):"]
    width = max((len(t.route) for t in traces), default=0)
    for trace in traces:
        if trace.matched:
            lines.append(f"  MATCH {trace.route}")
        else:
            lines.append(f"  miss  {trace.route.ljust(width)}  {trace.reason}")
    if not traces:
        lines.append("  (no routes configured)")
    if routed.unmatched:
        if routed.deliveries:
            names = ", ".join(d.destination for d in routed.deliveries)
            lines.append(f"no route matched: delivered to the unmatched destinations: {names}")
        else:
            lines.append("no route matched and no `unmatched` destinations: status `unrouted`")
    else:
        lines.append("deliveries:")
        for delivery in routed.deliveries:
            lines.append(f"  {delivery.destination} <- {', '.join(delivery.routes)}")
    return "\n".join(lines)


def describe_route(route: Route) -> str:
    """One line per route for `gateway check`: `name: provider a|b, type x -> dest (omit p)`."""
    parts = []
    match = route.match
    for key, values in (
        ("source", match.source),
        ("provider", match.provider),
        ("type", match.type),
    ):
        if values:
            parts.append(f"{key} {'|'.join(values)}")
    parts.extend(describe(c) for c in match.where)
    condition = ", ".join(parts) if parts else "every event"
    line = f"{route.name}: {condition} -> {', '.join(route.to)}"
    if route.omit:
        line += f" (omit {', '.join(route.omit)})"
    return line
