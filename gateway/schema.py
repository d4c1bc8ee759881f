"""JSON Schema of the config file, for editors (yaml-language-server) and `gateway schema`."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.config import Destination, KafkaConfig, ServerConfig
from gateway.providers import registry
from gateway.secrets import Secret
from gateway.types import Duration, Secrets

_DURATION = {
    "type": "string",
    "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$",
    "description": "A duration: 500ms, 30s, 5m, 24h, 1d",
}
_SECRET = {"type": "string", "description": "A secret; use ${env:NAME} or ${file:/path}"}


def _hook(type_: type) -> dict[str, Any]:
    if type_ is Duration:
        return dict(_DURATION)
    if type_ is Secrets:
        return {"oneOf": [_SECRET, {"type": "array", "items": _SECRET, "minItems": 1}]}
    if type_ is Secret:
        return dict(_SECRET)
    raise NotImplementedError


def config_schema() -> dict[str, Any]:
    """The whole config file's JSON Schema (draft 2020-12)."""
    from routing import schema as routing_schema

    providers = registry()
    settings = [m.Settings for m in providers.values()]
    (server, kafka, destination, *provider_settings), defs = msgspec.json.schema_components(
        [ServerConfig, KafkaConfig, Destination, *settings],
        schema_hook=_hook,
        ref_template="#/$defs/{name}",
    )
    sources = []
    for name, ref in zip(providers, provider_settings, strict=True):
        body = dict(defs[ref["$ref"].rsplit("/", 1)[1]])
        props = dict(body.get("properties", {}))
        props["provider"] = {"const": name}
        props["allow_ips"] = {"type": "array", "items": {"type": "string"}}
        body["properties"] = props
        body["required"] = sorted({*body.get("required", []), "provider"})
        body["additionalProperties"] = False
        sources.append(body)
    routes = routing_schema()
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "webhook-gateway config",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "server": server,
            "kafka": kafka,
            "sources": {"type": "object", "additionalProperties": {"oneOf": sources}},
            "destinations": {"type": "object", "additionalProperties": destination},
            **routes.get("properties", {}),
        },
        "required": ["sources"],
        "$defs": {**defs, **routes.get("$defs", {})},
    }
    return schema
