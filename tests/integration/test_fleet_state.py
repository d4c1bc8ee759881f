"""Dedupe and replay protection for a fleet: real `gateway serve` replicas sharing a redis-server.

Each scenario runs real processes: two replicas (or one with `--workers 2`) on one config,
a real tansu broker, a real redis-server that is SIGKILLed where the test says so.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.broker import Broker, free_port
from tests import faults
from tests.conftest import Keys, write_config
from tests.faults import Served, wait_ready
from tests.ingress_helpers import sample, signed, with_field
from tests.integration.test_kafka_ingress import consume
from tests.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.integration


class Fleet:
    """Two replicas of one config; `suffix` names this fleet's topics."""

    def __init__(self, config: Path, directory: Path, suffix: str) -> None:
        self.config = config
        self.directory = directory
        self.suffix = suffix
        self.replicas = [self._start(i) for i in range(2)]

    def _start(self, index: int) -> Served:
        served = faults.serve(self.config, self.directory / f"replica-{index}.log")
        wait_ready(served.url, 200)
        return served

    def restart(self, index: int) -> None:
        """SIGTERM one replica and start a fresh process (empty memory) in its place."""
        self.replicas[index].stop(timeout=30)
        self.replicas[index] = self._start(index)

    def stop(self) -> None:
        """Stop every replica."""
        for served in self.replicas:
            served.stop(timeout=30)


def state_section(redis: RedisServer, **options: str) -> str:
    """A `state:` section on `redis` with a key prefix of its own."""
    body = {"backend": "redis", "url": redis.url, "key_prefix": f"t{uuid.uuid4().hex[:8]}:"}
    body.update(options)
    return "state:\n" + "".join(f"  {k}: {v!r}\n" for k, v in body.items())


@pytest.fixture(scope="module")
def fleet_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This module's redis-server (one test SIGKILLs it)."""
    yield from running_redis(tmp_path_factory.mktemp("fleet-redis"))


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, keys: Keys, broker: Broker, fleet_redis: RedisServer
) -> Iterator[Fleet]:
    """Two replicas on the session broker, sharing `fleet_redis`."""
    directory = tmp_path_factory.mktemp("fleet")
    suffix = uuid.uuid4().hex[:8]
    config = write_config(
        directory,
        keys,
        bootstrap=broker.bootstrap,
        topic_suffix=suffix,
        server="handoff_timeout: 5s\n  retry_after: 2s\n  log_format: json",
        extra=state_section(fleet_redis, timeout="250ms", retry_after="500ms"),
    )
    running = Fleet(config, directory, suffix)
    yield running
    running.stop()


def whitepay_event(keys: Keys, order: str) -> tuple[dict[str, str], bytes]:
    """A signed Whitepay order webhook (routed to the orders topic) for order id `order`."""
    body = with_field(sample("whitepay", "order-declined.json"), ["order", "id"], order)
    return signed("whitepay", body, keys)


def post(served: Served, source: str, headers: dict[str, str], body: bytes) -> httpx.Response:
    """One webhook over a fresh connection."""
    return httpx.post(f"{served.url}/webhooks/{source}", content=body, headers=headers, timeout=30)


def fallbacks(served: Served) -> float:
    """gateway_state_fallback_total summed over operations, as /metrics shows it."""
    text = httpx.get(f"{served.url}/metrics", timeout=10).text
    return sum(
        float(m) for m in re.findall(r"^gateway_state_fallback_total\{[^}]*\} (\S+)$", text, re.M)
    )


