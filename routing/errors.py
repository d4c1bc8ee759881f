"""Config errors of the routing rules: every problem, each with its absolute path."""

from __future__ import annotations

from typing import NamedTuple

PathPart = str | int


def format_path(path: tuple[PathPart, ...]) -> str:
    """`("routes", 3, "match", "where", 0)` as `routes[3].match.where[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "$"


class RuleError(NamedTuple):
    """One problem in the routing config; `path` is absolute from the config root."""

    path: tuple[PathPart, ...]
    message: str

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}"


class RoutingConfigError(Exception):
    """The `routes` / `unmatched` config is invalid; `errors` holds every problem found."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        noun = "error" if len(errors) == 1 else "errors"
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{len(errors)} routing config {noun}:\n{lines}")
