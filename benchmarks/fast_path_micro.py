"""Micro benchmark of the fast paths that are one function call: fast vs reference, same run.

    .venv/bin/python benchmarks/fast_path_micro.py

Complements `ingest_bench.py --fast-paths` (whole requests, noisy on a shared machine):
each fast path here is timed against the library/stdlib piece it replaces, best of 7
repeats, on the Whitepay sample body. It prints each one's cost per call, what it saves,
and the ratio reference/fast. A fast path that saves under ~1% of a webhook's CPU (the
ingest benchmark's cpu_us_per_request) does not pay for its code.
"""

from __future__ import annotations

import json
import sys
import timeit
import uuid
from pathlib import Path
from typing import Any

from aiokafka.partitioner import murmur2 as aiokafka_murmur2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway import event as event_module  # noqa: E402
from gateway.destinations.kafka import murmur2  # noqa: E402


def _body() -> bytes:
    path = sorted((ROOT / "tests" / "samples" / "whitepay").glob("*.json"))[0]
    return json.dumps(json.loads(path.read_bytes()), separators=(",", ":")).encode()


def best(statement: Any, number: int = 20000) -> float:
    """Seconds per call, best of 7 repeats."""
    return min(timeit.repeat(statement, number=number, repeat=7)) / number


def main() -> int:
    """Time each pair and print the table."""
    body = _body()
    value = event_module._PAYLOAD.decode(body)
    key = str(uuid.uuid4()).encode()

    def colons() -> bool:
        return body.count(b":") != event_module._COMPACT.encode(value).count(b":")

    rows = [
        ("partitioner", best(lambda: murmur2(key)), best(lambda: aiokafka_murmur2(key))),
        ("dupkeys", best(colons), best(lambda: event_module._PAIRS.decode(body.decode()))),
    ]
    print(f"{'fast path':<14}{'fast us':>10}{'reference us':>14}{'saved us':>10}{'ratio':>8}")
    for name, fast, slow in rows:
        saved = (slow - fast) * 1e6
        print(f"{name:<14}{fast * 1e6:>10.2f}{slow * 1e6:>14.2f}{saved:>10.2f}{slow / fast:>8.2f}")
    print(f"(body {len(body)} bytes; key {len(key)} bytes; ratio = reference / fast, per call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
