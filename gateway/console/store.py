"""The console's local store: SQLite rows built from the journal and dead-letter topics.

Nothing here is the source of truth: every row comes from a Kafka record, and the store can
be thrown away and rebuilt by reading the topics again (with `console.store` unset it lives
in memory and is rebuilt at every start). It keeps the next offset of every partition it
read, so a file-backed store resumes where it stopped. Rows older than `console.retention`
and past `console.max_rows` per table are pruned.

What goes in is cleaned first (`clean`): the event's `console.omit` paths and every
secret-like field (the logs' rule: `clientSecret`, `password`, `token`, `signature`...) are
removed, and configured secret values are masked in every string.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.observability import SECRET_KEY, Redactor
from gateway.types import ascii_int

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, node TEXT, source TEXT, provider TEXT,
    outcome TEXT NOT NULL, status INTEGER, reason TEXT, detail TEXT, event_id TEXT,
    type TEXT, subject TEXT, routes TEXT, destinations TEXT, records TEXT,
    spooled INTEGER, request_id TEXT, duration_ms REAL, event TEXT
);
CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
CREATE INDEX IF NOT EXISTS requests_event ON requests (event_id);
CREATE INDEX IF NOT EXISTS requests_subject ON requests (subject);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, node TEXT, destination TEXT, event_id TEXT,
    attempt INTEGER, status INTEGER, error TEXT, duration_ms REAL, outcome TEXT,
    next_at REAL, replayed INTEGER
);
CREATE INDEX IF NOT EXISTS attempts_event ON attempts (event_id);
CREATE INDEX IF NOT EXISTS attempts_destination ON attempts (destination, at);
CREATE TABLE IF NOT EXISTS dead_letters (
    topic TEXT, partition INTEGER, offset INTEGER, event_id TEXT, destination TEXT,
    enqueued_at REAL, failed_at REAL, attempts INTEGER, last_status INTEGER,
    last_error TEXT, body TEXT, replayed_at REAL, replayed_by TEXT,
    PRIMARY KEY (topic, partition, offset)
);
CREATE INDEX IF NOT EXISTS dead_letters_event ON dead_letters (event_id);
CREATE INDEX IF NOT EXISTS dead_letters_failed ON dead_letters (destination, failed_at);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, node TEXT, user TEXT, action TEXT, detail TEXT
);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT, partition INTEGER, next INTEGER, PRIMARY KEY (topic, partition)
);
"""

STATUSES = ("accepted", "duplicate", "unrouted", "rejected", "failed")
MAX_PAGE = 200
_REMOVED = object()


def clean(value: Any, omit: Sequence[Sequence[str]] = (), redactor: Redactor | None = None) -> Any:
    """`value` without the `omit` paths and secret-like fields, `redactor`'s values masked."""
    for path in omit:
        _drop(value, path)
    return _scrub(value, redactor or _KEYS_ONLY)


def _drop(value: Any, path: Sequence[str]) -> None:
    for part in path[:-1]:
        if not isinstance(value, dict):
            return
        value = value.get(part)
    if isinstance(value, dict) and path:
        value.pop(path[-1], None)


def _scrub(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, dict):
        return {
            k: _scrub(v, redactor)
            for k, v in value.items()
            if not (isinstance(k, str) and SECRET_KEY.search(k))
        }
    if isinstance(value, list):
        return [_scrub(v, redactor) for v in value]
    if isinstance(value, str):
        return redactor.scrub(value)
    return value


_KEYS_ONLY = Redactor()  # masks secret-like keys only: no configured values to look for


@dataclass(frozen=True)
class EventFilter:
    """What the events list is narrowed to (every field optional)."""

    source: str | None = None
    provider: str | None = None
    type: str | None = None  # a glob: order.*
    status: str | None = None
    destination: str | None = None
    since: float | None = None
    until: float | None = None
    q: str | None = None  # an event id, subject or request id (a subject prefix also matches)
    before: int | None = None  # paging: rows older than this id
    limit: int = 50


@dataclass(frozen=True)
class LetterFilter:
    """What the dead-letter list is narrowed to."""

    destination: str | None = None
    since: float | None = None
    until: float | None = None
    q: str | None = None
    replayed: bool | None = None  # None: both
    limit: int = 100


