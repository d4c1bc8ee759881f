"""Per-destination transforms: a JMESPath expression whose result becomes the event's `data`.

A transform is an expression, never code: `jmespath` parses it once at start-up, and this
module checks what the parser leaves to run time (unknown functions, wrong arity) and how
much output one evaluation can make (see `amplification`), so a bad transform is a config
error with its location instead of a surprise on the first event. Evaluation has no I/O and
its cost is bounded by the expression's size times the event's.

The envelope (`id`, `type`, `subject`, `time`, `source`, ...) is kept: only `data` is
replaced, so consumers still dedupe on `id` and route on `type`. A result of nothing (a
path that is absent) is `data: null`; so is an evaluation that fails on one event (a
function given the wrong type of value), which is counted in
`gateway_transform_errors_total` and logged, and never fails the webhook.

Fast path: expressions made only of field paths, indexes, literals, `@` and multi-select
hashes/lists (the usual "just these fields" projection) are turned into plain closures;
`benchmarks/transform_bench.py` measures both against each other, and
`tests/test_transform.py` checks them against `jmespath.search` on generated expressions.
Everything else runs on jmespath's own interpreter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import jmespath
import jmespath.functions
import jmespath.visitor
import msgspec
import structlog
from jmespath.exceptions import IncompleteExpressionError, JMESPathError

from gateway import metrics

log = structlog.get_logger("gateway.transform")

MAX_LENGTH = 4096  # characters of one expression
MAX_DEPTH = 64  # levels of the expression's syntax tree (evaluation recurses along them)
# How many times one evaluation may copy (a part of) the event into its result; bounds the
# result's size at this many times the event's (`{a: @, b: {c: @, d: @}}` copies it 3 times).
MAX_AMPLIFICATION = 64

Evaluate = Callable[[Any], Any]


class Functions(jmespath.functions.Functions):
    """JMESPath's built-in functions, with the event's exact decimals treated as numbers.

    The gateway decodes non-integer JSON numbers as `Decimal` (amounts stay exact); stock
    jmespath knows only `int` and `float`, would refuse them in `sum`/`max`/`abs` and would
    truncate them in `to_number`.
    """

    def _get_allowed_pytypes(self, types: Any) -> Any:
        allowed, subtypes = super()._get_allowed_pytypes(types)  # type: ignore[misc]
        if "float" in allowed:
            allowed = [*allowed, "Decimal"]
        subtypes = [(*s, "Decimal") if "float" in s else s for s in subtypes]
        return allowed, subtypes

    @jmespath.functions.signature({"types": []})
    def _func_type(self, arg: Any) -> Any:
        if isinstance(arg, Decimal):
            return "number"
        return jmespath.functions.Functions._func_type(self, arg)  # type: ignore[attr-defined]

    @jmespath.functions.signature({"types": []})
    def _func_to_number(self, arg: Any) -> Any:
        if isinstance(arg, Decimal):
            return arg
        return jmespath.functions.Functions._func_to_number(self, arg)  # type: ignore[attr-defined]

    @jmespath.functions.signature({"types": []})
    def _func_to_string(self, arg: Any) -> Any:
        if isinstance(arg, str):
            return arg
        return _NUMBERS.encode(arg).decode()


_NUMBERS = msgspec.json.Encoder(decimal_format="number")
_FUNCTIONS = Functions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)


class TransformError(ValueError):
    """An expression that cannot be a transform; the message says why (never the event)."""


class Transform:
    """A compiled transform: `apply(event)` returns the event with `data` replaced."""

    __slots__ = ("destination", "evaluate", "expression", "fast")

    def __init__(self, expression: str, destination: str = "") -> None:
        self.expression = expression
        self.destination = destination
        parsed = parse(expression)
        fast = _closure(parsed)
        self.fast = fast is not None
        if fast is not None:
            self.evaluate: Evaluate = fast
        else:
            interpreter = jmespath.visitor.TreeInterpreter(_OPTIONS)
            visit = interpreter.visit
            tree: Any = parsed

            def evaluate(value: Any) -> Any:
                return visit(tree, value)

            self.evaluate = evaluate

    def data(self, event: Mapping[str, Any]) -> Any:
        """The new `data`: the expression's result over the event (None when it fails)."""
        try:
            return self.evaluate(event)
        except (JMESPathError, TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            metrics.TRANSFORM_ERRORS.labels(self.destination).inc()
            log.warning(
                "transform_failed",
                destination=self.destination,
                event_id=event.get("id"),
                error=type(exc).__name__,
            )
            return None

    def apply(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The event as this destination receives it: same envelope, transformed `data`."""
        out = dict(event)
        out["data"] = self.data(event)
        return out


def parse(expression: str) -> dict[str, Any]:
    """The expression's AST, checked: raises `TransformError` with a one-line reason."""
    if not isinstance(expression, str) or not expression.strip():
        raise TransformError("expected a non-empty JMESPath expression")
    if len(expression) > MAX_LENGTH:
        raise TransformError(f"longer than {MAX_LENGTH} characters")
    try:
        parsed: dict[str, Any] = dict(jmespath.compile(expression).parsed)
    except JMESPathError as exc:
        raise TransformError(f"invalid JMESPath expression: {_reason(exc)}") from None
    except RecursionError:
        raise TransformError("invalid JMESPath expression: nested too deeply") from None
    depth = _depth(parsed)
    if depth > MAX_DEPTH:
        raise TransformError(f"nested {depth} levels deep (at most {MAX_DEPTH})")
    _check_functions(parsed)
    copies = amplification(parsed)
    if copies > MAX_AMPLIFICATION:
        raise TransformError(
            f"can copy the event into its result {copies} times (at most {MAX_AMPLIFICATION})"
        )
    return parsed


def _reason(exc: JMESPathError) -> str:
    """jmespath's message without its multi-line caret drawing: what, where, near what."""
    what = str(getattr(exc, "msg", None) or getattr(exc, "message", None) or type(exc).__name__)
    where = getattr(exc, "lex_position", getattr(exc, "lexer_position", None))
    near = getattr(exc, "token_value", None) or getattr(exc, "lexer_value", None)
    reason = what.strip().rstrip(":")
    if isinstance(exc, IncompleteExpressionError):
        reason = "the expression ends too early"
    elif reason == "Invalid jmespath expression":
        reason = "unexpected character"
    context = [f"at character {where + 1}"] if isinstance(where, int) else []
    if near not in (None, ""):
        context.append(f"near `{near}`")
    return f"{reason} ({', '.join(context)})" if context else reason


def _depth(root: dict[str, Any]) -> int:
    """How deep the AST nests (iteratively: the walks after this one recurse)."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((c, level + 1) for c in node.get("children", ()) if isinstance(c, dict))
    return deepest


def _check_functions(node: dict[str, Any]) -> None:
    """Unknown functions and wrong arities (jmespath only finds these while evaluating)."""
    if node["type"] == "function_expression":
        name = node["value"]
        spec = _FUNCTIONS.FUNCTION_TABLE.get(name)
        if spec is None:
            known = ", ".join(sorted(_FUNCTIONS.FUNCTION_TABLE))
            raise TransformError(f"unknown function `{name}()` (known: {known})")
        signature = spec["signature"]
        given = len(node["children"])
        if signature and signature[-1].get("variadic"):
            if given < len(signature):
                raise TransformError(
                    f"`{name}()` takes at least {len(signature)} argument(s), got {given}"
                )
        elif given != len(signature):
            raise TransformError(f"`{name}()` takes {len(signature)} argument(s), got {given}")
    for child in node.get("children", ()):
        if isinstance(child, dict):
            _check_functions(child)


_CHAINS = frozenset({"subexpression", "index_expression", "pipe", "projection", "value_projection"})
_SUMS = frozenset({"multi_select_dict", "multi_select_list", "key_val_pair", "function_expression"})


def amplification(node: dict[str, Any]) -> int:
    """An upper bound on how many times one evaluation can put one input value in its result.

    A path yields (a part of) its input once; a chain multiplies (`a.{x: @, y: @}` applied to
    each element of a projection); multi-select and function arguments add; `||`/`&&` yield
    one side; literals, comparisons and `!` yield no input at all. So the result is at most
    this many times the size of the event.
    """
    kind = node["type"]
    children = [c for c in node.get("children", ()) if isinstance(c, dict)]
    if kind in ("literal", "comparator", "not_expression"):
        return 0
    if kind == "filter_projection":  # [left, right, condition]: the condition yields nothing
        return amplification(children[0]) * amplification(children[1])
    if kind in _CHAINS:
        product = 1
        for child in children:
            product *= amplification(child)
        return product
    if kind in _SUMS:
        return sum(amplification(c) for c in children)
    if kind in ("or_expression", "and_expression"):
        return max(amplification(c) for c in children)
    if children:  # flatten, expref, ...: what their operand yields
        return max(amplification(c) for c in children)
    return 1  # field, current, index, slice, identity


def _closure(node: dict[str, Any]) -> Evaluate | None:
    """The node as a plain Python closure with jmespath's semantics, or None (not covered)."""
    kind = node["type"]
    if kind == "field":
        name = node["value"]

        def field(value: Any) -> Any:
            return value.get(name) if isinstance(value, dict) else None

        return field
    if kind in ("current", "identity"):
        return _identity
    if kind == "literal":
        constant = node["value"]
        if isinstance(constant, dict | list):
            return None  # shared mutable literals: leave them to jmespath
        return lambda _value: constant
    if kind == "index":
        position = node["value"]

        def index(value: Any) -> Any:
            if not isinstance(value, list):
                return None
            try:
                return value[position]
            except IndexError:
                return None

        return index
    if kind in ("subexpression", "index_expression"):
        steps = [_closure(child) for child in node["children"]]
        if any(step is None for step in steps):
            return None
        return _chain([s for s in steps if s is not None])
    if kind in ("multi_select_dict", "multi_select_list"):
        parts: list[tuple[Any, Evaluate]] = []
        for child in node["children"]:
            target = child["children"][0] if kind == "multi_select_dict" else child
            step = _closure(target)
            if step is None:
                return None
            parts.append((child.get("value"), step))
        if kind == "multi_select_dict":

            def hash_(value: Any) -> Any:
                if value is None:
                    return None
                return {key: step(value) for key, step in parts}

            return hash_
        steps_ = [step for _, step in parts]

        def list_(value: Any) -> Any:
            if value is None:
                return None
            return [step(value) for step in steps_]

        return list_
    return None


def _identity(value: Any) -> Any:
    return value


def _chain(steps: list[Evaluate]) -> Evaluate:
    """`a.b.c`: each step on the previous result (field steps of None yield None)."""
    if len(steps) == 1:
        return steps[0]
    if len(steps) == 2:
        first, second = steps
        return lambda value: second(first(value))
    if len(steps) == 3:
        first, second, third = steps
        return lambda value: third(second(first(value)))

    def chained(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return chained


def compile_all(destinations: Mapping[str, Any]) -> dict[str, Transform]:
    """The compiled transform of every destination that has one (config's `destinations`)."""
    return {
        name: Transform(dest.transform, name)
        for name, dest in destinations.items()
        if dest.transform is not None
    }
