"""The local spool: durable, ordered, bounded per file; the drainer deletes only after acks."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import ENVELOPE_ALLOWANCE, Config, load_config
from gateway.errors import ConfigError
from gateway.pipeline import Pipeline
from gateway.spool import Drainer, Spool, SpooledRecord, SpoolFull
from tests.conftest import Keys, write_config
from tests.ingress_helpers import sample, signed, with_field

BODY = sample("whitepay", "order-declined.json")


def rec(n: int, topic: str = "t", key: str | None = None) -> SpooledRecord:
    """A small record numbered `n`."""
    return SpooledRecord(topic, (key or f"k{n}").encode(), f"v{n}".encode(), [("h", b"x")])


async def filled_spool(tmp_path: Path, count: int) -> Spool:
    """A spool at `tmp_path/s.db` holding events e0..e{count-1}, one record each, oldest first."""
    spool = Spool(str(tmp_path / "s.db"), 1_000_000)
    for n in range(count):
        await spool.append(f"e{n}", [rec(n)], now=float(n))
    return spool


class FakeProducer:
    """Enqueue-then-ack like aiokafka: records append in call order, acks resolve later."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.refuse: dict[bytes, BaseException] = {}  # value -> error raised at enqueue
        self.fail_ack: dict[bytes, BaseException] = {}  # value -> error of its ack
        self.down = False

    async def enqueue(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        if self.down:
            raise KafkaConnectionError("broker away")
        if value in self.refuse:
            raise self.refuse[value]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)

        def ack() -> None:
            self.in_flight -= 1
            if value in self.fail_ack:
                future.set_exception(self.fail_ack[value])
            else:
                self.sent.append((topic, value, headers))
                future.set_result(None)

        asyncio.get_running_loop().call_later(0.001, ack)
        return future

    def values(self, topic: str = "t") -> list[bytes]:
        return [v for t, v, _ in self.sent if t == topic]


async def test_append_read_delete_in_arrival_order(tmp_path: Path) -> None:
    """Events come back oldest first, records intact, and leave only when deleted."""
    spool = Spool(str(tmp_path / "s.db"), max_bytes=1_000_000)
    for n in range(5):
        await spool.append(f"e{n}", [rec(n), rec(n, "u")], now=1000.0 + n)
    items = await spool.oldest(limit=10)
    assert [i.event_id for i in items] == ["e0", "e1", "e2", "e3", "e4"]
    assert items[0].records == [rec(0), rec(0, "u")]
    await spool.delete(items[0].seq)
    assert spool.depth == 4
    assert [i.event_id for i in await spool.oldest()] == ["e1", "e2", "e3", "e4"]


async def test_survives_reopen_and_uses_wal_full_sync(tmp_path: Path) -> None:
    """What was appended is there after the process reopens the file; WAL + synchronous=FULL."""
    path = str(tmp_path / "s.db")
    spool = Spool(path, max_bytes=1_000_000)
    await spool.append("kept", [rec(1)], now=1.0)
    spool.close()
    again = Spool(path, max_bytes=1_000_000)
    assert again.depth == 1
    assert [i.event_id for i in await again.oldest()] == ["kept"]
    assert again._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert again._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


async def test_full_spool_refuses(tmp_path: Path) -> None:
    """Past `max_bytes` an append raises SpoolFull and stores nothing."""
    spool = Spool(str(tmp_path / "s.db"), max_bytes=200)
    await spool.append("a", [rec(1)], now=1.0)
    big = SpooledRecord("t", None, b"x" * 500, [])
    with pytest.raises(SpoolFull):
        await spool.append("b", [big], now=2.0)
    assert spool.depth == 1
    rows = sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM spool").fetchone()
    assert rows == (1,)


async def test_counters_are_the_files_for_every_process(tmp_path: Path) -> None:
    """Two openers of one file see the same depth; one's drain empties it for the other."""
    path = str(tmp_path / "s.db")
    writer, other = Spool(path, 1_000_000), Spool(path, 1_000_000)
    for n in range(3):
        await writer.append(f"e{n}", [rec(n)], now=float(n))
    assert other.depth == 3 and other.bytes == writer.bytes > 0
    producer = FakeProducer()
    assert await Drainer(other, producer.enqueue, "dlq").drain_once() == 3
    assert writer.depth == 0 and writer.bytes == 0  # nobody keeps spooling on stale counters


