"""The journal producer: bounded, never blocking, packed records the console's store reads."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import prometheus_client
import pytest
from aiokafka import AIOKafkaConsumer

from gateway.broker import Broker
from gateway.config import parse_config
from gateway.console.store import EventFilter, Store
from gateway.errors import SignatureError
from gateway.journal import Journal
from tests.console.conftest import config_text


def _value(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_full_buffer_drops_and_counts_without_blocking() -> None:
    """No broker at all: `record` returns at once; past the buffer, records are counted lost."""
    config = parse_config(config_text("127.0.0.1:1", "http://127.0.0.1:9"))
    journal = Journal(config, buffer=5)
    await journal.start()
    before = _value("gateway_journal_dropped_total", reason="buffer_full")
    started = time.perf_counter()
    for i in range(12):
        journal.action("alice", "test", n=i)
    took = time.perf_counter() - started
    assert journal.buffered == 5
    assert _value("gateway_journal_dropped_total", reason="buffer_full") - before == 7
    await journal.stop(grace=0.5)
    # The 5 that never reached a broker are counted too, when the process stops.
    assert _value("gateway_journal_dropped_total", reason="buffer_full") - before == 12
    print(f"12 records queued or dropped in {took * 1e6:.0f} us with the broker unreachable")


@pytest.mark.integration
async def test_packed_entries_reach_the_store(broker: Broker, tmp_path: Path) -> None:
    """Hundreds of entries go out packed several per record; the store reads every one."""
    config = parse_config(config_text(broker.bootstrap, "http://127.0.0.1:9"))
    assert config.kafka.journal_topic is not None
    journal = Journal(config)
    before = _value("gateway_journal_records_total")
    await journal.start()
    count = 300
    for i in range(count):
        error = SignatureError(f"bad {i}")
        journal.rejected("whitepay", "whitepay", 401, error, f"req-{i}", time.perf_counter())
    deadline = time.monotonic() + 30
    while _value("gateway_journal_records_total") - before < count:
        assert time.monotonic() < deadline, "the journal never acknowledged its records"
        await asyncio.sleep(0.1)
    await journal.stop()

    consumer = AIOKafkaConsumer(
        config.kafka.journal_topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"t-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records = []
    try:
        while sum(r.value.count(b"\n") + 1 for r in records) < count:
            batch = await consumer.getmany(timeout_ms=1000)
            assert batch or time.monotonic() < deadline + 30, "records never arrived"
            for tp_records in batch.values():
                records.extend(tp_records)
    finally:
        await consumer.stop()
    store = Store(None)
    store.apply([(r.topic, r.partition, r.offset, r.value) for r in records], [])
    items, _ = store.events(EventFilter(status="rejected", limit=200))
    assert len(items) == 200 and all(i["reason"] == "signature" for i in items)
    found, _ = store.events(EventFilter(q="req-7"))
    assert [i["detail"] for i in found] == ["bad 7"]
    print(f"{count} entries in {len(records)} Kafka records")
    assert len(records) < count
