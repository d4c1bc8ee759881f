"""Operator values: validation at load, and the tests each operator applies at match time."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from routing.codegen import Namespace
from routing.paths import MISSING, EventView, type_name

Test = Callable[[Any], bool]
# A compiled condition: None when it holds, else a reason (MISS unless explaining).
Check = Callable[[EventView, bool], str | None]
MISS: Final = "miss"
Problem = tuple[tuple[str | int, ...], str]  # (path relative to the operator key, message)

ORDERING = frozenset({"gt", "gte", "lt", "lte"})

# A plain decimal literal: no NaN/Infinity, no underscores or spaces (which Decimal() accepts).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?").fullmatch
_GLOB_CHARS = frozenset("*?[\\")


def parse_decimal(text: str) -> Decimal | None:
    """A strict decimal literal as an exact finite Decimal, else None."""
    # Amounts are short and the same string is tested by many routes per event, so short
    # strings go through a cache; long ones (an attacker's megabyte of digits) do not.
    return _parse_short(text) if len(text) <= _SHORT else _parse(text)


def _parse(text: str) -> Decimal | None:
    if _DECIMAL(text) is None:
        return None
    try:
        return Decimal(text)
    except ArithmeticError:  # an exponent beyond what Decimal can represent
        return None


_SHORT = 64
_parse_short = lru_cache(maxsize=4096)(_parse)


def to_number(value: Any) -> int | Decimal | None:
    """`value` as an exact finite number (ints, Decimals, decimal strings), else None."""
    kind = type(value)
    if kind is str:
        return parse_decimal(value)
    if kind is int:
        return value  # type: ignore[no-any-return]
    if kind is Decimal:
        return value if value.is_finite() else None
    if kind is float:  # never produced by the decoders; kept exact via its shortest repr
        return Decimal(repr(value)) if math.isfinite(value) else None
    return None


def number_source(value: str, bind: Callable[[Any], str]) -> str:
    """An expression computing `to_number(value)`, with the common case (a short decimal
    string, answered from the parse cache) inline rather than behind a Python call."""
    short, cutoff, number = bind(_parse_short), bind(_SHORT), bind(to_number)
    return f"({short}({value}) if type({value}) is str and len({value}) <= {cutoff} else {number}({value}))"


def is_glob(pattern: str) -> bool:
    """Whether `pattern` uses glob syntax (`*`, `?`, `[...]`, `\\`) rather than a literal."""
    return not _GLOB_CHARS.isdisjoint(pattern)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob (`*` any run, `?` one char, `[a-z]`/`[!a-z]`, `\\x` literal).

    Raises ValueError with a readable message for a malformed glob.
    """
    if not pattern:
        raise ValueError("empty glob")
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\":
            if i + 1 >= n:
                raise ValueError("glob ends with a lone `\\`")
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            j = i + 1
            negate = j < n and pattern[j] == "!"
            if negate:
                j += 1
            start = j
            if j < n and pattern[j] == "]":  # a leading `]` is a literal member
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                raise ValueError(f"unclosed `[` at position {i}")
            members = pattern[start:j]
            parts = [
                "-" if c == "-" and 0 < k < len(members) - 1 else re.escape(c)
                for k, c in enumerate(members)
            ]
            out.append(("[^" if negate else "[") + "".join(parts) + "]")
            i = j
        else:
            out.append(re.escape(char))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise ValueError(f"invalid character class: {exc.msg}") from None


def _scalar(raw: Any) -> tuple[Any, str | None]:
    if raw is None or isinstance(raw, str | bool):
        return raw, None
    if isinstance(raw, int):
        return Decimal(raw), None
    if isinstance(raw, float | Decimal):
        number = Decimal(repr(raw)) if isinstance(raw, float) else raw
        if not number.is_finite():
            return None, f"expected a finite number, got `{raw}`"
        return number, None
    hint = (
        "; quote it (YAML read it as a date)" if type(raw).__name__ in ("date", "datetime") else ""
    )
    return None, f"expected a string, number, boolean or null, got {type_name(raw)}{hint}"


def _decimal(raw: Any) -> tuple[Decimal | None, str | None]:
    if isinstance(raw, bool):
        pass
    elif isinstance(raw, int):
        return Decimal(raw), None
    elif isinstance(raw, float | Decimal):
        number = Decimal(repr(raw)) if isinstance(raw, float) else raw
        if number.is_finite():
            return number, None
    elif isinstance(raw, str) and _DECIMAL(raw.strip()) is not None:
        try:
            return Decimal(raw.strip()), None
        except ArithmeticError:
            pass
    return None, (
        f'expected a decimal number such as "1000" or 1000.50, got {type_name(raw)} {show(raw)}'
    )


