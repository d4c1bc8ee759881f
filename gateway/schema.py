"""JSON Schema of the config file, for editors (yaml-language-server) and `gateway schema`.

Generated from the same msgspec Structs the loader validates with (via `msgspec.inspect`),
so the schema cannot drift from what `gateway check` accepts.
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from gateway.config import ConsoleConfig, Destination, KafkaConfig, ServerConfig, SpoolConfig
from gateway.providers import registry
from gateway.secrets import Secret
from gateway.state import StateConfig
from gateway.tracing import TracingConfig
from gateway.types import Duration, RateLimit, Secrets

_DURATION = {
    "type": "string",
    "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$",
    "description": "A duration: 500ms, 30s, 5m, 24h, 1d",
}
_SECRET = {"type": "string", "description": "A secret; use ${env:NAME} or ${file:/path}"}
_RATE = {
    "type": "string",
    "pattern": r"^\s*\d+(\.\d+)?\s*/\s*(s|m)\s*$",
    "description": "A rate: 50/s, 600/m",
}


def _default(value: Any) -> Any:
    if isinstance(value, Duration):
        return f"{float(value):g}s"
    if isinstance(value, msgspec.Struct):
        return {f: _default(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, tuple | list):
        return [_default(v) for v in value]
    return value


def _schema(t: mi.Type) -> dict[str, Any]:
    """JSON Schema of one msgspec type description."""
    if isinstance(t, mi.CustomType):
        if t.cls is Duration:
            return dict(_DURATION)
        if t.cls is Secrets:
            return {"oneOf": [_SECRET, {"type": "array", "items": _SECRET, "minItems": 1}]}
        if t.cls is Secret:
            return dict(_SECRET)
        if t.cls is RateLimit:
            return dict(_RATE)
        return {}
    if isinstance(t, mi.StructType):
        props: dict[str, Any] = {}
        for f in t.fields:
            schema = _schema(f.type)
            if f.default is not msgspec.NODEFAULT:
                schema["default"] = _default(f.default)
            elif f.default_factory is not msgspec.NODEFAULT:
                schema["default"] = _default(f.default_factory())
            props[f.encode_name] = schema
        out: dict[str, Any] = {
            "type": "object",
            "title": t.cls.__name__,
            "properties": props,
            "additionalProperties": not t.forbid_unknown_fields,
        }
        if t.cls.__doc__:
            out["description"] = t.cls.__doc__.strip().splitlines()[0]
        required = [f.encode_name for f in t.fields if f.required]
        if required:
            out["required"] = required
        return out
    if isinstance(t, mi.UnionType):
        return {"anyOf": [_schema(x) for x in t.types]}
    if isinstance(t, mi.LiteralType):
        return {"enum": list(t.values)}
    if isinstance(t, mi.IntType):
        out = {"type": "integer"}
        for key, name in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum")):
            if getattr(t, key) is not None:
                out[name] = getattr(t, key)
        return out
    if isinstance(t, mi.FloatType):
        return {"type": "number"}
    if isinstance(t, mi.StrType):
        return {"type": "string"}
    if isinstance(t, mi.BoolType):
        return {"type": "boolean"}
    if isinstance(t, mi.NoneType):
        return {"type": "null"}
    if isinstance(t, mi.ListType | mi.TupleType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        item = getattr(t, "item_type", None)
        return {"type": "array", "items": _schema(item) if item is not None else {}}
    if isinstance(t, mi.DictType):
        return {"type": "object", "additionalProperties": _schema(t.value_type)}
    return {}


def config_schema() -> dict[str, Any]:
    """The whole config file's JSON Schema (draft 2020-12)."""
    from routing import schema as routing_schema

    sources = []
    for name, module in registry().items():
        body = _schema(mi.type_info(module.Settings))
        body["title"] = f"{name} source"
        body["properties"] = {
            "provider": {"const": name},
            "allow_ips": {"type": "array", "items": {"type": "string"}},
            **body["properties"],
        }
        body["required"] = sorted({*body.get("required", []), "provider"})
        sources.append(body)
    destination = _schema(mi.type_info(Destination))
    destination["oneOf"] = [{"required": ["kafka"]}, {"required": ["webhook"]}]
    routes = routing_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "webhook-gateway config",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "server": _schema(mi.type_info(ServerConfig)),
            "kafka": _schema(mi.type_info(KafkaConfig)),
            "spool": _schema(mi.type_info(SpoolConfig)),
            "state": _schema(mi.type_info(StateConfig)),
            "tracing": _schema(mi.type_info(TracingConfig)),
            "console": _schema(mi.type_info(ConsoleConfig)),
            "sources": {"type": "object", "additionalProperties": {"oneOf": sources}},
            "destinations": {"type": "object", "additionalProperties": destination},
            **routes.get("properties", {}),
        },
        "required": ["sources"],
        **({"$defs": routes["$defs"]} if "$defs" in routes else {}),
    }