async def test_max_bytes_bounds_the_file_not_each_process(tmp_path: Path) -> None:
    """Concurrent appends from two openers never take the file past one `max_bytes`."""
    path = str(tmp_path / "s.db")
    one, two = Spool(path, 3_000), Spool(path, 3_000)
    value = SpooledRecord("t", None, b"x" * 180, [])
    results = await asyncio.gather(
        *(s.append(f"e{n}", [value], now=0.0) for n in range(40) for s in (one, two)),
        return_exceptions=True,
    )
    stored = [r for r in results if r is None]
    assert any(isinstance(r, SpoolFull) for r in results)
    db = sqlite3.connect(path)
    size, count = db.execute("SELECT SUM(size), COUNT(*) FROM spool").fetchone()
    assert size <= 3_000 and count == len(stored) == one.depth
    assert db.execute("SELECT depth, bytes FROM totals").fetchone() == (count, size)


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    """Appends that arrive together are committed together, each durable, in arrival order."""
    spool = Spool(str(tmp_path / "s.db"), 10_000_000)
    commits = 0
    insert = spool._insert

    def counting(group: Any) -> list[bool]:
        nonlocal commits
        commits += 1
        return insert(group)

    spool._insert = counting  # type: ignore[method-assign]
    await asyncio.gather(*(spool.append(f"e{n}", [rec(n)], now=float(n)) for n in range(200)))
    assert spool.depth == 200
    assert [i.event_id for i in await spool.oldest(500)] == [f"e{n}" for n in range(200)]
    assert commits < 100, commits


