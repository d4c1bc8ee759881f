"""Outbound webhook throughput: deliveries per second of one `gateway worker` process.

A real tansu broker, N delivery tasks queued up front, one worker process (`python -m
gateway worker`, logging at info as in production), and a minimal HTTP/1.1 receiver on
127.0.0.1 answering 200. Every request is signed (two secrets: rotation); a sample is
verified with the `standardwebhooks` library afterwards. The rate is measured at the
receiver, from the first request to the N-th, so group join and start-up are excluded.

    .venv/bin/python benchmarks/delivery_bench.py [--events 20000] [--concurrency 16]

Three runs in one session, each with its own broker and worker: the destination as
configured by default (the baseline), with `ordering: key` (1,000 keys, 20 events each),
and with a `rate_limit` far above the achievable rate (so it never binds: the cost of the
check through the state store, `memory` backend). The two variants are also printed as a
ratio of the baseline. Prints a table and writes benchmarks/results/delivery.json.
Target: >= 2,000/s for the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from aiokafka import AIOKafkaProducer
from standardwebhooks import Webhook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.broker import Broker, free_port, tansu_binary  # noqa: E402
from gateway.config import parse_config  # noqa: E402
from gateway.destinations.kafka import create_topics  # noqa: E402
from gateway.destinations.tasks import ENCODER, DeliveryTask, task_key  # noqa: E402

TARGET = 2000.0
RESULTS = ROOT / "benchmarks" / "results" / "delivery.json"
SAMPLE = 200  # requests kept (first and last) to verify signatures after the run
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class Counting(asyncio.Protocol):
    """HTTP/1.1 keep-alive receiver: answers 200 to every request, counts, keeps a sample."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            self.stats.seen(head, body)
            self.transport.write(RESPONSE)


class Stats:
    """What the receiver saw."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.worker_pid: int | None = None
        self.cpu_first = 0.0
        self.cpu_last = 0.0
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.ids: set[str] = set()
        self.samples: list[tuple[str, bytes]] = []
        self.done = asyncio.Event()

    def seen(self, head: str, body: bytes) -> None:
        """Record one request."""
        now = time.perf_counter()
        if self.count == 0:
            self.first = now
            self.cpu_first = self.worker_cpu()
        self.count += 1
        self.last = now
        event_id = head.split("webhook-id:", 1)[-1].split("\r\n", 1)[0].strip()
        self.ids.add(event_id)
        if self.count <= SAMPLE // 2 or len(self.ids) > self.expected - SAMPLE // 2:
            self.samples.append((head, body))
        if len(self.ids) >= self.expected and not self.done.is_set():
            self.cpu_last = self.worker_cpu()
            self.done.set()

    def worker_cpu(self) -> float:
        """CPU seconds (user + system) the worker process has used so far (Linux /proc)."""
        if self.worker_pid is None:
            return 0.0
        fields = Path(f"/proc/{self.worker_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _headers(head: str) -> dict[str, str]:
    headers = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


MODES = {
    "baseline": "",
    "ordering_key": "ordering: key",
    "rate_limit_unbound": "rate_limit: 1000000/s",
}
KEYS = 1000  # distinct partitionkeys; every mode uses the same ones


def _config_text(
    bootstrap: str, url: str, secrets: list[str], concurrency: int, suffix: str, extra: str
) -> str:
    return f"""\
kafka:
  bootstrap_servers: {bootstrap}
  enable_idempotence: false
  compression: none
  create_topics: true
  topic_partitions: 3
  delivery_topic: bench-deliveries-{suffix}
  dead_letter_topic: bench-dead-{suffix}
  consumer_group: bench-workers-{suffix}
sources:
  whitepay: {{provider: whitepay, secret: bench-{suffix}}}
destinations:
  hook:
    webhook:
      url: {url}
      secret: {json.dumps(secrets)}
      timeout: 10s
      max_attempts: 3
      concurrency: {concurrency}
      {extra}
routes:
  - name: all
    match: {{provider: whitepay}}
    to: [hook]
