"""Building the `Routed` result of one set of matched routes, by a generated function.

A fan-out (its destinations, the routes sending to each, what each omits) is fixed per set
of matched routes, so the router memoizes a `deliver(event) -> Routed` for it. The code of
`deliver` depends only on the fan-out's *shape* (how many deliveries, which share which
omitted copy), so one generated builder per shape makes every fan-out of that shape:

    def build(names, unmatched, d0, d1, s0, s1, o0):
        def deliver(event):
            c0 = o0(event)
            return Routed(names, (Delivery(d0, event, s0), Delivery(d1, c0, s1)), unmatched)
        return deliver

A delivery whose routes omit nothing shares the input event; deliveries omitting the same
paths share one copy. See `codegen.py` for what generated source may contain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final

from routing.codegen import Namespace
from routing.model import Delivery, Routed

Deliver = Callable[[Mapping[str, Any]], Routed]
Omitter = Callable[[Any], Any]
# (destination, the matched routes sending to it, what they omit or None)
Target = tuple[str, tuple[str, ...], Omitter | None]

_UNROLL: Final = 16  # wider fan-outs use a loop instead of a builder of their own
_SHAPES: Final = 1024  # a cap on memoized builders (a config has a few dozen shapes)


class Builders:
    """The generated builders of one router's fan-outs, by shape."""

    def __init__(self) -> None:
        self._by_shape: dict[tuple[int, ...], Callable[..., Deliver]] = {}

    def deliver(
        self, names: tuple[str, ...], targets: Sequence[Target], unmatched: bool
    ) -> Deliver:
        """`deliver(event)`: the `Routed` of routes `names` sending to `targets`."""
        destinations = tuple(d for d, _, _ in targets)
        senders = tuple(s for _, s, _ in targets)
        omitters: list[Omitter] = []
        # Each delivery's event: -1 for the input itself, else the copy by omitters[k].
        slots: list[int] = []
        for _, _, omitter in targets:
            if omitter is None:
                slots.append(-1)
                continue
            found = next((k for k, o in enumerate(omitters) if o is omitter), None)
            if found is None:
                found = len(omitters)
                omitters.append(omitter)
            slots.append(found)
        if len(targets) > _UNROLL:
            return _looped(names, destinations, senders, slots, omitters, unmatched)
        shape = tuple(slots)
        build = self._by_shape.get(shape)
        if build is None:
            if len(self._by_shape) >= _SHAPES:
                self._by_shape.clear()
            build = self._by_shape[shape] = _builder(shape)
        return build(names, unmatched, *destinations, *senders, *omitters)


def _builder(shape: tuple[int, ...]) -> Callable[..., Deliver]:
    n, copies = len(shape), max(shape, default=-1) + 1
    params = [
        "names",
        "unmatched",
        *(f"d{i}" for i in range(n)),
        *(f"s{i}" for i in range(n)),
        *(f"o{k}" for k in range(copies)),
    ]
    items = [f"Delivery(d{i}, {'event' if k < 0 else f'c{k}'}, s{i})" for i, k in enumerate(shape)]
    deliveries = f"({', '.join(items)},)" if items else "()"
    lines = [
        f"def build({', '.join(params)}):",
        "    def deliver(event):",
        *(f"        c{k} = o{k}(event)" for k in range(copies)),
        f"        return Routed(names, {deliveries}, unmatched)",
        "    return deliver",
    ]
    namespace = Namespace(Routed=Routed, Delivery=Delivery)
    build: Callable[..., Deliver] = namespace.define("build", "\n".join(lines) + "\n")
    return build


def _looped(
    names: tuple[str, ...],
    destinations: tuple[str, ...],
    senders: tuple[tuple[str, ...], ...],
    slots: list[int],
    omitters: list[Omitter],
    unmatched: bool,
) -> Deliver:
    if not omitters:

        def plain(event: Mapping[str, Any]) -> Routed:
            return Routed(
                names, tuple(map(Delivery, destinations, repeat(event), senders)), unmatched
            )

        return plain

    def copying(event: Mapping[str, Any]) -> Routed:
        copies = [omitter(event) for omitter in omitters]
        events = [event if k < 0 else copies[k] for k in slots]
        return Routed(names, tuple(map(Delivery, destinations, events, senders)), unmatched)

    return copying
