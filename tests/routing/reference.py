"""The reference routing model: the documented semantics, evaluated straight from the raw rules.

The property tests check the compiled router against it; `benchmarks/routing_bench.py` uses it
as the naive baseline it times the compiled router against.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from decimal import Decimal, InvalidOperation
from typing import Any

ABSENT = object()
TOMB = object()

# -- the reference evaluator --------------------------------------------------------------

_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def ref_resolve(event: Any, path: str) -> Any:
    """Walk a dotted path; digit segments index lists; anything else is absent."""
    node = event
    for part in path.split("."):
        if isinstance(node, dict):
            if part not in node:
                return ABSENT
            node = node[part]
        elif isinstance(node, list) and part.isascii() and part.isdigit():
            if int(part) >= len(node):
                return ABSENT
            node = node[int(part)]
        else:
            return ABSENT
    return node


def ref_number(value: Any) -> Decimal | None:
    """A finite exact number from an int, Decimal, float or strict decimal string."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, str) and _DECIMAL.fullmatch(value):
            number = Decimal(value)
        else:
            return None
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def ref_equal(want: Any, value: Any) -> bool:
    """`eq` semantics: typed for strings, booleans and null; decimal for numbers."""
    if want is None or isinstance(want, bool):
        return value is want
    if isinstance(want, str):
        return isinstance(value, str) and value == want
    number = ref_number(value)
    return number is not None and number == ref_number(want)


def ref_holds(cond: dict[str, Any], event: Any) -> bool:
    """One condition of a `where` list, straight from its YAML shape."""
    if "any" in cond:
        return any(ref_holds(c, event) for c in cond["any"])
    if "all" in cond:
        return all(ref_holds(c, event) for c in cond["all"])
    if "not" in cond:
        inner = cond["not"]
        inner_list = inner if isinstance(inner, list) else [inner]
        return not all(ref_holds(c, event) for c in inner_list)
    [op] = [k for k in cond if k != "path"]
    want = cond[op]
    value = ref_resolve(event, cond["path"])
    if op == "exists":
        return (value is not ABSENT) == want
    if value is ABSENT:
        return False
    if op == "eq":
        return ref_equal(want, value)
    if op == "ne":
        return not ref_equal(want, value)
    if op == "in":
        return any(ref_equal(w, value) for w in want)
    if op == "not_in":
        return not any(ref_equal(w, value) for w in want)
    if op in ("prefix", "suffix", "glob", "regex"):
        if not isinstance(value, str):
            return False
        if op == "prefix":
            return value.startswith(want)
        if op == "suffix":
            return value.endswith(want)
        if op == "glob":
            return fnmatch.fnmatchcase(value, want)
        return re.search(want, value) is not None
    number, limit = ref_number(value), ref_number(want)
    if number is None or limit is None:
        return False
    return {
        "gt": number > limit,
        "gte": number >= limit,
        "lt": number < limit,
        "lte": number <= limit,
    }[op]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def ref_matches(route: dict[str, Any], event: dict[str, Any]) -> bool:
    """A whole route: source name (either form), provider, type globs, then `where`."""
    match = route["match"]
    if "source" in match:
        source = event.get("source")
        if not isinstance(source, str):
            return False
        if source.startswith("/webhooks/"):
            source = source[len("/webhooks/") :]
        if source not in _as_list(match["source"]):
            return False
    if "provider" in match and event.get("provider") not in _as_list(match["provider"]):
        return False
    if "type" in match:
        kind = event.get("type")
        if not isinstance(kind, str):
            return False
        if not any(fnmatch.fnmatchcase(kind, t) for t in _as_list(match["type"])):
            return False
    return all(ref_holds(c, event) for c in match.get("where", []))


def _mark(node: Any, parts: list[str]) -> None:
    for part in parts[:-1]:
        node = ref_resolve(node, part)
        if node is ABSENT or node is TOMB:
            return
    last = parts[-1]
    if isinstance(node, dict) and last in node:
        node[last] = TOMB
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = TOMB


def _sweep(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _sweep(v) for k, v in node.items() if v is not TOMB}
    if isinstance(node, list):
        return [_sweep(v) for v in node if v is not TOMB]
    return node


def ref_omit(event: dict[str, Any], paths: set[str]) -> dict[str, Any]:
    """The event without `paths`, by marking a deep copy and sweeping the marks out."""
    if not paths:
        return event
    marked = copy.deepcopy(event)
    for path in paths:
        _mark(marked, path.split("."))
    result: dict[str, Any] = _sweep(marked)
    return result


def ref_route(
    routes: list[dict[str, Any]], unmatched: list[str], event: dict[str, Any]
) -> tuple[list[str], list[tuple[str, tuple[str, ...], Any]]]:
    """Matched route names and (destination, routes, event) deliveries, per the docs."""
    matched = [r for r in routes if ref_matches(r, event)]
    if not matched:
        return [], [(d, (), event) for d in unmatched]
    senders: dict[str, list[dict[str, Any]]] = {}
    for route in matched:
        for destination in route["to"]:
            senders.setdefault(destination, []).append(route)
    deliveries = []
    for destination, rs in senders.items():
        paths = {p for r in rs for p in r.get("omit", [])}
        deliveries.append((destination, tuple(r["name"] for r in rs), ref_omit(event, paths)))
    return [r["name"] for r in matched], deliveries
