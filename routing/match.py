"""The compiled router: an index by provider/type and `eq`/`in` values, then generated code.

Routing one event:
1. The event's (source, provider, type) picks a memoized *plan*: the routes whose
   attribute check holds for that triple, found once through the type index (exact types
   hashed, globs grouped) and then confirmed by each route's own attribute check.
2. Within a plan, routes that AND a string `eq`/`in` on a path shared with other routes
   are grouped in a hash table on that path: one lookup selects the few that can hold.
3. A plan is one generated function (`program.py`) testing the remaining candidates'
   `where` inline and probing the tables; plans with the same candidates share it.

The index only prunes routes that cannot match. `explain` takes its verdicts from the same
plan program `route` runs, and its reasons from the closures in `conditions.py` (built
from the same operator definitions), raising if the two ever disagree; property tests hold
`route`, `explain` and a reference evaluator together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from routing.conditions import compile_attributes, compile_where
from routing.fanout import Builders, Deliver, Omitter, Target
from routing.model import Predicate, Route, Routed, RouteTrace
from routing.paths import EventView, omit, omit_trie
from routing.program import Candidate, Holds, Program, Table, compile_holds, compile_plan, inlinable
from routing.values import Check, glob_regex, is_glob

# Memo sizes: a real config sees a few dozen (source, provider, type) triples; the caps
# only stop an unbounded stream of odd types from growing memory.
_PLAN_CACHE: Final = 4096
_FANOUT_CACHE: Final = 4096
_KEY_LIMIT: Final = 256  # longer attribute values are routed without memoizing a plan
# A path becomes a hash table of a plan when at least this many of its candidates AND a
# string `eq`/`in` on it; fewer are as cheap tested inline in the plan's program, where
# they share its path lookups and parsed numbers (measured: 2 to 8 within 10%, 6 best).
TABLE_MIN: Final = 6

_UNROUTED: Final = Routed((), (), True)  # immutable, so one instance serves every event


def _unrouted(event: Mapping[str, Any]) -> Routed:
    return _UNROUTED


class _Compiled:
    __slots__ = ("_holds", "_where", "attributes", "conditions", "deep", "index", "keys", "name")

    def __init__(self, index: int, route: Route) -> None:
        self.index = index
        self.name = route.name
        self.attributes: Check | None = compile_attributes(route.match)
        self.conditions = route.match.where
        # A `where` too deeply nested for generated code runs its closures (see program.py).
        self.deep: Holds | None = None
        if not inlinable(self.conditions):
            self.deep = compile_holds(self.conditions)
        self._holds: Holds | None = self.deep
        self._where: Check | None = None
        # (path, values) of each top-level string `eq`/`in`: usable as a hash-index key.
        self.keys = tuple(
            (c.path, frozenset(c.value if c.op == "in" else (c.value,)))
            for c in route.match.where
            if isinstance(c, Predicate)
            and c.op in ("eq", "in")
            and all(isinstance(v, str) for v in (c.value if c.op == "in" else (c.value,)))
        )

    @property
    def holds(self) -> Holds:
        """Whether the route's `where` holds (generated on first use: tables need it)."""
        if self._holds is None:
            self._holds = compile_holds(self.conditions)
        return self._holds

    def reason(self, view: EventView) -> str | None:
        """The first failing condition of `where` as text (None when it holds)."""
        if self._where is None:
            self._where = compile_where(self.conditions)
        return None if self._where is None else self._where(view, True)


