"""The compiled router: an index by provider/type and `eq`/`in` values, then closures.

Routing one event:
1. The event's (source, provider, type) picks a memoized *plan*: the routes whose
   attribute check holds for that triple, found once through the type index (exact types
   hashed, globs grouped) and then confirmed by each route's own attribute check.
2. Within a plan, routes that AND a string `eq`/`in` on a path shared with other routes
   are grouped in a hash table on that path: one lookup selects the few that can hold.
3. The remaining candidates run their compiled `where` check, in config order.

The index only prunes routes that cannot match; every decision is made by the same
closures `explain` runs (see `conditions.py`), and property tests hold the two together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any, Final

from routing.conditions import compile_attributes, compile_where
from routing.model import Delivery, Predicate, Route, Routed, RouteTrace
from routing.paths import EventView, omit, omit_trie
from routing.values import Check, glob_regex, is_glob

# Memo sizes: a real config sees a few dozen (source, provider, type) triples; the caps
# only stop an unbounded stream of odd types from growing memory.
_PLAN_CACHE: Final = 4096
_FANOUT_CACHE: Final = 4096
_KEY_LIMIT: Final = 256  # longer attribute values are routed without memoizing a plan
_BY_INDEX: Final = attrgetter("index")

Omitter = Callable[[Any], Any]
_UNROUTED: Final = Routed((), (), True)  # immutable, so one instance serves every event


class _Compiled:
    __slots__ = ("attributes", "index", "keys", "name", "to", "where")

    def __init__(self, index: int, route: Route) -> None:
        self.index = index
        self.name = route.name
        self.to = route.to
        self.attributes: Check | None = compile_attributes(route.match)
        self.where: Check | None = compile_where(route.match.where)
        # (path, values) of each top-level string `eq`/`in`: usable as a hash-index key.
        self.keys = tuple(
            (c.path, frozenset(c.value if c.op == "in" else (c.value,)))
            for c in route.match.where
            if isinstance(c, Predicate)
            and c.op in ("eq", "in")
            and all(isinstance(v, str) for v in (c.value if c.op == "in" else (c.value,)))
        )

    def check(self, view: EventView, why: bool) -> str | None:
        """The route's whole match: attributes, then `where`; None when it holds."""
        if self.attributes is not None:
            reason = self.attributes(view, why)
            if reason is not None:
                return reason
        return None if self.where is None else self.where(view, why)


Checked = tuple[tuple[_Compiled, Check], ...]  # routes with a `where`, and that check


class _Plan:
    """The routes one (source, provider, type) can reach, split by how they are checked."""

    __slots__ = ("always", "conditional", "tables")

    def __init__(
        self, candidates: list[_Compiled], tables: tuple[tuple[str, dict[str, Checked]], ...]
    ) -> None:
        # Routes without `where` hold for every event with this key; the rest run their check.
        self.always = tuple(c for c in candidates if c.where is None)
        self.conditional: Checked = tuple((c, c.where) for c in candidates if c.where is not None)
        self.tables = tables

    def run(self, view: EventView) -> list[_Compiled]:
        matched = [c for c, where in self.conditional if where(view, False) is None]
        for path, table in self.tables:
            value = view[path]
            if type(value) is str:
                hits = table.get(value)
                if hits:
                    matched.extend([c for c, where in hits if where(view, False) is None])
        if self.always:
            matched.extend(self.always)
        if len(matched) > 1:
            matched.sort(key=_BY_INDEX)
        return matched


