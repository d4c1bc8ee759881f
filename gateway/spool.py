"""Local durable spool: events whose hand-off the broker could not ack in time.

Opt-in (`spool:` in the config). When the broker does not acknowledge an event's records
within `server.handoff_timeout`, the pipeline appends the event's already-built records
(topic, key, value, headers: its whole routing decision) to a SQLite database in WAL mode
with `synchronous=FULL`, and only then acknowledges the provider. While anything is
spooled, new events are appended behind it rather than sent directly, so the per-key order
consumers see is the order of arrival; once the spool is empty they go direct again.

The file is the truth, whatever the number of processes sharing it (`--workers N`):

- depth and bytes live in the file (a `totals` row kept by triggers in the same
  transaction as every insert and delete), so every process reads the same numbers and
  `max_bytes` bounds the file, not each process;
- appends from concurrent requests are committed together (one fsync per group, not one
  per event) and a group that would pass `max_bytes` is refused event by event inside the
  write transaction, so two processes can never overfill it between them;
- one process at a time drains (an advisory `flock`, released by the kernel when its
  holder dies, so a survivor or the next process to open the file takes over). It reads
  `drain_batch` events, enqueues all their records in order (many in flight, per-key order
  kept by the producer), awaits the acks and deletes the batch in one transaction.

A record the broker refuses for good (too large, invalid) never blocks the others: the
drainer moves it to `kafka.dead_letter_topic` with the error and goes on (a record too
large for the dead-letter topic too is kept in the file's `poison` table, and the
dead letter says so).
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
from typing import IO, TYPE_CHECKING, Any

import msgspec
import structlog
from aiokafka.errors import KafkaError

from gateway import metrics
from gateway.destinations.kafka import permanent

if TYPE_CHECKING:
    from gateway.config import Config

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
_JSON = msgspec.json.Encoder().encode

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS spool (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        spooled_at REAL NOT NULL,
        size INTEGER NOT NULL,
        records BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS totals (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        depth INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        drained_at REAL NOT NULL DEFAULT 0
    )""",
    # A file written before `totals` existed is counted once, here.
    """INSERT OR IGNORE INTO totals (id, depth, bytes)
        SELECT 0, COUNT(*), COALESCE(SUM(size), 0) FROM spool""",
    # The (topic, key) of every spooled record: a new event queues behind an older one
    # with the same key, any other goes direct once the broker is back.
    """CREATE TABLE IF NOT EXISTS spool_keys (
        seq INTEGER NOT NULL,
        topic TEXT NOT NULL,
        key BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS spool_keys_key ON spool_keys (key, topic)",
    "CREATE INDEX IF NOT EXISTS spool_keys_seq ON spool_keys (seq)",
    """CREATE TRIGGER IF NOT EXISTS spool_keys_out AFTER DELETE ON spool BEGIN
        DELETE FROM spool_keys WHERE seq = OLD.seq;
    END""",
    """CREATE TRIGGER IF NOT EXISTS spool_in AFTER INSERT ON spool BEGIN
        UPDATE totals SET depth = depth + 1, bytes = bytes + NEW.size WHERE id = 0;
    END""",
    """CREATE TRIGGER IF NOT EXISTS spool_out AFTER DELETE ON spool BEGIN
        UPDATE totals SET depth = depth - 1, bytes = bytes - OLD.size WHERE id = 0;
    END""",
    """CREATE TABLE IF NOT EXISTS poison (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        spooled_at REAL NOT NULL,
        error TEXT NOT NULL,
        record BLOB NOT NULL
    )""",
)


class SpoolFull(Exception):
    """The spool reached `max_bytes`; the event was not stored."""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One spooled event as read back."""

    seq: int
    event_id: str
    spooled_at: float
    records: list[SpooledRecord]


@dataclass(slots=True)
class _Pending:
    event_id: str
    blob: bytes
    keys: list[tuple[str, bytes]]
    now: float
    done: asyncio.Future[None]


