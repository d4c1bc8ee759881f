"""Fault-injection helpers: a TCP proxy that can drop every connection, a served gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.broker import Broker, free_port, tansu_binary

ROOT = Path(__file__).resolve().parent.parent


class Proxy:
    """Forwards 127.0.0.1:port to a target; `down()` closes it and every connection, `up()` reopens.

    To the gateway a downed proxy is a broker that crashed (connections reset, port closed),
    while the broker behind it keeps its data: tansu here stores in memory only, so killing
    the broker itself would also erase records it had acknowledged, which a replicated Kafka
    cluster would not.
    """

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _up(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def up(self) -> None:
        """Accept and forward connections."""
        self._call(self._up())

    def down(self) -> None:
        """Refuse new connections and reset every open one."""
        self._call(self._down())

    def close(self) -> None:
        """Stop for good."""
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@dataclass
class Served:
    """A running `gateway serve` process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        text = self.log.read_text(errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM and wait for a graceful exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.process.kill()
        self.process.wait(10)


def gateway_process(
    command: str, config: Path, log: Path, port: int, env: dict[str, str], *args: str
) -> subprocess.Popen[bytes]:
    """`python -m gateway <command>` on 127.0.0.1:`port`, its output appended to `log`."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway", command, "--config", str(config)),
            *("--host", "127.0.0.1", "--port", str(port), *args),
        ],
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )


def serve(
    config: Path,
    log: Path,
    port: int | None = None,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> Served:
    """Start `python -m gateway serve` and wait until /healthz answers."""
    port = port or free_port()
    base = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env = {**base, **(env or {})}
    process = gateway_process("serve", config, log, port, env, "--workers", str(workers))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gateway exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return Served(process, port, log)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"gateway did not start: {log.read_text()[-3000:]}")


def wait_ready(url: str, want: int = 200, seconds: float = 30) -> float:
    """Poll /readyz until it answers `want`; return how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == want:
                return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"/readyz never answered {want}")


@contextlib.contextmanager
def proxied_broker_in(directory: Path) -> Iterator[tuple[Broker, Proxy]]:
    """A broker reachable only through a proxy the test can take down and bring back."""
    port = free_port()
    proxy = Proxy(port)
    broker = Broker(
        tansu_binary(), port, log_path=str(directory / "tansu.log"), advertise_port=proxy.port
    )
    broker.start()
    proxy.up()
    try:
        yield broker, proxy
    finally:
        proxy.close()
        broker.stop()
