"""`gateway spool drain --path FILE`: a left-behind spool forwarded by hand, against a real broker."""

from __future__ import annotations

import asyncio
import fcntl
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

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
