"""Raw YAML `routes`/`unmatched` -> validated model -> Router, collecting every error."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from routing.errors import PathPart, RoutingConfigError, RuleError
from routing.match import Router
from routing.model import OPERATORS, AllOf, AnyOf, Condition, Match, Not, Predicate, Route
from routing.paths import REQUIRED_ATTRIBUTES, check_path, did_you_mean, type_name
from routing.values import glob_regex, is_glob, parse_value

ROUTE_KEYS = ("name", "match", "to", "omit")
MATCH_KEYS = ("source", "provider", "type", "where")
COMBINATORS = ("any", "all", "not")
Path = tuple[PathPart, ...]


def compile_routes(
    routes: object,
    unmatched: object,
    destinations: Collection[str],
    sources: Mapping[str, str] | None = None,
    *,
    statuses: Collection[str] | None = None,
) -> Router:
    """Validate the `routes` and `unmatched` config values and compile them into a Router.

    `sources` (source name -> provider) lets routes that can never match be rejected;
    `statuses` (the normalized status vocabulary) lets `type: order.complete` be rejected.
    Raises RoutingConfigError carrying every problem found.
    """
    parser = _Parser(destinations, sources, statuses)
    parsed = parser.routes(routes)
    names = parser.unmatched(unmatched)
    if parser.errors:
        raise RoutingConfigError(parser.errors)
    return Router(parsed, names)


def _key(key: object) -> str:
    return key if isinstance(key, str) else str(key)


class _Parser:
    def __init__(
        self,
        destinations: Collection[str],
        sources: Mapping[str, str] | None,
        statuses: Collection[str] | None,
    ) -> None:
        self.errors: list[RuleError] = []
        self.destinations = frozenset(destinations)
        self.sources = sources
        self.providers = None if sources is None else frozenset(sources.values())
        self.statuses = None if statuses is None else frozenset(statuses)

    def error(self, path: Path, message: str) -> None:
        self.errors.append(RuleError(path, message))

    def unknown_keys(self, raw: Mapping[Any, Any], allowed: tuple[str, ...], path: Path) -> None:
        for key in raw:
            if key not in allowed:
                name = _key(key)
                self.error((*path, name), f"unknown key `{name}`{did_you_mean(name, allowed)}")

    # -- routes ---------------------------------------------------------------------------

    def routes(self, raw: object) -> list[Route]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(("routes",), f"expected a list of routes, got {type_name(raw)}")
            return []
        seen: dict[str, int] = {}
        out: list[Route] = []
        for i, item in enumerate(raw):
            route = self.route(item, ("routes", i), seen)
            if route is not None:
                out.append(route)
        return out

    def route(self, raw: object, path: Path, seen: dict[str, int]) -> Route | None:
        if not isinstance(raw, Mapping):
            self.error(path, f"expected a route mapping (name, match, to), got {type_name(raw)}")
            return None
        before = len(self.errors)
        self.unknown_keys(raw, ROUTE_KEYS, path)
        name = self.name(raw, path, seen)
        match: Match | None = None
        if "match" not in raw:
            self.error(path, "missing required key `match` (`match: {}` matches every event)")
        else:
            match = self.match(raw["match"], (*path, "match"))
        to = self.to(raw, path)
        omit = self.omit(raw["omit"], (*path, "omit")) if "omit" in raw else ()
        if len(self.errors) > before or name is None or match is None:
            return None
        return Route(name=name, match=match, to=to, omit=omit)

    def name(self, raw: Mapping[Any, Any], path: Path, seen: dict[str, int]) -> str | None:
        if "name" not in raw:
            self.error(path, "missing required key `name`")
            return None
        name = raw["name"]
        if not isinstance(name, str):
            self.error((*path, "name"), f"expected a non-empty string, got {type_name(name)}")
            return None
        if not name.strip():
            self.error((*path, "name"), "expected a non-empty string, got a blank one")
            return None
        if name in seen:
            self.error((*path, "name"), f"duplicate route name `{name}` (routes[{seen[name]}])")
            return None
        seen[name] = int(path[-1])
        return name

    def to(self, raw: Mapping[Any, Any], path: Path) -> tuple[str, ...]:
        if "to" not in raw:
            self.error(path, "missing required key `to` (a list of destination names)")
            return ()
        return self.destination_list(raw["to"], (*path, "to"), allow_empty=False)

    def destination_list(self, raw: object, path: Path, *, allow_empty: bool) -> tuple[str, ...]:
        if isinstance(raw, str):
            self.error(path, f"expected a list of destination names, got a string; write [{raw}]")
            return ()
        if not isinstance(raw, list):
            self.error(path, f"expected a list of destination names, got {type_name(raw)}")
            return ()
        if not raw and not allow_empty:
            self.error(path, "empty list: the route would send events nowhere")
        names: list[str] = []
        for k, item in enumerate(raw):
            if not isinstance(item, str):
                self.error((*path, k), f"expected a destination name, got {type_name(item)}")
            elif item not in self.destinations:
                hint = did_you_mean(item, sorted(self.destinations))
                self.error((*path, k), f"unknown destination `{item}`{hint}")
            elif item in names:
                self.error((*path, k), f"destination `{item}` is listed twice")
            else:
                names.append(item)
        return tuple(names)

    def omit(self, raw: object, path: Path) -> tuple[str, ...]:
        if not isinstance(raw, list):
            self.error(path, f"expected a list of paths, got {type_name(raw)}")
            return ()
        paths: list[str] = []
        for k, item in enumerate(raw):
            problem = check_path(item)
            if problem is None and str(item).split(".")[0] in REQUIRED_ATTRIBUTES:
                problem = f"`{item}` is a required CloudEvents attribute and cannot be omitted"
            if problem is None and item in paths:
                problem = f"`{item}` is listed twice"
            if problem is not None:
                self.error((*path, k), problem)
            else:
                paths.append(str(item))
        return tuple(paths)

    def unmatched(self, raw: object) -> tuple[str, ...]:
        if raw is None:
            return ()
        return self.destination_list(raw, ("unmatched",), allow_empty=True)

    # -- match ----------------------------------------------------------------------------

    def match(self, raw: object, path: Path) -> Match | None:
        if not isinstance(raw, Mapping):
            hint = " (`match: {}` matches every event)" if raw is None else ""
            self.error(path, f"expected a mapping, got {type_name(raw)}{hint}")
            return None
        before = len(self.errors)
        for key in raw:
            if key in COMBINATORS:
                self.error(
                    (*path, key),
                    f"`{key}` is a condition: put it in the `where` list (where: [{{{key}: ...}}])",
                )
            elif key not in MATCH_KEYS:
                name = _key(key)
                self.error((*path, name), f"unknown key `{name}`{did_you_mean(name, MATCH_KEYS)}")
        source = self.names(raw, "source", path, self.sources)
        provider = self.names(raw, "provider", path, self.providers)
        kinds = self.types(raw["type"], (*path, "type")) if "type" in raw else ()
        where: tuple[Condition, ...] = ()
        if "where" in raw:
            where = self.conditions(raw["where"], (*path, "where"), "where")
        if self.sources is not None and source and provider and len(self.errors) == before:
            used = {self.sources[s] for s in source}
            if used.isdisjoint(provider):
                self.error(
                    (*path, "provider"),
                    f"source {', '.join(source)} uses provider {', '.join(sorted(used))}, "
                    "so this route can never match",
                )
        if len(self.errors) > before:
            return None
        return Match(source=source, provider=provider, type=kinds, where=where)

    def names(
        self, raw: Mapping[Any, Any], key: str, path: Path, known: Collection[str] | None
    ) -> tuple[str, ...]:
        if key not in raw:
            return ()
        path = (*path, key)
        value = raw[key]
        items = self.string_list(value, path, key)
        out: list[str] = []
        for k, item in items:
            where = path if isinstance(value, str) else (*path, k)
            if known is not None and item not in known:
                if key == "source":
                    self.error(where, f"unknown source `{item}`{did_you_mean(item, sorted(known))}")
                else:
                    used = ", ".join(sorted(known)) or "none"
                    self.error(
                        where,
                        f"no source uses provider `{item}` (sources use: {used}), "
                        "so this route can never match",
                    )
            out.append(item)
        return tuple(out)

    def string_list(self, value: object, path: Path, what: str) -> list[tuple[int, str]]:
        if isinstance(value, str):
            if not value:
                self.error(path, f"empty {what}")
                return []
            return [(0, value)]
        if not isinstance(value, list):
            self.error(path, f"expected a {what} or a list of them, got {type_name(value)}")
            return []
        if not value:
            self.error(path, "empty list: the route could never match")
        out: list[tuple[int, str]] = []
        for k, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.error((*path, k), f"expected a non-empty string, got {type_name(item)}")
            elif any(item == seen for _, seen in out):
                self.error((*path, k), f"`{item}` is listed twice")
            else:
                out.append((k, item))
        return out

    def types(self, value: object, path: Path) -> tuple[str, ...]:
        out: list[str] = []
        for k, item in self.string_list(value, path, "type"):
            where = path if isinstance(value, str) else (*path, k)
            if is_glob(item):
                try:
                    glob_regex(item)
                except ValueError as exc:
                    self.error(where, f"invalid glob `{item}`: {exc}")
                    continue
            elif self.statuses is not None:
                kind, dot, status = item.rpartition(".")
                if not dot or not kind:
                    self.error(
                        where, f"expected `<kind>.<status>` such as order.completed, got `{item}`"
                    )
                    continue
                if status not in self.statuses:
                    hint = did_you_mean(status, sorted(self.statuses))
                    self.error(where, f"unknown status `{status}` in type `{item}`{hint}")
                    continue
            out.append(item)
        return tuple(out)

    # -- conditions -----------------------------------------------------------------------

    def conditions(self, raw: object, path: Path, what: str) -> tuple[Condition, ...]:
        if not isinstance(raw, list):
            self.error(
                path,
                f"expected a list of conditions, got {type_name(raw)}; "
                f"write `{what}: [{{path: ..., eq: ...}}]`",
            )
            return ()
        if not raw:
            self.error(path, f"empty `{what}` list: remove it or add a condition")
        found: list[tuple[int, Condition]] = []
        for j, item in enumerate(raw):
            cond = self.condition(item, (*path, j))
            if cond is not None:
                found.append((j, cond))
        if what in ("where", "all"):  # conjunctions only: a contradiction there is unreachable
            self.contradictions(found, path)
        return tuple(cond for _, cond in found)

    def condition(self, raw: object, path: Path) -> Condition | None:
        if not isinstance(raw, Mapping):
            self.error(
                path,
                "expected a predicate {path: ..., <op>: ...} or any/all/not, "
                f"got {type_name(raw)}",
            )
            return None
        combinators = [k for k in raw if k in COMBINATORS]
        if not combinators:
            return self.predicate(raw, path)
        before = len(self.errors)
        key = combinators[0]
        for other in raw:
            if other != key:
                self.error(
                    (*path, _key(other)),
                    f"`{key}` must be alone in its mapping; move `{_key(other)}` "
                    "to a separate condition",
                )
        value = raw[key]
        if key == "not" and isinstance(value, Mapping):
            inner = self.condition(value, (*path, key))
            return None if inner is None or len(self.errors) > before else Not(inner)
        items = self.conditions(value, (*path, key), key)
        if len(self.errors) > before:
            return None
        if key == "any":
            return AnyOf(items)
        return Not(AllOf(items)) if key == "not" else AllOf(items)

    def predicate(self, raw: Mapping[Any, Any], path: Path) -> Predicate | None:
        before = len(self.errors)
        ops = [k for k in raw if k in OPERATORS]
        for key in raw:
            if key != "path" and key not in OPERATORS:
                name = _key(key)
                self.error(
                    (*path, name),
                    f"unknown operator `{name}`{did_you_mean(name, (*OPERATORS, 'path'))}",
                )
        target = raw.get("path")
        if "path" not in raw:
            self.error(path, "missing `path` (the dotted path the predicate tests)")
        else:
            problem = check_path(target)
            if problem:
                self.error((*path, "path"), problem)
        if not ops:
            if len(self.errors) == before:
                self.error(path, f"missing an operator: one of {', '.join(OPERATORS)}")
            return None
        for extra in ops[1:]:
            self.error(
                (*path, extra),
                f"one operator per predicate (`{ops[0]}` is already set); "
                "add a second predicate for this one",
            )
        op = ops[0]
        value, problems = parse_value(op, raw[op])
        for sub, message in problems:
            self.error((*path, op, *sub), message)
        if len(self.errors) > before:
            return None
        return Predicate(str(target), op, value)

    def contradictions(self, found: list[tuple[int, Condition]], path: Path) -> None:
        """Flag ANDed string `eq`/`in` predicates on one path that no value can satisfy."""
        allowed: dict[str, tuple[int, frozenset[str]]] = {}
        for j, cond in found:
            if not isinstance(cond, Predicate):
                continue
            values = _string_values(cond)
            if values is None:
                continue
            if cond.path in allowed:
                first, earlier = allowed[cond.path]
                values &= earlier
                if not values:
                    self.error(
                        (*path, j, cond.op),
                        f"contradicts {path[-1]}[{first}]: no value of {cond.path} satisfies "
                        "both, so this route can never match",
                    )
                    continue
            allowed[cond.path] = (j, values)


def _string_values(pred: Predicate) -> frozenset[str] | None:
    if pred.op == "eq" and isinstance(pred.value, str):
        return frozenset((pred.value,))
    if pred.op == "in" and all(isinstance(v, str) for v in pred.value):
        return frozenset(pred.value)
    return None
