"""The spool under real faults: a broker SIGKILLed and restarted (it keeps its data, on S3),
several worker processes on one spool file, and records too large for the broker.

Every test streams signed webhooks at real `gateway serve` processes and reads the topic
back; the counts are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from gateway.broker import Broker
from tests.conftest import Keys, write_config
from tests.faults import Served, serve, wait_ready
from tests.ingress_helpers import sample, signed, with_field
from tests.integration.test_faults import Stream, stream_when_ready, topic_ids

pytestmark = pytest.mark.integration

BODY = sample("whitepay", "order-declined.json")


def fleet_config(
    tmp_path: Path, keys: Keys, bootstrap: str, topic: str, *, spool: bool, kafka: str = ""
) -> Path:
    """One-second hand-off deadline, readiness that would flip after 2 s, optionally a spool."""
    extra = (
        f"spool:\n  path: {tmp_path / 'spool' / 'spool.db'}\n  max_bytes: 50000000\n"
        "  drain_interval: 200ms\n  shutdown_drain: 5s\n"
        if spool
        else ""
    )
    path = write_config(
        tmp_path,
        keys,
        bootstrap=bootstrap,
        server="handoff_timeout: 1s\n  retry_after: 1s\n  unready_after: 2s\n  log_format: json"
        "\n  max_body_bytes: 40000",
        destinations=f"orders:\n  kafka: {{topic: {topic}}}\nother:\n  kafka: {{topic: {topic}-other}}\n",
        routes="- name: orders\n  match: {type: 'order.*'}\n  to: [orders]\n",
        extra=extra,
    )
    if kafka:
        path.write_text(path.read_text().replace("kafka:\n", f"kafka:\n{kafka}", 1))
    return path


class Probe:
    """Polls /readyz in the background and counts the answers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: Counter[int] = Counter()
        self.last: dict[str, object] = {}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{self.url}/readyz")
                    self.statuses[response.status_code] += 1
                    self.last = response.json()
                await asyncio.sleep(0.3)

    def start(self) -> None:
        """Start polling."""
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def metric(page: str, name: str) -> float:
    """The (single, unlabelled) sample `name` on a metrics page; 0 when absent."""
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", page, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("spool", [True, False], ids=["spool-on", "spool-off"])
async def test_broker_sigkill_and_restart_under_load(
    tmp_path: Path, keys: Keys, durable_broker: Broker, spool: bool
) -> None:
    """Broker SIGKILLed under 8 senders and restarted: every 2xx lands within 30 s; only 200/503; spool on: no 503, ready throughout."""
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    cfg = fleet_config(tmp_path, keys, durable_broker.bootstrap, topic, spool=spool)
    served = serve(cfg, tmp_path / "gw.log")
    try:
        wait_ready(served.url)
        stream, probe = Stream(keys, concurrency=8), Probe(served.url)
        task = await stream.run(served.url)
        probe.start()
        await asyncio.sleep(2)
        durable_broker.kill()
        await asyncio.sleep(4)
        durable_broker.start()
        await asyncio.sleep(3)
        stream.stop.set()
        await task
        await probe.stop()
        stopped = time.monotonic()
        seen = await topic_ids(durable_broker.bootstrap, topic, stream.acked, seconds=30)
        landed = time.monotonic() - stopped
        page = httpx.get(f"{served.url}/metrics").text
        print(
            f"\n[broker sigkill, {'spool on' if spool else 'spool off'}] answers: "
            f"{dict(stream.statuses)}; acked {len(stream.acked)}, on topic "
            f"{len(stream.acked & seen)}, missing {len(stream.acked - seen)}; all on the topic "
            f"{landed:.1f}s after the load stopped; spooled "
            f"{metric(page, 'gateway_spooled_total'):.0f}, drained "
            f"{metric(page, 'gateway_spool_drained_total'):.0f}; /readyz {dict(probe.statuses)}"
        )
        assert stream.acked, "nothing was acknowledged"
        assert stream.acked <= seen, f"{len(stream.acked - seen)} acknowledged events are missing"
        assert set(stream.statuses) <= {"200", "503"}, stream.statuses
        if spool:
            assert stream.statuses["503"] == 0, stream.statuses
            assert metric(page, "gateway_spooled_total") > 0, "the outage never reached the spool"
            assert set(probe.statuses) == {200}, probe.statuses
            assert metric(page, "gateway_spool_depth") == 0
        else:
            assert stream.statuses["503"] > 0, "the outage never showed"
    finally:
        served.stop()


