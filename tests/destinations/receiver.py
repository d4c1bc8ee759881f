"""A real HTTP receiver on 127.0.0.1 that verifies every request with `standardwebhooks`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def new_secret() -> str:
    """A fresh Standard Webhooks secret, `whsec_<base64 of 24 random bytes>`."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    event_id: str
    nth: int  # 1 for the first request of this event on this path
    body: bytes
    headers: dict[str, str]  # names lower-cased
    verified_by: tuple[int, ...]  # indices of the receiver's secrets that verify it
    at: float  # time.monotonic() on arrival
    answered: int  # the status the receiver answered with (0: never answered)


Behaviour = Callable[[int], Awaitable[web.StreamResponse] | web.StreamResponse]


async def listen(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], shutdown_timeout: float
) -> tuple[web.AppRunner, str]:
    """Serve every POST with `handler` on a free 127.0.0.1 port: the runner and the base URL."""
    app = web.Application()
    app.router.add_post("/{path:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@dataclass
class Receiver:
    """Records and verifies every request; `behaviours[path](nth)` decides each answer."""

    secrets: list[str]
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        """Listen on a free 127.0.0.1 port; the base URL."""
        self._runner, self.url = await listen(self._handle, shutdown_timeout=0.5)
        return self.url

    async def stop(self) -> None:
        """Stop listening (requests still hanging are cut)."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        path = "/" + request.match_info["path"]
        event_id = headers.get("webhook-id", "")
        self._counts[(path, event_id)] += 1
        nth = self._counts[(path, event_id)]
        verified = []
        for i, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified.append(i)
        at = time.monotonic()
        behaviour = self.behaviours.get(path)
        index = len(self.received)
        self.received.append(Received(path, event_id, nth, body, headers, tuple(verified), at, 0))
        self._notify()
        response = behaviour(nth) if behaviour else web.Response(status=200)
        if not isinstance(response, web.StreamResponse):
            response = await response
        self.received[index] = Received(
            path, event_id, nth, body, headers, tuple(verified), at, response.status
        )
        self._notify()
        return response

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def on(self, path: str) -> list[Received]:
        """Every request received on `path`, in arrival order."""
        return [r for r in self.received if r.path == path]

    def delivered(self, path: str) -> dict[str, int]:
        """Event id -> how many requests for it were answered 2xx on `path`."""
        counts: dict[str, int] = defaultdict(int)
        for r in self.on(path):
            if 200 <= r.answered < 300:
                counts[r.event_id] += 1
        return dict(counts)

    async def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until `condition()` holds; fail naming `what` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass


def event_body(event_id: str, **data: object) -> bytes:
    """A CloudEvent-shaped JSON body for a task produced directly onto the queue."""
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/webhooks/test",
        "type": "order.completed",
        "subject": "order-1",
        "data": {"n": 1, **data},
    }
    return json.dumps(event).encode()
