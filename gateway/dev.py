"""`gateway dev`: a local tansu broker plus the gateway, with signed curl examples."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import structlog

from gateway.broker import Broker, tansu_binary
from gateway.cli_support import load_or_exit, signed_curl
from gateway.providers import registry

log = structlog.get_logger("gateway.dev")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def examples(config_file: str, port: int) -> list[tuple[str, str]]:
    """(source, curl line) for each source of the dev config, signed with the dev keys."""
    config = load_or_exit(config_file)
    base = Path(config_file).resolve().parent / "dev"
    out: list[tuple[str, str]] = []
    for name, source in config.sources.items():
        sample = base / "samples" / f"{source.provider}.json"
        private = base / "keys" / f"{name}-private.pem"
        if private.is_file():
            key = private.read_text()
        elif hasattr(source.settings, "secret"):
            key = source.settings.secret.reveal()[0]
        else:
            continue
        url = getattr(source.settings, "url", None) or f"http://127.0.0.1:{port}/webhooks/{name}"
        partner = getattr(source.settings, "partner_id", None)
        # One line per example: the sample compacted (the signature covers what is sent).
        body = json.dumps(json.loads(sample.read_bytes()), separators=(",", ":")).encode()
        provider = registry()[source.provider].for_source(source.settings)  # its own scheme
        out.append((name, signed_curl(provider, key, body, url, partner)))
    return out


def run_dev(args: argparse.Namespace) -> int:
    """Start the broker, print examples, serve until Ctrl-C, then stop everything."""
    import uvicorn

    from gateway.http.server import GuardedHttpToolsProtocol
    from gateway.observability import configure_logging

    configure_logging("info", "console")
    if not _port_free(args.port):
        raise SystemExit(f"port {args.port} is in use: stop what runs there or pass --port")
    broker_port = args.broker_port
    if not _port_free(broker_port):
        raise SystemExit(
            f"broker port {broker_port} is in use: stop what runs there or pass --broker-port"
        )
    broker = Broker(tansu_binary(), broker_port)
    broker.start()
    console = None
    try:
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
        os.environ["GATEWAY_CONFIG"] = args.config
        print(f"\nbroker: tansu on {broker.bootstrap} (memory storage: data is gone when it stops)")
        print(f"gateway: http://127.0.0.1:{args.port}  (config {args.config})\n")
        print(
            "Signed example requests (FaTPay's is valid for 5 minutes and once: re-run `gateway sign`):\n"
        )
        for name, curl in examples(args.config, args.port):
            print(f"# {name}\n{curl}\n")
        print(
            "Read what lands on Kafka with: .venv/bin/python -m gateway.broker consume payments.orders\n"
        )
        console = start_console(args.config, args.console_port)
        uvicorn.run(
            "gateway.cli:app_factory",
            factory=True,
            host="127.0.0.1",
            port=args.port,
            loop="uvloop",
            http=GuardedHttpToolsProtocol,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        if console is not None:
            console.terminate()
            console.wait(10)
        broker.stop()
    return 0


def start_console(config_file: str, port: int) -> subprocess.Popen[bytes] | None:
    """`gateway console` beside the dev gateway; prints its URL and the dev login token."""
    config = load_or_exit(config_file)
    if config.console is None or not config.console.users or not config.kafka.journal_topic:
        print("console: not configured in this config (no `console:` / `kafka.journal_topic`)\n")
        return None
    if not _port_free(port):
        print(f"console: port {port} is in use, not started (pass --console-port)\n")
        return None
    user = config.console.users[0]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "gateway", "console", "--config", config_file,
         "--listen", f"127.0.0.1:{port}"],
    )  # fmt: skip
    print(
        f"console: http://127.0.0.1:{port}  (log in as {user.name!r} with token: {user.token.reveal()})\n"
    )
    return process
