"""The console's JSON API over a real gateway, broker, journal and verifying receiver."""

from __future__ import annotations

import re
import uuid

import pytest
from aiohttp import web

from tests.console.conftest import (
    OPERATOR_TOKEN,
    VIEWER_TOKEN,
    W3BLOCK_SECRET,
    WHITEPAY_SECRET,
    Stack,
    dump,
    w3block_order,
    whitepay_order,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

READS = [
    "/api/me",
    "/api/events",
    "/api/events/anything",
    "/api/dead-letters",
    "/api/destinations",
    "/api/sources",
    "/api/actions",
    "/schema/openapi.json",
    "/events",
    "/events/anything",
    "/dead-letters",
    "/destinations",
    "/sources",
    "/",
]


async def test_every_page_and_call_needs_a_valid_token(stack: Stack) -> None:
    """No token, a wrong token or a forged cookie: 401 on every path; POSTs too."""
    client = stack.console
    for path in READS:
        for headers in (
            {},
            {"Authorization": "Bearer not-a-token-at-all"},
            {"Authorization": "Basic x"},
        ):
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers, response.status_code)
        for forged in (
            "YWxpY2U.9999999999.forged",
            "YWxpY2U.\u00b2\u00b2.forged",  # superscript digits: str.isdigit says yes, int() no
            "YWxpY2U.\u0661\u0662.forged",  # Arabic-Indic digits
            "YWxpY2U." + "9" * 5000 + ".forged",  # past int()'s digit limit
        ):
            cookie = {"cookie": b"gw_console=" + forged.encode()}  # UTF-8 on the wire
            assert (await client.get(path, headers=cookie)).status_code == 401, (path, forged[:40])
        client.cookies.clear()
    for path in ("/api/dead-letters/replay", "/dead-letters/replay", "/logout"):
        assert (await client.post(path, json={"all": True})).status_code == 401, path
    page = await client.get("/events?q=order-1")
    assert page.status_code == 401 and 'name="next" value="/events?q=order-1"' in page.text
    me = await stack.api("/api/me", VIEWER_TOKEN)
    assert me == {"name": "victor", "role": "viewer"}


