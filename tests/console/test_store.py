"""The console's store: cleaning, retention, the row cap, resuming from a file."""

from __future__ import annotations

import json
import time
from pathlib import Path

from gateway.console.store import EventFilter, LetterFilter, Store, clean
from gateway.observability import Redactor


def _request(at: float, event_id: str, **extra: object) -> bytes:
    entry = {"kind": "request", "at": at, "source": "w3block", "provider": "w3block"}
    return json.dumps({**entry, "outcome": "accepted", "event_id": event_id, **extra}).encode()


def test_clean_removes_omitted_paths_secret_fields_and_secret_values() -> None:
    """`console.omit` paths and secret-like keys go at any depth; configured secrets are masked."""
    redactor = Redactor(["configured-secret-value-123"])  # the config's values, as Store gets
    event = {
        "data": {
            "payload": {
                "data": {"paymentInfo": {"clientSecret": "pi_x_secret_y"}, "id": "o-1"},
                "nested": [{"apiKey": "k", "password": "p", "note": "configured-secret-value-123"}],
            }
        }
    }
    cleaned = clean(event, [("data", "payload", "data", "paymentInfo")], redactor)
    text = json.dumps(cleaned)
    assert "paymentInfo" not in text and "pi_x_secret_y" not in text
    assert "apiKey" not in text and "password" not in text
    assert "configured-secret-value-123" not in text
    assert cleaned["data"]["payload"]["data"]["id"] == "o-1"
    only_secret_keys = clean({"data": {"clientSecret": "s"}})
    assert only_secret_keys == {"data": {}}


def test_retention_and_row_cap_prune_the_oldest(tmp_path: Path) -> None:
    """Rows past the retention go; past `max_rows` the oldest go too."""
    now = time.time()
    store = Store(None, retention=3600, max_rows=3)
    lines = [_request(now - 7200, "old")] + [_request(now - i, f"e{i}") for i in range(5, 0, -1)]
    store.apply([("j", 0, i, line) for i, line in enumerate(lines)], [])
    store.prune(now)
    items, _ = store.events(EventFilter(limit=50))
    assert [i["event_id"] for i in items] == ["e1", "e2", "e3"]


def test_a_file_store_resumes_where_it_stopped(tmp_path: Path) -> None:
    """Rows and the next offset per partition survive a restart (no re-read from the start)."""
    path = str(tmp_path / "console.db")
    store = Store(path)
    letter = {"destination": "ledger", "event_id": "e1", "failed_at": time.time(), "body": {}}
    store.apply(
        [("j", 0, 41, _request(time.time(), "e1"))],
        [("dl", 1, 7, json.dumps(letter).encode())],
    )
    store.close()
    again = Store(path)
    assert again.offsets() == {("j", 0): 42, ("dl", 1): 8}
    assert again.event("e1") is not None
    assert [d["id"] for d in again.dead_letters(LetterFilter())] == ["dl:1:7"]
    # A record read twice (a restart between storing and saving the offset) stays one row.
    again.apply([], [("dl", 1, 7, json.dumps(letter).encode())])
    assert len(again.dead_letters(LetterFilter())) == 1


def test_garbage_records_are_skipped() -> None:
    """Records this gateway did not write (not JSON, not objects, unknown kinds) are ignored."""
    store = Store(None)
    count = store.apply(
        [("j", 0, 0, b"\xff\xfe"), ("j", 0, 1, b"[1,2]"), ("j", 0, 2, b'{"kind": "x"}')],
        [("dl", 0, 0, b"not json"), ("dl", 0, 1, None)],
    )
    assert count == 0
    assert store.offsets() == {("j", 0): 3, ("dl", 0): 2}
