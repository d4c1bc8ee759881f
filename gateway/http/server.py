"""uvicorn's HTTP protocol with a request read deadline and bounded request heads.

uvicorn arms no timer while a request's headers or body trickle in, nor on a connection that
never sends anything; a few hundred such connections would pin the gateway's file
descriptors. This protocol gives every request `GATEWAY_REQUEST_READ_TIMEOUT` seconds
(`server.request_read_timeout`) from its first byte (or from the connection's opening) to
its last body byte, then closes the connection (checked every quarter of the deadline, at
most once a second: it closes within 1.25 deadlines). Idle keep-alive time between
requests stays governed by uvicorn's `timeout_keep_alive`.

Its transport also sends what one turn of the event loop writes to a connection as one
write: uvicorn writes a response's head and body separately, two system calls where one
does (see `_OneWritePerTurn`).
"""

from __future__ import annotations

import asyncio
import os
from itertools import chain
from typing import Any, cast

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.fastpaths import fast

_LINE_OVERHEAD = 4  # ": " and CRLF around every header; the request line's own is ignored
_JOIN = b"".join
_ONE_WRITE = fast("onewrite")
_TITLES = {400: "Bad Request", 431: "Request Header Fields Too Large"}


def head_within_bound(
    fed: int, headers: int, max_head: int, max_field: int, max_headers: int
) -> bool:
    """Whether a head read from `fed` bytes with `headers` headers is surely within limits.

    The target and every header's name and value are disjoint parts of the bytes fed since
    the request began (uvicorn only lowercases names), so each is at most `fed` bytes and
    the measured head (target + names + values + 4 per header) at most `fed + 4 * headers`.
    """
    return (
        headers <= max_headers and fed <= max_field and fed + _LINE_OVERHEAD * headers <= max_head
    )


