"""The `gateway` commands as a user runs them: check, schema, explain, sign."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from gateway.cli import main
from gateway.config import load_config
from gateway.providers import registry
from tests.conftest import Keys, write_config
from tests.ingress_helpers import sample

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m gateway ARGS` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def example_config(tmp_path: Path, keys: Keys) -> tuple[Path, dict[str, str]]:
    """config/gateway.yaml with its key files and env secrets provided, as a pod would."""
    keydir = tmp_path / "keys"
    keydir.mkdir()
    (keydir / "fatpay.pem").write_text(keys.fatpay.public_pem)
    (keydir / "velafi.pem").write_text(keys.velafi.public_pem)
    (keydir / "velafi-next.pem").write_text(keys.velafi_old.public_pem)
    text = (
        (ROOT / "config" / "gateway.yaml").read_text().replace("/etc/gateway/keys/", f"{keydir}/")
    )
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    env = {
        "PAY3_SECRET": keys.pay3,
        "WHITEPAY_TOKEN": keys.whitepay,
        "W3BLOCK_SIGNATURE_KEY": keys.w3block,
        "LEDGER_WHSEC": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }
    return path, env


def test_check_accepts_documented_example(tmp_path: Path, keys: Keys) -> None:
    """`gateway check` passes config/gateway.yaml and summarizes sources, destinations, routes."""
    path, env = example_config(tmp_path, keys)
    result = run("check", "--config", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert "sources (5)" in result.stdout
    assert "large-completed-orders-to-ledger" in result.stdout
    assert "webhook https://ledger.internal/hooks/payments" in result.stdout
    for secret in (keys.pay3, keys.whitepay, keys.w3block, env["LEDGER_WHSEC"]):
        assert secret not in result.stdout + result.stderr


def test_check_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    """An invalid config exits 1 and lists every problem with file:line: path."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "server:\n  max_body_bytes: lots\nsources:\n  x:\n    provider: nopay\n"
        "destinations: {}\nroutes:\n  - name: r\n    match: {type: a}\n    to: [missing]\n"
    )
    result = run("check", "--config", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: server.max_body_bytes" in result.stderr
    assert f"{bad}:5: sources.x.provider" in result.stderr
    assert f"{bad}:10: routes[0].to[0]" in result.stderr


def test_dev_config_checks() -> None:
    """config/dev.yaml (what `make dev` serves) is valid."""
    result = run("check", "--config", "config/dev.yaml")
    assert result.returncode == 0, result.stderr


def test_schema_is_committed_and_validates_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway schema` equals config/gateway.schema.json, and both example configs validate."""
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    committed = json.loads((ROOT / "config" / "gateway.schema.json").read_text())
    assert printed == committed, "run `gateway schema > config/gateway.schema.json`"
    validator = jsonschema.Draft202012Validator(printed)
    for name in ("gateway.yaml", "dev.yaml"):
        doc = yaml.safe_load((ROOT / "config" / name).read_text())
        assert not list(validator.iter_errors(doc)), name
    wrong = {"sources": {"a": {"provider": "whitepay", "secret": "x", "typo": 1}}}
    assert list(validator.iter_errors(wrong))


def explain_whitepay(
    path: Path, body: Path, env: dict[str, str], *flags: str
) -> subprocess.CompletedProcess[str]:
    """`gateway explain --source whitepay` on `body` with the given `-H` flags."""
    return run(
        "explain",
        "--config",
        str(path),
        "--source",
        "whitepay",
        "--body",
        str(body),
        *flags,
        env=env,
    )


def test_explain_shows_event_and_each_route(tmp_path: Path, keys: Keys) -> None:
    """`gateway explain` verifies and normalizes one request and says why each route matched or missed."""
    path, env = example_config(tmp_path, keys)
    body = tmp_path / "body.json"
    body.write_bytes(sample("whitepay", "order-declined.json"))
    headers, _ = registry()["whitepay"].sign(keys.whitepay, body.read_bytes(), 0)
    flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    result = explain_whitepay(path, body, env, *flags)
    assert result.returncode == 0, result.stderr
    assert '"type": "order.declined"' in result.stdout
    assert "all-orders" in result.stdout and "large-completed-orders-to-ledger" in result.stdout
    assert keys.whitepay not in result.stdout


def test_explain_rejects_bad_signature(tmp_path: Path, keys: Keys) -> None:
    """`gateway explain` reports the HTTP status a forged request would get."""
    path, env = example_config(tmp_path, keys)
    body = tmp_path / "body.json"
    body.write_bytes(sample("whitepay", "order-declined.json"))
    result = explain_whitepay(path, body, env, "-H", "signature: " + "0" * 64)
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr


@pytest.mark.parametrize("provider", ["fatpay", "velafi", "pay3", "whitepay", "w3block"])
def test_sign_prints_a_curl_the_gateway_accepts(tmp_path: Path, keys: Keys, provider: str) -> None:
    """`gateway sign` prints a curl whose headers and body verify against the configured keys."""
    key = {
        "fatpay": keys.fatpay.private_pem,
        "velafi": keys.velafi.private_pem,
        "pay3": keys.pay3,
        "whitepay": keys.whitepay,
        "w3block": keys.w3block,
    }[provider]
    keyfile = tmp_path / "key"
    keyfile.write_text(key)
    bodyfile = tmp_path / "body.json"
    bodyfile.write_bytes(
        sample(
            provider,
            {
                "fatpay": "order-finished.json",
                "velafi": "order-webhook-example.json",
                "pay3": "claims-flat.json",
                "whitepay": "transaction-completed.json",
                "w3block": "order-failed.json",
            }[provider],
        )
    )
    url = "https://hooks.example.com/webhooks/fatpay" if provider == "fatpay" else None
    args = ["sign", "--provider", provider, "--key", str(keyfile), "--body", str(bodyfile)]
    if url:
        args += ["--url", url, "--partner-id", keys.partner_id]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    words = shlex.split(result.stdout)
    assert words[0] == "curl"
    headers = {}
    for i, word in enumerate(words):
        if word == "-H":
            name, _, value = words[i + 1].partition(": ")
            headers[name.lower()] = value
    payload = words[words.index("--data-binary") + 1].encode()
    config = load_config(write_config(tmp_path, keys))
    module = registry()[provider]
    verifier = module.build_verifier(config.sources[provider].settings)
    import time

    content = verifier.verify(payload, headers, time.time())
    assert module.normalize(
        module.decode(content), provider, __import__("datetime").datetime.now()
    ).type


def test_config_errors_are_not_request_errors() -> None:
    """A `ConfigError` can never reach the ingress's error mapping (and so never a 500 there)."""
    from gateway.errors import ConfigError, GatewayError

    assert not issubclass(ConfigError, GatewayError)


def test_dev_and_cli_do_not_import_each_other() -> None:
    """`gateway.dev` loads without `gateway.cli` (the commands share `gateway.cli_support`)."""
    import subprocess
    import sys

    code = "import sys, gateway.dev; print('gateway.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_explain_prints_each_destinations_exact_body(tmp_path: Path, keys: Keys) -> None:
    """`gateway explain` prints per destination the body it would get (after omit and transform)."""
    slim = "{order: subject, amount: data.fiat.amount, status: data.status}"
    destinations = f"""\
full:
  kafka: {{topic: full}}
slim:
  kafka: {{topic: slim, mode: binary}}
  transform: "{slim}"
hook:
  webhook: {{url: "https://hooks.internal/in", secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, headers: {{X-Team: payments}}}}
  transform: "{{kind: data.kind, provider: provider}}"
"""
    routes = """\
- {name: all, match: {provider: whitepay}, to: [full]}
- {name: shaped, match: {provider: whitepay}, to: [slim, hook], omit: [data.fiat]}
"""
    path = write_config(tmp_path, keys, destinations=destinations, routes=routes, unmatched="[]")
    body = tmp_path / "body.json"
    body.write_bytes(sample("whitepay", "order-declined.json"))
    headers, _ = registry()["whitepay"].sign(keys.whitepay, body.read_bytes(), 0)
    flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    result = run(
        "explain", "--config", str(path), "--source", "whitepay", "--body", str(body), *flags
    )
    assert result.returncode == 0, result.stderr
    sections = {
        block.split(":", 1)[0].removeprefix("destination "): block.splitlines()
        for block in result.stdout.split("\n\n")
        if block.startswith("destination ")
    }
    assert set(sections) == {"full", "slim", "hook"}, result.stdout
    bodies = {name: json.loads(lines[-1]) for name, lines in sections.items()}
    event = bodies["full"]  # structured: the whole CloudEvent
    assert event["type"] == "order.declined" and event["data"]["fiat"]["currency"]
    assert bodies["slim"] == {"order": event["subject"], "amount": None, "status": "declined"}
    assert bodies["hook"]["data"] == {"kind": "order", "provider": "whitepay"}
    assert {k: v for k, v in bodies["hook"].items() if k != "data"} == {
        k: v for k, v in event.items() if k != "data"
    }
    assert f"  header ce_id: {event['id']}" in sections["slim"]
    assert f"  key: {event['partitionkey']}" in sections["slim"]
    hook = "\n".join(sections["hook"])
    assert f"header webhook-id: {event['id']}" in hook and "header X-Team: payments" in hook
    assert "header content-type: application/cloudevents+json" in hook
    assert "v1," not in hook and "MfKQ9r8" not in result.stdout  # no signature, no secret


def test_explain_event_file_shows_bodies_and_tolerates_partial_events(
    tmp_path: Path, keys: Keys
) -> None:
    """`--event` with a CloudEvent prints destination bodies; a partial one explains routing only."""
    path = write_config(tmp_path, keys, unmatched="[]")
    event = {
        "id": "e-1",
        "source": "/webhooks/whitepay",
        "type": "order.completed",
        "subject": "o-1",
        "time": "2024-01-01T00:00:00Z",
        "provider": "whitepay",
        "providerevent": "order::completed",
        "integrity": "signed",
        "partitionkey": "o-1",
        "data": {"kind": "order", "id": "o-1", "status": "completed", "provider_status": "C",
                 "fiat": {"currency": "USD", "amount": "12.5"}, "payload": {"n": 1.5}},
    }  # fmt: skip
    full = tmp_path / "event.json"
    full.write_text(json.dumps(event))
    result = run("explain", "--config", str(path), "--event", str(full))
    assert result.returncode == 0, result.stderr
    [block] = [b for b in result.stdout.split("\n\n") if b.startswith("destination orders")]
    # Exact decimals, written as strings: as the hand-off writes them (SPEC §3).
    assert json.loads(block.splitlines()[-1])["data"]["payload"] == {"n": "1.5"}
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"type": "order.completed", "provider": "whitepay"}))
    result = run("explain", "--config", str(path), "--event", str(partial))
    assert result.returncode == 0, result.stderr
    assert "not a complete CloudEvent" in result.stdout and "orders" in result.stdout
    assert "destination orders" not in result.stdout
