"""The routing engine: a pure library (no I/O) compiling routing rules into a fast matcher.

`compile_routes(...)` validates the raw `routes`/`unmatched` config (every error at once)
and returns a `Router`; `Router.route(event)` decides deliveries and `Router.explain(event)`
says why each route matched or missed, through the same compiled checks.
"""

from routing.compile import compile_routes
from routing.errors import RoutingConfigError, RuleError, format_path
from routing.explain import describe_route, format_explanation
from routing.match import Router
from routing.model import (
    OPERATORS,
    AllOf,
    AnyOf,
    Condition,
    Delivery,
    Match,
    Not,
    Predicate,
    Route,
    Routed,
    RouteTrace,
)
from routing.schema import schema

__all__ = [
    "OPERATORS",
    "AllOf",
    "AnyOf",
    "Condition",
    "Delivery",
    "Match",
    "Not",
    "Predicate",
    "Route",
    "RouteTrace",
    "Routed",
    "Router",
    "RoutingConfigError",
    "RuleError",
    "compile_routes",
    "describe_route",
    "format_explanation",
    "format_path",
    "schema",
]