class Store:
    """SQLite rows of the journal and dead letters (module docstring)."""

    def __init__(
        self,
        path: str | None,
        *,
        omit: Iterable[str] = (),
        retention: float = 7 * 86_400,
        max_rows: int = 500_000,
        secrets: Iterable[str] = (),
    ) -> None:
        # The config's secret values, masked wherever they appear in what is stored.
        self._redactor = Redactor(secrets)
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        self._omit = [tuple(p.split(".")) for p in omit]
        self._retention = retention
        self._max_rows = max_rows

    def _text(self, value: Any) -> str | None:
        return None if value is None else self._redactor.scrub(str(value))

    def _texts(self, record: dict[str, Any], *keys: str) -> tuple[str | None, ...]:
        return tuple(self._text(record.get(key)) for key in keys)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- writing ---------------------------------------------------------------------------

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read of every partition read so far."""
        rows = self._db.execute("SELECT topic, partition, next FROM offsets")
        return {(r["topic"], r["partition"]): r["next"] for r in rows}

    def apply(
        self,
        journal: Iterable[tuple[str, int, int, bytes | None]],
        letters: Iterable[tuple[str, int, int, bytes | None]],
    ) -> int:
        """Store a batch of (topic, partition, offset, value) records in one transaction."""
        count = 0
        positions: dict[tuple[str, int], int] = {}
        with self._db:
            for topic, partition, offset, value in journal:
                positions[(topic, partition)] = offset + 1
                for line in (value or b"").split(b"\n"):  # entries packed as JSON lines
                    entry = _json(line)
                    if isinstance(entry, dict):
                        count += self._journal(entry)
            for topic, partition, offset, value in letters:
                positions[(topic, partition)] = offset + 1
                entry = _json(value)
                if isinstance(entry, dict):
                    count += self._letter(topic, partition, offset, entry)
            self._db.executemany(
                "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
                "DO UPDATE SET next = excluded.next",
                [(t, p, n) for (t, p), n in positions.items()],
            )
        return count

    def _journal(self, e: dict[str, Any]) -> int:
        kind = e.get("kind")
        at = _number(e.get("at")) or time.time()
        if kind == "request":
            event = e.get("event")
            destinations = e.get("destinations") or []
            self._db.execute(
                "INSERT INTO requests (at, node, source, provider, outcome, status, reason, "
                "detail, event_id, type, subject, routes, destinations, records, spooled, "
                "request_id, duration_ms, event) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    at,
                    *self._texts(e, "node", "source", "provider"),
                    str(e.get("outcome")),
                    _int(e.get("status")),
                    *self._texts(e, "reason", "detail", "event_id", "type", "subject"),
                    json.dumps(clean(e.get("routes") or [], (), self._redactor)),
                    "," + ",".join(str(d) for d in destinations) + "," if destinations else "",
                    json.dumps(clean(e.get("records") or [], (), self._redactor)),
                    1 if e.get("spooled") else 0,
                    self._text(e.get("request_id")),
                    _number(e.get("duration_ms")),
                    None
                    if not isinstance(event, dict)
                    else json.dumps(clean(event, self._omit, self._redactor)),
                ),
            )
            return 1
        if kind == "attempt":
            self._db.execute(
                "INSERT INTO attempts (at, node, destination, event_id, attempt, status, error, "
                "duration_ms, outcome, next_at, replayed) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    at,
                    *self._texts(e, "node", "destination", "event_id"),
                    _int(e.get("attempt")),
                    _int(e.get("status")),
                    self._text(e.get("error")),
                    _number(e.get("duration_ms")),
                    self._text(e.get("outcome")),
                    _number(e.get("next_at")),
                    1 if e.get("replayed") else 0,
                ),
            )
            return 1
        if kind == "action":
            detail = {
                k: v for k, v in e.items() if k not in ("kind", "at", "node", "user", "action")
            }
            self._db.execute(
                "INSERT INTO actions (at, node, user, action, detail) VALUES (?,?,?,?,?)",
                (
                    at,
                    self._text(e.get("node")),
                    self._text(e.get("user")),
                    self._text(e.get("action")),
                    json.dumps(clean(detail, (), self._redactor)),
                ),
            )
            if e.get("action") == "replay":
                self._mark_replayed(at, str(e.get("user")), detail)
            return 1
        return 0

    def _letter(self, topic: str, partition: int, offset: int, e: dict[str, Any]) -> int:
        body = e.get("body")
        self._db.execute(
            "INSERT OR IGNORE INTO dead_letters (topic, partition, offset, event_id, "
            "destination, enqueued_at, failed_at, attempts, last_status, last_error, body) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                topic,
                partition,
                offset,
                self._text(e.get("event_id")),
                self._text(e.get("destination")),
                _number(e.get("enqueued_at")),
                _number(e.get("failed_at")) or time.time(),
                _int(e.get("attempts")),
                _int(e.get("last_status")),
                self._text(e.get("last_error")),
                json.dumps(clean(body, self._omit, self._redactor))
                if isinstance(body, dict)
                else None,
            ),
        )
        return 1

    def _mark_replayed(self, at: float, user: str, detail: Mapping[str, Any]) -> None:
        """Mark the dead letters a replay action re-drove (every replica applies the same)."""
        for destination, events in (detail.get("selection") or {}).items():
            sql = (
                "UPDATE dead_letters SET replayed_at = ?, replayed_by = ? "
                "WHERE replayed_at IS NULL AND destination = ? AND failed_at <= ?"
            )
            args: list[Any] = [at, user, destination, at]
            since = _number(detail.get("since"))
            if since is not None:
                sql += " AND failed_at >= ?"
                args.append(since)
            if events is not None:
                ids = [str(i) for i in events][:1000]
                sql += f" AND event_id IN ({','.join('?' * len(ids))})" if ids else " AND 0"
                args.extend(ids)
            self._db.execute(sql, args)

    def mark_replayed(
        self, user: str, selection: Mapping[str, list[str] | None], since: float | None
    ) -> None:
        """Apply a replay locally at once (the journaled action applies it again, idempotently)."""
        with self._db:
            self._mark_replayed(time.time(), user, {"selection": selection, "since": since})

    def prune(self, now: float) -> int:
        """Drop rows older than the retention and past the row cap; how many went."""
        cutoff = now - self._retention
        removed = 0
        with self._db:
            for table, column in (
                ("requests", "at"),
                ("attempts", "at"),
                ("dead_letters", "failed_at"),
                ("actions", "at"),
            ):
                removed += self._db.execute(
                    f"DELETE FROM {table} WHERE {column} < ?",  # noqa: S608 - fixed names
                    (cutoff,),
                ).rowcount
                removed += self._db.execute(
                    f"DELETE FROM {table} WHERE rowid <= (SELECT rowid FROM {table} "  # noqa: S608
                    "ORDER BY rowid DESC LIMIT 1 OFFSET ?)",
                    (self._max_rows,),
                ).rowcount
        return removed

    # -- reading ---------------------------------------------------------------------------

    def events(self, f: EventFilter) -> tuple[list[dict[str, Any]], int | None]:
        """A page of requests, newest first, and the cursor of the next page (None: last)."""
        where: list[str] = ["1"]
        args: list[Any] = []
        for column, value in (("source", f.source), ("provider", f.provider)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if f.type:
            where.append("type GLOB ?")
            args.append(f.type)
        if f.status == "failed":
            where.append("outcome = 'accepted' AND event_id IN (SELECT event_id FROM dead_letters)")
        elif f.status:
            where.append("outcome = ?")
            args.append(f.status)
        if f.destination:
            where.append("destinations LIKE ? ESCAPE '\\'")
            args.append("%," + _like(f.destination) + ",%")
        _between(where, args, "at", f.since, f.until)
        if f.q:
            where.append(
                "(event_id = ? OR request_id = ? OR subject = ? OR subject LIKE ? ESCAPE '\\')"
            )
            args += [f.q, f.q, f.q, _like(f.q) + "%"]
        if f.before is not None:
            where.append("id < ?")
            args.append(f.before)
        limit = max(1, min(f.limit, MAX_PAGE))
        rows = self._db.execute(
            f"SELECT * FROM requests WHERE {' AND '.join(where)} "  # noqa: S608 - placeholders only
            "ORDER BY id DESC LIMIT ?",
            [*args, limit + 1],
        ).fetchall()
        items = [_request(r) for r in rows[:limit]]
        self._delivery_summary(items)
        return items, (items[-1]["row"] if len(rows) > limit else None)

    def _delivery_summary(self, items: list[dict[str, Any]]) -> None:
        """Each accepted item's delivery state per webhook destination (latest outcome)."""
        ids = [i["event_id"] for i in items if i["event_id"] and i["outcome"] == "accepted"]
        latest: dict[str, dict[str, str]] = {}
        if ids:
            rows = self._db.execute(
                f"SELECT event_id, destination, outcome FROM attempts WHERE event_id IN "  # noqa: S608
                f"({','.join('?' * len(ids))}) ORDER BY id",
                ids,
            )
            for r in rows:
                latest.setdefault(r["event_id"], {})[r["destination"]] = r["outcome"]
        for item in items:
            item["deliveries"] = latest.get(item["event_id"] or "", {})

    def event(self, ref: str) -> dict[str, Any] | None:
        """One event (by id, or `r<row>` for a request without an id) with everything known."""
        row = ascii_int(ref[1:], 18) if ref.startswith("r") else None
        if row is not None:
            rows = self._db.execute("SELECT * FROM requests WHERE id = ?", (row,))
        else:
            rows = self._db.execute(
                "SELECT * FROM requests WHERE event_id = ? ORDER BY at, id", (ref,)
            )
        requests = [_request(r) for r in rows]
        if not requests:
            return None
        first = next((r for r in requests if r["outcome"] == "accepted"), requests[0])
        event_id = first["event_id"]
        attempts = (
            [
                dict(r)
                for r in self._db.execute(
                    "SELECT at, node, destination, attempt, status, error, duration_ms, "
                    "outcome, next_at, replayed FROM attempts WHERE event_id = ? ORDER BY at, id",
                    (event_id,),
                )
            ]
            if event_id
            else []
        )
        letters = self.dead_letters(LetterFilter(q=event_id), with_body=False) if event_id else []
        deliveries: dict[str, dict[str, Any]] = {}
        for name in first["destinations"]:
            record = next((p for p in first["records"] if p.get("destination") == name), None)
            deliveries[name] = {"record": record, "attempts": [], "dead_letters": []}
        for a in attempts:
            d = deliveries.setdefault(
                a["destination"], {"record": None, "attempts": [], "dead_letters": []}
            )
            a["replayed"] = bool(a["replayed"])
            d["attempts"].append(a)
        for letter in letters:
            deliveries.setdefault(
                letter["destination"], {"record": None, "attempts": [], "dead_letters": []}
            )["dead_letters"].append(letter)
        for d in deliveries.values():
            d["state"] = _state(d)
        event = first["event_json"]
        return {
            **public(first),
            "event": event,
            "requests": [public(r) for r in requests],
            "deliveries": deliveries,
        }

    def dead_letters(self, f: LetterFilter, *, with_body: bool = True) -> list[dict[str, Any]]:
        """Dead letters, newest first."""
        where: list[str] = ["1"]
        args: list[Any] = []
        if f.destination:
            where.append("destination = ?")
            args.append(f.destination)
        _between(where, args, "failed_at", f.since, f.until)
        if f.q:
            where.append("event_id = ?")
            args.append(f.q)
        if f.replayed is not None:
            where.append("replayed_at IS NOT NULL" if f.replayed else "replayed_at IS NULL")
        limit = max(1, min(f.limit, 1000))
        rows = self._db.execute(
            f"SELECT * FROM dead_letters WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY failed_at DESC LIMIT ?",
            [*args, limit],
        )
        out = []
        for r in rows:
            item = dict(r)
            body = item.pop("body")
            item["id"] = f"{r['topic']}:{r['partition']}:{r['offset']}"
            if with_body:
                item["body"] = None if body is None else json.loads(body)
            subject = None
            if body is not None:
                subject = json.loads(body).get("subject")
            item["subject"] = subject
            out.append(item)
        return out

    def destination_stats(self, name: str, now: float) -> dict[str, Any]:
        """Success rate, latency, pending count and circuit hint of one destination."""
        out: dict[str, Any] = {}
        for label, window in (("1h", 3600.0), ("24h", 86_400.0)):
            rows = self._db.execute(
                "SELECT outcome, duration_ms, error FROM attempts "
                "WHERE destination = ? AND at >= ?",
                (name, now - window),
            ).fetchall()
            sent = [r for r in rows if not (r["error"] or "").startswith("circuit open")]
            ok = sum(1 for r in sent if r["outcome"] == "delivered")
            latencies = sorted(r["duration_ms"] or 0.0 for r in sent)
            out[label] = {
                "attempts": len(sent),
                "delivered": ok,
                "success_rate": round(ok / len(sent), 4) if sent else None,
                "latency_ms_p50": _quantile(latencies, 0.5),
                "latency_ms_p95": _quantile(latencies, 0.95),
            }
        out["dead_letters_waiting"] = self._db.execute(
            "SELECT count(*) FROM dead_letters WHERE destination = ? AND replayed_at IS NULL",
            (name,),
        ).fetchone()[0]
        # Events routed here (last day) with no final outcome yet: the queue as the journal sees it.
        out["pending"] = self._db.execute(
            "SELECT count(DISTINCT r.event_id) FROM requests r WHERE r.outcome = 'accepted' "
            "AND r.at >= ? AND r.destinations LIKE ? ESCAPE '\\' AND NOT EXISTS (SELECT 1 "
            "FROM attempts a WHERE a.event_id = r.event_id AND a.destination = ? "
            "AND a.outcome IN ('delivered', 'dead_letter') AND a.at >= r.at)",
            (now - 86_400, "%," + _like(name) + ",%", name),
        ).fetchone()[0]
        last = self._db.execute(
            "SELECT at, outcome, error FROM attempts WHERE destination = ? ORDER BY id DESC LIMIT 1",
            (name,),
        ).fetchone()
        out["last_attempt_at"] = last["at"] if last else None
        if last is None:
            out["circuit"] = "unknown"
        elif (last["error"] or "").startswith("circuit open"):
            out["circuit"] = "open"
        elif last["outcome"] == "retry":
            out["circuit"] = "failing"
        else:
            out["circuit"] = "closed"
        return out

    def records_count(self, name: str, now: float) -> dict[str, int]:
        """Kafka records written to a Kafka destination in the last hour and day."""
        like = "%," + _like(name) + ",%"
        return {
            label: self._db.execute(
                "SELECT count(*) FROM requests WHERE outcome = 'accepted' AND at >= ? "
                "AND destinations LIKE ? ESCAPE '\\'",
                (now - window, like),
            ).fetchone()[0]
            for label, window in (("1h", 3600.0), ("24h", 86_400.0))
        }

    def source_stats(self, name: str, now: float) -> dict[str, Any]:
        """Accepted/duplicate/unrouted/rejected counts (1 h, 24 h) and the latest rejections."""
        out: dict[str, Any] = {}
        for label, window in (("1h", 3600.0), ("24h", 86_400.0)):
            counts = {o: 0 for o in ("accepted", "duplicate", "unrouted", "rejected")}
            for r in self._db.execute(
                "SELECT outcome, count(*) AS n FROM requests WHERE source = ? AND at >= ? "
                "GROUP BY outcome",
                (name, now - window),
            ):
                counts[r["outcome"]] = r["n"]
            out[label] = counts
        out["latest_rejections"] = [
            {"ref": f"r{r['id']}", **{k: r[k] for k in ("at", "status", "reason", "detail")}}
            for r in self._db.execute(
                "SELECT id, at, status, reason, detail FROM requests WHERE source = ? "
                "AND outcome = 'rejected' ORDER BY id DESC LIMIT 10",
                (name,),
            )
        ]
        return out

    def actions(self, limit: int = 50, names: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The latest operator actions (only those named `names`, if given)."""
        if names:
            rows = self._db.execute(
                "SELECT * FROM actions WHERE action IN (SELECT value FROM json_each(?))"
                " ORDER BY id DESC LIMIT ?",
                (json.dumps(names), limit),
            )
        else:
            rows = self._db.execute("SELECT * FROM actions ORDER BY id DESC LIMIT ?", (limit,))
        return [{**dict(r), "detail": json.loads(r["detail"] or "{}")} for r in rows]


def _request(row: sqlite3.Row) -> dict[str, Any]:
    item = {
        k: row[k]
        for k in (
            "at", "node", "source", "provider", "outcome", "status", "reason", "detail",
            "event_id", "type", "subject", "request_id", "duration_ms",
        )
    }  # fmt: skip
    item["ref"] = row["event_id"] if row["event_id"] else f"r{row['id']}"
    item["row"] = row["id"]
    item["spooled"] = bool(row["spooled"])
    item["routes"] = json.loads(row["routes"] or "[]")
    item["destinations"] = [d for d in (row["destinations"] or "").split(",") if d]
    item["records"] = json.loads(row["records"] or "[]")
    item["event_json"] = None if row["event"] is None else json.loads(row["event"])
    return item


def public(item: dict[str, Any]) -> dict[str, Any]:
    """A list item as the API shows it (no stored event body)."""
    return {k: v for k, v in item.items() if k != "event_json"}


def _state(delivery: Mapping[str, Any]) -> str:
    if delivery["record"] is not None and not delivery["attempts"]:
        return "written"
    attempts = delivery["attempts"]
    if not attempts:
        return "queued"
    last = attempts[-1]["outcome"]
    if last == "delivered":
        return "delivered"
    if last == "dead_letter":
        letters = delivery["dead_letters"]
        if letters and all(letter["replayed_at"] for letter in letters):
            return "replayed"
        return "dead-lettered"
    return "retrying"


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _json(value: bytes | None) -> Any:
    try:
        return json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None


def _between(
    where: list[str], args: list[Any], column: str, since: float | None, until: float | None
) -> None:
    """Add `column >= since` and `column <= until` to a WHERE clause, each when given."""
    if since is not None:
        where.append(f"{column} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{column} <= ?")
        args.append(until)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
