"""A fleet: two gateways, two consoles; each console sees every gateway's events and actions."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from gateway.broker import Broker
from tests.console.conftest import OPERATOR_TOKEN, config_text, spawn_console, whitepay_order
from tests.destinations.receiver import Receiver
from tests.faults import serve, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def _until(client: httpx.AsyncClient, url: str, params: dict[str, Any], ok: Any) -> Any:
    deadline = time.monotonic() + 60
    while True:
        answer = await client.get(url, params=params, headers=AUTH)
        if answer.status_code == 200 and ok(answer.json()):
            return answer.json()
        assert time.monotonic() < deadline, f"{url} {params}: {answer.text[:300]}"
        await asyncio.sleep(0.3)


async def test_every_console_sees_the_whole_fleet(
    broker: Broker, receiver: Receiver, tmp_path: Path
) -> None:
    """Orders spread over two gateways show in both consoles; a replay on one shows on both."""
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(broker.bootstrap, receiver.url))
    gateways = [serve(path, tmp_path / f"gateway-{i}.log") for i in range(2)]
    consoles = [spawn_console(path, tmp_path / f"console-{i}.log") for i in range(2)]
    try:
        for gateway in gateways:
            wait_ready(gateway.url)
        tag = uuid.uuid4().hex[:8]
        orders = [f"fleet-{tag}-{i}" for i in range(6)]
        async with httpx.AsyncClient() as client:
            ids = []
            for i, order in enumerate(orders):
                headers, body = whitepay_order(order)
                answer = await client.post(
                    f"{gateways[i % 2].url}/webhooks/whitepay", content=body, headers=headers
                )
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["id"])
            nodes: list[set[str]] = []
            for console in consoles:
                found = await _until(
                    client,
                    f"{console.url}/api/events",
                    {"q": f"fleet-{tag}", "status": "accepted", "limit": 50},
                    lambda page: len(page["items"]) == len(orders),
                )
                assert {i["event_id"] for i in found["items"]} == set(ids)
                nodes.append({i["node"] for i in found["items"]})
            assert nodes[0] == nodes[1] and len(nodes[0]) == 2, nodes  # both gateways' records

            # Replayed through one console; the other shows who did it (the journaled action).
            for console in consoles:  # each console follows the journal on its own
                await _until(
                    client,
                    f"{console.url}/api/dead-letters",
                    {"q": ids[0]},
                    lambda page: bool(page["items"]),
                )
            receiver.behaviours["/ledger"] = lambda nth: web.Response(status=200)
            answer = await client.post(
                f"{consoles[0].url}/api/dead-letters/replay",
                json={"events": [ids[0]]},
                headers=AUTH,
            )
            assert answer.status_code == 200 and answer.json()["replayed"] == 1, answer.text
            letters = await _until(
                client,
                f"{consoles[1].url}/api/dead-letters",
                {"q": ids[0]},
                lambda page: page["items"][0]["replayed_by"] == "alice",
            )
            await receiver.wait(
                lambda: receiver.delivered("/ledger").get(ids[0]) == 1, 30, "the replay"
            )
        print(
            f"\nnodes seen by each console: {sorted(nodes[0])}; replay seen: {letters['items'][0]['replayed_at']}"
        )
    finally:
        for console in consoles:
            console.stop()
        for gateway in gateways:
            gateway.stop()
