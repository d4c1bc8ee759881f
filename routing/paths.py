"""Dotted paths into an event: validation, lookup and copy-on-write removal."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final


class _Missing:
    """The value of a path that does not resolve (distinct from a JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

Getter = Callable[[Any], Any]

# The CloudEvent as SPEC §3 defines it: a dict is a known object, LEAF a value, ANY free-form.
# Validating paths against it turns a typo (`data.fiat.ammount`) into a load-time error
# instead of a route that silently never matches.
LEAF: Final = "leaf"
ANY: Final = "any"
_MONEY: Final = {"currency": LEAF, "amount": LEAF}
EVENT_SHAPE: Final[dict[str, Any]] = {
    "specversion": LEAF,
    "id": LEAF,
    "source": LEAF,
    "type": LEAF,
    "subject": LEAF,
    "time": LEAF,
    "datacontenttype": LEAF,
    "provider": LEAF,
    "providerevent": LEAF,
    "integrity": LEAF,
    "partitionkey": LEAF,
    "data": {
        "kind": LEAF,
        "id": LEAF,
        "external_id": LEAF,
        "status": LEAF,
        "provider_status": LEAF,
        "fiat": _MONEY,
        "crypto": _MONEY,
        "payload": ANY,
    },
}

# CloudEvents requires these; a delivery without them would not be a CloudEvent.
REQUIRED_ATTRIBUTES: Final = frozenset({"specversion", "id", "source", "type"})


def is_index(segment: str) -> bool:
    return segment.isascii() and segment.isdigit()


def check_path(path: object) -> str | None:
    """Why `path` is not a valid dotted path into the event, or None when it is."""
    if not isinstance(path, str):
        return f"expected a dotted path string, got {type_name(path)}"
    if not path:
        return "the path is empty"
    if path.startswith("$") or "[" in path or "]" in path:
        return (
            f"`{path}` is not a dotted path; write list indices as segments, "
            "e.g. `data.payload.items.0.amount`"
        )
    segments = path.split(".")
    if any(s == "" for s in segments):
        return f"`{path}` has an empty segment"
    if any(s != s.strip() for s in segments):
        return f"`{path}` has a segment with leading or trailing spaces"
    shape: Any = EVENT_SHAPE
    walked: list[str] = []
    for segment in segments:
        if shape is ANY:
            return None
        if shape is LEAF:
            return f"`{'.'.join(walked)}` is a value, it has no field `{segment}`"
        if segment not in shape:
            where = f"`{'.'.join(walked)}`" if walked else "the event"
            return f"{where} has no field `{segment}`{did_you_mean(segment, shape)}"
        walked.append(segment)
        shape = shape[segment]
    return None


def did_you_mean(word: str, choices: Iterable[object]) -> str:
    """`; did you mean `x`?` when one choice is close to `word`, else a list of choices."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(word, names, n=1)
    if close:
        return f"; did you mean `{close[0]}`?"
    return "; expected one of " + ", ".join(f"`{n}`" for n in names) if names else ""


def type_name(value: object) -> str:
    """A YAML/JSON-flavoured name of a value's type for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return "number"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def getter(path: str) -> Getter:
    """A function returning the value at `path` in an event, or MISSING."""
    steps = tuple((s, int(s) if is_index(s) else -1) for s in path.split("."))
    if all(i < 0 for _, i in steps) and len(steps) <= 3:
        return _dict_getter(tuple(s for s, _ in steps))

    def get(node: Any) -> Any:
        for key, index in steps:
            kind = type(node)
            if kind is dict:
                node = node.get(key, MISSING)
                if node is MISSING:
                    return MISSING
            elif kind is list:
                if not 0 <= index < len(node):
                    return MISSING
                node = node[index]
            else:
                node = step(node, key, index)
                if node is MISSING:
                    return MISSING
        return node

    return get


def step(node: Any, key: str, index: int) -> Any:
    """One segment of a path (`index` is the segment as a list index, or -1), or MISSING.

    The slow path: mappings and sequences that are not plain dicts and lists.
    """
    if node is MISSING or node is None or type(node) is str:
        return MISSING
    if isinstance(node, Mapping):
        return node.get(key, MISSING)
    if isinstance(node, list | tuple) and 0 <= index < len(node):
        return node[index]
    return MISSING


def _dict_getter(keys: tuple[str, ...]) -> Getter:
    # Unrolled for the short paths almost every route uses (`type`, `data.fiat.amount`):
    # this is the innermost loop of matching.
    if len(keys) == 1:
        (a,) = keys

        def get1(node: Any) -> Any:
            return node.get(a, MISSING) if type(node) is dict else step(node, a, -1)

        return get1
    if len(keys) == 2:
        a, b = keys

        def get2(node: Any) -> Any:
            node = node.get(a, MISSING) if type(node) is dict else step(node, a, -1)
            return node.get(b, MISSING) if type(node) is dict else step(node, b, -1)

        return get2
    a, b, c = keys

    def get3(node: Any) -> Any:
        node = node.get(a, MISSING) if type(node) is dict else step(node, a, -1)
        node = node.get(b, MISSING) if type(node) is dict else step(node, b, -1)
        return node.get(c, MISSING) if type(node) is dict else step(node, c, -1)

    return get3


_GETTERS: dict[str, Getter] = {}


class EventView(dict[str, Any]):
    """One event's path values, each resolved on first use and then shared by every route.

    Routes tend to test the same few paths (`data.fiat.amount`...); resolving each once per
    event instead of once per predicate is most of the cost of a predicate.
    """

    __slots__ = ("event",)
    event: Mapping[str, Any]

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> EventView:
        """A fresh, empty view of `event`."""
        view = cls()
        view.event = event
        return view

    def __missing__(self, path: str) -> Any:
        get = _GETTERS.get(path)
        if get is None:
            if len(_GETTERS) >= 8192:  # paths come from configs; the cap is only a backstop
                _GETTERS.clear()
            get = _GETTERS[path] = getter(path)
        value = self[path] = get(self.event)
        return value


# An omit trie: segment -> sub-trie, or DELETE for "remove this node".
DELETE: Final = "delete"
Trie = dict[str, Any]


def omit_trie(paths: tuple[str, ...]) -> Trie:
    """The union of `paths` as a trie; removing a node also removes everything below it."""
    trie: Trie = {}
    for path in paths:
        node = trie
        *parents, last = path.split(".")
        for segment in parents:
            child = node.get(segment)
            if child is DELETE:
                break
            if child is None:
                child = node[segment] = {}
            node = child
        else:
            node[last] = DELETE
    return trie


def omit(node: Any, trie: Trie) -> Any:
    """`node` without the trie's paths; copies only along removed paths, never mutates."""
    kind = type(node)  # plain dicts and lists first: an ABC isinstance check is slow
    if kind is dict or (kind is not list and isinstance(node, Mapping)):
        out: dict[str, Any] | None = None
        for key, sub in trie.items():
            if key not in node:
                continue
            if sub is DELETE:
                if out is None:
                    out = dict(node)
                del out[key]
            else:
                child = node[key]
                new = omit(child, sub)
                if new is not child:
                    if out is None:
                        out = dict(node)
                    out[key] = new
        return node if out is None else out
    if kind is list or isinstance(node, list | tuple):
        edits: dict[int, Any] = {}
        drop: set[int] = set()
        for key, sub in trie.items():
            if not is_index(key) or int(key) >= len(node):
                continue
            index = int(key)
            if sub is DELETE:
                drop.add(index)
            else:
                new = omit(node[index], sub)
                if new is not node[index]:
                    edits[index] = new
        if not edits and not drop:
            return node
        # Indices refer to the original list, so several removals never shift each other.
        return [edits.get(i, v) for i, v in enumerate(node) if i not in drop]
    return node