"""


async def _enqueue(bootstrap: str, topic: str, events: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, acks="all", linger_ms=10
    )
    await producer.start()
    try:
        body = json.dumps(
            {
                "specversion": "1.0",
                "source": "/webhooks/whitepay",
                "type": "order.completed",
                "data": {
                    "fiat": {"currency": "USD", "amount": "1250.00"},
                    "payload": {"x": "y" * 600},
                },
            }
        ).encode()
        futures = []
        for i in range(events):
            event_id = f"{i:032x}"
            task = DeliveryTask(
                destination="hook",
                event_id=event_id,
                enqueued_at=time.time(),
                body=msgspec.Raw(body[:-1] + f', "id": "{event_id}"}}'.encode()),
            )
            futures.append(
                await producer.send(
                    topic, ENCODER.encode(task), key=task_key("hook", f"order-{i % KEYS}")
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def run(events: int, concurrency: int, workdir: Path, mode: str) -> dict[str, object]:
    """One measured run; the result record."""
    secrets = ["whsec_" + base64.b64encode(os.urandom(24)).decode() for _ in range(2)]
    suffix = uuid.uuid4().hex[:8]
    broker = Broker(tansu_binary(), free_port(), log_path=str(workdir / "tansu.log"))
    broker.start()
    stats = Stats(events)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Counting(stats), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    text = _config_text(
        broker.bootstrap, f"http://127.0.0.1:{port}/hook", secrets, concurrency, suffix, MODES[mode]
    )
    config_path = workdir / "gateway.yaml"
    config_path.write_text(text)
    config = parse_config(text)
    worker: subprocess.Popen[bytes] | None = None
    try:
        await create_topics(
            config.kafka, [config.kafka.delivery_topic, config.kafka.dead_letter_topic]
        )
        queued = time.perf_counter()
        await _enqueue(broker.bootstrap, config.kafka.delivery_topic, events)
        enqueue_seconds = time.perf_counter() - queued
        with (workdir / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "gateway", "worker", "--config", str(config_path)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stats.worker_pid = worker.pid
        try:
            await asyncio.wait_for(stats.done.wait(), timeout=30 + events / 200)
        except TimeoutError:
            tail = (workdir / "worker.log").read_text(errors="replace")[-3000:]
            raise SystemExit(
                f"only {len(stats.ids):,} of {events:,} events arrived; worker log ends:\n{tail}"
            ) from None
    finally:
        if worker is not None:
            worker.terminate()
            await asyncio.to_thread(worker.wait, 30)
        server.close()
        broker.stop()
    seconds = stats.last - stats.first
    verified = 0
    for head, body in stats.samples:
        headers = _headers(head)
        for secret in secrets:  # rotation: each secret verifies on its own
            Webhook(secret).verify(body, headers)
        verified += 1
    rate = (stats.count - 1) / seconds if seconds > 0 else float("inf")
    cpu = stats.cpu_last - stats.cpu_first
    # On a shared machine the worker gets only part of a core; this is its rate per CPU-second.
    per_cpu_second = (stats.count - 1) / cpu if cpu > 0 else float("inf")
    return {
        "benchmark": "delivery",
        "mode": mode,
        "webhook_settings": MODES[mode],
        "events": events,
        "requests": stats.count,
        "distinct_events": len(stats.ids),
        "seconds": round(seconds, 3),
        "deliveries_per_second": round(rate, 1),
        "worker_cpu_seconds": round(cpu, 2),
        "worker_cpu_share": round(cpu / seconds, 2) if seconds > 0 else None,
        "deliveries_per_worker_cpu_second": round(per_cpu_second, 1),
        "target_per_second": TARGET,
        "meets_target": rate >= TARGET,
        "signatures_per_request": len(secrets),
        "signatures_verified_sample": verified,
        "destination_concurrency": concurrency,
        "partitions": 3,
        "enqueue_seconds": round(enqueue_seconds, 3),
        "worker_exit_code": worker.returncode if worker is not None else None,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> int:
    """Run the benchmark, print the table, write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)  # the config default
    args = parser.parse_args()
    runs = {}
    for mode in MODES:
        with tempfile.TemporaryDirectory(prefix="delivery-bench-") as tmp:
            runs[mode] = uvloop.run(run(args.events, args.concurrency, Path(tmp), mode))
    result = runs["baseline"]
    base = float(result["deliveries_per_second"])  # type: ignore[arg-type]
    rows = [
        ("events delivered", f"{result['distinct_events']:,} ({result['requests']:,} requests)"),
        (
            "signatures per request",
            f"{result['signatures_per_request']} (sample of {result['signatures_verified_sample']} verified)",
        ),
        ("destination concurrency", str(result["destination_concurrency"])),
        ("elapsed (first to last)", f"{result['seconds']:.2f} s"),
        ("deliveries / s / worker", f"{result['deliveries_per_second']:,.0f}"),
        (
            "worker CPU used",
            f"{result['worker_cpu_seconds']} s ({result['worker_cpu_share']:.0%} of one core)",
        ),
        ("deliveries / CPU-second", f"{result['deliveries_per_worker_cpu_second']:,.0f}"),
        ("target", f">= {TARGET:,.0f}/s: {'met' if result['meets_target'] else 'NOT met'}"),
    ]
    for mode in list(MODES)[1:]:
        other = runs[mode]
        rate = float(other["deliveries_per_second"])  # type: ignore[arg-type]
        per_cpu = float(other["deliveries_per_worker_cpu_second"])  # type: ignore[arg-type]
        base_cpu = float(result["deliveries_per_worker_cpu_second"])  # type: ignore[arg-type]
        rows.append(
            (
                f"{mode} ({MODES[mode]})",
                f"{rate:,.0f}/s = {rate / base:.2f} x baseline; "
                f"per CPU-second {per_cpu / base_cpu:.2f} x",
            )
        )
    rows.append(("machine", f"{result['cpus']} CPUs, Python {result['python']}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**result, "variants": runs}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0 if result["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
