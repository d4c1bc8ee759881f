"""Fault injection with real processes on 127.0.0.1: zero acknowledged events lost.

Each test streams signed webhooks with distinct order ids at a served gateway, breaks
something mid-stream, and then reads the topic back: every event that got a 2xx must be
there. The counts are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from gateway.broker import Broker
from tests.conftest import Keys, write_config
from tests.faults import Proxy, proxied_broker_in, serve, wait_ready
from tests.ingress_helpers import sample, signed, with_field

pytestmark = pytest.mark.integration

BODY = sample("whitepay", "order-declined.json")


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[Broker, Proxy]]:
    """A broker reachable only through a proxy that the test can take down and bring back."""
    with proxied_broker_in(tmp_path) as pair:
        yield pair


class Stream:
    """Posts distinct signed Whitepay orders with some concurrency and records every answer."""

    def __init__(self, keys: Keys, concurrency: int = 8) -> None:
        self.keys = keys
        self.concurrency = concurrency
        self.statuses: Counter[str] = Counter()
        self.acked: set[str] = set()  # event ids that got a 2xx
        self.stop = asyncio.Event()
        self.url = ""

    async def _one(self, client: httpx.AsyncClient) -> None:
        body = with_field(BODY, ["order", "id"], str(uuid.uuid4()))
        headers, payload = signed("whitepay", body, self.keys)
        try:
            response = await client.post(
                f"{self.url}/webhooks/whitepay", content=payload, headers=headers
            )
        except httpx.HTTPError as exc:
            self.statuses[type(exc).__name__] += 1
            await asyncio.sleep(0.05)
            return
        self.statuses[str(response.status_code)] += 1
        if 200 <= response.status_code < 300:
            self.acked.add(response.json()["id"])

    async def _worker(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while not self.stop.is_set():
                await self._one(client)

    async def run(self, url: str) -> asyncio.Task[list[None]]:
        """Start streaming to `url` in the background."""
        self.url = url
        return asyncio.ensure_future(
            asyncio.gather(*(self._worker() for _ in range(self.concurrency)))
        )


async def stream_when_ready(
    url: str, keys: Keys, concurrency: int = 8
) -> tuple[Stream, asyncio.Task[list[None]]]:
    """Wait until the gateway at `url` is ready, then start a `Stream` to it."""
    wait_ready(url)
    stream = Stream(keys, concurrency)
    return stream, await stream.run(url)


async def topic_ids(bootstrap: str, topic: str, want: set[str], seconds: float = 60) -> set[str]:
    """Event ids read from `topic` until every id in `want` was seen or time ran out."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not want <= seen:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                seen.update(json.loads(r.value)["id"] for r in records)
    finally:
        await consumer.stop()
    return seen


def config(tmp_path: Path, keys: Keys, bootstrap: str, spool: bool, topic: str) -> Path:
    """Gateway config with a short hand-off deadline and, optionally, a spool."""
    extra = (
        f"spool:\n  path: {tmp_path / 'spool' / 'spool.db'}\n  max_bytes: 50000000\n  drain_interval: 200ms\n"
        if spool
        else ""
    )
    return write_config(
        tmp_path,
        keys,
        bootstrap=bootstrap,
        server="handoff_timeout: 1s\n  retry_after: 1s\n  log_format: json",
        destinations=f"orders:\n  kafka: {{topic: {topic}}}\nother:\n  kafka: {{topic: {topic}-other}}\n",
        routes="- name: orders\n  match: {type: 'order.*'}\n  to: [orders]\n",
        extra=extra,
    )


@pytest.mark.parametrize("spool", [True, False], ids=["spool-on", "spool-off"])
async def test_broker_outage_mid_stream_loses_no_acked_event(
    tmp_path: Path, keys: Keys, proxied_broker: tuple[Broker, Proxy], spool: bool
) -> None:
    """Broker down mid-stream: spool on, every request is 2xx and lands; spool off, 2xx or 503, and every 2xx lands."""
    broker, proxy = proxied_broker
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    served = serve(config(tmp_path, keys, broker.bootstrap, spool, topic), tmp_path / "gw.log")
    try:
        stream, task = await stream_when_ready(served.url, keys)
        await asyncio.sleep(2)
        proxy.down()
        await asyncio.sleep(4)
        proxy.up()
        await asyncio.sleep(3)
        stream.stop.set()
        await task
        seen = await topic_ids(broker.bootstrap, topic, stream.acked)
        print(
            f"\n[{'spool on' if spool else 'spool off'}] answers: {dict(stream.statuses)}; "
            f"acked {len(stream.acked)}, on topic {len(stream.acked & seen)}, lost {len(stream.acked - seen)}"
        )
        assert stream.acked, "nothing was acknowledged"
        assert stream.acked <= seen, f"{len(stream.acked - seen)} acknowledged events are missing"
        assert set(stream.statuses) <= ({"200"} if spool else {"200", "503"}), stream.statuses
        if spool:
            assert "spooled" in served.log.read_text()
        else:
            assert stream.statuses["503"] > 0, "the outage never showed"
    finally:
        served.stop()


async def test_gateway_sigkill_with_spooled_events(
    tmp_path: Path, keys: Keys, proxied_broker: tuple[Broker, Proxy]
) -> None:
    """SIGKILL while events sit in the spool: after a restart the drainer delivers every acked event."""
    broker, proxy = proxied_broker
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    cfg = config(tmp_path, keys, broker.bootstrap, True, topic)
    served = serve(cfg, tmp_path / "gw.log")
    stream, task = await stream_when_ready(served.url, keys)
    await asyncio.sleep(1.5)
    proxy.down()
    await asyncio.sleep(3)
    served.kill()  # events acknowledged from the spool are now only on disk
    await asyncio.sleep(0.5)
    stream.stop.set()
    await task
    spooled_before = stream.statuses["200"]
    proxy.up()
    restarted = serve(cfg, tmp_path / "gw2.log", port=served.port)
    try:
        seen = await topic_ids(broker.bootstrap, topic, stream.acked)
        print(
            f"\n[sigkill] answers: {dict(stream.statuses)}; acked {len(stream.acked)}, "
            f"on topic after restart {len(stream.acked & seen)}, lost {len(stream.acked - seen)}"
        )
        assert spooled_before and stream.acked <= seen
        # The drainer logs a batch once its delete is committed, just after the acks.
        deadline = time.monotonic() + 15
        while "spool_drained" not in (tmp_path / "gw2.log").read_text():
            assert time.monotonic() < deadline, "the restarted gateway never logged spool_drained"
            await asyncio.sleep(0.2)
    finally:
        restarted.stop()


async def test_graceful_shutdown_under_load_cuts_nothing_off(
    tmp_path: Path, keys: Keys, broker: Broker
) -> None:
    """SIGTERM under load: in-flight requests finish; no request is answered with a 5xx."""
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    served = serve(config(tmp_path, keys, broker.bootstrap, False, topic), tmp_path / "gw.log")
    stream, task = await stream_when_ready(served.url, keys, 16)
    await asyncio.sleep(2)
    code = await asyncio.to_thread(served.stop)
    stream.stop.set()
    await task
    seen = await topic_ids(broker.bootstrap, topic, stream.acked)
    fives = {s: n for s, n in stream.statuses.items() if s.startswith("5")}
    print(
        f"\n[graceful] exit code {code}; answers: {dict(stream.statuses)}; acked {len(stream.acked)}, lost {len(stream.acked - seen)}"
    )
    assert code in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
    assert "Application shutdown complete" in served.log.read_text()
    assert not fives, fives
    assert stream.acked and stream.acked <= seen
