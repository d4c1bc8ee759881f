"""Spool benchmark: how fast the drainer empties a spool, against direct hand-off, same run.

    .venv/bin/python benchmarks/spool_bench.py            # 3 rounds of 5,000 events
    .venv/bin/python benchmarks/spool_bench.py --quick    # 1 round of 2,000

All on 127.0.0.1, against a real broker (tansu, memory storage), with the gateway's own
Producer (acks=all, the config's batching) and ~1.1 KB CloudEvent-sized records with
distinct keys:

- direct: the ingress's hand-off, `Producer.send` awaited per event (it waits for the
  broker's ack), by 8 and by 64 concurrent "requests" (wrk's -c64 in ingest_bench.py);
- drain: the same number of events appended to a spool file first (not timed), then
  `Drainer.drain_once()`: batches of `spool.drain_batch` events, every record enqueued in
  order and acked together, one delete transaction per batch;
- append: the events spooled by 8 concurrent callers (group commit: one fsync per group).

Prints events/s of each, and drain / direct ratios (per round, then the median) (target >= 1.0: a spool empties at least
as fast as the direct path takes events, so a gateway under load gets back to direct
hand-off). Writes benchmarks/results/spool.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.broker import Broker, free_port, tansu_binary  # noqa: E402
from gateway.config import Config, parse_config  # noqa: E402
from gateway.destinations.kafka import Producer  # noqa: E402
from gateway.spool import Drainer, Spool, SpooledRecord  # noqa: E402

TOPIC = "bench-spool"


def config(bootstrap: str) -> Config:
    """A minimal gateway config with the default producer settings (gzip for tansu's sake)."""
    return parse_config(
        f"""
kafka:
  bootstrap_servers: {bootstrap}
  enable_idempotence: false
  compression: gzip
  create_topics: true
  topic_partitions: 3
sources:
  pay3: {{provider: pay3, secret: bench-secret}}
destinations:
  orders: {{kafka: {{topic: {TOPIC}}}}}
routes:
  - {{name: all, match: {{}}, to: [orders]}}
"""
    )


def records(count: int) -> list[SpooledRecord]:
    """CloudEvent-sized records, distinct keys (order ids)."""
    out = []
    for _ in range(count):
        key = str(uuid.uuid4())
        value = json.dumps(
            {"specversion": "1.0", "id": uuid.uuid4().hex, "subject": key, "pad": "x" * 900}
        ).encode()
        out.append(SpooledRecord(TOPIC, key.encode(), value, [("content-type", b"json")]))
    return out


async def direct(producer: Producer, batch: list[SpooledRecord], concurrency: int) -> float:
    """Events/s handed off the ingress way: one awaited ack per event, `concurrency` at once."""
    queue = iter(batch)

    async def worker() -> None:
        for r in queue:
            await producer.send(r.topic, r.value, key=r.key, headers=r.headers)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(batch) / (time.perf_counter() - started)


async def spool_rates(
    producer: Producer, batch: list[SpooledRecord], directory: Path, drain_batch: int
) -> tuple[float, float]:
    """(append events/s with 8 concurrent callers, drain events/s)."""
    spool = Spool(str(directory / f"{uuid.uuid4().hex}.db"), max_bytes=1 << 34)
    queue = iter(enumerate(batch))

    async def appender() -> None:
        for n, r in queue:
            await spool.append(f"e{n}", [r], now=time.time())

    started = time.perf_counter()
    await asyncio.gather(*(appender() for _ in range(8)))
    append_rate = len(batch) / (time.perf_counter() - started)
    drainer = Drainer(spool, producer.enqueue, "bench-dlq", batch=drain_batch)
    started = time.perf_counter()
    drained = await drainer.drain_once()
    drain_rate = drained / (time.perf_counter() - started)
    assert drained == len(batch) and spool.depth == 0
    spool.close()
    return append_rate, drain_rate


async def run(rounds: int, events: int, drain_batch: int) -> dict[str, float]:
    broker = Broker(tansu_binary(), free_port())
    broker.start()
    producer = Producer(config(broker.bootstrap))
    try:
        await asyncio.wait_for(producer.start(wait=True), 30)
        await direct(producer, records(200), 8)  # warm-up: metadata, connections
        figures: dict[str, list[float]] = {
            k: [] for k in ("direct_c8", "direct_c64", "append_c8", "drain")
        }
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(rounds):
                figures["direct_c8"].append(await direct(producer, records(events), 8))
                figures["direct_c64"].append(await direct(producer, records(events), 64))
                append, drain = await spool_rates(producer, records(events), Path(tmp), drain_batch)
                figures["append_c8"].append(append)
                figures["drain"].append(drain)
                print(
                    f"round {n + 1}: direct c8 {figures['direct_c8'][-1]:,.0f}/s, "
                    f"c64 {figures['direct_c64'][-1]:,.0f}/s; spool append c8 "
                    f"{append:,.0f}/s; drain {drain:,.0f}/s"
                )
        # Ratios per round (neighbours on a shared machine slow a whole round), then medians.
        for c in ("c8", "c64"):
            figures[f"drain_vs_direct_{c}"] = [
                d / x for d, x in zip(figures["drain"], figures[f"direct_{c}"], strict=True)
            ]
        return {k: statistics.median(v) for k, v in figures.items()}
    finally:
        await producer.stop()
        broker.stop()


def main() -> int:
    """Run the rounds, print medians and ratios, write benchmarks/results/spool.json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--drain-batch", type=int, default=2000)
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    events = args.events or (2_000 if args.quick else 5_000)
    medians = asyncio.run(run(rounds, events, args.drain_batch))
    print(
        f"\nmedians over {rounds} round(s) of {events:,} events:\n"
        f"  direct hand-off, 8 concurrent   {medians['direct_c8']:>9,.0f} events/s\n"
        f"  direct hand-off, 64 concurrent  {medians['direct_c64']:>9,.0f} events/s\n"
        f"  spool append, 8 concurrent      {medians['append_c8']:>9,.0f} events/s\n"
        f"  spool drain (batch {args.drain_batch})        {medians['drain']:>9,.0f} events/s\n"
        f"  drain / direct c8   {medians['drain_vs_direct_c8']:.2f}x\n"
        f"  drain / direct c64  {medians['drain_vs_direct_c64']:.2f}x   (target >= 1.0x)"
    )
    out = ROOT / "benchmarks" / "results" / "spool.json"
    out.write_text(json.dumps({"rounds": rounds, "events": events, **medians}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
