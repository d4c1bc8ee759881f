"""Local durable spool: events whose hand-off the broker could not ack in time.

Opt-in (`spool:` in the config). When the broker does not acknowledge an event's records
within `server.handoff_timeout`, the pipeline appends the event's already-built records
(topic, key, value, headers: its whole routing decision) to a SQLite database in WAL mode
with `synchronous=FULL`, and only then acknowledges the provider. A drainer forwards spooled
events in arrival order once the broker answers again, deleting each only after every one of
its records was acked. While anything is spooled, new events are appended behind it rather
than sent directly, so the per-key order consumers see is the order of arrival.

SQLite calls are short and run in a worker thread, so the event loop never waits on fsync.
One drainer per spool file (an advisory file lock), so several processes can share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec
import structlog

from gateway import metrics

log = structlog.get_logger("gateway.spool")

Header = tuple[str, bytes]


class SpooledRecord(msgspec.Struct, array_like=True, frozen=True):
    """One Kafka record of a spooled event."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(list[SpooledRecord]).decode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    spooled_at REAL NOT NULL,
    size INTEGER NOT NULL,
    records BLOB NOT NULL
)
"""


class SpoolFull(Exception):
    """The spool reached `max_bytes`; the event was not stored."""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One spooled event as read back."""

    seq: int
    event_id: str
    spooled_at: float
    records: list[SpooledRecord]


class Spool:
    """The SQLite-backed spool. All methods are safe to call from the event loop."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # One connection per spool, used from a worker thread one call at a time.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._bytes, self._depth = self._db.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM spool"
        ).fetchone()
        self._update_metrics()

    # -- synchronous core (runs in a thread) ------------------------------------------------

    def _append(self, event_id: str, records: Sequence[SpooledRecord], now: float) -> None:
        blob = _ENCODE(list(records))
        with self._lock:
            if self._bytes + len(blob) > self.max_bytes:
                raise SpoolFull(f"the spool holds {self._bytes} bytes of {self.max_bytes}")
            self._db.execute(
                "INSERT INTO spool (event_id, spooled_at, size, records) VALUES (?, ?, ?, ?)",
                (event_id, now, len(blob), blob),
            )
            self._bytes += len(blob)
            self._depth += 1

    def _oldest(self, limit: int) -> list[Spooled]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, spooled_at, records FROM spool ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Spooled(seq, eid, at, _DECODE(blob)) for seq, eid, at, blob in rows]

    def _delete(self, seq: int) -> None:
        with self._lock:
            row = self._db.execute(
                "DELETE FROM spool WHERE seq = ? RETURNING size", (seq,)
            ).fetchone()
            if row is not None:
                self._bytes -= row[0]
                self._depth -= 1

    def _refresh(self) -> None:
        # Another process may share the file: recount what is really there.
        with self._lock:
            self._bytes, self._depth = self._db.execute(
                "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM spool"
            ).fetchone()

    def _oldest_age(self, now: float) -> float:
        with self._lock:
            row = self._db.execute("SELECT MIN(spooled_at) FROM spool").fetchone()
        return 0.0 if row is None or row[0] is None else max(0.0, now - row[0])

    def _update_metrics(self) -> None:
        metrics.SPOOL_DEPTH.set(self._depth)
        metrics.SPOOL_BYTES.set(self._bytes)

    # -- async API --------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Events currently spooled (as last counted by this process)."""
        return int(self._depth)

    async def append(self, event_id: str, records: Sequence[SpooledRecord], now: float) -> None:
        """Store an event durably (fsynced) or raise `SpoolFull`."""
        await asyncio.to_thread(self._append, event_id, records, now)
        self._update_metrics()
        metrics.SPOOLED.inc()

    async def oldest(self, limit: int = 100) -> list[Spooled]:
        """The oldest spooled events, in arrival order."""
        return await asyncio.to_thread(self._oldest, limit)

    async def delete(self, seq: int) -> None:
        """Forget an event once all its records were acked."""
        await asyncio.to_thread(self._delete, seq)
        self._update_metrics()

    def close(self) -> None:
        """Close the database (WAL is checkpointed by SQLite)."""
        with self._lock:
            self._db.close()


Send = Callable[[str, bytes, bytes | None, list[Header]], Awaitable[Any]]


class Drainer:
    """Forwards spooled events to the broker in arrival order, one event at a time."""

    def __init__(self, spool: Spool, send: Send, interval: float = 1.0) -> None:
        self._spool = spool
        self._send = send
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock_file: IO[bytes] | None = None

    def start(self) -> None:
        """Start draining in the background."""
        self._task = asyncio.create_task(self._run(), name="spool-drainer")

    def wake(self) -> None:
        """Something was spooled: drain as soon as the broker allows."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop draining (what is left stays spooled for the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._lock_file is not None:
            self._lock_file.close()

    def _try_lock(self) -> bool:
        if self._lock_file is None:
            self._lock_file = open(self._spool.path + ".drain.lock", "ab")
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    async def _run(self) -> None:
        locked = False
        while True:
            if not locked:
                locked = await asyncio.to_thread(self._try_lock)
            if locked:
                await asyncio.to_thread(self._spool._refresh)
                try:
                    await self.drain_once()
                except Exception as exc:  # the broker is still away: try again later
                    log.warning(
                        "spool_drain_paused", error=type(exc).__name__, depth=self._spool.depth
                    )
                now = time.time()
                metrics.SPOOL_OLDEST_AGE.set(await asyncio.to_thread(self._spool._oldest_age, now))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()

    async def drain_once(self) -> int:
        """Forward every spooled event, oldest first; stop at the first failure."""
        forwarded = 0
        while True:
            batch = await self._spool.oldest()
            if not batch:
                return forwarded
            for item in batch:
                await asyncio.gather(
                    *(self._send(r.topic, r.value, r.key, r.headers) for r in item.records)
                )
                await self._spool.delete(item.seq)
                forwarded += 1
                metrics.SPOOL_DRAINED.inc()
                log.info(
                    "spool_drained",
                    event_id=item.event_id,
                    waited_s=round(time.time() - item.spooled_at, 3),
                )
