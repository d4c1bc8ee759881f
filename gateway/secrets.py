"""A string type for secrets that never shows its value by accident."""

from __future__ import annotations

from typing import Any


class Secret:
    """Holds a secret value; `repr`, `str` and format show a mask, never the value.

    Read the value with `.reveal()` only where it is used (MAC keys, SASL passwords).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # pickling keeps working, but only explicitly
        return (Secret, (self._value,))
