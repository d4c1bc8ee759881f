"""JSON Schema (draft 2020-12) of `routes` and `unmatched`, for editor completion."""

from __future__ import annotations

from typing import Any

from routing.model import OPERATORS

_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}
_DECIMAL: dict[str, Any] = {
    "anyOf": [
        {"type": "number"},
        {
            "type": "string",
            "pattern": r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$",
        },
    ],
    "description": 'A decimal number; strings such as "1000.00" compare exactly.',
}
_TEXT: dict[str, Any] = {"type": "string", "minLength": 1}

_OPERATOR_VALUES: dict[str, dict[str, Any]] = {
    "eq": {**_SCALAR, "description": "Equal (a number also matches equal decimal strings)."},
    "ne": {**_SCALAR, "description": "Present and not equal."},
    "in": {"type": "array", "items": _SCALAR, "minItems": 1, "description": "One of the values."},
    "not_in": {
        "type": "array",
        "items": _SCALAR,
        "minItems": 1,
        "description": "Present and none of the values.",
    },
    "exists": {"type": "boolean", "description": "The path is present (true) or absent (false)."},
    "prefix": {**_TEXT, "description": "A string starting with this."},
    "suffix": {**_TEXT, "description": "A string ending with this."},
    "glob": {**_TEXT, "description": "A string matching this glob (*, ?, [a-z])."},
    "regex": {**_TEXT, "description": "A string containing a match (Python `re` syntax)."},
    "gt": {**_DECIMAL},
    "gte": {**_DECIMAL},
    "lt": {**_DECIMAL},
    "lte": {**_DECIMAL},
}
assert tuple(_OPERATOR_VALUES) == OPERATORS  # one list of operators, kept in step

_PATH: dict[str, Any] = {
    "type": "string",
    "pattern": r"^[^.\[\]$][^.\[\]]*(\.[^.\[\]]+)*$",
    "description": "Dotted path into the event; list indices are segments (data.items.0.amount).",
}
_STRINGS: dict[str, Any] = {
    "anyOf": [_TEXT, {"type": "array", "items": _TEXT, "minItems": 1, "uniqueItems": True}]
}


def schema() -> dict[str, Any]:
    """JSON Schema of the `routes` and `unmatched` keys (merge `$defs` and `properties`)."""
    predicate = {
        "type": "object",
        "properties": {"path": _PATH, **_OPERATOR_VALUES},
        "required": ["path"],
        "additionalProperties": False,
        "minProperties": 2,
        "maxProperties": 2,
    }
    combinators = {
        key: {
            "type": "object",
            "properties": {key: {"$ref": "#/$defs/RouteConditions"}},
            "required": [key],
            "additionalProperties": False,
        }
        for key in ("any", "all")
    }
    negation = {
        "type": "object",
        "properties": {
            "not": {
                "anyOf": [{"$ref": "#/$defs/RouteCondition"}, {"$ref": "#/$defs/RouteConditions"}]
            }
        },
        "required": ["not"],
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "routes": {
                "type": "array",
                "items": {"$ref": "#/$defs/Route"},
                "description": "Every route whose match holds fires; see the routing reference.",
            },
            "unmatched": {
                "type": "array",
                "items": _TEXT,
                "uniqueItems": True,
                "description": "Destinations for events that match no route.",
            },
        },
        "$defs": {
            "Route": {
                "type": "object",
                "properties": {
                    "name": {**_TEXT, "description": "Unique route name (logs, metrics)."},
                    "match": {"$ref": "#/$defs/RouteMatch"},
                    "to": {
                        "type": "array",
                        "items": _TEXT,
                        "minItems": 1,
                        "uniqueItems": True,
                        "description": "Destination names.",
                    },
                    "omit": {
                        "type": "array",
                        "items": _PATH,
                        "uniqueItems": True,
                        "description": (
                            "Paths removed before delivery to this route's destinations."
                        ),
                    },
                },
                "required": ["name", "match", "to"],
                "additionalProperties": False,
            },
            "RouteMatch": {
                "type": "object",
                "properties": {
                    "source": {**_STRINGS, "description": "Source name(s) from `sources`."},
                    "provider": {**_STRINGS, "description": "Provider name(s)."},
                    "type": {**_STRINGS, "description": "Event type(s); globs like order.*."},
                    "where": {"$ref": "#/$defs/RouteConditions"},
                },
                "additionalProperties": False,
                "description": "All keys must hold; `{}` matches every event.",
            },
            "RouteConditions": {
                "type": "array",
                "items": {"$ref": "#/$defs/RouteCondition"},
                "minItems": 1,
            },
            "RouteCondition": {
                "anyOf": [
                    {"$ref": "#/$defs/RoutePredicate"},
                    combinators["any"],
                    combinators["all"],
                    negation,
                ]
            },
            "RoutePredicate": predicate,
        },
    }