def test_retry_replay_and_restart_across_replicas(fleet: Fleet, keys: Keys) -> None:
    """A retry on the other replica is duplicate; a FaTPay replay there is 401 (any body);
    a restarted replica still answers duplicate."""
    a, b = fleet.replicas
    headers, body = whitepay_event(keys, f"o-{uuid.uuid4().hex}")
    first = post(a, "whitepay", headers, body)
    assert first.status_code == 200 and first.json()["status"] == "accepted", first.text
    retry = post(b, "whitepay", headers, body)
    assert retry.json() == {"id": first.json()["id"], "status": "duplicate"}

    fat_body = with_field(
        sample("fatpay", "order-finished.json"), ["order", "orderId"], uuid.uuid4().hex
    )
    fat_headers, _ = signed("fatpay", fat_body, keys)
    assert post(a, "fatpay", fat_headers, fat_body).json()["status"] == "accepted"
    forged = with_field(fat_body, ["order", "currencyAmount"], "999999")
    for replayed in (forged, fat_body):
        answer = post(b, "fatpay", fat_headers, replayed)
        assert answer.status_code == 401, answer.text
        assert "nonce" in answer.json()["detail"]
    # A refused request burns no nonce: a forged signature first, then the genuine request.
    genuine_body = with_field(fat_body, ["order", "orderId"], uuid.uuid4().hex)
    genuine, _ = signed("fatpay", genuine_body, keys)
    tampered = {**genuine, "x-fp-signature": base64.b64encode(os.urandom(256)).decode()}
    assert post(b, "fatpay", tampered, genuine_body).status_code == 401
    assert post(a, "fatpay", genuine, genuine_body).json()["status"] == "accepted"

    fleet.restart(1)
    again = post(fleet.replicas[1], "whitepay", headers, body)
    assert again.json() == {"id": first.json()["id"], "status": "duplicate"}


async def test_copies_at_the_same_instant_are_handed_off_once(
    fleet: Fleet, keys: Keys, broker: Broker
) -> None:
    """20 events, each sent to both replicas at once: one accepted + one duplicate per
    event, and one record per event on the topic."""
    a, b = fleet.replicas
    events = [whitepay_event(keys, f"same-{uuid.uuid4().hex}") for _ in range(20)]
    async with httpx.AsyncClient(timeout=60) as client:

        async def both(headers: dict[str, str], body: bytes) -> list[httpx.Response]:
            return list(
                await asyncio.gather(
                    *(
                        client.post(f"{r.url}/webhooks/whitepay", content=body, headers=headers)
                        for r in (a, b)
                    )
                )
            )

        answers = await asyncio.gather(*(both(h, body) for h, body in events))
    statuses = Counter(tuple(sorted(r.json()["status"] for r in pair)) for pair in answers)
    print(f"\n20 events x 2 replicas: {dict(statuses)}")
    assert statuses == {("accepted", "duplicate"): 20}
    ids = {pair[0].json()["id"] for pair in answers}
    records = await consume(broker.bootstrap, f"orders-{fleet.suffix}", 10_000, seconds=5)
    on_topic = Counter(json.loads(r.value)["id"] for r in records)
    mine = {i: n for i, n in on_topic.items() if i in ids}
    print(f"records on the topic for those events: {sum(mine.values())} ({len(mine)} distinct)")
    assert mine == dict.fromkeys(ids, 1)


def test_redis_sigkill_falls_back_without_a_5xx(
    fleet: Fleet, keys: Keys, fleet_redis: RedisServer
) -> None:
    """Redis SIGKILLed: the next new event is still 200 within a second or two, /readyz
    stays 200, the fallback is counted and logged once; after a restart Redis is used again."""
    a, b = fleet.replicas
    before = fallbacks(a)
    fleet_redis.kill()
    try:
        headers, body = whitepay_event(keys, f"down-{uuid.uuid4().hex}")
        started = time.monotonic()
        answer = post(a, "whitepay", headers, body)
        took = time.monotonic() - started
        print(f"\nfirst event with Redis SIGKILLed: HTTP {answer.status_code} in {took:.2f}s")
        assert answer.status_code == 200 and answer.json()["status"] == "accepted", answer.text
        assert took < 3
        assert post(a, "whitepay", headers, body).json()["status"] == "duplicate"  # local memory
        for served in (a, b):
            assert httpx.get(f"{served.url}/readyz", timeout=5).status_code == 200
        assert fallbacks(a) > before
        statuses = [post(b, "whitepay", *whitepay_event(keys, uuid.uuid4().hex)).status_code]
        statuses += [post(a, "whitepay", *whitepay_event(keys, uuid.uuid4().hex)).status_code]
        assert statuses == [200, 200]
        down = [line for line in a.log_lines() if line.get("event") == "state_store_unavailable"]
        assert len(down) == 1, down
        assert "redis://" not in str(down)  # no URL (nor password) in the line
    finally:
        fleet_redis.start()
    # Shared again: an event accepted on one replica is a duplicate on the other.
    deadline = time.monotonic() + 20
    while True:
        headers, body = whitepay_event(keys, f"back-{uuid.uuid4().hex}")
        assert post(a, "whitepay", headers, body).json()["status"] == "accepted"
        if post(b, "whitepay", headers, body).json()["status"] == "duplicate":
            break
        assert time.monotonic() < deadline, "replicas never shared state again"
        time.sleep(0.3)
    assert any(line.get("event") == "state_store_recovered" for line in a.log_lines())


