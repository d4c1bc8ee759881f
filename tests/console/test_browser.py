"""The console in a real browser: headless Chromium (Debian's) driven by Playwright.

Real processes all the way: `gateway serve` and `gateway console` on the real broker, a
verifying receiver that fails until the on-call engineer has found the problem.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from gateway.broker import Broker
from tests.console.conftest import (
    OPERATOR_TOKEN,
    ConsoleProcess,
    config_text,
    spawn_console,
    whitepay_order,
)
from tests.destinations.receiver import Receiver
from tests.faults import Served, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
async def processes(
    broker: Broker, receiver: Receiver, tmp_path: Path
) -> AsyncIterator[tuple[Served, ConsoleProcess]]:
    """`gateway serve` and `gateway console` sharing one config, stopped afterwards."""
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(broker.bootstrap, receiver.url))
    gateway = serve(path, tmp_path / "gateway.log")
    console = spawn_console(path, tmp_path / "console.log")
    yield gateway, console
    console.stop()
    gateway.stop()


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="`make test` installs chromium")
async def test_on_call_finds_order_replays_it_and_sees_it_delivered(
    processes: tuple[Served, ConsoleProcess], receiver: Receiver, tmp_path: Path
) -> None:
    """Log in, search, open, see the failed attempts, replay, see delivered; pause, resume."""
    from playwright.async_api import async_playwright, expect

    gateway, console = processes
    order = f"order-{uuid.uuid4().hex[:12]}"
    headers, body = whitepay_order(order)
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{gateway.url}/webhooks/whitepay", content=body, headers=headers
        )
        assert answer.status_code == 200, answer.text
        event_id = answer.json()["id"]
        auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        deadline = time.monotonic() + 60
        while True:  # the journal and the dead letter reach the console's store
            letters = await client.get(
                f"{console.url}/api/dead-letters", params={"q": event_id}, headers=auth
            )
            if letters.status_code == 200 and letters.json()["items"]:
                break
            assert time.monotonic() < deadline, "the dead letter never reached the console"
            await asyncio.sleep(0.3)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(20_000)
        try:
            # A pasted link opens the login form first, then the page it pointed to.
            await page.goto(f"{console.url}/events")
            await page.fill("#token", OPERATOR_TOKEN)
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Events")

            await page.fill("input[name=q]", order)
            await page.click("form.filters button[type=submit]")
            assert f"q={order}" in page.url  # a link you can paste into a chat
            await page.click(f"text={order}")
            await expect(page.locator("h1")).to_contain_text(order)
            ledger = page.locator("section.delivery[data-destination=ledger]")
            await expect(ledger.locator("li.attempt")).to_have_count(2)
            await expect(ledger.locator("li.attempt").first).to_contain_text("HTTP 503")
            await expect(ledger.locator("h3 .badge")).to_have_text("dead-lettered")

            # The receiver is fixed; replay from the dead-letter view.
            receiver.behaviours["/ledger"] = lambda nth: web.Response(status=200)
            await ledger.locator("text=replay…").click()
            await expect(page.locator("h1")).to_have_text("Dead letters")
            await page.click(f"button[name=one][value='{event_id}']")
            await expect(page.locator("p.ok")).to_contain_text("Re-drove 1")
            await receiver.wait(
                lambda: receiver.delivered("/ledger").get(event_id) == 1, 30, "the replay"
            )

            # The event shows it delivered (the journal's attempt arrives within moments).
            await page.goto(f"{console.url}/events/{event_id}")
            deadline = time.monotonic() + 30
            while await ledger.locator("h3 .badge").inner_text() != "delivered":
                assert time.monotonic() < deadline, "the delivered attempt never showed"
                await asyncio.sleep(0.5)
                await page.reload()
            await expect(ledger.locator("li.attempt.delivered")).to_contain_text("replayed")
            shot = tmp_path / "console-event.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")

            # Pause the destination fleet-wide from the Destinations view, then resume it.
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await page.click("nav >> text=Destinations")
            state = page.locator("td.pause[data-destination=ledger]")
            await expect(state.locator(".badge")).to_have_text("active")
            await state.locator("button", has_text="Pause").click()
            await expect(page.locator("p.ok")).to_contain_text("ledger paused fleet-wide")
            await expect(state.locator(".badge")).to_have_text("paused")
            await expect(state).to_contain_text("since")
            await page.screenshot(path=str(tmp_path / "console-paused.png"), full_page=True)
            await state.locator("button", has_text="Resume").click()
            await expect(page.locator("p.ok")).to_contain_text("ledger resumed fleet-wide")
            await expect(state.locator(".badge")).to_have_text("active")
            await expect(state.locator("button", has_text="Pause")).to_be_visible()
        finally:
            await browser.close()
