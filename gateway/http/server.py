"""uvicorn's HTTP protocol with a request read deadline (slow-loris protection).

uvicorn arms no timer while a request's headers or body trickle in, nor on a connection that
never sends anything; a few hundred such connections would pin the gateway's file
descriptors. This protocol gives every request `GATEWAY_REQUEST_READ_TIMEOUT` seconds
(`server.request_read_timeout`) from its first byte (or from the connection's opening) to
its last body byte, then closes the connection (checked every quarter of the deadline, at
most once a second: it closes within 1.25 deadlines). Idle keep-alive time between
requests stays governed by uvicorn's `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes connections whose request is not read in time.

    One watchdog timer per connection, every quarter of the deadline, instead of a timer
    armed and cancelled per request: the per-request part is one clock read.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = float(os.environ.get("GATEWAY_REQUEST_READ_TIMEOUT", "15"))
        self._tick = min(max(self._read_timeout / 4, 0.05), 1.0)
        self._reading_since: float | None = None  # loop time the unfinished request began
        self._watchdog: asyncio.TimerHandle | None = None

    def _watch(self) -> None:
        self._watchdog = None
        if self.transport.is_closing():
            return
        since = self._reading_since
        if since is not None and self.loop.time() - since >= self._read_timeout:
            self.logger.warning(
                "closing a connection whose request was not read within %ss", self._read_timeout
            )
            self.transport.close()
            return
        self._watchdog = self.loop.call_later(self._tick, self._watch)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading_since = self.loop.time()  # a connection that never sends counts too
        self._watchdog = self.loop.call_later(self._tick, self._watch)

    def on_message_begin(self) -> None:
        if self._reading_since is None:
            self._reading_since = self.loop.time()
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._reading_since = None
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        super().connection_lost(exc)