def serve_workers(config: Path, log: Path, workers: int, **env_vars: str) -> Served:
    """`gateway serve --workers N` as a real process; waits until /readyz is 200."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_vars}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = faults.gateway_process("serve", config, log, port, env, "--workers", str(workers))
    served = Served(process, port, log)
    try:
        wait_ready(served.url, 200, seconds=60)
    except AssertionError:
        process.kill()
        raise AssertionError(log.read_text()[-3000:]) from None
    return served


def test_two_worker_processes_share_dedupe_and_nonces(
    tmp_path: Path, keys: Keys, broker: Broker, redis_server: RedisServer
) -> None:
    """`--workers 2` with redis: retries over fresh connections (either process) are one
    accepted and then duplicates; a FaTPay replay is 401 whichever process answers."""
    config = write_config(
        tmp_path,
        keys,
        bootstrap=broker.bootstrap,
        server="handoff_timeout: 5s\n  log_format: json",
        extra=state_section(redis_server),
    )
    served = serve_workers(config, tmp_path / "gateway.log", 2)
    try:
        headers, body = whitepay_event(keys, f"w-{uuid.uuid4().hex}")
        statuses = Counter(
            post(served, "whitepay", headers, body).json()["status"] for _ in range(12)
        )
        print(f"\n12 copies over fresh connections to --workers 2: {dict(statuses)}")
        assert statuses == {"accepted": 1, "duplicate": 11}
        fat_body = with_field(
            sample("fatpay", "order-finished.json"), ["order", "orderId"], uuid.uuid4().hex
        )
        fat_headers, _ = signed("fatpay", fat_body, keys)
        codes = Counter(post(served, "fatpay", fat_headers, fat_body).status_code for _ in range(8))
        assert codes == {200: 1, 401: 7}
        starts = [line for line in served.log_lines() if line.get("event") == "state_store"]
        assert len(starts) == 2, starts  # one start-up line per worker process
        assert starts[0]["backend"] == "redis" and "server" in starts[0]
        assert not any(line.get("event") == "state_per_process" for line in served.log_lines())
    finally:
        served.stop(timeout=30)


def test_memory_backend_with_two_workers_warns(tmp_path: Path, keys: Keys, broker: Broker) -> None:
    """`backend: memory` with `--workers 2` (and GATEWAY_REPLICAS=3, as the chart sets it):
    the start-up log and `gateway check` say that dedupe and replay protection are per process."""
    config = write_config(tmp_path, keys, bootstrap=broker.bootstrap, server="log_format: json")
    check = subprocess.run(
        [sys.executable, "-m", "gateway", "check", "--config", str(config), "--workers", "2"],
        capture_output=True,
        text=True,
        cwd=faults.ROOT,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "WARNING: state.backend is memory" in check.stdout
    assert "per process" in check.stdout
    served = serve_workers(config, tmp_path / "gateway.log", 2, GATEWAY_REPLICAS="3")
    try:
        # Ready means one worker answers; the other may still be starting: wait for its line.
        deadline = time.monotonic() + 30
        while True:
            warnings = [x for x in served.log_lines() if x.get("event") == "state_per_process"]
            if len(warnings) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(warnings) == 2  # one per process
        assert "3 replicas x 2 worker processes" in warnings[0]["detail"]
    finally:
        served.stop(timeout=30)
