"""Pause and resume from the console: real `gateway serve` fleet, console process, broker.

The console writes the control topic through `gateway destinations pause|resume`'s own path;
both gateways' workers hold the destination's events (nothing sent, nothing dead-lettered)
until the console resumes it, then deliver every one to the verifying receiver.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from gateway.broker import Broker
from tests.console.conftest import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    config_text,
    spawn_console,
    whitepay_order,
)
from tests.destinations.receiver import Receiver
from tests.faults import Served, serve, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}


async def _until(probe: Callable[[], Awaitable[Any]], what: str, seconds: float = 60) -> Any:
    """Poll `probe` until it returns something truthy (generous: a busy machine)."""
    deadline = time.monotonic() + seconds
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {seconds}s waiting for {what}"
        await asyncio.sleep(0.3)


async def _paused_gauge(client: httpx.AsyncClient, gateway: Served) -> float | None:
    """`gateway_destination_paused{destination="ledger"}` of one gateway's workers."""
    text = (await client.get(f"{gateway.url}/metrics")).text
    found = re.search(r'^gateway_destination_paused\{destination="ledger"\} (\S+)$', text, re.M)
    return None if found is None else float(found.group(1))


async def test_operator_pauses_events_wait_then_resume_delivers_them_all(
    broker: Broker, receiver: Receiver, tmp_path: Path
) -> None:
    """Viewer 403, unknown 404, no CSRF 403; paused: accepted, not sent, not dead-lettered."""
    receiver.behaviours["/ledger"] = lambda nth: web.Response(status=200)
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(broker.bootstrap, receiver.url))
    gateways = [serve(path, tmp_path / f"gateway-{i}.log") for i in range(2)]
    console = spawn_console(path, tmp_path / "console.log")
    try:
        for gateway in gateways:
            wait_ready(gateway.url)
        async with httpx.AsyncClient(timeout=30) as client:
            base = console.url

            async def listing(headers: dict[str, str] = OPERATOR) -> dict[str, Any]:
                answer = await client.get(f"{base}/api/destinations", headers=headers)
                assert answer.status_code == 200, answer.text
                items = {d["name"]: d for d in answer.json()["items"]}
                return items["ledger"]  # type: ignore[no-any-return]

            before = await listing()
            assert before["paused"] is False and before["paused_since"] is None, before

            # Who may: a viewer is refused, an unknown or Kafka destination is a clear 4xx.
            refused = await client.post(f"{base}/api/destinations/ledger/pause", headers=VIEWER)
            assert refused.status_code == 403, refused.text
            unknown = await client.post(f"{base}/api/destinations/nope/pause", headers=OPERATOR)
            assert unknown.status_code == 404 and "nope" in unknown.text, unknown.text
            kafka = await client.post(f"{base}/api/destinations/orders/resume", headers=OPERATOR)
            assert kafka.status_code == 400 and "Kafka" in kafka.text, kafka.text

            # A cookie session needs the page's CSRF token, exactly like replay.
            login = await client.post(
                f"{base}/login",
                data={"token": OPERATOR_TOKEN, "next": "/destinations"},
                follow_redirects=True,
            )
            assert login.status_code == 200 and "Destinations" in login.text, login.text[:300]
            forged = await client.post(f"{base}/api/destinations/ledger/pause")
            assert forged.status_code == 403 and "CSRF" in forged.text, forged.text
            csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
            assert csrf is not None
            paused = await client.post(
                f"{base}/api/destinations/ledger/pause", headers={"X-CSRF-Token": csrf[1]}
            )
            assert paused.status_code == 200, paused.text
            assert paused.json() == {"name": "ledger", "paused": True, "changed": True}
            client.cookies.clear()
            state = await listing(VIEWER)  # viewers see the state
            assert state["paused"] is True and state["paused_since"] > 0, state

            async def both_paused() -> bool:
                gauges = [await _paused_gauge(client, g) for g in gateways]
                return gauges == [1.0, 1.0]

            await _until(both_paused, "both gateways' workers to pause")

            tag = uuid.uuid4().hex[:8]
            ids = []
            for i in range(6):  # spread over both gateways
                headers, body = whitepay_order(f"held-{tag}-{i}")
                answer = await client.post(
                    f"{gateways[i % 2].url}/webhooks/whitepay", content=body, headers=headers
                )
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["id"])

            async def all_accepted() -> bool:
                found = await client.get(
                    f"{base}/api/events",
                    params={"q": f"held-{tag}", "status": "accepted"},
                    headers=OPERATOR,
                )
                return len(found.json()["items"]) == len(ids)

            await _until(all_accepted, "the console to journal every accepted event")
            # Held, not failed: over a few seconds nothing reaches the receiver or the DLQ
            # (unpaused, max_attempts 2 with 10 ms backoff would deliver within moments).
            quiet_until = time.monotonic() + 3
            while time.monotonic() < quiet_until:
                assert receiver.on("/ledger") == [], receiver.on("/ledger")
                await asyncio.sleep(0.3)
            letters = await client.get(
                f"{base}/api/dead-letters", params={"destination": "ledger"}, headers=OPERATOR
            )
            assert letters.json()["items"] == [], letters.text
            state = await _until(
                lambda: _if(listing(), lambda d: d["paused_by"] == "alice"),
                "the journaled pause to name who paused",
            )
            assert state["paused"] is True, state

            resumed = await client.post(f"{base}/api/destinations/ledger/resume", headers=OPERATOR)
            assert resumed.status_code == 200 and resumed.json()["paused"] is False, resumed.text
            await receiver.wait(
                lambda: set(receiver.delivered("/ledger")) == set(ids), 60, "delivery on resume"
            )
            assert all(r.verified_by for r in receiver.on("/ledger")), "unverified delivery"
            after = await listing()
            assert after["paused"] is False and after["paused_by"] is None, after

            async def journaled() -> list[dict[str, Any]]:
                answer = await client.get(f"{base}/api/actions", headers=OPERATOR)
                mine = [
                    (a["user"], a["action"], a["detail"]["destination"], a["detail"]["changed"])
                    for a in answer.json()["items"]
                    if a["action"] in ("pause", "resume")
                ]
                return mine if len(mine) == 2 else []

            actions = await _until(journaled, "the pause and resume in /api/actions")
            assert actions == [
                ("alice", "resume", "ledger", True),
                ("alice", "pause", "ledger", True),
            ]
            schema = (await client.get(f"{base}/schema/openapi.json", headers=OPERATOR)).json()
            for verb in ("pause", "resume"):
                assert "post" in schema["paths"][f"/api/destinations/{{name}}/{verb}"]
        logged = console.log.read_text()
        assert '"action":"pause"' in logged and '"user":"alice"' in logged
        assert OPERATOR_TOKEN not in logged and VIEWER_TOKEN not in logged
        print(f"\nheld {len(ids)} events over 2 gateways; delivered after resume: {len(ids)}")
    finally:
        console.stop()
        for gateway in gateways:
            gateway.stop()


async def _if(value: Awaitable[Any], ok: Callable[[Any], bool]) -> Any:
    """`value` if it passes `ok`, else None (for `_until`)."""
    result = await value
    return result if ok(result) else None
