"""A small pipelined Redis client: one connection per process, replies matched in order.

The `redis` state backend's default transport, a fast path in place of redis-py's asyncio
client (connection pool, command parsing, response callbacks on every command), justified
by `benchmarks/ingest_bench.py --state-only`. This client packs each command with hiredis,
writes it to one shared connection and parses replies with hiredis's C reader; replies
come back in the order commands were written, so each waiter is simply the oldest one.
The commands of one event-loop turn (the claims of every request that arrived in it) go
out as one write.
`RedisStore` takes either client (`client="redis-py"` swaps the library back in; the
benchmark measures both and the contract tests run against both).

A waiter that gives up (its caller's timeout) leaves its future in the queue: its reply
still arrives and is dropped, so later replies stay matched. A lost connection fails
every waiter with `ConnectionError`; the next command connects again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis


class ReplyError(Exception):
    """The server answered a command with an error (`-ERR ...`)."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader(replyError=ReplyError)
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._unsent: list[bytes] = []  # commands of this loop turn, written at its end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or a reply nobody asked for
            self._fail(ConnectionError(f"redis protocol error: {type(exc).__name__}"))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("the connection to redis was lost"))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def call(self, payload: bytes) -> asyncio.Future[Any]:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionError("the connection to redis is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiting.append(waiter)
        unsent = self._unsent
        if not unsent:  # the first command of this turn: write them all when it ends
            loop.call_soon(self._flush)
        unsent.append(payload)
        return waiter

    def _flush(self) -> None:
        unsent = self._unsent
        self._unsent = []
        transport = self.transport
        if unsent and transport is not None and not transport.is_closing():
            transport.write(unsent[0] if len(unsent) == 1 else b"".join(unsent))
        # A closing transport's connection_lost fails every waiter, these included.


class Client:
    """Commands over one lazily (re)connected connection to the server at `url`."""

    def __init__(self, url: str, password: str | None = None, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        query = parse_qs(parts.query)
        self._unix = parts.path if parts.scheme == "unix" else None
        self._host = parts.hostname or "localhost"
        self._port = parts.port or 6379
        # rediss://: verified against the system CAs, or `?ssl_ca_certs=/path/ca.pem` (the
        # query parameter redis-py's URLs use for a private CA).
        ca = query.get("ssl_ca_certs", [None])[0]
        self._tls = ssl.create_default_context(cafile=ca) if parts.scheme == "rediss" else None
        self._username = unquote(parts.username) if parts.username else None
        self._password = password if password is not None else (
            unquote(parts.password) if parts.password else None
        )  # fmt: skip
        db = query.get("db", [""])[0] if self._unix else parts.path.lstrip("/")
        self._db = int(db or 0)
        self._timeout = timeout
        self._protocol: _Protocol | None = None
        self._lock = asyncio.Lock()

    async def execute(self, *args: str | bytes | int | float) -> Any:
        """Send one command and return its reply; `ReplyError` for an error reply."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connect()
        reply = await protocol.call(hiredis.pack_command(args))  # type: ignore[arg-type]  # its stub says a 1-tuple
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def _connect(self) -> _Protocol:
        async with self._lock:
            if self._protocol is not None and not self._protocol.closed:
                return self._protocol
            loop = asyncio.get_running_loop()
            if self._unix is not None:
                connecting = loop.create_unix_connection(_Protocol, self._unix)
            else:
                connecting = loop.create_connection(
                    _Protocol, self._host, self._port, ssl=self._tls
                )
            async with asyncio.timeout(self._timeout):
                _, protocol = await connecting
            try:
                if self._password is not None:
                    auth = (self._username, self._password) if self._username else (self._password,)
                    await self._checked(protocol, "AUTH", *auth)
                if self._db:
                    await self._checked(protocol, "SELECT", self._db)
            except BaseException:
                if protocol.transport is not None:
                    protocol.transport.abort()
                raise
            self._protocol = protocol
            return protocol

    @staticmethod
    async def _checked(protocol: _Protocol, *args: str | int) -> None:
        reply = await protocol.call(hiredis.pack_command(args))  # type: ignore[arg-type]  # its stub says a 1-tuple
        if isinstance(reply, ReplyError):
            raise reply

    async def aclose(self) -> None:
        """Close the connection."""
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
