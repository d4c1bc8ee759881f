"""Operator values: validation at load, and the tests each operator applies at match time."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

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


def _equals(expected: Any) -> Test:
    # Strings, booleans and null compare by type and value; a number matches any number or
    # decimal string of the same value (amounts are decimal strings, `eq: 200` means 200).
    # Every test is false for MISSING.
    if expected is None:
        return lambda v: v is None
    if isinstance(expected, bool):
        return lambda v: v is expected
    if isinstance(expected, str):
        return lambda v: type(v) is str and v == expected
    number = expected

    def equals_number(v: Any) -> bool:
        n = to_number(v)
        return n is not None and n == number

    return equals_number


def _member(members: tuple[Any, ...]) -> Test:
    strings = frozenset(m for m in members if isinstance(m, str))
    numbers = frozenset(m for m in members if isinstance(m, Decimal))
    consts = tuple(m for m in members if m is None or isinstance(m, bool))

    def member(v: Any) -> bool:
        if type(v) is str and v in strings:
            return True
        if v is None or isinstance(v, bool):
            return any(v is c for c in consts)
        if not numbers:
            return False
        n = to_number(v)
        return n is not None and n in numbers

    return member


def make_check(op: str, want: Any, path: str, fail: Callable[[Any], str]) -> Check:
    """The compiled check of predicate `{path, op: want}`: the one place each op is defined.

    It returns None when the predicate holds, else MISS, or `fail(actual)` when explaining.
    Each check reads its path from the view and decides inline: predicates are the
    innermost loop of routing, so the common operators avoid a second function call.
    """
    if op == "exists":
        present = bool(want)

        def exists(view: EventView, why: bool) -> str | None:
            value = view[path]
            if (value is not MISSING) is present:
                return None
            return fail(value) if why else MISS

        return exists
    if op in ORDERING:
        # `want.__lt__(n)` is `n > want`: one C call, no operator indirection.
        bound = {"gt": want.__lt__, "gte": want.__le__, "lt": want.__gt__, "lte": want.__ge__}[op]
        short = _parse_short

        def ordered(view: EventView, why: bool) -> str | None:
            value = view[path]
            # parse_decimal() inlined: this is the hottest check of all.
            n = short(value) if type(value) is str and len(value) <= _SHORT else to_number(value)
            if n is not None and bound(n) is True:
                return None
            return fail(value) if why else MISS

        return ordered
    members = want if op == "in" else (want,)
    if op in ("eq", "in") and all(type(m) is str for m in members):
        strings = frozenset(members)

        def string_equal(view: EventView, why: bool) -> str | None:
            value = view[path]
            if type(value) is str and value in strings:
                return None
            return fail(value) if why else MISS

        return string_equal
    if op == "prefix":

        def prefix(view: EventView, why: bool) -> str | None:
            value = view[path]
            if type(value) is str and value.startswith(want):
                return None
            return fail(value) if why else MISS

        return prefix
    if op == "suffix":

        def suffix(view: EventView, why: bool) -> str | None:
            value = view[path]
            if type(value) is str and value.endswith(want):
                return None
            return fail(value) if why else MISS

        return suffix
    if op in ("glob", "regex"):
        find = glob_regex(want).fullmatch if op == "glob" else re.compile(want).search

        def pattern(view: EventView, why: bool) -> str | None:
            value = view[path]
            if type(value) is str and find(value) is not None:
                return None
            return fail(value) if why else MISS

        return pattern
    # eq/in with numbers, booleans or null, and their negations ne/not_in.
    test = _equals(want) if op in ("eq", "ne") else _member(want)
    negate = op in ("ne", "not_in")

    def compare(view: EventView, why: bool) -> str | None:
        value = view[path]
        if value is not MISSING and test(value) is not negate:
            return None
        return fail(value) if why else MISS

    return compare


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
