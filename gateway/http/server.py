"""uvicorn's HTTP protocol with a request read deadline (slow-loris protection).

uvicorn arms no timer while a request's headers or body trickle in, nor on a connection that
never sends anything; a few hundred such connections would pin the gateway's file
descriptors. This protocol gives every request `GATEWAY_REQUEST_READ_TIMEOUT` seconds
(`server.request_read_timeout`) from its first byte (or from the connection's opening) to
its last body byte, then closes the connection. Idle keep-alive time between requests stays
governed by uvicorn's `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes connections whose request is not read in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._read_timeout = float(os.environ.get("GATEWAY_REQUEST_READ_TIMEOUT", "15"))

    def _arm(self) -> None:
        if self._read_deadline is None:
            self._read_deadline = self.loop.call_later(self._read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _too_slow(self) -> None:
        self._read_deadline = None
        if not self.transport.is_closing():
            self.logger.warning(
                "closing a connection whose request was not read within %ss", self._read_timeout
            )
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        self._arm()
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
