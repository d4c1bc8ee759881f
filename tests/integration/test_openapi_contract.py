"""The OpenAPI document tells the truth: schemathesis, every check, against `gateway serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from gateway.broker import Broker
from gateway.http.problems import _PROBLEMS
from tests import faults
from tests.conftest import Keys, make_keys, write_config
from tests.faults import Served, wait_ready
from tests.ingress_helpers import REPRESENTATIVE, sample, signed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, keys: Keys, broker: Broker
) -> Iterator[Served]:
    """`gateway serve` with all five providers (VelaFi included) on the session broker."""
    tmp_path = tmp_path_factory.mktemp("openapi")
    config = write_config(
        tmp_path, keys, bootstrap=broker.bootstrap, server="max_body_bytes: 65536"
    )
    served = faults.serve(config, tmp_path / "gateway.log")
    wait_ready(served.url, 200)
    yield served
    served.stop(timeout=30)


def test_document_lists_every_answer(gateway: Served) -> None:
    """The ingress documents each SPEC §2 status with problem details, and the real sources."""
    doc = httpx.get(f"{gateway.url}/schema/openapi.json", timeout=10).json()
    post = doc["paths"]["/webhooks/{source}"]["post"]
    spec = {"200", "400", "401", "403", "404", "405", "413", "415", "431", "503"}  # SPEC §2
    mapped = {str(status) for status, _, _ in _PROBLEMS.values()}  # every domain error's status
    assert set(post["responses"]) == spec | mapped
    assert post["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    assert post["responses"]["405"]["headers"]["Allow"]["required"] is True
    assert set(post["responses"]["401"]["content"]) == {
        "application/problem+json",
        "application/json",
    }
    assert post["parameters"][0]["schema"]["enum"] == sorted(
        ["fatpay", "velafi", "pay3", "whitepay", "w3block"]
    )
    assert list(post["requestBody"]["content"]) == ["application/json"]
    accepted = doc["components"]["schemas"]["Accepted"]["properties"]["status"]["enum"]
    assert accepted == ["accepted", "duplicate", "unrouted"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(doc["paths"])


def test_schemathesis_all_checks_pass(gateway: Served, tmp_path: Path) -> None:
    """schemathesis with every check finds no answer the document does not describe."""
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{gateway.url}/schema/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "100",
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--seed",
        "1",
        "--generation-database",
        "none",
        "--no-color",
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=200,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


def _resolve(schema: Any, doc: dict[str, Any]) -> Any:
    """`schema` with `#/components/schemas/...` references inlined."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _resolve(doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], doc)
        return {k: _resolve(v, doc) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve(v, doc) for v in schema]
    return schema


def _conforms(doc: dict[str, Any], path: str, method: str, response: httpx.Response) -> None:
    """The response's status, media type, headers and body are what the document says."""
    operation = doc["paths"][path][method]
    declared = operation["responses"].get(str(response.status_code))
    assert declared is not None, f"{response.status_code} is not documented for {path}"
    media = response.headers["content-type"].split(";")[0].strip()
    assert media in declared["content"], f"{media} not documented for {response.status_code}"
    for name, header in declared.get("headers", {}).items():
        if header.get("required"):
            assert name.lower() in response.headers, f"{name} missing on {response.status_code}"
    schema = _resolve(declared["content"][media]["schema"], doc)
    if media != "text/plain":
        jsonschema.validate(response.json(), schema)


def test_signed_requests_answer_as_documented(gateway: Served, keys: Keys) -> None:
    """Signed, duplicate, misshapen, forged, oversized and mistyped requests match the document."""
    doc = httpx.get(f"{gateway.url}/schema/openapi.json", timeout=10).json()
    path = "/webhooks/{source}"
    seen: list[tuple[str, int]] = []
    strangers = make_keys()  # keys the gateway does not know

    def post(source: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        response = httpx.post(
            f"{gateway.url}/webhooks/{source}", content=body, headers=headers, timeout=20
        )
        _conforms(doc, path, "post", response)
        seen.append((source, response.status_code))
        return response

    for provider, (name, _) in REPRESENTATIVE.items():
        headers, body = signed(provider, sample(provider, name), keys)
        first = post(provider, body, headers)
        assert first.status_code == 200, first.text
        again = post(provider, body, headers)
        if provider == "velafi":
            assert first.json() == again.json() == {"callbackStatus": "SUCCESS"}
        elif provider == "fatpay":  # a reused nonce is refused whatever the body (SPEC §9)
            assert again.status_code == 401
        else:
            assert first.json()["status"] == "accepted" and again.json()["status"] == "duplicate"
        bad_headers, bad_body = signed(provider, sample(provider, name), strangers)
        forged = post(provider, bad_body, bad_headers)
        assert forged.status_code == 401, (provider, seen)
        assert post(provider, body, {**headers, "content-type": "text/plain"}).status_code == 415
        assert post(provider, b"x" * 70_000, headers).status_code == 413
    headers, body = signed("whitepay", b'{"order": 5, "event_type": "order::completed"}', keys)
    assert post("whitepay", body, headers).status_code == 400
    assert post("nowhere", b"{}", {"content-type": "application/json"}).status_code == 404
    wrong = httpx.get(f"{gateway.url}/webhooks/whitepay", timeout=10)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    _conforms(doc, path, "post", wrong)
    for probe in ("/healthz", "/readyz", "/metrics"):
        _conforms(doc, probe, "get", httpx.get(f"{gateway.url}{probe}", timeout=10))
    print(f"\nchecked against the document: {seen}")
