"""The journal costs no provider answer: a broker outage answers exactly as without it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.broker import Broker
from tests.console.conftest import OPERATOR_TOKEN, config_text, spawn_console, whitepay_order
from tests.destinations.receiver import Receiver
from tests.faults import Proxy, Served, proxied_broker_in, serve, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[Broker, Proxy]]:
    """A broker reachable only through a proxy the test can take down and bring back."""
    with proxied_broker_in(tmp_path) as pair:
        yield pair


async def _round(client: httpx.AsyncClient, gateway: Served, count: int) -> list[int]:
    """`count` distinct orders at once; their statuses, in order."""

    async def one() -> int:
        headers, body = whitepay_order(f"order-{uuid.uuid4().hex[:12]}")
        response = await client.post(
            f"{gateway.url}/webhooks/whitepay", content=body, headers=headers, timeout=30
        )
        return response.status_code

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_broker_outage_answers_the_same_with_the_journal_on(
    proxied_broker: tuple[Broker, Proxy], receiver: Receiver, tmp_path: Path
) -> None:
    """Up: 200s; down: 503s within the hand-off deadline; back: 200s, journal on or off alike.

    Down, the console answers its destinations listing with `paused: null` (unknown) and a
    pause with a 503, each within its bounded wait.
    """
    broker, proxy = proxied_broker
    on_path, off_path = tmp_path / "journal-on.yaml", tmp_path / "journal-off.yaml"
    on_path.write_text(config_text(broker.bootstrap, receiver.url, journal=True))
    off_path.write_text(config_text(broker.bootstrap, receiver.url, journal=False))
    on = serve(on_path, tmp_path / "on.log")
    off = serve(off_path, tmp_path / "off.log")
    console = spawn_console(on_path, tmp_path / "console.log")
    try:
        wait_ready(on.url)
        wait_ready(off.url)
        answers: dict[str, dict[str, list[int]]] = {}
        took: dict[str, float] = {}
        async with httpx.AsyncClient() as client:
            for phase in ("up", "down", "back"):
                if phase == "down":
                    proxy.down()
                if phase == "back":
                    proxy.up()
                    for gateway in (on, off):  # reconnected: one order answered 200
                        deadline = time.monotonic() + 60
                        while await _round(client, gateway, 1) != [200]:
                            assert time.monotonic() < deadline, "never recovered"
                answers[phase] = {}
                for name, gateway in (("on", on), ("off", off)):
                    started = time.monotonic()
                    answers[phase][name] = await _round(client, gateway, 5)
                    took[f"{phase}/{name}"] = round(time.monotonic() - started, 2)
                if phase == "down":  # the console: pause state unknown, a pause a clear 503
                    auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
                    started = time.monotonic()
                    listing = await client.get(
                        f"{console.url}/api/destinations", headers=auth, timeout=60
                    )
                    took["down/listing"] = round(time.monotonic() - started, 2)
                    assert listing.status_code == 200, listing.text
                    ledger = [d for d in listing.json()["items"] if d["name"] == "ledger"]
                    assert ledger[0]["paused"] is None, ledger
                    started = time.monotonic()
                    refused = await client.post(
                        f"{console.url}/api/destinations/ledger/pause", headers=auth, timeout=60
                    )
                    took["down/pause"] = round(time.monotonic() - started, 2)
                    assert refused.status_code == 503, refused.text
                    assert "Traceback" not in refused.text and OPERATOR_TOKEN not in refused.text
            metrics = (await client.get(f"{on.url}/metrics")).text
            # After the outage the journal flows again: the console sees the new events.
            auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            deadline = time.monotonic() + 60
            while True:
                found = await client.get(
                    f"{console.url}/api/events", params={"limit": 200}, headers=auth
                )
                accepted = [i for i in found.json()["items"] if i["outcome"] == "accepted"]
                if len(accepted) >= 5:
                    break
                assert time.monotonic() < deadline, f"console saw {len(accepted)} events"
                await asyncio.sleep(0.5)
        journal_lines = [
            line for line in metrics.splitlines() if line.startswith("gateway_journal_")
        ]
        print(f"\nanswers {answers}\nseconds {took}\nconsole saw {len(accepted)} accepted")
        print("\n".join(journal_lines))
        for phase, expected in (("up", 200), ("down", 503), ("back", 200)):
            assert answers[phase]["on"] == answers[phase]["off"] == [expected] * 5, answers
        # Down: both answer within the 3 s hand-off deadline (plus a busy machine's margin).
        assert took["down/on"] < 3 + 5 and took["down/off"] < 3 + 5, took
        # Bounded waits (5 s read, 15 s write), plus a busy machine's margin: never a stall.
        assert took["down/listing"] < 5 + 10 and took["down/pause"] < 15 + 10, took
    finally:
        console.stop()
        on.stop()
        off.stop()
