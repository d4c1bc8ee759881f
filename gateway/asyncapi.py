"""`gateway asyncapi`: an AsyncAPI 3.0 contract of every Kafka destination (SPEC §11).

One channel per Kafka destination: its topic, the record key (the `key` path), the
CloudEvents Kafka-binding headers of its `mode`, the routes that feed it, and the JSON
Schema of its messages, generated from the normalized event's msgspec Structs
(`gateway.event.CloudEvent`). Where every route feeding a channel pins the provider (by
`provider` or `source`), `data.payload` is that provider's documented body shape (the
Structs its module decodes, which tolerate unknown fields); otherwise it is any JSON
object. A destination's `transform` makes `data` the expression's result, described as an
open value with the expression. Pure: no broker, no network.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from gateway import __version__
from gateway.config import Config, KafkaDestination
from gateway.event import CloudEvent
from gateway.transform import parse
from routing import describe_route

_SCHEMAS = "#/components/schemas/"
_BINDING = "0.5.0"
STRUCTURED = "application/cloudevents+json; charset=UTF-8"
# CloudEvent attributes that travel as `ce_*` headers in binary mode (all but data and
# datacontenttype, which becomes content-type), as gateway.destinations.kafka writes them.
_CE_HEADERS = tuple(
    f.encode_name
    for f in msgspec.structs.fields(CloudEvent)
    if f.encode_name not in ("data", "datacontenttype")
)
_DECIMAL = {
    "anyOf": [{"type": "string"}, {"type": "number"}],
    "description": "an exact amount: a decimal string, or the number as the provider sent it",
}


def _payload_types() -> dict[str, list[Any]]:
    """Each named provider's documented body, as the Structs its `decode` reads."""
    from gateway.providers import fatpay, pay3, velafi, w3block, whitepay

    shapes = {
        "fatpay": (fatpay, ("_Wrapped",)),
        "velafi": (velafi, ("OrderWebhook", "OtherWebhook")),
        "pay3": (pay3, ("_Nested", "_Flat")),
        "whitepay": (whitepay, ("_Body",)),
        "w3block": (w3block, ("_Body",)),
    }
    # A provider whose module no longer has these Structs is described as any JSON object
    # (tests/test_asyncapi.py pins Whitepay's, so a rename is noticed there).
    found = {
        name: [getattr(module, struct, None) for struct in structs]
        for name, (module, structs) in shapes.items()
    }
    return {name: types for name, types in found.items() if None not in types}


def _relax_decimals(schema: Any) -> Any:
    """msgspec says Decimal is a string; in the event it is a string or the provider's number."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and schema.get("format") == "decimal":
            return dict(_DECIMAL)
        return {k: _relax_decimals(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_relax_decimals(v) for v in schema]
    return schema


def _components(providers: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Envelope schemas, and each provider's payload schema (`provider -> schema`)."""
    (_,), envelope = msgspec.json.schema_components([CloudEvent], ref_template=_SCHEMAS + "{name}")
    schemas = _relax_decimals(envelope)
    payloads: dict[str, Any] = {}
    types = _payload_types()
    for provider in providers:
        if provider not in types:
            continue
        prefix = f"{provider}.".replace("-", "_")
        refs, found = msgspec.json.schema_components(
            types[provider], ref_template=_SCHEMAS + prefix + "{name}"
        )
        for name, schema in found.items():
            schemas[prefix + name] = _relax_decimals(schema)
        payloads[provider] = refs[0] if len(refs) == 1 else {"anyOf": list(refs)}
        payloads[provider]["description"] = f"the {provider} body, as decoded"
    return schemas, payloads


def _feeding(config: Config, name: str) -> tuple[list[Any], bool]:
    """The routes that send to `name`, and whether unmatched events go there too."""
    routes = [r for r in config.router.routes if name in r.to]
    return routes, name in config.router.unmatched


def _providers_of(config: Config, routes: list[Any], unmatched: bool) -> list[str] | None:
    """The providers whose events reach a channel, or None when any provider's can."""
    if unmatched or not routes:
        return None
    providers: set[str] = set()
    for route in routes:
        pinned: set[str] = set(route.match.provider)
        if route.match.source:
            by_source = {
                config.sources[s].provider for s in route.match.source if s in config.sources
            }
            pinned = by_source if not pinned else pinned & by_source
        if not pinned:
            return None
        providers |= pinned
    return sorted(providers)


def _transformed(expression: str) -> dict[str, Any]:
    """The schema of a transform's result: open, typed by the expression's outer shape."""
    kind = parse(expression)["type"]
    schema: dict[str, Any] = {
        "description": f"the result of the JMESPath transform `{expression}` over the event "
        "(null when it yields nothing)"
    }
    if kind == "multi_select_dict":
        schema["type"] = ["object", "null"]
        schema["additionalProperties"] = True
    elif kind == "multi_select_list":
        schema["type"] = ["array", "null"]
    return schema


