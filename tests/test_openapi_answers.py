"""The OpenAPI document takes own answer bodies from the providers, not from a provider name."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.config import parse_config
from gateway.http.openapi import answer_schemas, document
from gateway.providers import registry
from tests.providers.rsa_keys import public_der_b64

_TAIL = """\
destinations: {all: {kafka: {topic: all}}}
routes: [{name: all, match: {}, to: [all]}]
"""


def _doc(sources: str) -> dict[str, Any]:
    text = f'kafka: {{bootstrap_servers: "127.0.0.1:1"}}\nsources:\n{sources}{_TAIL}'
    return document(parse_config(text), {})


def test_velafi_answer_schema_is_derived_from_its_bodies() -> None:
    velafi = registry()["velafi"]
    schema = answer_schemas([velafi])["VelafiAnswer"]
    assert schema["required"] == ["callbackStatus"]
    assert schema["additionalProperties"] is False
    assert schema["properties"] == {
        "callbackStatus": {"type": "string", "enum": ["SUCCESS", "FAIL"]}
    }
    for body in (velafi.success_body, velafi.error_body):
        assert body is not None
        assert msgspec.json.decode(body)["callbackStatus"] in ("SUCCESS", "FAIL")


def test_only_a_configured_provider_with_own_bodies_adds_answers() -> None:
    plain = _doc("  w: {provider: whitepay, secret: [s]}\n")
    responses = plain["paths"]["/webhooks/{source}"]["post"]["responses"]
    assert "VelafiAnswer" not in plain["components"]["schemas"]
    assert responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Accepted"
    }
    assert "application/json" not in responses["401"]["content"]

    both = _doc(
        "  w: {provider: whitepay, secret: [s]}\n"
        f"  v: {{provider: velafi, public_key: [{public_der_b64('openapi')}]}}\n"
    )
    responses = both["paths"]["/webhooks/{source}"]["post"]["responses"]
    ref = {"$ref": "#/components/schemas/VelafiAnswer"}
    assert "VelafiAnswer" in both["components"]["schemas"]
    assert ref in responses["200"]["content"]["application/json"]["schema"]["oneOf"]
    assert responses["401"]["content"]["application/json"]["schema"] == ref
    # Known before any source: no provider's own body.
    assert "application/json" not in responses["404"]["content"]
