"""Head-limit benchmark: CPU per request of the bounded protocol against uvicorn's plain one.

    .venv/bin/python benchmarks/header_bench.py            # ~20 s
    .venv/bin/python benchmarks/header_bench.py --quick

`gateway.http.server.GuardedHttpToolsProtocol` counts every request head while it is read
(431 over `server.max_header_bytes` / `max_header_field_bytes` / `max_headers`). This
measures what that costs, in-process and on one core: one event loop, a fake transport, an
ASGI app that answers at once; keep-alive requests with a typical webhook head (12 headers,
~700 bytes, a 1 KB body) are fed to each protocol class in turn, interleaved, several
rounds. It prints the median CPU time per request of each and the ratio guarded/plain.
`HttpToolsProtocol` is the baseline (uvicorn's own); `GuardedBefore` is the guard as it
was before the head limits (read deadline only), for the increment the limits added;
`GuardedExact` runs the exact head check on every head (the size bound off).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uvicorn.config import Config  # noqa: E402
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from gateway.http.server import GuardedHttpToolsProtocol  # noqa: E402

BODY = b'{"order":{"id":"08d585b1-86c6-496d-b493-ab17a574fdd6"},"pad":"' + b"x" * 950 + b'"}'
REQUEST = (
    b"POST /webhooks/whitepay HTTP/1.1\r\n"
    b"Host: hooks.example.com\r\n"
    b"User-Agent: Whitepay-Webhooks/2.1\r\n"
    b"Accept: */*\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Content-Type: application/json\r\n"
    b"Signature: " + b"ab" * 32 + b"\r\n"
    b"X-Request-Id: 5f1c0e5b-7a2d-4c8e-9b3a-6f1d2e4c5b7a\r\n"
    b"X-Forwarded-For: 203.0.113.7\r\n"
    b"X-Forwarded-Proto: https\r\n"
    b"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
    b"Connection: keep-alive\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class GuardedBefore(GuardedHttpToolsProtocol):
    """The guard with the head counting bypassed: the read deadline alone (the old class)."""

    def data_received(self, data: bytes) -> None:
        HttpToolsProtocol.data_received(self, data)

    def on_message_begin(self) -> None:
        if self._reading_since is None:
            self._reading_since = self.loop.time()
        HttpToolsProtocol.on_message_begin(self)

    def on_headers_complete(self) -> None:
        HttpToolsProtocol.on_headers_complete(self)


class GuardedExact(GuardedHttpToolsProtocol):
    """The guard with the exact head check on every head (`_bound = False`)."""

    _bound = False


class Transport(asyncio.Transport):
    """Swallows writes; never closes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: Any) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        pass


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Read the body, answer 200 at once."""
    if scope["type"] != "http":
        return
    message = await receive()
    while message.get("more_body"):
        message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def run(cls: type[HttpToolsProtocol], requests: int) -> float:
    """CPU seconds per request for `requests` keep-alive requests through one protocol."""
    config = Config(app=app, lifespan="off", log_level="warning", access_log=False)
    config.load()
    protocol = cls(config, ServerState(), {}, asyncio.get_running_loop())
    transport = Transport()
    protocol.connection_made(transport)
    started = time.process_time()
    for _ in range(requests):
        protocol.data_received(REQUEST)
        for _ in range(4):  # let the request's task run to its response
            await asyncio.sleep(0)
    spent = time.process_time() - started
    protocol.connection_lost(None)
    assert transport.written > requests * 10, "the app did not answer"
    return spent / requests


def main() -> int:
    """Interleaved rounds of each protocol; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, requests = (3, 5_000) if args.quick else (7, 20_000)
    classes: list[type[HttpToolsProtocol]] = [
        HttpToolsProtocol,
        GuardedBefore,
        GuardedExact,
        GuardedHttpToolsProtocol,
    ]
    results: dict[str, list[float]] = {cls.__name__: [] for cls in classes}
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run(GuardedHttpToolsProtocol, 500))  # warm-up
        for _ in range(rounds):
            for cls in classes:
                results[cls.__name__].append(loop.run_until_complete(run(cls, requests)))
    finally:
        loop.close()
    plain = statistics.median(results["HttpToolsProtocol"])
    print(f"{len(REQUEST)}-byte requests, {requests} per run, median of {rounds} runs")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:<26} {median * 1e6:7.2f} us CPU/request   {median / plain:5.3f}x plain")
    before = statistics.median(results["GuardedBefore"])
    after = statistics.median(results["GuardedHttpToolsProtocol"])
    print(f"  head limits add {(after - before) * 1e6:.2f} us/request ({after / before:.3f}x)")
    exact = statistics.median(results["GuardedExact"])
    print(
        f"  the size bound saves {(exact - after) * 1e6:.2f} us/request "
        f"({after / exact:.3f}x the exact check on every head)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
