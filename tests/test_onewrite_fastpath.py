"""The one-write-per-turn transport (`onewrite`, gateway/http/server.py) never changes a byte.

Random pipelined requests, split into random chunks, are answered by an app that sends its
body in one or several parts, through two real `GuardedHttpToolsProtocol`s: one on the
wrapped transport, one on uvicorn's writes (what `GATEWAY_SLOW=onewrite` gives). The bytes
on the wire and the connection's state must be equal, and the wrapped one must make fewer
writes. A real server on a socket answers pipelined and closing requests whole.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.config import Config
from uvicorn.server import ServerState

from gateway.http import server
from gateway.http.server import GuardedHttpToolsProtocol, _OneWritePerTurn
from tests.fake_transport import RecordingTransport


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    parts = int(scope["path"].rsplit("/", 1)[-1] or 1)
    body = [b"part%d;" % i for i in range(parts)]
    length = str(sum(map(len, body))).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", length)]
    if scope["path"].startswith("/close/"):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i, part in enumerate(body):
        await send({"type": "http.response.body", "body": part, "more_body": i < parts - 1})


async def _feed(
    chunks: list[bytes], wrapped: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[bytes, bool, int]:
    monkeypatch.setattr(server, "_ONE_WRITE", wrapped)
    config = Config(app=_app, log_level="critical", lifespan="off")
    config.load()
    protocol = GuardedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    assert isinstance(protocol.transport, _OneWritePerTurn) is wrapped
    for chunk in chunks:
        if transport.closed:
            break
        protocol.data_received(chunk)
        await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)
    closed = transport.closed  # by the server, before the peer goes
    protocol.connection_lost(None)
    return b"".join(transport.writes), closed, len(transport.writes)


@st.composite
def _pipelines(draw: st.DrawFn) -> list[bytes]:
    requests = []
    for _ in range(draw(st.integers(1, 4))):
        body = b"b" * draw(st.integers(0, 50))
        path = b"/%s/%d" % (draw(st.sampled_from([b"keep", b"close"])), draw(st.integers(1, 3)))
        requests.append(
            b"POST " + path + b" HTTP/1.1\r\nhost: x\r\n"
            b"content-length: %d\r\n\r\n" % len(body) + body
        )
    raw = b"".join(requests)
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=4, unique=True)))
    return [c for c in (raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)) if c]


@settings(max_examples=200, deadline=None)
@given(_pipelines())
def test_the_wire_is_the_same_with_and_without_onewrite(chunks: list[bytes]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast = asyncio.run(_feed(chunks, True, monkeypatch))
        slow = asyncio.run(_feed(chunks, False, monkeypatch))
    assert fast[:2] == slow[:2]
    assert fast[0].count(b"HTTP/1.1 200") >= 1
    assert fast[2] < slow[2]  # uvicorn writes a head and each body part apart


def test_a_response_head_and_body_leave_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    request = b"POST /keep/1 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
    wire, closed, writes = asyncio.run(_feed([request], True, monkeypatch))
    assert writes == 1 and not closed
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n") and wire.endswith(b"\r\n\r\npart0;")
    _, _, writes_slow = asyncio.run(_feed([request], False, monkeypatch))
    assert writes_slow == 2


def test_close_sends_what_is_pending_first_and_nothing_after() -> None:
    async def run() -> RecordingTransport:
        transport = RecordingTransport()
        wrapper = _OneWritePerTurn(transport, asyncio.get_running_loop())
        wrapper.write(b"a")
        wrapper.writelines([b"b", bytearray(b"c")])
        assert transport.writes == []  # held until the turn ends
        wrapper.close()
        await asyncio.sleep(0)  # the flush scheduled by the first write finds nothing
        wrapper.write(b"late")  # uvicorn never does this; it must not reach a closed socket
        await asyncio.sleep(0)
        return transport

    transport = asyncio.run(run())
    assert transport.writes == [b"abc"]
    assert transport.events == ["write", "close"]


def test_writes_in_separate_turns_stay_in_order() -> None:
    async def run() -> RecordingTransport:
        transport = RecordingTransport()
        wrapper = _OneWritePerTurn(transport, asyncio.get_running_loop())
        for turn in range(3):
            wrapper.write(b"%d" % turn)
            wrapper.write(b"-")
            await asyncio.sleep(0)
        return transport

    transport = asyncio.run(run())
    assert transport.writes == [b"0-", b"1-", b"2-"]
    assert not transport.closed


def test_the_wrapper_delegates_everything_else() -> None:
    async def run() -> None:
        transport = RecordingTransport()
        wrapper = _OneWritePerTurn(transport, asyncio.get_running_loop())
        assert wrapper.get_extra_info("peername") == ("127.0.0.1", 1)
        assert wrapper.is_closing() is False
        transport.close()
        assert wrapper.is_closing() is True

    asyncio.run(run())


def test_a_real_server_answers_pipelined_and_closing_requests_whole() -> None:
    """uvicorn on a socket with the guarded protocol (onewrite on by default)."""
    import threading

    import uvicorn

    assert server._ONE_WRITE  # GATEWAY_SLOW is read once; this test wants the fast path
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        _app, http=GuardedHttpToolsProtocol, log_level="critical", lifespan="off", ws="none"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if srv.started:
                break
            threading.Event().wait(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(
                b"POST /keep/3 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
                b"POST /close/2 HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
            )
            received = bytearray()
            while chunk := client.recv(65536):  # the server closes after the second
                received += chunk
    finally:
        srv.should_exit = True
        thread.join(10)
    assert received.count(b"HTTP/1.1 200 OK") == 2
    first, second = bytes(received).split(b"HTTP/1.1 200 OK", 2)[1:]
    assert b"part0;part1;part2;" in first
    assert b"connection: close" in second and second.endswith(b"part0;part1;")