async def test_old_file_without_totals_is_counted(tmp_path: Path) -> None:
    """A spool written by the previous version (no totals table) is counted when opened."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,"
        " spooled_at REAL NOT NULL, size INTEGER NOT NULL, records BLOB NOT NULL)"
    )
    db.execute("INSERT INTO spool (event_id, spooled_at, size, records) VALUES ('a', 1, 7, x'90')")
    db.commit()
    db.close()
    spool = Spool(str(path), 1_000)
    assert (spool.depth, spool.bytes) == (1, 7)


async def test_drainer_batches_in_flight_keeps_order_and_stops_at_failure(tmp_path: Path) -> None:
    """Many records in flight at once, sent oldest first; a failed ack keeps it and every later one."""
    spool = Spool(str(tmp_path / "s.db"), max_bytes=1_000_000)
    for n in range(50):
        await spool.append(f"e{n}", [rec(n, key="same")], now=float(n))
    producer = FakeProducer()
    producer.fail_ack[b"v30"] = KafkaConnectionError("lost")
    drainer = Drainer(spool, producer.enqueue, "dlq", batch=100)
    with pytest.raises(KafkaConnectionError):
        await drainer.drain_once()
    assert producer.most_in_flight == 50  # one batch, not one ack at a time
    assert (await spool.oldest(1))[0].event_id == "e30"
    assert spool.depth == 20
    producer.fail_ack.clear()
    first_pass = len(producer.values())
    assert await drainer.drain_once() == 20
    # From the first failure on, events go again in arrival order (at least once).
    assert producer.values()[first_pass:] == [f"v{n}".encode() for n in range(30, 50)]
    assert set(producer.values()) == {f"v{n}".encode() for n in range(50)}
    assert spool.depth == 0


async def test_producer_away_keeps_everything(tmp_path: Path) -> None:
    """The producer refuses at enqueue (broker away): nothing is deleted, the drain stops."""
    spool = await filled_spool(tmp_path, 3)
    producer = FakeProducer()
    producer.down = True
    with pytest.raises(KafkaConnectionError):
        await Drainer(spool, producer.enqueue, "dlq").drain_once()
    assert spool.depth == 3


async def test_poison_record_is_dead_lettered_and_the_rest_flow(tmp_path: Path) -> None:
    """A record refused for good goes to the dead-letter topic with its error; later events go on."""
    spool = await filled_spool(tmp_path, 5)
    producer = FakeProducer()
    producer.refuse[b"v1"] = MessageSizeTooLargeError("too big")  # refused by the producer
    producer.fail_ack[b"v3"] = MessageSizeTooLargeError("too big")  # refused by the broker
    assert await Drainer(spool, producer.enqueue, "dlq").drain_once() == 5
    assert producer.values() == [b"v0", b"v2", b"v4"]
    letters = [(v, dict(h)) for t, v, h in producer.sent if t == "dlq"]
    assert len(letters) == 2
    note = json.loads(letters[0][0])
    assert note["event_id"] == "e1" and "MessageSizeTooLargeError" in note["error"]
    assert "poison" in note["kept_in"]
    assert json.loads(letters[0][1]["gateway-dead-letter"])["topic"] == "t"
    kept = sqlite3.connect(tmp_path / "s.db").execute("SELECT event_id FROM poison").fetchall()
    assert sorted(kept) == [("e1",), ("e3",)]
    assert spool.depth == 0


async def test_only_one_drainer_per_file(tmp_path: Path) -> None:
    """Two processes sharing a spool file never drain it at the same time (file lock)."""
    path = str(tmp_path / "s.db")
    producer = FakeProducer()
    first = Drainer(Spool(path, 1000), producer.enqueue, "dlq")
    second = Drainer(Spool(path, 1000), producer.enqueue, "dlq")
    assert first.try_lock() is True
    assert second.try_lock() is False
    await first.stop()
    assert second.try_lock() is True
    await second.stop()


async def test_stop_drains_within_grace_and_reports_what_is_left(tmp_path: Path) -> None:
    """On shutdown the drainer forwards what the broker takes; with the broker away it leaves the rest."""
    path = str(tmp_path / "s.db")
    spool = await filled_spool(tmp_path, 10)
    producer = FakeProducer()
    producer.down = True
    left = Drainer(spool, producer.enqueue, "dlq")
    assert (await left.stop(grace=0.5)).forwarded == 0
    assert spool.depth == 10
    producer.down = False
    result = await Drainer(Spool(path, 1_000_000), producer.enqueue, "dlq").stop(grace=5)
    assert result.forwarded == 10 and spool.depth == 0


async def test_full_reports_less_room_than_the_reserve(tmp_path: Path) -> None:
    """`full` once less than `reserve` bytes are free (readiness uses it)."""
    spool = Spool(str(tmp_path / "s.db"), max_bytes=1_000, reserve=300)
    assert not spool.full
    await spool.append("a", [SpooledRecord("t", None, b"x" * 600, [])], now=0.0)
    assert not spool.full
    await spool.append("b", [SpooledRecord("t", None, b"x" * 150, [])], now=0.0)
    assert spool.full


def spool_config(tmp_path: Path, keys: Keys, max_bytes: int) -> Config:
    """Broker unreachable, a spool of `max_bytes`, bodies up to 40 kB and records up to 40 kB."""
    path = write_config(
        tmp_path,
        keys,
        server="handoff_timeout: 500ms\n  max_body_bytes: 40000",
        extra=f"spool:\n  path: {tmp_path / 'spool.db'}\n  max_bytes: {max_bytes}\n  shutdown_drain: 200ms\n",
    )
    text = path.read_text().replace("kafka:\n", "kafka:\n  max_request_size: 40000\n", 1)
    path.write_text(text)
    return load_config(path)


def order(keys: Keys, padding: int = 0) -> tuple[dict[str, str], bytes]:
    """A signed Whitepay order with a fresh id, its URL padded by `padding` bytes."""
    body = with_field(BODY, ["order", "id"], str(uuid.uuid4()))
    if padding:
        body = with_field(body, ["order", "acquiring_url"], "https://x/" + "a" * padding)
    return signed("whitepay", body, keys)


async def test_readyz_stays_ready_while_the_spool_has_room(tmp_path: Path, keys: Keys) -> None:
    """Broker unreachable: /readyz is 200 while the spool has room, 503 once it is full."""
    config = spool_config(tmp_path, keys, max_bytes=200_000)
    app = create_app(config, run_workers=False)
    async with AsyncTestClient(app=app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["kafka"] == "disconnected"
        assert ready.json()["spool"] == {
            "depth": 0,
            "bytes": 0,
            "max_bytes": 200_000,
            "full": False,
        }
        headers, body = order(keys)
        accepted = await client.post("/webhooks/whitepay", content=body, headers=headers)
        assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
        spool: Spool = app.state.spool
        filler = SpooledRecord("t", None, b"x" * 165_000, [])
        await spool.append("filler", [filler], now=0.0)
        full = await client.get("/readyz")
        assert full.status_code == 503 and full.json()["spool"]["full"] is True
        assert full.json()["spool"]["depth"] == 2


async def test_record_over_the_broker_limit_is_413_and_never_spooled(
    tmp_path: Path, keys: Keys
) -> None:
    """A body within max_body_bytes whose record exceeds max_request_size: 413 at once, not spooled."""
    config = spool_config(tmp_path, keys, max_bytes=10_000_000)
    app = create_app(config, run_workers=False)
    async with AsyncTestClient(app=app) as client:
        headers, body = order(keys, padding=39_000)
        assert len(body) <= 40_000
        response = await client.post("/webhooks/whitepay", content=body, headers=headers)
        assert response.status_code == 413, response.text
        problem = response.json()
        assert problem["type"].endswith("/record-too-large")
        assert "max_request_size" in problem["detail"]
        assert app.state.spool.depth == 0
        headers, body = order(keys)
        after = await client.post("/webhooks/whitepay", content=body, headers=headers)
        assert after.status_code == 200 and app.state.spool.depth == 1


def test_max_request_size_below_the_body_limit_is_a_config_error(
    tmp_path: Path, keys: Keys
) -> None:
    """kafka.max_request_size under server.max_body_bytes contradicts it: an error naming both."""
    path = write_config(tmp_path, keys, server="max_body_bytes: 100000")
    path.write_text(path.read_text().replace("kafka:\n", "kafka:\n  max_request_size: 5000\n", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = "\n".join(caught.value.problems)
    assert "kafka.max_request_size" in message and "max_body_bytes" in message
    default = load_config(write_config(tmp_path, keys, server="max_body_bytes: 100000"))
    assert default.max_request_size() == 100000 + ENVELOPE_ALLOWANCE


class OkSender:
    """A broker that acks everything at once."""

    def __init__(self) -> None:
        self.keys: list[bytes | None] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None
    ) -> None:
        self.keys.append(key)


async def test_only_keys_with_spooled_events_queue_behind_the_spool(
    tmp_path: Path, keys: Keys
) -> None:
    """Broker back, spool not yet empty: a key with an older spooled event queues; others go direct."""
    config = spool_config(tmp_path, keys, max_bytes=10_000_000)
    spool = Spool(str(tmp_path / "spool.db"), config.spool.max_bytes)  # type: ignore[union-attr]
    topic = config.kafka_destinations()["orders"].topic
    await spool.append("older", [SpooledRecord(topic, b"order-1", b"{}", [])], now=0.0)
    sender = OkSender()
    pipeline = Pipeline(config, sender, spool)

    async def accept(order_id: str) -> bool:
        body = with_field(BODY, ["order", "id"], order_id)
        headers, payload = signed("whitepay", body, keys)
        lowered = {k.lower(): v for k, v in headers.items()}
        outcome = await pipeline.accept("whitepay", payload, lowered, time.time())
        return outcome.spooled

    assert await accept("order-1") is True  # behind the older event of its key
    assert await accept("order-2") is False  # nothing of its key waits: direct
    assert sender.keys == [b"order-2"] and spool.depth == 2


async def test_a_drain_batch_is_bounded_in_bytes(tmp_path: Path) -> None:
    """A batch stops at about `max_bytes` of records, but always holds at least one event."""
    spool = Spool(str(tmp_path / "s.db"), max_bytes=10_000_000)
    for n in range(10):
        await spool.append(f"e{n}", [SpooledRecord("t", None, b"x" * 1000, [])], now=0.0)
    assert len(await spool.oldest(100, max_bytes=3_500)) == 4
    assert len(await spool.oldest(100, max_bytes=1)) == 1
    assert len(await spool.oldest(3, max_bytes=1_000_000)) == 3


async def test_batches_overlap_and_a_later_failure_keeps_only_its_tail(tmp_path: Path) -> None:
    """Several batches in order; a failure in the third keeps events from it on, the rest are gone."""
    spool = Spool(str(tmp_path / "s.db"), max_bytes=10_000_000)
    await asyncio.gather(*(spool.append(f"e{n}", [rec(n)], now=0.0) for n in range(250)))
    producer = FakeProducer()
    producer.fail_ack[b"v230"] = KafkaConnectionError("lost")
    drainer = Drainer(spool, producer.enqueue, "dlq", batch=100)
    with pytest.raises(KafkaConnectionError):
        await drainer.drain_once()
    assert producer.values()[:200] == [f"v{n}".encode() for n in range(200)]
    assert (await spool.oldest(1))[0].event_id == "e230" and spool.depth == 20
    producer.fail_ack.clear()
    assert await drainer.drain_once() == 20 and spool.depth == 0


async def test_oldest_age_is_the_first_spooled_event(tmp_path: Path) -> None:
    """The age gauge reads the event first in arrival order; 0 when the spool is empty."""
    spool = Spool(str(tmp_path / "s.db"), 1_000_000)
    assert spool._oldest_age(100.0) == 0.0
    await spool.append("a", [rec(1)], now=40.0)
    await spool.append("b", [rec(2)], now=90.0)
    assert spool._oldest_age(100.0) == 60.0