async def test_viewer_reads_but_cannot_replay_and_cookies_need_csrf(stack: Stack) -> None:
    """Viewer: 200 on reads, 403 on replay; a cookie session's POST without CSRF: 403."""
    client = stack.console
    viewer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    assert (await client.get("/api/events", headers=viewer)).status_code == 200
    refused = await client.post("/api/dead-letters/replay", json={"all": True}, headers=viewer)
    assert refused.status_code == 403, refused.text
    login = await client.post(
        "/login",
        data={"token": OPERATOR_TOKEN, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert login.status_code == 303, login.text[:500]
    assert login.headers["location"] == "/events"
    cookie = login.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower(), cookie
    assert OPERATOR_TOKEN not in cookie
    page = await client.get("/dead-letters")
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    no_csrf = await client.post("/api/dead-letters/replay", json={"all": True})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    wrong = await client.post(
        "/api/dead-letters/replay", json={"all": True}, headers={"X-CSRF-Token": "nope"}
    )
    assert wrong.status_code == 403
    right = await client.post(
        "/api/dead-letters/replay", json={"all": True}, headers={"X-CSRF-Token": csrf.group(1)}
    )
    assert right.status_code == 200, right.text
    client.cookies.clear()


async def test_failed_logins_are_throttled(stack: Stack) -> None:
    """Five wrong tokens from one address, then 429 with Retry-After (even for a right one)."""
    client = stack.console
    for _ in range(5):
        assert (
            await client.post("/login", data={"token": "wrong-" + uuid.uuid4().hex})
        ).status_code == 401
    blocked = await client.post("/login", data={"token": OPERATOR_TOKEN})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1


async def test_bad_parameters_are_clear_4xx(stack: Stack) -> None:
    """Bad filters, an unknown event and malformed replays answer 400/404, never 500."""
    cases = [
        ("/api/events", {"since": "yesterday-ish"}, 400),
        ("/api/events", {"until": "2026-01-01T00:00:00"}, 400),
        ("/api/events", {"status": "exploded"}, 400),
        ("/api/events", {"limit": "0"}, 400),
        ("/api/events", {"limit": "lots"}, 400),
        ("/api/events", {"before": "x"}, 400),
        ("/api/events/" + "z" * 300, {}, 404),
        ("/api/events/r\u00b2", {}, 404),  # a digit to str.isdigit, not to int()
        ("/api/events/r" + "9" * 30, {}, 404),  # past SQLite's integers
        ("/api/dead-letters", {"replayed": "perhaps"}, 400),
    ]
    auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    for path, params, status in cases:
        response = await stack.console.get(path, params=params, headers=auth)
        assert response.status_code == status, (path, params, response.text)
        assert "Traceback" not in response.text
    for body in ({"destination": "nope", "all": True}, {}, {"events": []}, {"evil": 1}, "[1"):
        kwargs = {"content": body} if isinstance(body, str) else {"json": body}
        response = await stack.console.post("/api/dead-letters/replay", headers=auth, **kwargs)
        assert response.status_code == 400, (body, response.text)


async def test_what_happened_to_order_x(stack: Stack) -> None:
    """The journey: find by subject, see failed attempts and a rejection; replay; delivered."""
    order = f"order-{uuid.uuid4().hex[:12]}"
    other = f"order-{uuid.uuid4().hex[:12]}"
    headers, body = whitepay_order(order)
    assert (await stack.gateway.post("/webhooks/whitepay", content=body, headers=headers)).json()[
        "status"
    ] == "accepted"
    again = await stack.gateway.post("/webhooks/whitepay", content=body, headers=headers)
    assert again.json()["status"] == "duplicate"
    w3_headers, w3_body = w3block_order(other)
    assert (
        await stack.gateway.post("/webhooks/w3block", content=w3_body, headers=w3_headers)
    ).status_code == 200
    marker = "BODY-MARKER-" + uuid.uuid4().hex
    forged = body.replace(b"DECLINED", marker.encode())
    rejected = await stack.gateway.post("/webhooks/whitepay", content=forged, headers=headers)
    assert rejected.status_code == 401

    listed = await stack.until(lambda: _search(stack, order), "the order in the events list")
    event_id = str(listed[0]["event_id"])

    async def dead_lettered() -> bool:
        return bool((await stack.api("/api/dead-letters", q=event_id))["items"])

    await stack.until(dead_lettered, "the order's dead letter")

    # Filters: source, provider, type glob, status, destination, time, subject prefix.
    async def ids(**params: str) -> set[str]:
        return {i["ref"] for i in (await stack.api("/api/events", limit="200", **params))["items"]}

    w3_id = (await _search(stack, other))[0]["event_id"]
    assert event_id in await ids(source="whitepay") and w3_id not in await ids(source="whitepay")
    assert w3_id in await ids(provider="w3block") and event_id not in await ids(provider="w3block")
    assert {event_id, w3_id} <= await ids(type="order.*")
    assert event_id in await ids(type="order.declined") and w3_id not in await ids(
        type="order.declined"
    )
    assert event_id in await ids(destination="ledger") and w3_id not in await ids(
        destination="ledger"
    )
    assert event_id in await ids(status="failed") and w3_id not in await ids(status="failed")
    assert event_id in await ids(status="duplicate")
    assert event_id in await ids(since="1h") and event_id not in await ids(until="1h")
    assert await ids(q=order[:10]) >= {event_id}
    assert await ids(q=event_id) == {event_id}
    first = await stack.api("/api/events", limit="1")
    assert first["next"] is not None
    second = await stack.api("/api/events", limit="1", before=str(first["next"]))
    assert second["items"][0]["row"] < first["items"][0]["row"]

    # The event: routes, its Kafka record, the failed attempts and the dead letter.
    detail = await stack.api(f"/api/events/{event_id}")
    assert detail["routes"] == ["all-orders", "whitepay-to-ledger"]
    record = detail["deliveries"]["orders"]["record"]
    assert record["topic"].startswith("orders-") and record["offset"] >= 0
    ledger = detail["deliveries"]["ledger"]
    assert [a["outcome"] for a in ledger["attempts"]] == ["retry", "dead_letter"]
    assert all(a["status"] == 503 for a in ledger["attempts"])
    assert ledger["attempts"][0]["next_at"] is not None and ledger["state"] == "dead-lettered"
    assert [r["outcome"] for r in detail["requests"]] == ["accepted", "duplicate"]

    # The rejected request: its reason, never its body.
    rejections = await stack.api("/api/events", source="whitepay", status="rejected")
    mine = [r for r in rejections["items"] if r["status"] == 401]
    assert mine, rejections
    rejection = await stack.api(f"/api/events/{mine[0]['ref']}")
    assert rejection["outcome"] == "rejected" and rejection["reason"] and rejection["event"] is None
    sources = await stack.api("/api/sources")
    whitepay = next(s for s in sources["items"] if s["name"] == "whitepay")
    assert whitepay["1h"]["rejected"] >= 1 and whitepay["1h"]["accepted"] >= 1
    assert whitepay["latest_rejections"][0]["reason"]

    # Secrets: W3Block's clientSecret (and the omitted paymentInfo), signatures, keys: nowhere.
    w3_detail = await stack.api(f"/api/events/{w3_id}")
    assert w3_detail["event"]["data"]["payload"]["data"]["id"] == other
    assert "paymentInfo" not in w3_detail["event"]["data"]["payload"]["data"]
    answers = [
        rejection,
        detail,
        w3_detail,
        await stack.api("/api/events", limit="200"),
        await stack.api("/api/dead-letters"),
        await stack.api("/api/destinations"),
        sources,
    ]
    text = dump(answers)
    forbidden = [
        marker,
        "pi_3LugQALjgooBZGqL1Gi6RFTP_secret",
        "clientSecret",
        WHITEPAY_SECRET,
        W3BLOCK_SECRET,
        OPERATOR_TOKEN,
        VIEWER_TOKEN,
        headers["signature"],
        w3_headers["x-w3block-commerce-signature"],
    ]
    for secret in forbidden:
        assert secret not in text, secret

    # Destinations: the ledger's failures show; it is not paused (the control topic says so).
    destinations = {d["name"]: d for d in (await stack.api("/api/destinations"))["items"]}
    assert destinations["ledger"]["1h"]["success_rate"] == 0.0
    assert destinations["ledger"]["dead_letters_waiting"] >= 1
    assert destinations["ledger"]["paused"] is False
    assert destinations["ledger"]["paused_since"] is None
    assert destinations["orders"]["records"]["1h"] >= 2

    # A viewer cannot replay; the operator can, and the receiver then gets it.
    viewer = await stack.console.post(
        "/api/dead-letters/replay",
        json={"events": [event_id]},
        headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
    )
    assert viewer.status_code == 403
    stack.receiver.behaviours["/ledger"] = lambda nth: web.Response(status=200)
    replayed = await stack.console.post(
        "/api/dead-letters/replay",
        json={"events": [event_id]},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"replayed": 1, "selection": {"ledger": [event_id]}, "unknown": []}
    again = await stack.console.post(  # no longer waiting here: said, and nothing re-sent
        "/api/dead-letters/replay",
        json={"events": [event_id, "no-such-event"]},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    assert again.json() == {"replayed": 0, "selection": {}, "unknown": [event_id, "no-such-event"]}
    await stack.receiver.wait(
        lambda: stack.receiver.delivered("/ledger").get(event_id) == 1, 30, "the replayed delivery"
    )

    async def delivered() -> bool:
        ledger = (await stack.api(f"/api/events/{event_id}"))["deliveries"]["ledger"]
        return ledger["state"] == "delivered" and ledger["attempts"][-1]["replayed"]

    await stack.until(delivered, "the replayed attempt in the event's timeline")
    letters = await stack.api("/api/dead-letters", q=event_id)
    assert letters["items"][0]["replayed_by"] == "alice"

    async def journaled() -> list[dict[str, object]]:
        items: list[dict[str, object]] = (await stack.api("/api/actions"))["items"]
        return [a for a in items if a["action"] == "replay" and a["user"] == "alice"]

    async def both() -> list[dict[str, object]]:
        return found if len(found := await journaled()) == 2 else []

    actions = await stack.until(both, "both replays in the journal's actions")  # newest first
    assert actions[1]["detail"] == {"selection": {"ledger": [event_id]}, "count": 1}
    assert actions[0]["detail"] == {"selection": {}, "count": 0}
    print(f"journey: {len(answers)} answers checked for {len(forbidden)} secrets; replayed 1")


async def _search(stack: Stack, subject: str) -> list[dict[str, object]]:
    found = await stack.api("/api/events", q=subject, status="accepted")
    items: list[dict[str, object]] = found["items"]
    return items


async def test_destinations_page_pause_buttons_for_operators_only(stack: Stack) -> None:
    """Viewer: the state, no buttons, 403 on the form; operator: Pause needs the CSRF field."""
    client = stack.console
    for token, role in ((VIEWER_TOKEN, "viewer"), (OPERATOR_TOKEN, "operator")):
        login = await client.post(
            "/login", data={"token": token, "next": "/destinations"}, follow_redirects=False
        )
        page = await client.get("/destinations")
        assert login.status_code == 303 and page.status_code == 200, page.text[:300]
        assert '<span class="badge active">active</span>' in page.text, role
        has_button = 'action="/destinations/ledger/pause"' in page.text
        assert has_button == (role == "operator"), role
        assert 'action="/destinations/orders/pause"' not in page.text  # Kafka: nothing to pause
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        if role == "viewer":
            refused = await client.post("/destinations/ledger/pause", data={"csrf": csrf[1]})
            assert refused.status_code == 403, refused.text
        else:
            forged = await client.post("/destinations/ledger/pause", data={"csrf": "nope"})
            assert forged.status_code == 403 and "CSRF" in forged.text
            done = await client.post(
                "/destinations/ledger/pause", data={"csrf": csrf[1]}, follow_redirects=False
            )
            assert done.status_code == 303, done.text
            page = await client.get(done.headers["location"])
            assert "ledger paused fleet-wide" in page.text
            assert '<span class="badge paused">paused</span>' in page.text
            assert 'action="/destinations/ledger/resume"' in page.text
            back = await client.post("/destinations/ledger/resume", data={"csrf": csrf[1]})
            assert back.status_code == 200 and "ledger resumed fleet-wide" in back.text
            assert '<span class="badge active">active</span>' in back.text
        client.cookies.clear()


async def test_pause_and_resume_bad_names_are_clear_4xx(stack: Stack) -> None:
    """Unknown, overlong, odd or Kafka names: 404/400, never 500; GET is 405; no change."""
    auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    for name, status in (
        ("nope", 404),
        ("z" * 5000, 404),
        ("%00", 404),
        ("..%2Fledger", 404),
        ("LEDGER", 404),
        ("orders", 400),
    ):
        for verb in ("pause", "resume"):
            response = await stack.console.post(f"/api/destinations/{name}/{verb}", headers=auth)
            assert response.status_code == status, (name, verb, response.text[:300])
            assert "Traceback" not in response.text and len(response.text) < 1000
    assert (
        await stack.console.get("/api/destinations/ledger/pause", headers=auth)
    ).status_code == 405
    listing = await stack.api("/api/destinations")
    assert [d["paused"] for d in listing["items"] if d["kind"] == "webhook"] == [False]


async def test_a_second_pause_changes_nothing_and_keeps_since(stack: Stack) -> None:
    """Resume of an active one and a repeated pause: `changed: false`, `paused_since` kept."""
    auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

    async def call(verb: str) -> dict[str, object]:
        answer = await stack.console.post(f"/api/destinations/ledger/{verb}", headers=auth)
        assert answer.status_code == 200, answer.text
        result: dict[str, object] = answer.json()
        return result

    async def ledger() -> dict[str, object]:
        items = (await stack.api("/api/destinations"))["items"]
        found: dict[str, object] = next(d for d in items if d["name"] == "ledger")
        return found

    assert await call("resume") == {"name": "ledger", "paused": False, "changed": False}
    assert await call("pause") == {"name": "ledger", "paused": True, "changed": True}
    since = (await ledger())["paused_since"]
    assert isinstance(since, float)
    assert await call("pause") == {"name": "ledger", "paused": True, "changed": False}
    assert (await ledger())["paused_since"] == since
    assert await call("resume") == {"name": "ledger", "paused": False, "changed": True}
    assert (await ledger())["paused"] is False
