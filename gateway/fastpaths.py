"""The fast paths: each replaces a library or stdlib piece, and each can be switched off.

Every optimisation on the request path that stands in for a library or stdlib piece has a
name here. `GATEWAY_SLOW=name,name` (read once, when this module is first imported) makes
those fast paths use the reference they replace, with the same behaviour, so that
`benchmarks/ingest_bench.py --fast-paths` can drop each one alone and measure what it buys
(docs/performance.md has the latest figures). Each fast path's equivalence test sits beside the
tests of its module.

| name        | fast path (where)                                  | reference it replaces            |
|-------------|----------------------------------------------------|----------------------------------|
| ingress     | `GatewayApp.__call__` takes /webhooks/ (app.py)    | Litestar's router, `webhooks_route` |
| logline     | `webhook_line` renders the JSON line (observability) | structlog's processor chain    |
| metrics     | `_Family` counters/histograms (metrics.py)         | prometheus-client's              |
| partitioner | `murmur2` (destinations/kafka.py)                  | aiokafka's `murmur2`             |
| dupkeys     | colon count before the pairs check (event.py)      | the stdlib pairs check always    |
| gc          | `tune_gc` (cli.py)                                 | the interpreter's GC defaults    |
| amounts     | one regex for plain amounts (event.py `amount`)    | the Decimal check for every one  |
| deadline    | `Deadline` bounds the hand-off (handoff.py)        | `asyncio.timeout`                |
| memstore    | the memory store's claim/confirm called directly (pipeline.py) | awaiting `Store.claim`/`confirm` |
| onewrite    | one write per connection per loop turn (http/server.py) | uvicorn's write per head and body |
| headbound   | a byte-count bound skips the exact head-limit check (http/server.py) | the exact check on every head |
| seentable   | the dedupe window as flat mmap arrays (dedupe.py `SeenIds`) | an OrderedDict (`PlainSeenIds`) |

Not switched here: gateway/resp.py (the Redis client; `RedisStore.from_config(config,
client="redis-py")` swaps redis-py back in, a code argument rather than a config key, used
by `ingest_bench.py --state-only` and the store's contract tests).
The flat dedupe table (`seentable`) buys memory, not speed: the memory phase of
`ingest_bench.py` measures it.
Removed because they no longer paid (docs/performance.md has the figures): a hand-written
`msgspec.to_builtins`. `Deadline` was removed too and came back, re-measured
(docs/performance.md).
"""

from __future__ import annotations

import os

__all__ = ["NAMES", "fast"]

NAMES = frozenset(
    {
        "ingress", "logline", "metrics", "partitioner", "dupkeys", "gc",
        "amounts", "deadline", "memstore", "onewrite", "seentable", "headbound",
    }
)  # fmt: skip


def _slow_names(value: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    unknown = names - NAMES
    if unknown:
        raise ValueError(
            f"GATEWAY_SLOW: unknown fast path {', '.join(sorted(unknown))}; "
            f"expected some of: {', '.join(sorted(NAMES))}"
        )
    return names


_SLOW = _slow_names(os.environ.get("GATEWAY_SLOW", ""))


def fast(name: str) -> bool:
    """Whether the named fast path is on (it is, unless GATEWAY_SLOW names it)."""
    assert name in NAMES, name
    return name not in _SLOW
