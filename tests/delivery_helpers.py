"""Shared pieces of the delivery end-to-end tests: the Kafka config section, a ready gateway."""

from __future__ import annotations

import asyncio
import time

from httpx import Response
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import Config


def kafka_section(bootstrap: str, suffix: str, *extra: str) -> str:
    """A `kafka:` section on `bootstrap` with fast group timeouts and topics/group named `*-suffix`;
    `extra` lines (e.g. `control_topic: ...`) go at its end."""
    lines = [
        f"bootstrap_servers: {bootstrap}",
        "enable_idempotence: false",
        "compression: gzip",
        "linger_ms: 1",
        "create_topics: true",
        "request_timeout: 5s",
        "session_timeout: 3s",
        "heartbeat_interval: 500ms",
        "topic_partitions: 2",
        f"delivery_topic: deliveries-{suffix}",
        f"dead_letter_topic: dead-letters-{suffix}",
        f"consumer_group: workers-{suffix}",
        *(line for line in extra if line),
    ]
    return "kafka:\n" + "".join(f"  {line}\n" for line in lines)


async def post_when_ready(
    config: Config, body: bytes, headers: dict[str, str], source: str = "whitepay"
) -> Response:
    """Start an in-process gateway (no workers), wait until /readyz is 200, POST one webhook."""
    async with AsyncTestClient(app=create_app(config, run_workers=False)) as client:
        deadline = time.monotonic() + 15
        while (await client.get("/readyz")).status_code != 200:
            assert time.monotonic() < deadline, "gateway never became ready"
            await asyncio.sleep(0.1)
        return await client.post(f"/webhooks/{source}", content=body, headers=headers)
