"""Routes' `where` conditions compiled to generated functions: what `route` and `explain` run.

A generated function tests every candidate route of a plan (`compile_plan`; `route` and
`explain` both run it) or one route (`compile_holds`, for a hit in a plan's hash table) in
a single call:

- each path segment is looked up once per event and shared (`data`, then `data.fiat`,
  then `data.fiat.amount`); all children of a node are read after one test of its type
  (dict, list, or anything else through `paths.step`);
- a path's value is parsed as a number at most once per event, when first compared;
- predicates are inline expressions from `values.test_source`, the one definition of every
  operator; `all`/`any`/`not` become `and`/`or`/`not`, so they short-circuit the same way;
- a `glob`/`regex` predicate several routes repeat is evaluated once per event.

Paths are resolved up front (a lookup costs less than deciding whether it is needed);
numbers and repeated patterns lazily. A condition nested deeper than the Python parser
allows would not compile: such a route runs its `conditions.py` closures instead (its
`compile_holds`), called from the plan. See `codegen.py` for what the source text may
contain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from routing.codegen import Namespace
from routing.conditions import compile_where
from routing.model import AllOf, AnyOf, Condition, Not, Predicate
from routing.paths import MISSING, EventView, is_index, step
from routing.values import number_source, test_source

Holds = Callable[[Mapping[str, Any]], bool]
Program = Callable[[Mapping[str, Any]], list[int]]
# (route index, its `where` conditions (empty: none), its `holds` when too deep to inline)
Candidate = tuple[int, tuple[Condition, ...], Holds | None]
# A table of a plan: (path, string value -> ((route index, its holds or None), ...)); None
# means the route's only condition is the string `eq`/`in` the table is keyed on.
Table = tuple[str, Mapping[str, tuple[tuple[int, Holds | None], ...]]]

# Nesting of any/all/not beyond which a route is not inlined (the parser allows 200 levels
# of parentheses; a combinator adds 1, a predicate at most 8).
MAX_DEPTH: Final = 100
_SHARED_OPS: Final = frozenset({"glob", "regex"})


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()  # a lazy local not computed yet for this event


def depth(cond: Condition) -> int:
    """How deeply `any`/`all`/`not` nest in `cond` (a predicate is 0)."""
    if isinstance(cond, Predicate):
        return 0
    if isinstance(cond, Not):
        return 1 + depth(cond.condition)
    return 1 + max((depth(c) for c in cond.conditions), default=0)


def inlinable(where: tuple[Condition, ...]) -> bool:
    """Whether `where` can be compiled to source (not nested too deeply)."""
    return all(depth(c) <= MAX_DEPTH for c in where)


def compile_holds(where: tuple[Condition, ...]) -> Holds:
    """`holds(event) -> bool`: whether the conjunction `where` holds for `event`."""
    if not inlinable(where):
        check = compile_where(where)
        assert check is not None  # a deep `where` is not empty

        def closures(event: Mapping[str, Any]) -> bool:
            return check(EventView.of(event), False) is None

        return closures
    source = _Source([where])
    expression = source.where(where)
    holds: Holds = source.define("holds", [f"return {expression}"])
    return holds


def compile_plan(candidates: Sequence[Candidate], tables: Sequence[Table]) -> Program:
    """`program(event) -> [route index, ...]`, ascending: the candidates that match.

    A candidate without conditions always matches; a route in a table is only tested
    when the event's value at the table's path selects it.
    """
    source = _Source(where for _, where, holds in candidates if holds is None)
    body = []
    for index, where, holds in candidates:
        if not where:
            body.append(f"matched.append({index})")
            continue
        test = f"{source.bind(holds)}(event)" if holds is not None else source.where(where)
        body += [f"if {test}:", f"    matched.append({index})"]
    for path, table in tables:
        value = source.value(path)
        body += [
            f"if type({value}) is str:",
            f"    hits = {source.bind(table)}.get({value})",
            "    if hits is not None:",
            "        for index, holds in hits:",
            "            if holds is None or holds(event):",
            "                matched.append(index)",
        ]
    if tables:
        body.append("matched.sort()")
    program: Program = source.define("plan", ["matched = []", *body, "return matched"])
    return program


class _Source:
    """The text of one generated function over `event`, and the namespace it runs in."""

    def __init__(self, wheres: Iterable[tuple[Condition, ...]]) -> None:
        self.namespace = Namespace(MISSING=MISSING, UNSET=UNSET, step=step)
        self.bind = self.namespace.bind
        self.nodes: dict[str, str] = {"": "event"}  # path prefix -> local holding its value
        self.children: dict[str, list[tuple[str, str]]] = {}  # local -> (segment, local)s
        self.lazy: list[str] = []  # locals computed on first use: numbers, shared patterns
        self.numbers: dict[str, str] = {}  # value local -> number local
        self.patterns: dict[Predicate, str] = {}  # shared glob/regex predicate -> local
        self.repeated = {
            pred
            for pred, count in Counter(
                c for where in wheres for c in _predicates(where) if c.op in _SHARED_OPS
            ).items()
            if count > 1
        }

    def value(self, path: str) -> str:
        """The local holding the value at `path` (MISSING when it does not resolve)."""
        local = self.nodes.get(path)
        if local is not None:
            return local
        parent_path, _, segment = path.rpartition(".")
        parent = self.value(parent_path)
        local = self.nodes[path] = f"p{len(self.nodes)}"
        self.children.setdefault(parent, []).append((segment, local))
        return local

    def _lookups(self, parent: str) -> list[str]:
        """Statements resolving the children of `parent`, then theirs: one type test each."""
        children = self.children.get(parent, [])
        if not children:
            return []
        keys = [
            (local, self.bind(s), self.bind(int(s)) if is_index(s) else None)
            for s, local in children
        ]
        lines = [f"if type({parent}) is dict:"]
        lines += [f"    {local} = {parent}.get({key}, MISSING)" for local, key, _ in keys]
        if any(index is not None for _, _, index in keys):
            lines.append(f"elif type({parent}) is list:")
            lines += [
                f"    {local} = {parent}[{index}] if len({parent}) > {index} else MISSING"
                if index is not None
                else f"    {local} = MISSING"
                for local, _, index in keys
            ]
        lines.append("else:")
        lines += [
            f"    {local} = step({parent}, {key}, {index or -1})" for local, key, index in keys
        ]
        for _, local in children:
            lines += self._lookups(local)
        return lines

    def number(self, value: str) -> tuple[str, str]:
        """(an expression computing `to_number(value)` once per event, its local)."""
        local = self.numbers.get(value)
        if local is None:
            local = self.numbers[value] = f"n{len(self.numbers)}"
            self.lazy.append(local)
        compute = number_source(value, self.bind)
        return f"({local} if {local} is not UNSET else ({local} := {compute}))", local

    def condition(self, cond: Condition) -> str:
        """`cond` as a bool expression."""
        if isinstance(cond, AllOf):
            return f"({' and '.join(self.condition(c) for c in cond.conditions)})"
        if isinstance(cond, AnyOf):
            return f"({' or '.join(self.condition(c) for c in cond.conditions)})"
        if isinstance(cond, Not):
            return f"(not {self.condition(cond.condition)})"
        value = self.value(cond.path)
        expression = test_source(cond.op, cond.value, value, lambda: self.number(value), self.bind)
        if cond not in self.repeated:
            return expression
        local = self.patterns.get(cond)
        if local is None:
            local = self.patterns[cond] = f"q{len(self.patterns)}"
            self.lazy.append(local)
        return f"({local} if {local} is not UNSET else ({local} := {expression}))"

    def where(self, where: tuple[Condition, ...]) -> str:
        """The conjunction of a `where` list (True when it is empty)."""
        return " and ".join(self.condition(c) for c in where) or "True"

    def define(self, name: str, body: list[str]) -> Any:
        """`def name(event)`: path lookups, lazy locals, then `body`."""
        prologue = self._lookups("event")
        if self.lazy:
            prologue.append(" = ".join([*self.lazy, "UNSET"]))
        lines = [f"def {name}(event):", *(f"    {line}" for line in [*prologue, *body])]
        return self.namespace.define(name, "\n".join(lines) + "\n")


def _predicates(where: Iterable[Condition]) -> Iterable[Predicate]:
    for cond in where:
        if isinstance(cond, Predicate):
            yield cond
        elif isinstance(cond, Not):
            yield from _predicates((cond.condition,))
        else:
            yield from _predicates(cond.conditions)
