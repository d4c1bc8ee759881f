"""The validated routing model and the results of routing one event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

# Operators a predicate may use, in the order the docs list them.
OPERATORS: tuple[str, ...] = (
    "eq",
    "ne",
    "in",
    "not_in",
    "exists",
    "prefix",
    "suffix",
    "glob",
    "regex",
    "gt",
    "gte",
    "lt",
    "lte",
)


class Predicate(msgspec.Struct, frozen=True):
    """`{path: <dotted path>, <op>: <value>}`; `value` is normalized (numbers are Decimal)."""

    path: str
    op: str
    value: Any


class AllOf(msgspec.Struct, frozen=True):
    """`all: [...]`: holds when every condition holds."""

    conditions: tuple[Condition, ...]


class AnyOf(msgspec.Struct, frozen=True):
    """`any: [...]`: holds when at least one condition holds."""

    conditions: tuple[Condition, ...]


class Not(msgspec.Struct, frozen=True):
    """`not: <condition>` (a list means `not: {all: [...]}`): holds when it does not."""

    condition: Condition


Condition = Predicate | AllOf | AnyOf | Not


class Match(msgspec.Struct, frozen=True, kw_only=True):
    """A route's `match`; an empty tuple means "no constraint"; all parts are ANDed."""

    source: tuple[str, ...] = ()
    provider: tuple[str, ...] = ()
    type: tuple[str, ...] = ()
    where: tuple[Condition, ...] = ()


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """One route: when `match` holds, the event (minus `omit`) goes to every `to`."""

    name: str
    match: Match
    to: tuple[str, ...]
    omit: tuple[str, ...] = ()


class Delivery(msgspec.Struct, frozen=True):
    """One destination's copy of an event and the routes that sent it there.

    `event` is the input object itself when nothing was omitted; never mutate it.
    """

    destination: str
    event: Mapping[str, Any]
    routes: tuple[str, ...]


class Routed(msgspec.Struct, frozen=True):
    """The outcome of routing one event."""

    routes: tuple[str, ...]
    deliveries: tuple[Delivery, ...]
    unmatched: bool


class RouteTrace(msgspec.Struct, frozen=True):
    """Why one route matched or missed; `reason` names the first failing condition."""

    route: str
    matched: bool
    reason: str | None