def parse_value(op: str, raw: Any) -> tuple[Any, list[Problem]]:
    """Validate and normalize the value of operator `op` (numbers become Decimal)."""
    if op in ("eq", "ne"):
        if isinstance(raw, list | tuple | Mapping):
            alt = "in" if op == "eq" else "not_in"
            return None, [((), f"expected a single value, got a {type_name(raw)}; use `{alt}`")]
        value, problem = _scalar(raw)
        return value, [((), problem)] if problem else []
    if op in ("in", "not_in"):
        if not isinstance(raw, list | tuple):
            alt = "eq" if op == "in" else "ne"
            return None, [
                (
                    (),
                    f"expected a list, got {type_name(raw)} {show(raw)}; write [{raw}] or use `{alt}`",
                )
            ]
        if not raw:
            never = "can never hold" if op == "in" else "always holds"
            return None, [((), f"empty list: the predicate {never}")]
        members: list[Any] = []
        problems: list[Problem] = []
        for k, item in enumerate(raw):
            if isinstance(item, list | tuple | Mapping):
                problems.append(((k,), f"expected a single value, got a {type_name(item)}"))
                continue
            value, problem = _scalar(item)
            if problem:
                problems.append(((k,), problem))
            members.append(value)
        return tuple(members), problems
    if op == "exists":
        if not isinstance(raw, bool):
            return None, [((), f"expected true or false, got {type_name(raw)} {show(raw)}")]
        return raw, []
    if op in ("prefix", "suffix", "glob", "regex"):
        if not isinstance(raw, str):
            return None, [((), f"expected a string, got {type_name(raw)} {show(raw)}; quote it")]
        if not raw:
            return None, [((), "empty string: the predicate would hold for every string")]
        try:
            if op == "glob":
                glob_regex(raw)
            elif op == "regex":
                re.compile(raw)
        except re.error as exc:
            return None, [((), f"invalid regex: {exc.msg} at position {exc.pos}")]
        except ValueError as exc:
            return None, [((), f"invalid glob: {exc}")]
        return raw, []
    number, problem = _decimal(raw)
    return number, [((), problem)] if problem else []


# How an ordering operator reads in source, with the bound on the right.
_SYMBOLS: Final = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def test_source(
    op: str,
    want: Any,
    value: str,
    number: Callable[[], tuple[str, str]],
    bind: Callable[[Any], str],
) -> str:
    """The Python expression deciding `{op: want}`: the one place each operator is defined.

    `value` names the path's value (MISSING when the path does not resolve). `number()`
    gives (an expression evaluating to `to_number(value)`, the name holding that number once
    the expression ran); it is only called by operators that compare numbers. `bind`
    names a constant (see `codegen.py`). The expression evaluates to a bool; every test
    but `exists: false` (and the negations `ne`/`not_in`) is false for MISSING.
    """
    missing = bind(MISSING)
    if op == "exists":
        return f"({value} is not {missing})" if want else f"({value} is {missing})"
    if op in ORDERING:
        compute, n = number()
        return f"({compute} is not None and {n} {_SYMBOLS[op]} {bind(want)})"
    if op in ("prefix", "suffix"):
        method = "startswith" if op == "prefix" else "endswith"
        return f"(type({value}) is str and {value}.{method}({bind(want)}))"
    if op in ("glob", "regex"):
        find = glob_regex(want).fullmatch if op == "glob" else re.compile(want).search
        return f"(type({value}) is str and {bind(find)}({value}) is not None)"
    members = (want,) if op in ("eq", "ne") else want
    held = _member_source(members, value, number, bind)
    if op in ("eq", "in"):
        return held
    return f"({value} is not {missing} and not {held})"


def _member_source(
    members: tuple[Any, ...],
    value: str,
    number: Callable[[], tuple[str, str]],
    bind: Callable[[Any], str],
) -> str:
    # Strings, booleans and null compare by type and value; a number matches any number or
    # decimal string of the same value (amounts are decimal strings, `eq: 200` means 200).
    strings = frozenset(m for m in members if isinstance(m, str))
    numbers = frozenset(m for m in members if isinstance(m, Decimal))
    tests = []
    if len(strings) == 1:
        tests.append(f"(type({value}) is str and {value} == {bind(next(iter(strings)))})")
    elif strings:
        tests.append(f"(type({value}) is str and {value} in {bind(strings)})")
    # `is` against the literal constants: True/False/None are keywords, not config text.
    tests.extend(f"{value} is {m!r}" for m in (None, True, False) if any(x is m for x in members))
    if numbers:
        compute, n = number()
        if len(numbers) == 1:
            tests.append(f"({compute} is not None and {n} == {bind(next(iter(numbers)))})")
        else:
            tests.append(f"({compute} is not None and {n} in {bind(numbers)})")
    return f"({' or '.join(tests)})"


def make_test(op: str, want: Any) -> Test:
    """`test(value) -> bool` for predicate `{op: want}`, built from `test_source`."""
    namespace = Namespace(to_number=to_number)
    body = test_source(
        op, want, "value", lambda: ("(number := to_number(value))", "number"), namespace.bind
    )
    test: Test = namespace.define("test", f"def test(value):\n    return {body}\n")
    return test


def make_check(op: str, want: Any, path: str, fail: Callable[[Any], str]) -> Check:
    """The compiled check of predicate `{path, op: want}` over an EventView, for `explain`.

    It returns None when the predicate holds, else MISS, or `fail(actual)` when explaining.
    The decision is `make_test`'s, so it is the same expression the router's programs run.
    """
    test = make_test(op, want)

    def check(view: EventView, why: bool) -> str | None:
        value = view[path]
        if test(value):
            return None
        return fail(value) if why else MISS

    return check


def show(value: Any, limit: int = 80) -> str:
    """A short JSON-like rendering of a value for reasons and messages."""
    if value is MISSING:
        return "(missing)"
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, tuple):
        value = list(value)
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
