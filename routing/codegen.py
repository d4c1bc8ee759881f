"""Generated Python functions: the constants they use, and the one place source becomes code.

The router compiles conditions to Python source (`values.test_source` per operator,
`program.py` for whole routes and plans) so that matching an event is one call with inline
tests instead of a call per condition.

What the source may contain: identifiers made up here (`k12`, `p3`), fixed syntax and ints
the generator counts itself. Every value that comes from a config (strings, numbers,
patterns, path segments) is bound to a name in the function's namespace with `bind`, never
spliced into the text, so no config can change what the generated code does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Namespace:
    """The globals of generated functions: fixed helpers plus bound constants."""

    def __init__(self, **helpers: Any) -> None:
        self.values: dict[str, Any] = dict(helpers)
        self._names: dict[int, str] = {}

    def bind(self, value: Any) -> str:
        """The name under which generated code reads `value` (one name per object)."""
        # Keyed by identity: the namespace holds the object, so its id stays unique.
        name = self._names.get(id(value))
        if name is None:
            name = self._names[id(value)] = f"k{len(self._names)}"
            self.values[name] = value
        return name

    def define(self, name: str, source: str) -> Callable[..., Any]:
        """Run `source` (a `def name(...)`) in this namespace and return the function."""
        code = compile(source, f"<routing {name}>", "exec")
        exec(code, self.values)  # noqa: S102 -- no config text in `source`; see the docstring
        function: Callable[..., Any] = self.values.pop(name)
        return function
