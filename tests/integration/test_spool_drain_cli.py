"""`gateway spool drain --path FILE`: a left-behind spool forwarded by hand, against a real broker."""

from __future__ import annotations

import asyncio
import fcntl
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from gateway.broker import Broker
from gateway.spool import Spool, SpooledRecord
from tests.conftest import Keys, write_config
from tests.faults import ROOT
from tests.integration.test_faults import topic_ids

pytestmark = pytest.mark.integration


def drain(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m gateway spool drain ...`."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "spool", "drain", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def left_behind(path: Path, topic: str, count: int) -> set[str]:
    """A spool file as a stopped pod leaves it: `count` events for `topic`; their ids."""
    spool = Spool(str(path), 10_000_000)
    ids = {uuid.uuid4().hex for _ in range(count)}
    for event_id in ids:
        value = f'{{"id": "{event_id}"}}'.encode()
        await spool.append(event_id, [SpooledRecord(topic, event_id.encode(), value, [])], 0.0)
    spool.close()
    return ids


async def test_spool_drain_forwards_a_left_behind_file(
    tmp_path: Path, keys: Keys, broker: Broker
) -> None:
    """Every event of the file lands on its topic; the file is empty; exit 0 and the counts."""
    suffix = uuid.uuid4().hex[:8]
    topic = f"orders-{suffix}"  # created at start-up (create_topics: true)
    config = write_config(tmp_path, keys, bootstrap=broker.bootstrap, topic_suffix=suffix)
    path = tmp_path / "pod-2" / "spool.db"
    ids = await left_behind(path, topic, 25)
    result = await asyncio.to_thread(drain, "--path", str(path), "--config", str(config))
    print(f"\n[spool drain] exit {result.returncode}: {result.stdout.strip()}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "forwarded 25 event(s)" in result.stdout and "0 event(s) left" in result.stdout
    assert ids <= await topic_ids(broker.bootstrap, topic, ids, seconds=30)
    assert Spool(str(path), 10_000_000).depth == 0


async def test_spool_drain_refuses_a_file_being_drained_or_missing(
    tmp_path: Path, keys: Keys
) -> None:
    """A file whose drain lock a running gateway holds, or no file at all: exit 1, nothing done."""
    config = write_config(tmp_path, keys)
    path = tmp_path / "spool.db"
    await left_behind(path, "t", 2)
    with open(f"{path}.drain.lock", "ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        busy = await asyncio.to_thread(drain, "--path", str(path), "--config", str(config))
    assert busy.returncode == 1 and "holds the drain lock" in busy.stderr
    assert Spool(str(path), 10_000_000).depth == 2
    missing = await asyncio.to_thread(
        drain, "--path", str(tmp_path / "nope.db"), "--config", str(config)
    )
    assert missing.returncode == 1 and "no spool file" in missing.stderr
    assert not (tmp_path / "nope.db").exists()


async def test_a_poison_record_is_dead_lettered_and_the_rest_land(
    tmp_path: Path, keys: Keys, broker: Broker
) -> None:
    """A spooled record over the producer's limit goes to the dead-letter topic with its error; the others land."""
    suffix = uuid.uuid4().hex[:8]
    topic, dead = f"orders-{suffix}", f"dead-{suffix}"
    config = write_config(
        tmp_path,
        keys,
        bootstrap=broker.bootstrap,
        topic_suffix=suffix,
        server="max_body_bytes: 20000",
        extra=f"spool:\n  path: {tmp_path / 'unused.db'}\n",
    )
    text = config.read_text().replace(
        "kafka:\n", f"kafka:\n  max_request_size: 20000\n  dead_letter_topic: {dead}\n", 1
    )
    config.write_text(text)
    path = tmp_path / "spool.db"
    spool = Spool(str(path), 10_000_000)
    sizes = {"small-1": 100, "huge": 50_000, "small-2": 100}
    for event_id, size in sizes.items():
        record = SpooledRecord(topic, event_id.encode(), b"{" + b" " * size + b"}", [])
        await spool.append(event_id, [record], 0.0)
    spool.close()
    result = await asyncio.to_thread(drain, "--path", str(path), "--config", str(config))
    print(f"\n[spool drain, poison] exit {result.returncode}: {result.stdout.strip()}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "forwarded 2 event(s), dead-lettered 1 record(s), 0 event(s) left" in result.stdout
    landed = await read(broker.bootstrap, topic, 2)
    assert sorted(r.key for r in landed) == [b"small-1", b"small-2"]
    (letter,) = await read(broker.bootstrap, dead, 1)
    note = json.loads(dict(letter.headers)["gateway-dead-letter"])
    assert note["event_id"] == "huge" and "MessageSizeTooLargeError" in note["error"]
    assert json.loads(letter.value)["kept_in"].endswith("table poison, seq 2")
    kept = sqlite3.connect(path).execute("SELECT event_id, length(record) FROM poison").fetchall()
    assert kept[0][0] == "huge" and kept[0][1] > 50_000


async def read(bootstrap: str, topic: str, want: int, seconds: float = 30) -> list[Any]:
    """The first `want` records of `topic` (or what arrived within `seconds`)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + seconds
        while len(out) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out
