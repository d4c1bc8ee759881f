"""Conditions compiled to closures; the one code path both `route` and `explain` run.

A compiled check is `check(view, why) -> None | str` over an EventView of the event:
None when the condition holds, otherwise a reason. With `why=False` (routing) the reason
is the constant MISS and nothing is formatted; with `why=True` (explain) it names the
failing condition and the actual value. The decision itself never depends on `why`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

from routing.model import AllOf, AnyOf, Condition, Match, Not, Predicate
from routing.paths import MISSING, EventView
from routing.values import MISS, ORDERING, Check, glob_regex, is_glob, make_check, show, to_number

SOURCE_PREFIX: Final = "/webhooks/"


class Node(NamedTuple):
    """A compiled condition: its check, and a description of why it held (for `not`)."""

    check: Check
    held: Callable[[EventView], str]
    text: str


def describe(cond: Condition) -> str:
    """A condition as short text: `data.fiat.amount gte 1000`, `any(...)`."""
    if isinstance(cond, Predicate):
        return f"{cond.path} {cond.op} {show(cond.value)}"
    if isinstance(cond, Not):
        return f"not({describe(cond.condition)})"
    name = "any" if isinstance(cond, AnyOf) else "all"
    return f"{name}({', '.join(describe(c) for c in cond.conditions)})"


def compile_condition(cond: Condition, label: str) -> Node:
    """Compile one condition; `label` locates it in the route (`where[2].any[0]`)."""
    if isinstance(cond, Predicate):
        return _predicate(cond, label)
    if isinstance(cond, Not):
        inner_label = f"{label}.not"
        if isinstance(cond.condition, AllOf):  # `not: [a, b]` is parsed as not(all(a, b))
            inner = _all(cond.condition, inner_label)
        else:
            inner = compile_condition(cond.condition, inner_label)
        return _not(inner, label)
    if isinstance(cond, AnyOf):
        children = [
            compile_condition(c, f"{label}.any[{j}]") for j, c in enumerate(cond.conditions)
        ]
        return _any(children, label, describe(cond))
    return _all(cond, f"{label}.all")


def compile_where(where: tuple[Condition, ...]) -> Check | None:
    """The conjunction of a route's `where` list, or None when it has none."""
    if not where:
        return None
    nodes = [compile_condition(c, f"where[{i}]") for i, c in enumerate(where)]
    return _conjunction([n.check for n in nodes])


def _conjunction(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def both(view: EventView, why: bool) -> str | None:
            reason = first(view, why)
            return second(view, why) if reason is None else reason

        return both
    if len(checks) == 3:  # unrolled like `both`: conjunctions are the hottest combinator
        first, second, third = checks

        def three(view: EventView, why: bool) -> str | None:
            reason = first(view, why)
            if reason is None:
                reason = second(view, why)
                if reason is None:
                    return third(view, why)
            return reason

        return three
    frozen = tuple(checks)

    def every(view: EventView, why: bool) -> str | None:
        for check in frozen:
            reason = check(view, why)
            if reason is not None:
                return reason
        return None

    return every


def _predicate(pred: Predicate, label: str) -> Node:
    path, op = pred.path, pred.op
    text = describe(pred)

    def fail(value: Any) -> str:
        if op == "exists":
            got = "it is missing" if value is MISSING else f"got {show(value)}"
            return f"{label}: expected {path} to {'exist' if pred.value else 'be missing'}, {got}"
        if value is MISSING:
            return f"{label}: expected {text}, but {path} is missing"
        note = " (not a decimal number)" if op in ORDERING and to_number(value) is None else ""
        return f"{label}: expected {text}, got {show(value)}{note}"

    def held(view: EventView) -> str:
        value = view[path]
        return f"{path} is missing" if value is MISSING else f"{path} = {show(value)}"

    return Node(make_check(op, pred.value, path, fail), held, text)


def _all(cond: AllOf, label: str) -> Node:
    children = [compile_condition(c, f"{label}[{j}]") for j, c in enumerate(cond.conditions)]
    check = _conjunction([c.check for c in children])

    def held(view: EventView) -> str:
        return "; ".join(c.held(view) for c in children)

    return Node(check, held, describe(cond))


def _any(children: list[Node], label: str, text: str) -> Node:
    checks = tuple(c.check for c in children)

    def explained(view: EventView) -> str:
        reasons = [check(view, True) or "" for check in checks]
        return f"{label}: none of the `any` alternatives held: " + "; ".join(reasons)

    if len(checks) == 2:
        first, second = checks

        def either(view: EventView, why: bool) -> str | None:
            # Decide without formatting: `explained` builds each alternative's reason once
            # (building them here too made explaining nested `any`s exponential).
            if first(view, False) is None or second(view, False) is None:
                return None
            return explained(view) if why else MISS

        check: Check = either
    else:

        def any_of(view: EventView, why: bool) -> str | None:
            for check in checks:
                if check(view, False) is None:
                    return None
            return explained(view) if why else MISS

        check = any_of

    def held(view: EventView) -> str:
        return next((c.held(view) for c in children if c.check(view, False) is None), text)

    return Node(check, held, text)


def _not(inner: Node, label: str) -> Node:
    text = f"not({inner.text})"

    def negation(view: EventView, why: bool) -> str | None:
        # Decide without formatting: the inner reason would be discarded, and building it
        # at every level of a nested `not` made explaining exponential in the depth.
        if inner.check(view, False) is not None:
            return None
        if not why:
            return MISS
        return f"{label}: expected {text}, but it held: {inner.held(view)}"

    def held(view: EventView) -> str:
        return inner.check(view, True) or text

    return Node(negation, held, text)


def compile_attributes(match: Match) -> Check | None:
    """The check of a route's `source`/`provider`/`type`, or None when it has none.

    `source` is the source name; the event carries `/webhooks/<name>`, so both forms match.
    """
    sources = frozenset(match.source)
    providers = frozenset(match.provider)
    exact = frozenset(t for t in match.type if not is_glob(t))
    globs = tuple(glob_regex(t).fullmatch for t in match.type if is_glob(t))
    if not (sources or providers or match.type):
        return None
    want_source = " or ".join(match.source)
    want_provider = " or ".join(match.provider)
    want_type = " or ".join(show(t) for t in match.type)

    def attributes(view: EventView, why: bool) -> str | None:
        if sources:
            source = view["source"]
            name = source
            if type(source) is str and source.startswith(SOURCE_PREFIX):
                name = source[len(SOURCE_PREFIX) :]
            if not (type(name) is str and name in sources):
                return f"source: expected {want_source}, got {_got(source)}" if why else MISS
        if providers:
            provider = view["provider"]
            if not (type(provider) is str and provider in providers):
                return f"provider: expected {want_provider}, got {_got(provider)}" if why else MISS
        if exact or globs:
            kind = view["type"]
            if not (
                type(kind) is str
                and (kind in exact or any(fullmatch(kind) is not None for fullmatch in globs))
            ):
                return f"type: expected {want_type}, got {_got(kind)}" if why else MISS
        return None

    return attributes


def _got(value: Any) -> str:
    return "nothing (the attribute is missing)" if value is MISSING else show(value)
