"""`gateway asyncapi`: documents the official parser accepts, and that real events satisfy."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jmespath
import jsonschema
import pytest

from gateway.asyncapi import document
from gateway.config import load_config
from gateway.event import encode, to_builtins
from gateway.providers import registry
from gateway.transform import Transform
from tests.conftest import Keys, write_config
from tests.ingress_helpers import REPRESENTATIVE, sample
from tests.test_cli import ROOT, example_config, run

VALIDATE = Path(__file__).parent / "asyncapi" / "validate.mjs"


@pytest.fixture(scope="module")
def parser_dir() -> Path:
    """Where `make asyncapi-tools` installed @asyncapi/parser; fails (never skips) without it."""
    where = Path(os.environ.get("ASYNCAPI_PARSER_DIR") or ROOT / ".tools" / "asyncapi")
    installed = where / "node_modules" / "@asyncapi" / "parser" / "package.json"
    if not installed.is_file():
        pytest.fail(f"@asyncapi/parser not found under {where}: run `make asyncapi-tools`")
    return where


def official_parser(parser_dir: Path, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every diagnostic of @asyncapi/parser; fails on any of error severity."""
    result = subprocess.run(
        ["node", str(VALIDATE), str(parser_dir)],
        input=json.dumps(doc),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    errors = [d for d in lines if d.get("severity") == 0]
    assert result.returncode == 0 and not errors, result.stderr + "\n".join(map(str, errors))
    return lines


def conforms(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    """`value` satisfies `schema`, whose `#/components/...` references point into `doc`."""
    jsonschema.validate(value, {**schema, "components": doc["components"]})


def event_of(provider: str, name: str) -> dict[str, Any]:
    """A sample's normalized event as consumers read it (JSON, decimals as strings)."""
    module = registry()[provider]  # pay3's samples are the claims its verifier returns
    event = module.normalize(module.decode(sample(provider, name)), provider, datetime.now(UTC))
    parsed: dict[str, Any] = json.loads(encode(to_builtins(event)))
    return parsed


def test_dev_config_document_passes_the_official_parser(parser_dir: Path) -> None:
    """config/dev.yaml: one channel per Kafka topic, valid for @asyncapi/parser."""
    os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    doc = document(load_config(ROOT / "config" / "dev.yaml"))
    official_parser(parser_dir, doc)
    assert {c["address"] for c in doc["channels"].values()} == {
        "payments.orders",
        "payments.transactions",
        "payments.other",
    }
    binary = doc["components"]["messages"]["transactions.event"]
    assert "ce_id" in binary["headers"]["required"] and binary["contentType"] == "application/json"
    assert "events no route matched" in doc["channels"]["other"]["description"]
    assert doc["channels"]["orders"]["x-routes"] == [
        "all-orders: type order.* -> orders (omit data.payload.data.paymentInfo.clientSecret)"
    ]
    orders = doc["components"]["messages"]["orders.event"]
    for provider, (name, _) in REPRESENTATIVE.items():
        conforms(doc, orders["payload"], event_of(provider, name))


def test_example_config_document_via_the_command(
    parser_dir: Path, tmp_path: Path, keys: Keys
) -> None:
    """`gateway asyncapi --config config/gateway.yaml` prints a document the parser accepts."""
    path, env = example_config(tmp_path, keys)
    result = run("asyncapi", "--config", str(path), env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    official_parser(parser_dir, doc)
    for secret in (keys.pay3, keys.whitepay, keys.w3block, env["LEDGER_WHSEC"]):
        assert secret not in result.stdout
    assert set(doc["channels"]) == {"orders", "money-movements", "audit"}  # not the webhook
    # `money-movements` is fed only by a route pinning whitepay: its payload is Whitepay's body.
    movements = doc["components"]["messages"]["money-movements.event"]
    payload = movements["payload"]["properties"]["payload"]
    assert payload["$ref"] == "#/components/schemas/whitepay._Body"
    data = event_of("whitepay", "transaction-completed.json")["data"]
    conforms(doc, movements["payload"], data)  # binary mode: the value is `data`
    broken = {**data, "payload": {"event_type": 5}}
    with pytest.raises(jsonschema.ValidationError):
        conforms(doc, movements["payload"], broken)


def test_transformed_channel_describes_the_result(
    parser_dir: Path, tmp_path: Path, keys: Keys
) -> None:
    """A transformed destination's `data` is an open object naming the expression."""
    slim = "{order: subject, amount: data.fiat.amount}"
    destinations = f"""\
slim:
  kafka: {{topic: slim, key: data.id}}
  transform: "{slim}"
lean:
  kafka: {{topic: lean}}
"""
    routes = """\
- {name: shaped, match: {provider: whitepay}, to: [slim]}
- {name: lean, match: {source: whitepay}, to: [lean], omit: [data.provider_status]}
"""
    config = load_config(
        write_config(tmp_path, keys, destinations=destinations, routes=routes, unmatched="[]")
    )
    doc = document(config)
    official_parser(parser_dir, doc)
    message = doc["components"]["messages"]["slim.event"]
    data = message["payload"]["properties"]["data"]
    assert slim in data["description"] and data["additionalProperties"] is True
    assert "data.id" in message["bindings"]["kafka"]["key"]["description"]
    event = event_of("whitepay", "order-declined.json")
    shaped = Transform(slim).apply(event)
    assert shaped["data"] == jmespath.search(slim, event)
    conforms(doc, message["payload"], shaped)
    lean = doc["components"]["messages"]["lean.event"]["payload"]
    assert "provider_status" not in lean["properties"]["data"]["required"]
    omitted = {**event, "data": {k: v for k, v in event["data"].items() if k != "provider_status"}}
    conforms(doc, lean, omitted)
