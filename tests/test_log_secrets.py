"""No configured secret, signature or payment secret reaches a log line, whatever happens."""

from __future__ import annotations

import io
import json
from pathlib import Path

import structlog
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import load_config
from gateway.observability import REDACTOR, Redactor, config_secret_values, configure_logging
from gateway.secrets import Secret
from tests.conftest import Keys, write_config
from tests.ingress_helpers import REPRESENTATIVE, sample, signed


def test_redactor_masks_keys_values_and_secret_objects() -> None:
    """Secret-looking keys, configured values (also inside strings) and Secret objects are masked."""
    redactor = Redactor(["hunter2-very-secret"])
    event = {
        "event": "x",
        "clientSecret": "pi_secret",
        "headers": {"Authorization": "Bearer t", "x-fp-signature": "abc", "ok": "fine"},
        "detail": "failed with key hunter2-very-secret inside",
        "password": "p",
        "obj": Secret("s3"),
        "items": [{"token": "t"}, "hunter2-very-secret"],
        "raw": b"\x00\x01",
    }
    out = redactor(None, "info", event)
    text = json.dumps(out)
    for leaked in ("pi_secret", "Bearer t", "abc", "hunter2-very-secret", '"p"', "s3", '"t"'):
        assert leaked not in text, leaked
    assert out["headers"]["ok"] == "fine"
    assert out["raw"] == "<2 bytes>"


async def test_suite_secrets_never_logged(tmp_path: Path, keys: Keys) -> None:
    """Every key and secret of the test suite stays out of the logs of valid, forged and broken requests."""
    stream = io.StringIO()
    config = load_config(
        write_config(
            tmp_path,
            keys,
            server="handoff_timeout: 200ms\n  log_level: debug",
            destinations="orders:\n  kafka: {topic: t}\nother:\n  kafka: {topic: o}\nhook:\n"
            "  webhook: {url: 'http://127.0.0.1:9/x', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n",
            routes="- name: orders\n  match: {type: 'order.*'}\n  to: [orders, hook]\n",
        )
    )
    # As `gateway serve` does: the config's secrets are masked from logging set-up on.
    configure_logging("debug", "json", stream=stream, secrets=config_secret_values(config))
    try:
        async with AsyncTestClient(app=create_app(config, run_workers=False)) as client:
            for provider, (name, _) in REPRESENTATIVE.items():
                for old in (False, True):
                    headers, body = signed(provider, sample(provider, name), keys, old_key=old)
                    await client.post(f"/webhooks/{provider}", content=body, headers=headers)
                    forged = {
                        k: (v[:-2] + "00" if k.lower() != "content-type" else v)
                        for k, v in headers.items()
                    }
                    await client.post(f"/webhooks/{provider}", content=body, headers=forged)
                    await client.post(f"/webhooks/{provider}", content=body[:-5], headers=headers)
        structlog.get_logger("test").info(
            "config", config=repr(config), settings=config.sources["pay3"].settings
        )
    finally:
        configure_logging("info", "json")
    logged = stream.getvalue()
    assert logged.count('"event":"webhook"') + logged.count('"event": "webhook"') >= 30
    secrets = [
        *keys.all_secrets(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ]
    for secret in secrets:
        for line in secret.splitlines():
            if len(line) > 8 and not line.startswith("-----"):
                assert line not in logged
    assert "_secret_" not in logged  # W3Block's paymentInfo.clientSecret values
    assert REDACTOR is not None