class Router:
    """Compiled routes: `route(event)` decides deliveries, `explain(event)` says why."""

    def __init__(self, routes: Sequence[Route], unmatched: Sequence[str] = ()) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        self.unmatched: tuple[str, ...] = tuple(unmatched)
        self._omitters: dict[frozenset[str], Omitter] = {}
        self._compiled = tuple(_Compiled(i, r) for i, r in enumerate(self.routes))
        self._by_type: dict[str, list[int]] = {}
        globs: dict[str, list[int]] = {}
        self._any_type: tuple[int, ...] = tuple(
            i for i, r in enumerate(self.routes) if not r.match.type
        )
        for i, route in enumerate(self.routes):
            for kind in route.match.type:
                (globs if is_glob(kind) else self._by_type).setdefault(kind, []).append(i)
        self._globs = tuple((glob_regex(g).fullmatch, tuple(ids)) for g, ids in globs.items())
        self._plans: dict[tuple[Any, Any, Any], Program] = {}
        # Plans of different triples with the same candidates share one program.
        self._programs: dict[tuple[int, ...], Program] = {}
        self._builders = Builders()
        self._fanouts: dict[tuple[int, ...], Deliver] = {}
        # Where an event no route matches goes: the `unmatched` destinations, or nowhere.
        self._nothing: Deliver = _unrouted
        if self.unmatched:
            targets: list[Target] = [(d, (), None) for d in self.unmatched]
            self._nothing = self._builders.deliver((), targets, True)

    def route(self, event: Mapping[str, Any]) -> Routed:
        """The routes `event` matches and one delivery per destination (or `unmatched`)."""
        matched = self._matches(event)
        if not matched:
            return self._nothing(event)
        ids = tuple(matched)
        deliver = self._fanouts.get(ids)
        if deliver is None:
            deliver = self._fanout(ids)
        return deliver(event)

    def explain(self, event: Mapping[str, Any]) -> list[RouteTrace]:
        """Every route in config order, matched or not, with the first failing condition."""
        # The verdicts are route()'s own, index included; the closures only say why, and
        # must reach the same verdicts (an independent check of the generated code).
        matched = set(self._matches(event))
        view = EventView.of(event)
        traces = []
        for compiled in self._compiled:
            reason = None if compiled.attributes is None else compiled.attributes(view, True)
            if reason is None:
                reason = compiled.reason(view)
            if (reason is None) is not (compiled.index in matched):
                raise RuntimeError(
                    f"routing bug: route `{compiled.name}` "
                    f"{'matched' if compiled.index in matched else 'missed'} "
                    f"but its explanation says {reason or 'it holds'}"
                )
            traces.append(RouteTrace(compiled.name, reason is None, reason))
        return traces

    def _matches(self, event: Mapping[str, Any]) -> list[int]:
        """The indices of the routes `event` matches, ascending."""
        key = (event.get("source"), event.get("provider"), event.get("type"))
        try:
            program = self._plans.get(key)
        except TypeError:  # an unhashable attribute: a plan, but none to memoize
            program = self._plan(event, key, memoize=False)
        else:
            if program is None:
                program = self._plan(event, key)
        return program(event)

    def _plan(
        self, event: Mapping[str, Any], key: tuple[Any, Any, Any], memoize: bool = True
    ) -> Program:
        kind = key[2]
        ids = set(self._any_type)
        if type(kind) is str:
            ids.update(self._by_type.get(kind, ()))
            for fullmatch, members in self._globs:
                if fullmatch(kind) is not None:
                    ids.update(members)
        view = EventView.of(event)
        candidates = [
            c
            for c in (self._compiled[i] for i in sorted(ids))
            if c.attributes is None or c.attributes(view, False) is None
        ]
        indices = tuple(c.index for c in candidates)
        program = self._programs.get(indices)
        if program is None:
            program = self._program(candidates)
            if len(self._programs) >= _PLAN_CACHE:
                self._programs.clear()
            self._programs[indices] = program
        if memoize and all(type(part) is not str or len(part) <= _KEY_LIMIT for part in key):
            if len(self._plans) >= _PLAN_CACHE:
                self._plans.clear()
            self._plans[key] = program
        return program

    def _program(self, candidates: list[_Compiled]) -> Program:
        # Index each route on the `eq`/`in` path most candidates share, so one lookup per
        # path replaces testing every route that tests it.
        counts = Counter(path for c in candidates for path, _ in c.keys)
        tables: dict[str, dict[str, list[tuple[int, Holds | None]]]] = {}
        inline: list[Candidate] = []
        for c in candidates:
            best = max(c.keys, key=lambda k: counts[k[0]], default=None)
            if best is None or counts[best[0]] < TABLE_MIN:
                inline.append((c.index, c.conditions, c.deep))
                continue
            # A hit needs no further test when the keyed `eq`/`in` is the whole `where`.
            holds = None if len(c.conditions) == 1 else c.holds
            table = tables.setdefault(best[0], {})
            for value in best[1]:
                table.setdefault(value, []).append((c.index, holds))
        frozen: list[Table] = [
            (path, {value: tuple(hits) for value, hits in table.items()})
            for path, table in tables.items()
        ]
        return compile_plan(inline, frozen)

    def _fanout(self, key: tuple[int, ...]) -> Deliver:
        senders: dict[str, list[_Compiled]] = {}
        matched = [self._compiled[i] for i in key]
        for c in matched:
            for destination in self.routes[c.index].to:
                senders.setdefault(destination, []).append(c)
        targets: list[Target] = []
        for destination, routes in senders.items():
            # One delivery per destination, without everything any of its routes omits:
            # a route that drops a secret must not be undone by a sibling that does not.
            paths = frozenset(p for c in routes for p in self.routes[c.index].omit)
            names = tuple(c.name for c in routes)
            targets.append((destination, names, self._omitter(paths)))
        deliver = self._builders.deliver(tuple(c.name for c in matched), targets, False)
        if len(self._fanouts) >= _FANOUT_CACHE:
            self._fanouts.clear()
        self._fanouts[key] = deliver
        return deliver

    def _omitter(self, paths: frozenset[str]) -> Omitter | None:
        if not paths:
            return None
        omitter = self._omitters.get(paths)
        if omitter is None:
            trie = omit_trie(tuple(sorted(paths)))

            def omitter(event: Any) -> Any:
                return omit(event, trie)

            if len(self._omitters) >= _FANOUT_CACHE:
                self._omitters.clear()
            self._omitters[paths] = omitter
        return omitter
