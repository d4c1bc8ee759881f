"""Fast path `memstore`: the pipeline calls the memory store's claim/confirm directly.

Every case runs twice, with the fast path (`Pipeline._local` set) and through the `Store`
interface (`_local` None, what GATEWAY_SLOW=memstore gives), and must give the same
outcomes, the same records sent and the same store state.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from gateway import pipeline as pipeline_module
from gateway.config import load_config
from gateway.fastpaths import fast
from gateway.pipeline import Pipeline
from gateway.state import MemoryStore, Store
from tests.conftest import Keys, write_config
from tests.ingress_helpers import sample, signed, with_field


class _Sender:
    """Acks every record at once, or fails the next `failures` sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.failures = 0

    async def send(self, topic: str, value: bytes, key: Any = None, headers: Any = None) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaTimeoutError()
        self.sent.append(value)


class _Wrapped:
    """A store that is not exactly `MemoryStore`: the pipeline must use the interface."""

    name = "memory"

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _pipeline(tmp_path: Path, keys: Keys, fast: bool) -> tuple[Pipeline, _Sender]:
    tmp_path.mkdir()
    config = load_config(write_config(tmp_path, keys))
    sender = _Sender()
    pipeline = Pipeline(config, sender)
    assert type(pipeline.store) is MemoryStore
    pipeline._local = pipeline.store if fast else None  # whatever GATEWAY_SLOW says
    return pipeline, sender


def _request(keys: Keys) -> tuple[bytes, dict[str, str]]:
    body = with_field(sample("whitepay", "order-declined.json"), ["order", "id"], uuid.uuid4().hex)
    headers, body = signed("whitepay", body, keys)
    return body, headers


async def _scenario(pipeline: Pipeline, sender: _Sender, keys: Keys) -> list[Any]:
    """Accept, duplicate, failed hand-off then retry, and a copy waiting on a claim."""
    seen: list[Any] = []
    body, headers = _request(keys)
    for _ in range(2):
        outcome = await pipeline.accept("whitepay", body, headers, time.time())
        seen.append((outcome.status, outcome.destinations))
    body, headers = _request(keys)
    sender.failures = 1
    with pytest.raises(Exception) as failed:
        await pipeline.accept("whitepay", body, headers, time.time())
    seen.append(type(failed.value).__name__)
    outcome = await pipeline.accept("whitepay", body, headers, time.time())  # the retry
    seen.append(outcome.status)
    for other_outcome in ("confirm", "release"):
        body, headers = _request(keys)
        event = pipeline.event("whitepay", body, headers, time.time())
        key = f"{pipeline._prefix}dedupe:{event.id}"
        store: Store = pipeline.store
        assert await store.claim(key, 30) == "claimed"  # another copy holds the id
        copy = asyncio.create_task(pipeline.accept("whitepay", body, headers, time.time()))
        await asyncio.sleep(0.05)
        seen.append(copy.done())  # it waits on the claim
        if other_outcome == "confirm":
            await store.confirm(key, 60)
        else:
            await store.release(key)
        seen.append((await asyncio.wait_for(copy, 30)).status)
        seen.append(await store.claim(key, 30))  # confirmed either way now: seen
    seen.append(len(sender.sent))
    return seen


async def test_the_memory_store_fast_path_gives_the_same_outcomes(
    tmp_path: Path, keys: Keys
) -> None:
    """Same outcomes, records and store state with and without the fast path."""
    fast, fast_sender = _pipeline(tmp_path / "fast", keys, fast=True)
    slow, slow_sender = _pipeline(tmp_path / "slow", keys, fast=False)
    with_fast = await _scenario(fast, fast_sender, keys)
    through_interface = await _scenario(slow, slow_sender, keys)
    assert with_fast == through_interface
    assert with_fast == [
        ("accepted", ("orders",)), ("duplicate", ()), "Unavailable", "accepted",
        False, "duplicate", "seen", False, "accepted", "seen", 3,
    ]  # fmt: skip


def test_only_the_memory_store_itself_takes_the_fast_path(tmp_path: Path, keys: Keys) -> None:
    """The memory store takes it unless GATEWAY_SLOW=memstore; any other class of store
    (redis, guarded, a wrapper) goes through the interface."""
    config = load_config(write_config(tmp_path, keys))
    plain = Pipeline(config, _Sender())
    assert pipeline_module._FAST_MEMSTORE is fast("memstore")
    assert plain._local is (plain.store if fast("memstore") else None)
    wrapped = _Wrapped(MemoryStore())
    pipeline = Pipeline(config, _Sender(), store=wrapped)  # type: ignore[arg-type]
    assert pipeline._local is None