def _data_schema(
    schemas: dict[str, Any],
    providers: list[str] | None,
    payloads: dict[str, Any],
    omitted: set[str],
) -> dict[str, Any]:
    """`data` for one channel: the normalized view, with this channel's payload shapes."""
    dropped = {p.split(".", 1)[1] for p in omitted if p.startswith("data.") and p.count(".") == 1}
    pinned = bool(providers) and all(p in payloads for p in providers or ())
    if not dropped and not pinned:
        return {"$ref": _SCHEMAS + "EventData"}
    data: dict[str, Any] = copy.deepcopy(schemas["EventData"])
    if pinned:
        assert providers is not None
        shapes = [payloads[p] for p in providers]
        data["properties"]["payload"] = shapes[0] if len(shapes) == 1 else {"anyOf": shapes}
    for field in dropped:  # the routes' `omit` removes it: neither required nor promised
        data["properties"].pop(field, None)
        data["required"] = [r for r in data["required"] if r != field]
    return data


def _message(
    name: str,
    dest: KafkaDestination,
    transform: str | None,
    data: dict[str, Any],
    envelope: dict[str, Any],
) -> dict[str, Any]:
    """The message of one channel: headers and payload of its binding mode, and its key."""
    body = _transformed(transform) if transform else data
    if dest.mode == "structured":
        payload: dict[str, Any] = {"$ref": _SCHEMAS + "CloudEvent"}
        if body != {"$ref": _SCHEMAS + "EventData"}:
            payload = copy.deepcopy(envelope)
            payload["title"] = f"CloudEvent ({name})"
            payload["properties"]["data"] = body
        headers: dict[str, Any] = {
            "type": "object",
            "required": ["content-type"],
            "properties": {
                "content-type": {"type": "string", "const": STRUCTURED},
                "traceparent": _TRACEPARENT,
            },
        }
        content_type = "application/cloudevents+json"
    else:
        payload = body
        properties: dict[str, Any] = {
            f"ce_{attribute}": {
                "type": "string",
                "description": f"the CloudEvent's `{attribute}` attribute",
            }
            for attribute in _CE_HEADERS
        }
        properties["content-type"] = {"type": "string", "const": "application/json"}
        properties["traceparent"] = _TRACEPARENT
        headers = {
            "type": "object",
            "required": [
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "content-type",
            ],
            "properties": properties,
        }
        content_type = "application/json"
    return {
        "name": name,
        "title": f"CloudEvent on {dest.topic}",
        "summary": f"One normalized event per record ({dest.mode} mode of the CloudEvents "
        "Kafka binding); dedupe on the CloudEvent `id`.",
        "contentType": content_type,
        "headers": headers,
        "payload": payload,
        "correlationId": {
            "description": "the event id: stable across provider retries",
            "location": "$message.payload#/id"
            if dest.mode == "structured"
            else "$message.header#/ce_id",
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": f"the event's `{dest.key}` (read before any transform); "
                    "absent when the event has none",
                },
                "bindingVersion": _BINDING,
            }
        },
    }


_TRACEPARENT = {
    "type": "string",
    "description": "W3C trace context of the webhook that produced the record (tracing on)",
}


def document(config: Config) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every Kafka destination of `config`."""
    kafka = config.kafka_destinations()
    reach: dict[str, tuple[list[Any], bool, list[str] | None]] = {}
    named: set[str] = set()
    for name in kafka:
        routes, unmatched = _feeding(config, name)
        providers = _providers_of(config, routes, unmatched)
        reach[name] = (routes, unmatched, providers)
        named |= set(providers or ())
    schemas, payloads = _components(sorted(named))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, dest in kafka.items():
        routes, unmatched, providers = reach[name]
        omitted = {p for r in routes for p in r.omit}
        fed = [f"`{r.name}`" for r in routes] + (["events no route matched"] if unmatched else [])
        description = f"Fed by: {', '.join(fed) if fed else 'nothing (no route names it)'}."
        if omitted:
            description += f" Omitted by those routes: {', '.join(sorted(omitted))}."
        if providers:
            description += f" Providers: {', '.join(providers)}."
        transform = config.destinations[name].transform
        if transform:
            description += f" `data` is the transform `{transform}`."
        data = _data_schema(schemas, providers, payloads, omitted)
        key = f"{name}.event"
        messages[key] = _message(name, dest, transform, data, schemas["CloudEvent"])
        channel: dict[str, Any] = {
            "address": dest.topic,
            "title": name,
            "description": description,
            "messages": {"event": {"$ref": f"#/components/messages/{key}"}},
            # The same, for tools: one line per feeding route, as `gateway check` prints it.
            "x-routes": [describe_route(r) for r in routes]
            + (["(unmatched): events no route matched"] if unmatched else []),
            "bindings": {"kafka": {"topic": dest.topic, "bindingVersion": _BINDING}},
        }
        if config.kafka.create_topics:
            channel["bindings"]["kafka"]["partitions"] = config.kafka.topic_partitions
            channel["bindings"]["kafka"]["replicas"] = config.kafka.topic_replication
        channels[name] = channel
        operations[f"send.{name}"] = {
            "action": "send",
            "title": f"The gateway produces to {dest.topic}",
            "summary": "acks=all, before the provider gets its 2xx",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/event"}],
        }
    secure = config.kafka.security_protocol != "PLAINTEXT"
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Webhook gateway event streams",
            "version": __version__,
            "description": f"The Kafka topics of {config.path}: normalized CloudEvents of "
            "provider webhooks, one record per event and destination.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "kafka": {
                "host": config.kafka.bootstrap_servers,
                "protocol": "kafka-secure" if secure else "kafka",
                "description": f"security_protocol {config.kafka.security_protocol}",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": copy.deepcopy(schemas), "messages": messages},
    }
