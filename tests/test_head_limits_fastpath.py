"""The head-limit size bound (`GuardedHttpToolsProtocol._bound`) never changes an answer.

Random request heads (targets, header counts and sizes around small limits, ": " or ":"
separators, CRLF or LF line ends, split into random chunks, sometimes behind a pipelined
request) are fed to two real `GuardedHttpToolsProtocol`s, one with the bound and one with the
exact check on every head: the refusal, the 431 and the connection's state must be equal.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.config import Config
from uvicorn.server import ServerState

from gateway.http.server import GuardedHttpToolsProtocol, head_within_bound
from tests.fake_transport import RecordingTransport


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _feed(chunks: list[bytes], limits: tuple[int, int, int], bound: bool) -> Any:
    config = Config(app=_app, log_level="critical", lifespan="off")
    config.load()
    protocol = GuardedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    protocol._bound = bound
    protocol._max_head, protocol._max_field, protocol._max_headers = limits
    transport = RecordingTransport()
    protocol.connection_made(transport)
    for chunk in chunks:
        if transport.closed:
            break
        protocol.data_received(chunk)
        await asyncio.sleep(0)
    for _ in range(5):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    answer = bytes(transport.written)
    return (
        protocol._refusal,
        transport.closed,
        answer.split(b"\r\n", 1)[0],
        answer.count(b"HTTP/1.1 "),
    )


_token = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=40)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[list[bytes], tuple[int, int, int]]:
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    target = b"/" + draw(_token).encode() * draw(st.integers(1, 8))
    headers = draw(
        st.lists(
            st.tuples(_token, st.integers(0, 120), st.sampled_from([b": ", b":"])), max_size=14
        )
    )
    head = [b"POST " + target + b" HTTP/1.1" + eol, b"host: x" + eol]
    for name, size, sep in headers:
        head.append(name.encode() + sep + b"v" * size + eol)
    body = b"b" * draw(st.integers(0, 300))
    head.append(b"content-length: %d" % len(body) + eol + eol)
    raw = b"".join(head) + body
    if draw(st.booleans()):  # a pipelined request in front
        raw = b"GET /healthz HTTP/1.1" + eol + b"host: x" + eol + eol + raw
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=4, unique=True)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    limits = (draw(st.integers(64, 1600)), draw(st.integers(32, 900)), draw(st.integers(1, 16)))
    return [c for c in chunks if c], limits


@settings(max_examples=400, deadline=None)
@given(_requests())
def test_the_bound_gives_the_exact_checks_answer(
    request: tuple[list[bytes], tuple[int, int, int]],
) -> None:
    chunks, limits = request
    exact = asyncio.run(_feed(chunks, limits, bound=False))
    fast = asyncio.run(_feed(chunks, limits, bound=True))
    assert fast == exact


def test_the_bound_passes_a_usual_head_and_not_one_near_a_limit() -> None:
    assert head_within_bound(900, 12, 16384, 8192, 100)
    assert not head_within_bound(8193, 12, 16384, 8192, 100)  # could hold an 8193-byte field
    assert not head_within_bound(100, 101, 16384, 8192, 100)
    assert not head_within_bound(8000, 100, 8300, 8192, 100)  # 8000 + 4 * 100 > 8300
