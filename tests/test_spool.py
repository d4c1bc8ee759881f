"""The local spool: durable, ordered, bounded; the drainer deletes only after every ack."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.spool import Drainer, Spool, SpooledRecord, SpoolFull


def rec(n: int, topic: str = "t") -> SpooledRecord:
    """A small record numbered `n`."""
    return SpooledRecord(topic, f"k{n}".encode(), f"v{n}".encode(), [("h", b"x")])


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


async def test_drainer_keeps_order_and_stops_at_first_failure(tmp_path: Path) -> None:
    """The drainer forwards oldest first and keeps an event whose send failed (for later)."""
    spool = Spool(str(tmp_path / "s.db"), max_bytes=1_000_000)
    for n in range(4):
        await spool.append(f"e{n}", [rec(n)], now=float(n))
    sent: list[bytes] = []
    fail_on = {b"v2"}

    async def send(
        topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        if value in fail_on:
            raise ConnectionError("broker away")
        sent.append(value)

    drainer = Drainer(spool, send)
    with pytest.raises(ConnectionError):
        await drainer.drain_once()
    assert sent == [b"v0", b"v1"]
    assert [i.event_id for i in await spool.oldest()] == ["e2", "e3"]
    fail_on.clear()
    assert await drainer.drain_once() == 2
    assert sent == [b"v0", b"v1", b"v2", b"v3"]
    assert spool.depth == 0


async def test_only_one_drainer_per_file(tmp_path: Path) -> None:
    """Two processes sharing a spool file never drain it at the same time (file lock)."""
    path = str(tmp_path / "s.db")

    async def send(*args: object) -> None:
        return None

    first = Drainer(Spool(path, 1000), send)
    second = Drainer(Spool(path, 1000), send)
    assert first._try_lock() is True
    assert second._try_lock() is False
    await first.stop()
    assert second._try_lock() is True
    await second.stop()
