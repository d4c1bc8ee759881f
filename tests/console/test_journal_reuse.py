"""The journal reuses a record's bytes of the event instead of encoding it again.

Whatever the routes and destinations (a plain structured record, an `omit`, binary mode,
a transform), the journal's `event` parses to the same JSON as the event itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.event import encode
from gateway.journal import Journal
from gateway.pipeline import Pipeline
from tests.ingress_helpers import sample, with_field

SECRET = "journal-reuse-secret"

CONFIG = """\
kafka:
  bootstrap_servers: 127.0.0.1:1
  journal_topic: test.journal
sources:
  whitepay: {{provider: whitepay, secret: {secret}}}
destinations:
  orders:
    kafka: {{topic: orders, mode: {mode}}}
{transform}routes:
  - name: all
    match: {{type: "order.*"}}
    to: [orders]
{omit}"""

CASES = {
    "structured": ({"mode": "structured"}, True),
    "omit": ({"mode": "structured", "omit": "    omit: [data.payload.order.currency]\n"}, False),
    "binary": ({"mode": "binary"}, False),
    "transform": (
        {"mode": "structured",
         "transform": '    transform: "{order: subject, status: data.status}"\n'},
        False,
    ),
}  # fmt: skip


class _Sender:
    async def send(self, topic: str, value: bytes, key: Any = None, headers: Any = None) -> None:
        return None


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_journal_event_is_the_event_whichever_bytes_it_reuses(case: str) -> None:
    """Reused exactly when a record holds the whole event; the same JSON either way."""
    options, reused = CASES[case]
    text = CONFIG.format(
        secret=SECRET,
        mode=options["mode"],
        omit=options.get("omit", ""),
        transform="",
    )
    if "transform" in options:  # under the destination
        text = text.replace(
            "    kafka: {topic: orders, mode: structured}\n",
            "    kafka: {topic: orders, mode: structured}\n" + options["transform"],
        )
    config = parse_config(text, "reuse.yaml")
    pipeline = Pipeline(config, _Sender())
    journal = pipeline.journal = Journal(config)
    body = with_field(sample("whitepay", "order-declined.json"), ["order", "id"], uuid.uuid4().hex)
    headers = {
        "content-type": "application/json",
        "signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    outcome = await pipeline.accept("whitepay", body, headers, time.time())
    assert outcome.status == "accepted"
    assert (outcome.encoded is not None) is reused
    journal.answered("whitepay", "whitepay", outcome, None, time.perf_counter())
    line = journal._take(1)[0]
    assert json.loads(line)["event"] == json.loads(encode(outcome.event))