class Spool:
    """The SQLite-backed spool. All async methods are safe to call from the event loop.

    `reserve` is the room an event may need: the spool reports `full` (and readiness fails)
    once less than that is free.
    """

    def __init__(self, path: str, max_bytes: int, reserve: int = 0) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.reserve = min(reserve, max_bytes // 2)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # The writer, used from worker threads one call at a time (under `_lock`).
        self._db = self._connect()
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # one process creates the schema at a time
            try:
                for statement in _SCHEMA:
                    self._db.execute(statement)
            finally:
                self._db.execute("COMMIT")
        # The reader of the totals row, used from the event loop thread only: a primary-key
        # read in WAL mode never waits for writers.
        self._reader = self._connect()
        self._pending: list[_Pending] = []
        self._writing: asyncio.Task[None] | None = None
        self._depth, self._bytes = self._totals()
        self._update_metrics()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _totals(self) -> tuple[int, int]:
        row = self._reader.execute("SELECT depth, bytes FROM totals WHERE id = 0").fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    # -- what every process sees ------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Events in the file now (every process sharing it reads the same number)."""
        self._depth, self._bytes = self._totals()
        return self._depth

    @property
    def bytes(self) -> int:
        """Bytes of spooled records in the file now."""
        self._depth, self._bytes = self._totals()
        return self._bytes

    @property
    def drained_at(self) -> float:
        """Unix time the drainer (of any process) last forwarded events from this file."""
        row = self._reader.execute("SELECT drained_at FROM totals WHERE id = 0").fetchone()
        return 0.0 if row is None else float(row[0])

    def holds(self, records: Sequence[SpooledRecord]) -> bool:
        """True if an older event with the topic and key of one of `records` is spooled."""
        for r in records:
            if (
                r.key is not None
                and self._reader.execute(
                    "SELECT 1 FROM spool_keys WHERE key = ? AND topic = ? LIMIT 1", (r.key, r.topic)
                ).fetchone()
            ):
                return True
        return False

    @property
    def full(self) -> bool:
        """Less than `reserve` bytes of room left: the next event may not fit."""
        return self.bytes + max(self.reserve, 1) > self.max_bytes

    def _update_metrics(self) -> None:
        metrics.SPOOL_DEPTH.set(self._depth)
        metrics.SPOOL_BYTES.set(self._bytes)

    def refresh_metrics(self) -> None:
        """Set the depth and bytes gauges from the file."""
        self._depth, self._bytes = self._totals()
        self._update_metrics()

    # -- appends: group commit ---------------------------------------------------------------

    async def append(self, event_id: str, records: Sequence[SpooledRecord], now: float) -> None:
        """Store an event durably (fsynced) or raise `SpoolFull`.

        Appends that arrive while a commit is under way are committed together next, in
        arrival order: one fsync for the group.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = [(r.topic, r.key) for r in records if r.key is not None]
        self._pending.append(_Pending(event_id, _ENCODE(list(records)), keys, now, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_pending(), name="spool-writer")
        await asyncio.shield(done)
        metrics.SPOOLED.inc()

    async def _write_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            try:
                stored = await asyncio.to_thread(self._insert, group)
            except BaseException as exc:  # the file could not be written: every caller hears it
                for item in group:
                    if not item.done.done():
                        item.done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for item, ok in zip(group, stored, strict=True):
                if ok:
                    item.done.set_result(None)
                else:
                    item.done.set_exception(
                        SpoolFull(f"the spool holds {self._bytes} bytes of {self.max_bytes}")
                    )
            self._update_metrics()

    def _insert(self, group: list[_Pending]) -> list[bool]:
        stored: list[bool] = []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")  # the file's write lock: totals cannot move under us
            try:
                used = db.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()[0]
                for item in group:
                    if used + len(item.blob) > self.max_bytes:
                        stored.append(False)
                        continue
                    seq = db.execute(
                        "INSERT INTO spool (event_id, spooled_at, size, records) "
                        "VALUES (?, ?, ?, ?)",
                        (item.event_id, item.now, len(item.blob), item.blob),
                    ).lastrowid
                    db.executemany(
                        "INSERT INTO spool_keys (seq, topic, key) VALUES (?, ?, ?)",
                        [(seq, topic, key) for topic, key in item.keys],
                    )
                    used += len(item.blob)
                    stored.append(True)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._depth, self._bytes = db.execute(
                "SELECT depth, bytes FROM totals WHERE id = 0"
            ).fetchone()
        return stored

    # -- the drainer's side ------------------------------------------------------------------

    def _oldest(self, limit: int) -> list[Spooled]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, spooled_at, records FROM spool ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Spooled(seq, eid, at, _DECODE(blob)) for seq, eid, at, blob in rows]

    def _delete(self, seqs: Sequence[int]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])
                self._db.execute("UPDATE totals SET drained_at = ? WHERE id = 0", (time.time(),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _keep_poison(self, item: Spooled, record: SpooledRecord, error: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO poison (seq, event_id, spooled_at, error, record) "
                "VALUES (?, ?, ?, ?, ?)",
                (item.seq, item.event_id, item.spooled_at, error, _ENCODE([record])),
            )

    def _oldest_age(self, now: float) -> float:
        with self._lock:
            row = self._db.execute("SELECT MIN(spooled_at) FROM spool").fetchone()
        return 0.0 if row is None or row[0] is None else max(0.0, now - row[0])

    async def oldest(self, limit: int = 100) -> list[Spooled]:
        """The oldest spooled events, in arrival order."""
        return await asyncio.to_thread(self._oldest, limit)

    async def delete(self, *seqs: int) -> None:
        """Forget events (one transaction) once all their records were acked."""
        await asyncio.to_thread(self._delete, seqs)
        self.refresh_metrics()

    def close(self) -> None:
        """Close the database (WAL is checkpointed by SQLite)."""
        with self._lock:
            self._db.close()
            self._reader.close()


Enqueue = Callable[[str, bytes, bytes | None, list[Header]], Awaitable[Awaitable[Any]]]
"""Append one record to the producer's batches; what it returns resolves on the ack."""


@dataclass(slots=True)
class DrainResult:
    """What one drain pass did."""

    forwarded: int = 0
    dead_lettered: int = 0


class Drainer:
    """Forwards spooled events to the broker in arrival order, a batch at a time.

    Every process sharing the file runs one; only the holder of the drain lock drains, the
    others keep the gauges current and take the lock over when its holder goes away.
    """

    def __init__(
        self,
        spool: Spool,
        enqueue: Enqueue,
        dead_letter_topic: str,
        interval: float = 1.0,
        batch: int = 500,
    ) -> None:
        self._spool = spool
        self._enqueue = enqueue
        self._dead_letter_topic = dead_letter_topic
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock_file: IO[bytes] | None = None
        self.locked = False
        self._paused = False

    def start(self) -> None:
        """Start draining in the background."""
        self._task = asyncio.create_task(self._run(), name="spool-drainer")

    def wake(self) -> None:
        """Something was spooled: drain as soon as the broker allows."""
        self._wake.set()

    def try_lock(self) -> bool:
        """Take the file's drain lock if nobody holds it (non-blocking)."""
        if self.locked:
            return True
        if self._lock_file is None:
            self._lock_file = open(self._spool.path + ".drain.lock", "ab")
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.locked = True
        return True

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the flock
            self._lock_file = None
        self.locked = False

    async def stop(self, grace: float = 0.0) -> DrainResult:
        """Stop; first drain what the broker takes within `grace` seconds, and log what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        result = DrainResult()
        try:
            if grace > 0 and self._spool.depth and await asyncio.to_thread(self.try_lock):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(grace):
                        await self._drain_until_empty(result)
        except Exception as exc:  # the broker is still away: what is left stays in the file
            log.warning("spool_shutdown_drain_failed", error=type(exc).__name__)
        finally:
            left, size = self._spool.depth, self._spool.bytes
            if left or result.forwarded:
                log.warning(
                    "spool_shutdown" if left else "spool_shutdown_drained",
                    path=self._spool.path,
                    forwarded=result.forwarded,
                    dead_lettered=result.dead_lettered,
                    left=left,
                    left_bytes=size,
                    drained_by=(
                        "the next process to open this file, or `gateway spool drain --path FILE`"
                        if left
                        else None
                    ),
                )
            self._unlock()
        return result

    async def _run(self) -> None:
        while True:
            if not self.locked:
                await asyncio.to_thread(self.try_lock)
            if self.locked and self._spool.depth:
                try:
                    await self._drain_until_empty(DrainResult())
                    if self._paused:
                        log.info("spool_drain_resumed")
                    self._paused = False
                except Exception as exc:  # the broker is still away: try again later
                    if not self._paused:
                        log.warning(
                            "spool_drain_paused",
                            error=type(exc).__name__,
                            depth=self._spool.depth,
                        )
                    self._paused = True
            self._spool.refresh_metrics()
            metrics.SPOOL_OLDEST_AGE.set(
                await asyncio.to_thread(self._spool._oldest_age, time.time())
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()

    async def _drain_until_empty(self, result: DrainResult) -> None:
        started, before = time.monotonic(), result.forwarded
        depth = self._spool.depth
        if depth and not self._paused:  # once per outage, not at every retry
            log.info("spool_draining", depth=depth, bytes=self._spool.bytes)
        while await self._drain_batch(result):
            pass
        if result.forwarded > before:
            log.info(
                "spool_empty",
                forwarded=result.forwarded - before,
                seconds=round(time.monotonic() - started, 3),
                note="back on direct hand-off",
            )

    async def drain_once(self) -> int:
        """Forward every spooled event, oldest first; raise at the first batch that fails."""
        result = DrainResult()
        while await self._drain_batch(result):
            pass
        return result.forwarded + result.dead_lettered

    async def _drain_batch(self, result: DrainResult) -> bool:
        """One batch: enqueue every record in order, await the acks, delete what landed."""
        batch = await self._spool.oldest(self._batch)
        if not batch:
            return False
        acks: list[list[Awaitable[Any]]] = []
        failure: BaseException | None = None
        for item in batch:
            futures: list[Awaitable[Any]] = []
            try:
                for r in item.records:
                    futures.append(await self._enqueue(r.topic, r.value, r.key, r.headers))
            except Exception as exc:
                if permanent(exc) is None:
                    failure = exc  # the producer is away: send nothing after this event
                    break
                futures.append(_failed(exc))
            acks.append(futures)
        outcomes = [await asyncio.gather(*f, return_exceptions=True) for f in acks]
        done: list[int] = []
        for item, answers in zip(batch, outcomes, strict=False):
            errors = [a for a in answers if isinstance(a, BaseException)]
            transient = [e for e in errors if permanent(e) is None]
            if transient:
                failure = failure or transient[0]
                break  # keep this event and every later one: they go again, in order
            for record, answer in zip(item.records, answers, strict=True):
                if isinstance(answer, BaseException):
                    await self._dead_letter(item, record, answer)
                    result.dead_lettered += 1
            done.append(item.seq)
            result.forwarded += 0 if errors else 1
            metrics.SPOOL_DRAINED.inc()
        if done:
            await self._spool.delete(*done)
            log.info(
                "spool_drained",
                events=len(done),
                oldest_waited_s=round(time.time() - batch[0].spooled_at, 3),
            )
        if failure is not None:
            raise failure
        return True

    async def _dead_letter(
        self, item: Spooled, record: SpooledRecord, error: BaseException
    ) -> None:
        """Move a record the broker refuses for good to the dead-letter topic, with the error."""
        reason = f"{type(error).__name__}: {error}"[:500]
        letter = {
            "source": "spool",
            "event_id": item.event_id,
            "topic": record.topic,
            "spooled_at": item.spooled_at,
            "error": reason,
            "size": len(record.value),
        }
        value: bytes = record.value
        if permanent(error) == "size":  # the same bytes would be refused again: keep them here
            await asyncio.to_thread(self._spool._keep_poison, item, record, reason)
            letter["kept_in"] = f"{self._spool.path} table poison, seq {item.seq}"
            value = _JSON(letter)
        headers = [*record.headers, ("gateway-dead-letter", _JSON(letter))]
        ack = await self._enqueue(self._dead_letter_topic, value, record.key, headers)
        await ack
        log.error(
            "spool_dead_lettered",
            event_id=item.event_id,
            topic=record.topic,
            error=type(error).__name__,
            dead_letter_topic=self._dead_letter_topic,
        )


async def _failed(exc: BaseException) -> Any:
    raise exc


class SpoolBusy(Exception):
    """A running process holds the file's drain lock (it is draining the file itself)."""


async def drain_file(config: Config, path: str, timeout: float) -> tuple[DrainResult, int]:
    """`gateway spool drain`: forward a spool file by hand; returns what was done and what is left.

    For a spool a stopped pod left behind (a scaled-down StatefulSet ordinal's claim, a
    copied file). Refuses a file a running gateway is draining, and never creates one.
    """
    from gateway.destinations.kafka import Producer

    if not Path(path).is_file():
        raise FileNotFoundError(f"no spool file at {path}")
    spool = Spool(path, config.spool.max_bytes if config.spool else 1 << 62)
    producer = Producer(config)
    drainer = Drainer(
        spool,
        producer.enqueue,
        config.kafka.dead_letter_topic,
        batch=config.spool.drain_batch if config.spool else 500,
    )
    result = DrainResult()
    try:
        if not drainer.try_lock():
            raise SpoolBusy(f"a running gateway holds the drain lock of {path} and drains it")
        try:
            async with asyncio.timeout(timeout):
                await producer.start(wait=True)
                await drainer._drain_until_empty(result)
        except (TimeoutError, KafkaError) as exc:
            log.warning("spool_drain_incomplete", path=path, error=type(exc).__name__)
        return result, spool.depth
    finally:
        drainer._unlock()
        await producer.stop()
        spool.close()
