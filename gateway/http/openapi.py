"""The OpenAPI document: every status, body and header the gateway can answer (SPEC §2).

Litestar lists the routes; this module describes them as they really answer, because the
ingress is a plain ASGI endpoint (`gateway.http.ingress`) whose answers Litestar never
sees: the configured source names, the request media types, every status of SPEC §2 (200
with its three `status` values, 400, 401, 403, 404, 405 with `Allow`, 413, 415, 431, 503
with `Retry-After`) as RFC 9457 problem details, and the answer bodies of its own that a
configured source's provider sends (`success_body` / `error_body`: VelaFi's
`callbackStatus`). The document is built once per process, from the config.
`tests/integration/test_openapi_contract.py` runs schemathesis with every check against a
served gateway to keep it honest.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin

from gateway.config import Config
from gateway.http.problems import _PROBLEMS, PROBLEM_JSON
from gateway.providers import Provider, registry

_REF = "#/components/schemas/"
_JSON = "application/json"

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; never carries secrets, signatures or body bytes.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "a URI naming the kind of problem"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "path": {
                "type": ["string", "null"],
                "description": "400 only: the JSON path of the body that is not the documented shape",
            },
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["id", "status"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "the event id (the dedupe key)"},
            "status": {
                "type": "string",
                "enum": ["accepted", "duplicate", "unrouted"],
                "description": "accepted: every destination's record is durable; duplicate: "
                "already accepted within the dedupe window, nothing forwarded again; unrouted: "
                "no route matched and there are no `unmatched` destinations",
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "kafka"],
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not ready"]},
            "kafka": {"type": "string", "enum": ["connected", "disconnected"]},
            "workers": {"type": "string", "enum": ["consuming", "not consuming"]},
        },
    },
}

_ALLOW = {
    "Allow": {
        "description": "the methods this path answers",
        "required": True,
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds after which the provider's retry is likely to succeed",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
# Statuses the ingress answers (SPEC §2) beyond those of `gateway.http.problems._PROBLEMS`:
# 431 comes from the HTTP layer, before a source is known.
_HEADER_LIMIT = (431, "Request header fields too large")


def answer_schemas(providers: list[Provider]) -> dict[str, Any]:
    """`<Name>Answer` components for the providers that answer with their own bodies.

    Derived from the provider's `success_body` / `error_body`: two JSON objects with the same
    keys and scalar values (VelaFi's `callbackStatus`) become an object whose properties
    take the values of either; any other bodies are listed as they are.
    """
    schemas: dict[str, Any] = {}
    for provider in providers:
        bodies = [b for b in (provider.success_body, provider.error_body) if b is not None]
        if not bodies:
            continue
        values = [msgspec.json.decode(body) for body in bodies]
        schema: dict[str, Any] = {"enum": values}
        keys = [sorted(v) if isinstance(v, dict) else None for v in values]
        scalar = (str, int, float, bool)
        if (
            keys[0] is not None
            and all(k == keys[0] for k in keys)
            and all(isinstance(x, scalar) for v in values for x in v.values())
        ):
            schema = {
                "type": "object",
                "required": keys[0],
                "additionalProperties": False,
                "properties": {
                    key: {
                        "type": _JSON_TYPES[type(values[0][key])],
                        "enum": list(dict.fromkeys(v[key] for v in values)),
                    }
                    for key in keys[0]
                },
            }
        schema["description"] = f"What {provider.name} sources answer instead (its own protocol)"
        schemas[_answer_name(provider)] = schema
    return schemas


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _answer_name(provider: Provider) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", provider.name)) + (
        "Answer"
    )


def _problem(description: str, errors: list[str], headers: dict[str, Any] | None = None) -> Any:
    """A problem-details response; `errors`: answer components some sources send instead."""
    content: dict[str, Any] = {PROBLEM_JSON: {"schema": {"$ref": _REF + "Problem"}}}
    if errors:
        schema = [{"$ref": _REF + name} for name in errors]
        content[_JSON] = {"schema": schema[0] if len(schema) == 1 else {"oneOf": schema}}
    response: dict[str, Any] = {"description": description, "content": content}
    if headers:
        response["headers"] = headers
    return response


def _used(config: Config) -> list[Provider]:
    """The providers of the configured sources, each once, in name order."""
    providers = registry()
    return sorted({providers[s.provider] for s in config.sources.values()}, key=lambda p: p.name)


def _ingress(config: Config) -> dict[str, Any]:
    sources = sorted(config.sources)
    used = _used(config)
    media = sorted({m for p in used for m in p.media_types})
    ok: dict[str, Any] = {"$ref": _REF + "Accepted"}
    answers = [_REF + _answer_name(p) for p in used if p.success_body is not None]
    if answers:
        ok = {"oneOf": [ok, *({"$ref": ref} for ref in answers)]}
    errors = [_answer_name(p) for p in used if p.error_body is not None]
    own = ", ".join(
        f"{p.name} sources answer `{p.success_body.decode()}`"
        for p in used
        if p.success_body is not None
    )
    responses: dict[str, Any] = {
        "200": {
            "description": "The event is safe (accepted), was already accepted (duplicate), "
            "or matched no route (unrouted)." + (f" Instead, {own}." if own else ""),
            "content": {_JSON: {"schema": ok}},
        }
    }
    by_status: dict[int, list[str]] = {}
    for status, title, _ in _PROBLEMS.values():
        by_status.setdefault(status, []).append(title)
    by_status.setdefault(_HEADER_LIMIT[0], []).append(_HEADER_LIMIT[1])
    for status in sorted(by_status):
        description = "; ".join(by_status[status])
        # Known before any source: the HTTP layer (431), the method (405), the source (404).
        source_known = status not in (404, 405, 431)
        headers = _ALLOW if status == 405 else _RETRY_AFTER if status == 503 else None
        responses[str(status)] = _problem(description, errors if source_known else [], headers)
    return {
        "summary": "Receive a provider webhook",
        "description": "Verify the provider's signature over the raw body, decode, normalize "
        "to a CloudEvent, dedupe, route and durably hand off; answer only once the event is "
        "safe. Each source's provider decides the signature headers (see the README).",
        "operationId": "receiveWebhook",
        "parameters": [
            {
                "name": "source",
                "in": "path",
                "required": True,
                "description": "a source name from the config",
                "schema": {"type": "string", "enum": sources},
            }
        ],
        "requestBody": {
            "required": True,
            "description": f"the provider's body, at most {config.server.max_body_bytes} bytes",
            "content": {m: {"schema": {"type": "object"}} for m in media},
        },
        "responses": responses,
    }


def _get(summary: str, responses: dict[str, Any], operation_id: str) -> dict[str, Any]:
    responses = {
        **responses,
        "405": _problem("Method not allowed", [], _ALLOW),
        str(_HEADER_LIMIT[0]): _problem(_HEADER_LIMIT[1], []),
    }
    return {"get": {"summary": summary, "operationId": operation_id, "responses": responses}}


def document(config: Config, generated: dict[str, Any]) -> dict[str, Any]:
    """Litestar's generated document, with every operation described as it answers."""
    doc = copy.deepcopy(generated)
    paths = doc.setdefault("paths", {})
    ingress = paths.setdefault("/webhooks/{source}", {})
    ingress.clear()
    ingress["post"] = _ingress(config)
    ingress["post"]["responses"]["405"]["description"] += " (every method but POST)"
    paths["/healthz"] = _get(
        "The process is alive",
        {
            "200": {
                "description": "alive",
                "content": {_JSON: {"schema": {"$ref": _REF + "Health"}}},
            }
        },
        "healthz",
    )
    readiness = {"content": {_JSON: {"schema": {"$ref": _REF + "Readiness"}}}}
    paths["/readyz"] = _get(
        "Config loaded and broker reachable",
        {
            "200": {"description": "ready: the producer reaches the broker", **readiness},
            "503": {"description": "not ready (the body says what is missing)", **readiness},
        },
        "readyz",
    )
    paths["/metrics"] = _get(
        "Prometheus metrics",
        {
            "200": {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
        "metrics",
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(copy.deepcopy(SCHEMAS))
    schemas.update(answer_schemas(_used(config)))
    return doc


class OpenAPIDocument(JsonRenderPlugin):
    """Serves `document(config, ...)` at /schema/openapi.json (built once, on first request)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self._config = config
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The JSON of the whole document."""
        if self._rendered is None:
            self._rendered = msgspec.json.encode(document(self._config, openapi_schema))
        return self._rendered