class _OneWritePerTurn:
    """A connection's transport whose writes during one loop turn go out as one write.

    uvicorn writes a response's status line and headers, then its body: two `send` system
    calls per response. Here the first write of a turn schedules a flush at the start of the
    next turn (`call_soon`), and the writes until then are joined into it; `close` flushes
    first, so nothing written is dropped or reordered. Everything else is the transport's.
    Benchmark: benchmarks/ingest_bench.py --fast-paths (`onewrite`).
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            pending.append(data)

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(bytes(chunk))

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else _JOIN(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a head over the limits."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that closes connections whose request is not read in time.

    One watchdog timer per connection, every quarter of the deadline, instead of a timer
    armed and cancelled per request: the per-request part is one clock read.
    """

    # Fast path `headbound` (gateway/fastpaths.py): a head that a size bound proves within
    # every limit skips the exact check (off: the exact check on every head). Equivalence:
    # tests/test_head_limits_fastpath.py. Benchmark: benchmarks/header_bench.py.
    _bound = fast("headbound")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timeout = float(os.environ.get("GATEWAY_REQUEST_READ_TIMEOUT", "15"))
        self._tick = min(max(self._read_timeout / 4, 0.05), 1.0)
        self._reading_since: float | None = None  # loop time the unfinished request began
        self._watchdog: asyncio.TimerHandle | None = None
        self._max_head = int(os.environ.get("GATEWAY_MAX_HEADER_BYTES", "16384"))
        self._max_field = int(os.environ.get("GATEWAY_MAX_HEADER_FIELD_BYTES", "8192"))
        self._max_headers = int(os.environ.get("GATEWAY_MAX_HEADERS", "100"))
        self._in_head = True  # reading a request line and headers (not a body)
        self._unreported = 0  # head bytes received that the parser has not reported yet
        self._last_progress: tuple[int, int, int] | None = None  # after the last chunk
        self._refusal: str | None = None
        self._refusal_status = 431  # 400 for an upgrade (see on_headers_complete)
        self._chunk = 0  # the length of the chunk being fed
        self._fed = 0  # bytes fed since the chunk in which this request began (a bound)

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
        if _ONE_WRITE:  # uvicorn's flow control keeps the real transport
            self.transport = cast(asyncio.Transport, _OneWritePerTurn(transport, self.loop))
        self._reading_since = self.loop.time()  # a connection that never sends counts too
        self._watchdog = self.loop.call_later(self._tick, self._watch)

    def data_received(self, data: bytes) -> None:
        self._chunk = size = len(data)
        if not self._in_head:
            super().data_received(data)
            return
        self._fed += size  # reset to this chunk's length if a request begins in it
        super().data_received(data)
        if not self._in_head or self._refusal is not None or self.transport.is_closing():
            return  # the usual case: the whole head arrived in this read
        # The head spans chunks (rare: a head is usually one read). What the parser has
        # not reported yet (a header or the request target still arriving) is counted by
        # the chunk; a chunk that completed something may also have started the next
        # part, which is then counted from the next chunk on.
        progress = self._head_progress()
        moved = progress != self._last_progress
        self._last_progress = progress
        self._unreported = 0 if moved else self._unreported + len(data)
        refusal = self._head_refusal(self._unreported)
        if refusal is not None:
            self._refuse_head(refusal)

    def _head_progress(self) -> tuple[int, int, int]:
        headers = self.headers or ()
        return id(headers), len(headers), len(getattr(self, "url", b""))

    def _head_refusal(self, unreported: int) -> str | None:
        """Which limit the head read so far breaks, if any (a few C calls per request)."""
        headers = self.headers or []
        if len(headers) > self._max_headers:
            return f"the request has more than {self._max_headers} headers"
        if unreported > self._max_field:  # one part (a header, the target) still arriving
            return f"a header exceeds {self._max_field} bytes"
        url = len(getattr(self, "url", b""))
        size = url + len(_JOIN(chain.from_iterable(headers))) + _LINE_OVERHEAD * len(headers)
        if size + unreported > self._max_head:
            return f"the request headers exceed {self._max_head} bytes"
        # Only a head bigger than one field's cap can hold a field over it.
        if size > self._max_field and (
            url > self._max_field or any(len(n) + len(v) > self._max_field for n, v in headers)
        ):
            return f"a header exceeds {self._max_field} bytes"
        return None

    def on_message_begin(self) -> None:
        self._in_head = True
        self._unreported = 0
        self._last_progress = None  # a chunk in which a request began made progress
        self._fed = self._chunk
        if self._reading_since is None:
            self._reading_since = self.loop.time()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if not (
            self._bound
            and head_within_bound(
                self._fed,
                len(self.headers),
                self._max_head,
                self._max_field,
                self._max_headers,
            )
        ):
            self._refusal = self._head_refusal(0)
        if self._refusal is None and self.parser.should_upgrade():
            # httptools stops parsing at an Upgrade (or CONNECT): the body would never be
            # read and the connection would hang. The gateway upgrades nothing; say so.
            self._refusal = "the gateway does not upgrade connections (Upgrade, CONNECT)"
            self._refusal_status = 400
        if self._refusal is not None:
            raise _HeadTooLarge  # httptools re-raises it from feed_data as a parser error
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_since = None
        self._in_head = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error with this; one raised by a limit is a 431.
        if self._refusal is not None:
            self._refuse_head(self._refusal)
        else:
            super().send_400_response(msg)

    def _refuse_head(self, detail: str) -> None:
        """Answer 431 (RFC 6585; 400 for an upgrade) as problem details and close: the rest
        is never read."""
        self._refusal = detail
        status = self._refusal_status
        title = _TITLES[status]
        self.logger.warning("refusing a request head: %s", detail)
        body = msgspec.json.encode(
            {"type": "about:blank", "title": title, "status": status, "detail": detail}
        )
        head = [b"HTTP/1.1 %d %s\r\n" % (status, title.encode())]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-type: application/problem+json\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        super().connection_lost(exc)
