"""Console fixtures: a config with a journal, a gateway and a console on the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.broker import Broker, free_port
from gateway.config import Config, load_config
from gateway.console.app import create_console_app
from tests.delivery_helpers import kafka_section
from tests.destinations.receiver import Receiver, new_secret
from tests.faults import ROOT
from tests.ingress_helpers import sample, with_field

OPERATOR_TOKEN = "op-" + uuid.uuid4().hex
VIEWER_TOKEN = "view-" + uuid.uuid4().hex
WHITEPAY_SECRET = "wp-" + uuid.uuid4().hex
W3BLOCK_SECRET = "w3b-" + uuid.uuid4().hex
LEDGER_SECRET = new_secret()


def config_text(bootstrap: str, receiver_url: str, *, journal: bool = True) -> str:
    """A gateway config with a Kafka and a webhook destination, a journal and a console."""
    suffix = uuid.uuid4().hex[:10]
    journal_line = f"journal_topic: journal-{suffix}" if journal else ""
    kafka = kafka_section(bootstrap, suffix, f"control_topic: control-{suffix}", journal_line)
    return (
        "server:\n  handoff_timeout: 3s\n  retry_after: 2s\n"
        + kafka
        + textwrap.dedent(f"""\
        sources:
          whitepay: {{provider: whitepay, secret: {WHITEPAY_SECRET}}}
          w3block: {{provider: w3block, secret: {W3BLOCK_SECRET}}}
        destinations:
          orders:
            kafka: {{topic: orders-{suffix}}}
          ledger:
            webhook:
              url: {receiver_url}/ledger
              secret: {LEDGER_SECRET}
              timeout: 2s
              max_attempts: 2
              backoff: {{initial: 10ms, max: 20ms}}
        routes:
          - name: all-orders
            match: {{type: "order.*"}}
            to: [orders]
          - name: whitepay-to-ledger
            match: {{provider: whitepay}}
            to: [ledger]
        console:
          listen: 127.0.0.1:18081
          retention: 1d
          omit: [data.payload.data.paymentInfo]
          users:
            - {{name: alice, token: {OPERATOR_TOKEN}, role: operator}}
            - {{name: victor, token: {VIEWER_TOKEN}, role: viewer}}
        """)
    )


def whitepay_order(order_id: str) -> tuple[dict[str, str], bytes]:
    """A signed Whitepay `order.declined` for `order_id`."""
    from gateway.providers import registry

    body = with_field(sample("whitepay", "order-declined.json"), ["order", "id"], order_id)
    headers, payload = registry()["whitepay"].sign(WHITEPAY_SECRET, body, time.time())
    return {**headers, "content-type": "application/json"}, payload


def w3block_order(order_id: str) -> tuple[dict[str, str], bytes]:
    """A signed W3Block `order.concluded` (it carries `paymentInfo.clientSecret`)."""
    from gateway.providers import registry

    body = with_field(sample("w3block", "order-concluded.json"), ["data", "id"], order_id)
    headers, payload = registry()["w3block"].sign(W3BLOCK_SECRET, body, time.time())
    return {**headers, "content-type": "application/json"}, payload


@dataclass
class Stack:
    """A gateway (ingress + workers) and a console, in this process, on the real broker."""

    config: Config
    path: Path
    gateway: AsyncTestClient[Litestar]
    console: AsyncTestClient[Litestar]
    receiver: Receiver

    async def api(self, path: str, token: str = OPERATOR_TOKEN, **params: Any) -> Any:
        """GET a console API path with a bearer token; the JSON (asserting a 200)."""
        response = await self.console.get(
            path, params=params, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def until(
        self, probe: Callable[[], Awaitable[Any]], what: str, seconds: float = 30.0
    ) -> Any:
        """Poll `probe` until it returns something truthy (generous: a busy machine)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out after {seconds}s waiting for {what}")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A verifying receiver that fails (503) every request on /ledger until told otherwise."""
    instance = Receiver([LEDGER_SECRET])
    instance.behaviours["/ledger"] = lambda nth: web.Response(status=503)
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def stack(broker: Broker, receiver: Receiver, tmp_path: Path) -> AsyncIterator[Stack]:
    """Gateway + console apps with their lifespans running."""
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(broker.bootstrap, receiver.url))
    config = load_config(path)
    gateway_app = create_app(config)
    console_app = create_console_app(config)
    async with (
        AsyncTestClient(gateway_app) as gateway,
        AsyncTestClient(console_app) as console,
    ):
        stack = Stack(config, path, gateway, console, receiver)
        await stack.until(lambda: _ready(console), "the console's feed to connect", seconds=40)
        yield stack


async def _ready(client: AsyncTestClient[Litestar]) -> bool:
    return (await client.get("/readyz")).status_code == 200


def dump(value: Any) -> str:
    """JSON text of an API answer, for leak checks."""
    return json.dumps(value)


def http_ok(url: str) -> bool:
    """True when `url` answers 200."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class ConsoleProcess:
    """A running `gateway console` process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def spawn_console(config: Path, log: Path) -> ConsoleProcess:
    """Start `python -m gateway console` on a free port and wait until /readyz answers 200."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "console", "--config", str(config),
         "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"console exited: {log.read_text()[-3000:]}")
        if http_ok(f"{url}/readyz"):
            return ConsoleProcess(process, url, log)
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"console did not become ready: {log.read_text()[-3000:]}")