class _Fanout:
    """Where one set of matched routes sends an event: destinations, senders, omits."""

    __slots__ = ("deliveries", "names", "plain")

    def __init__(
        self,
        names: tuple[str, ...],
        deliveries: tuple[tuple[str, tuple[str, ...], Omitter | None], ...],
    ) -> None:
        self.names = names
        self.deliveries = deliveries
        # Most fan-outs omit nothing: then every delivery shares the input event.
        self.plain = all(omitter is None for _, _, omitter in deliveries)


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
        self._plans: dict[tuple[Any, Any, Any], _Plan] = {}
        self._fanouts: dict[tuple[int, ...], _Fanout] = {}

    def route(self, event: Mapping[str, Any]) -> Routed:
        """The routes `event` matches and one delivery per destination (or `unmatched`)."""
        view = EventView()  # EventView.of(event), inlined on the hot path
        view.event = event
        key = (event.get("source"), event.get("provider"), event.get("type"))
        try:
            plan = self._plans.get(key)
        except TypeError:  # an unhashable attribute: no plan to reuse, check every route
            matched = [c for c in self._compiled if c.check(view, False) is None]
        else:
            if plan is None:
                plan = self._plan(view, key)
            matched = plan.run(view)
        return self._deliver(event, matched)

    def explain(self, event: Mapping[str, Any]) -> list[RouteTrace]:
        """Every route in config order, matched or not, with the first failing condition."""
        view = EventView.of(event)
        traces = []
        for compiled in self._compiled:
            reason = compiled.check(view, True)
            traces.append(RouteTrace(compiled.name, reason is None, reason))
        return traces

    def _plan(self, view: EventView, key: tuple[Any, Any, Any]) -> _Plan:
        kind = key[2]
        ids = set(self._any_type)
        if type(kind) is str:
            ids.update(self._by_type.get(kind, ()))
            for fullmatch, members in self._globs:
                if fullmatch(kind) is not None:
                    ids.update(members)
        candidates = [
            c
            for c in (self._compiled[i] for i in sorted(ids))
            if c.attributes is None or c.attributes(view, False) is None
        ]
        # Index each route on the `eq`/`in` path most candidates share, so one lookup per
        # path replaces evaluating every route that tests it.
        counts = Counter(path for c in candidates for path, _ in c.keys)
        tables: dict[str, dict[str, list[_Compiled]]] = {}
        residual: list[_Compiled] = []
        for c in candidates:
            best = max(c.keys, key=lambda k: counts[k[0]], default=None)
            if best is None or counts[best[0]] < 2:
                residual.append(c)
                continue
            table = tables.setdefault(best[0], {})
            for value in best[1]:
                table.setdefault(value, []).append(c)
        plan = _Plan(
            residual,
            tuple(
                (path, {v: tuple((c, c.where) for c in cs if c.where) for v, cs in table.items()})
                for path, table in tables.items()
            ),
        )
        if all(type(part) is not str or len(part) <= _KEY_LIMIT for part in key):
            if len(self._plans) >= _PLAN_CACHE:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _deliver(self, event: Mapping[str, Any], matched: list[_Compiled]) -> Routed:
        if not matched:
            if not self.unmatched:
                return _UNROUTED
            return Routed((), tuple([Delivery(d, event, ()) for d in self.unmatched]), True)
        key = tuple([c.index for c in matched])
        fanout = self._fanouts.get(key)
        if fanout is None:
            fanout = self._fanout(key, matched)
        if fanout.plain:
            return Routed(
                fanout.names,
                tuple([Delivery(d, event, names) for d, names, _ in fanout.deliveries]),
                False,
            )
        copies: dict[int, Mapping[str, Any]] = {}
        deliveries = []
        for destination, names, omitter in fanout.deliveries:
            if omitter is None:
                deliveries.append(Delivery(destination, event, names))
                continue
            copy = copies.get(id(omitter))
            if copy is None:
                copy = copies[id(omitter)] = omitter(event)
            deliveries.append(Delivery(destination, copy, names))
        return Routed(fanout.names, tuple(deliveries), False)

    def _fanout(self, key: tuple[int, ...], matched: list[_Compiled]) -> _Fanout:
        senders: dict[str, list[_Compiled]] = {}
        for c in matched:
            for destination in c.to:
                senders.setdefault(destination, []).append(c)
        deliveries = []
        for destination, routes in senders.items():
            # One delivery per destination, without everything any of its routes omits:
            # a route that drops a secret must not be undone by a sibling that does not.
            paths = frozenset(p for c in routes for p in self.routes[c.index].omit)
            names = tuple(c.name for c in routes)
            deliveries.append((destination, names, self._omitter(paths)))
        fanout = _Fanout(tuple(c.name for c in matched), tuple(deliveries))
        if len(self._fanouts) >= _FANOUT_CACHE:
            self._fanouts.clear()
        self._fanouts[key] = fanout
        return fanout

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