async def _depth_zero(served: Served, seconds: float) -> float:
    """Poll /readyz until the spool is empty; return how long it took."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() - started < seconds:
            with contextlib.suppress(httpx.HTTPError):
                body = (await client.get(f"{served.url}/readyz")).json()
                if body["spool"]["depth"] == 0:
                    return time.monotonic() - started
            await asyncio.sleep(0.2)
    raise AssertionError(f"the spool never emptied within {seconds}s")


async def test_two_workers_share_one_spool_and_return_to_direct_hand_off(
    tmp_path: Path, keys: Keys, durable_broker: Broker
) -> None:
    """`--workers 2`, a broker blip, then steady traffic: the file empties and no process keeps spooling."""
    topic = f"workers-{uuid.uuid4().hex[:8]}"
    prom = tmp_path / "prom"
    prom.mkdir()
    cfg = fleet_config(tmp_path, keys, durable_broker.bootstrap, topic, spool=True)
    served = serve(cfg, tmp_path / "gw.log", workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(prom)})
    try:
        stream, task = await stream_when_ready(served.url, keys)
        await asyncio.sleep(1.5)
        durable_broker.kill()
        await asyncio.sleep(3)
        durable_broker.start()
        emptied = await _depth_zero(served, 60)
        # Steady traffic on both processes: nothing more may go to the spool.
        await asyncio.sleep(1)
        before_page = httpx.get(f"{served.url}/metrics").text
        accepted_before = stream.statuses["200"]
        await asyncio.sleep(4)
        after_page = httpx.get(f"{served.url}/metrics").text
        accepted_during = stream.statuses["200"] - accepted_before
        stream.stop.set()
        await task
        seen = await topic_ids(durable_broker.bootstrap, topic, stream.acked, seconds=30)
        spooled_before = metric(before_page, "gateway_spooled_total")
        spooled_after = metric(after_page, "gateway_spooled_total")
        print(
            f"\n[workers 2] answers: {dict(stream.statuses)}; spool empty {emptied:.1f}s after "
            f"the broker came back; spooled {spooled_before:.0f} -> {spooled_after:.0f} while "
            f"{accepted_during} events were accepted afterwards; depth "
            f"{metric(after_page, 'gateway_spool_depth'):.0f}; acked {len(stream.acked)}, "
            f"missing {len(stream.acked - seen)}"
        )
        assert spooled_before > 0, "the blip never reached the spool"
        assert accepted_during > 0
        assert spooled_after == spooled_before, "a process kept spooling with the broker up"
        assert metric(after_page, "gateway_spool_depth") == 0
        assert set(stream.statuses) == {"200"}, stream.statuses
        assert stream.acked <= seen
    finally:
        served.stop()


@pytest.mark.parametrize("spool", [True, False], ids=["spool-on", "spool-off"])
async def test_event_too_large_for_the_broker_is_413_and_traffic_flows(
    tmp_path: Path, keys: Keys, broker: Broker, spool: bool
) -> None:
    """A record over kafka.max_request_size: 413 at once (never spooled), and the next events land."""
    topic = f"large-{uuid.uuid4().hex[:8]}"
    cfg = fleet_config(
        tmp_path, keys, broker.bootstrap, topic, spool=spool, kafka="  max_request_size: 40000\n"
    )
    served = serve(cfg, tmp_path / "gw.log")
    try:
        wait_ready(served.url)
        async with httpx.AsyncClient(timeout=30) as client:
            big = with_field(BODY, ["order", "id"], str(uuid.uuid4()))
            big = with_field(big, ["order", "acquiring_url"], "https://x/" + "a" * 39_000)
            headers, payload = signed("whitepay", big, keys)
            size = len(payload)
            started = time.monotonic()
            refused = await client.post(
                f"{served.url}/webhooks/whitepay", content=payload, headers=headers
            )
            took = time.monotonic() - started
            acked: set[str] = set()
            for _ in range(10):
                body = with_field(BODY, ["order", "id"], str(uuid.uuid4()))
                headers, payload = signed("whitepay", body, keys)
                response = await client.post(
                    f"{served.url}/webhooks/whitepay", content=payload, headers=headers
                )
                assert response.status_code == 200, response.text
                acked.add(response.json()["id"])
            ready = (await client.get(f"{served.url}/readyz")).json()
        seen = await topic_ids(broker.bootstrap, topic, acked, seconds=30)
        print(
            f"\n[too large, {'spool on' if spool else 'spool off'}] {size}-byte body: "
            f"{refused.status_code} in {took * 1000:.0f} ms; then {len(acked)} accepted, "
            f"{len(acked & seen)} on the topic"
        )
        assert refused.status_code == 413, refused.text
        assert refused.json()["type"].endswith("/record-too-large")
        assert acked <= seen
        if spool:
            assert ready["spool"]["depth"] == 0
    finally:
        served.stop()


async def test_sigterm_drains_what_it_can_and_says_what_it_left(
    tmp_path: Path, keys: Keys, durable_broker: Broker
) -> None:
    """SIGTERM with the broker away: exit within the grace, log what was left; the next process forwards it."""
    topic = f"term-{uuid.uuid4().hex[:8]}"
    cfg = fleet_config(tmp_path, keys, durable_broker.bootstrap, topic, spool=True)
    served = serve(cfg, tmp_path / "gw.log")
    stream, task = await stream_when_ready(served.url, keys)
    await asyncio.sleep(1)
    durable_broker.kill()
    await asyncio.sleep(2)
    stream.stop.set()
    await task
    started = time.monotonic()
    code = await asyncio.to_thread(served.stop)
    took = time.monotonic() - started
    left = [line for line in served.log_lines() if line.get("event") == "spool_shutdown"]
    durable_broker.start()
    again = serve(cfg, tmp_path / "gw2.log", port=served.port)
    try:
        seen = await topic_ids(durable_broker.bootstrap, topic, stream.acked, seconds=30)
        print(
            f"\n[sigterm] answers: {dict(stream.statuses)}; stopped in {took:.1f}s (exit {code}); "
            f"left {left[0]['left'] if left else '?'} in the spool; on the topic after the next "
            f"start {len(stream.acked & seen)} of {len(stream.acked)}"
        )
        assert code in (0, -15) and took < 30
        assert left and left[0]["left"] > 0 and "spool drain" in left[0]["drained_by"]
        assert set(stream.statuses) == {"200"}, stream.statuses
        assert stream.acked <= seen
    finally:
        again.stop()
