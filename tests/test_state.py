"""The state store: one contract for the memory and redis backends, and the outage guard."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway import metrics
from gateway.config import parse_config
from gateway.errors import ConfigError, Unavailable
from gateway.secrets import Secret
from gateway.state import (
    Guarded,
    MemoryStore,
    RedisStore,
    StateConfig,
    Store,
    open_store,
    per_process_warning,
)
from gateway.types import Duration
from tests.redis_server import RedisServer


def _redis_config(url: str, **options: object) -> StateConfig:
    return StateConfig(backend="redis", url=Secret(url), **options)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "redis", "redis-py"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Each backend in turn, behind the same interface (redis: both transports)."""
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = "resp" if request.param == "redis" else "redis-py"
    backend = RedisStore.from_config(_redis_config(server.url), client=client)
    yield backend
    await backend.close()


@pytest.fixture
def key() -> str:
    """A fresh key (the redis server is shared by the session)."""
    return f"test:{uuid.uuid4().hex}"


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_claim_confirm_release(store: Store, key: str) -> None:
    """claim -> claimed, again -> pending; release lets it be claimed; confirm makes it seen."""
    assert await store.claim(key, 30) == "claimed"
    assert await store.claim(key, 30) == "pending"
    await store.release(key)
    assert await store.claim(key, 30) == "claimed"
    await store.confirm(key, 30)
    assert await store.claim(key, 30) == "seen"
    await store.release(key)  # a confirmed key is not a claim: release leaves it seen
    assert await store.claim(key, 30) == "seen"


async def test_claim_expires(store: Store, key: str) -> None:
    """A claim nobody confirms or releases (a crashed copy) lapses after its ttl."""
    assert await store.claim(key, 0.2) == "claimed"
    assert await store.claim(key, 0.2) == "pending"

    async def free() -> bool:
        return await store.claim(key, 30) == "claimed"

    await _eventually(free)


async def test_confirm_expires(store: Store, key: str) -> None:
    """A confirmed key is remembered for the ttl confirm was given, then forgotten."""
    assert await store.claim(key, 30) == "claimed"
    await store.confirm(key, 0.3)
    assert await store.claim(key, 30) == "seen"

    async def forgotten() -> bool:
        return await store.claim(key, 30) == "claimed"

    await _eventually(forgotten)


async def test_once(store: Store, key: str) -> None:
    """once is True the first time a key is seen within its ttl, False until it expires."""
    assert await store.once(key, 0.3) is True
    assert await store.once(key, 0.3) is False
    assert await store.once(key + ":other", 0.3) is True

    async def again() -> bool:
        return await store.once(key, 30)

    await _eventually(again)
    assert await store.once(key, 30) is False


async def test_acquire_rate(store: Store, key: str) -> None:
    """GCRA: `burst` units at once, then one per 1/rate s; a refusal consumes nothing."""
    rate = 5.0
    assert [await store.acquire_rate(key, rate, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await store.acquire_rate(key, rate, 3)
    assert 0 < wait <= 1 / rate + 0.01
    second = await store.acquire_rate(key, rate, 3)
    assert 0 < second <= wait  # nothing was consumed by the refusal
    await asyncio.sleep(second + 0.02)
    assert await store.acquire_rate(key, rate, 3) == 0.0
    assert await store.acquire_rate(key, rate, 3) > 0
    assert await store.acquire_rate(key + ":other", rate, 1) == 0.0  # buckets are per key


async def test_lock_unlock(store: Store, key: str) -> None:
    """lock is SET NX PX; unlock only lets go of a lock the owner still holds."""
    assert await store.lock(key, "a", 30) is True
    assert await store.lock(key, "b", 30) is False
    await store.unlock(key, "b")  # not b's: nothing happens
    assert await store.lock(key, "b", 30) is False
    await store.unlock(key, "a")
    assert await store.lock(key, "b", 0.2) is True

    async def lapsed() -> bool:
        return await store.lock(key, "c", 30)

    await _eventually(lapsed)
    await store.unlock(key, "b")  # b's lock lapsed and c holds it now: b cannot free it
    assert await store.lock(key, "a", 30) is False


async def test_put_get_delete(store: Store, key: str) -> None:
    """Values: binary-safe, replaced by a later put, gone after delete or their ttl."""
    assert await store.get(key) is None
    value = bytes(range(256)) * 4
    await store.put(key, value, 30)
    assert await store.get(key) == value
    await store.put(key, b"second", 30)
    assert await store.get(key) == b"second"
    await store.delete(key)
    assert await store.get(key) is None
    await store.delete(key)  # deleting nothing is fine
    await store.put(key, b"brief", 0.2)

    async def expired() -> bool:
        return await store.get(key) is None

    await _eventually(expired)


async def test_redis_is_shared_between_processes(redis_server: RedisServer, key: str) -> None:
    """Two clients (two processes) see one another's claims, confirmations and nonces."""
    first = RedisStore.from_config(_redis_config(redis_server.url))
    second = RedisStore.from_config(_redis_config(redis_server.url))
    try:
        assert await first.claim(key, 30) == "claimed"
        assert await second.claim(key, 30) == "pending"
        await second.release(key)  # not second's claim: it stays
        assert await second.claim(key, 30) == "pending"
        await first.confirm(key, 30)
        assert await second.claim(key, 30) == "seen"
        assert await first.once(key + ":n", 30) is True
        assert await second.once(key + ":n", 30) is False
    finally:
        await first.close()
        await second.close()


async def test_redis_password_from_config(tmp_path: Path) -> None:
    """A server with `requirepass` is reached with `state.password`; a wrong one falls back."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        server.command("CONFIG", "SET", "requirepass", "s3cret-pw")
        good = RedisStore.from_config(_redis_config(server.url, password=Secret("s3cret-pw")))
        in_url = RedisStore.from_config(
            _redis_config(f"redis://:s3cret-pw@127.0.0.1:{server.port}/0")
        )
        try:
            assert await good.once("pw:a", 30) is True
            assert await in_url.once("pw:a", 30) is False
        finally:
            await good.close()
            await in_url.close()
        with capture_logs() as logs:
            guarded = open_store(_redis_config(server.url, password=Secret("wrong-pw")))
            assert await guarded.once("pw:b", 30) is True  # answered by the local fallback
            await guarded.close()
        assert not any("s3cret" in str(line) or "wrong-pw" in str(line) for line in logs)
    finally:
        server.stop()


def _fallbacks(operation: str) -> float:
    return float(metrics.STATE_FALLBACK.labels(operation).value)


async def test_guard_falls_back_to_local_and_recovers(own_redis: RedisServer, key: str) -> None:
    """Redis SIGKILLed: answers come from memory, counted, one log line each way."""
    store = open_store(_redis_config(own_redis.url, retry_after=0.05))
    assert isinstance(store, Guarded)
    try:
        assert await store.claim(key, 30) == "claimed"
        own_redis.kill()
        before = _fallbacks("claim")
        with capture_logs() as logs:
            started = time.monotonic()
            assert await store.claim(key + ":2", 30) == "claimed"  # local memory
            assert await store.claim(key + ":2", 30) == "pending"
            assert time.monotonic() - started < 2
            assert await store.once(key + ":n", 30) is True
            assert await store.once(key + ":n", 30) is False
            await asyncio.sleep(0.1)
            assert await store.claim(key + ":3", 30) == "claimed"  # tried again: still down
        assert _fallbacks("claim") >= before + 3
        events = [line["event"] for line in logs]
        assert events.count("state_store_unavailable") == 1
        assert "state_store_recovered" not in events
        assert not store.available
        own_redis.start()
        with capture_logs() as logs:

            async def shared_again() -> bool:
                await asyncio.sleep(0.06)
                return await store.claim(key + ":4", 30) == "claimed" and store.available

            await _eventually(shared_again)
        assert [line["event"] for line in logs].count("state_store_recovered") == 1
    finally:
        await store.close()


async def test_guard_reject(own_redis: RedisServer, key: str) -> None:
    """on_unavailable: reject answers Unavailable for decisions and drops the tidying-up."""
    store = open_store(_redis_config(own_redis.url, on_unavailable="reject"))
    try:
        own_redis.kill()
        with pytest.raises(Unavailable) as raised:
            await store.claim(key, 30)
        assert raised.value.retry_after >= 1
        with pytest.raises(Unavailable):
            await store.once(key, 30)
        with pytest.raises(Unavailable):
            await store.lock(key, "a", 30)
        with pytest.raises(Unavailable):
            await store.acquire_rate(key, 1, 1)
        await store.confirm(key, 30)  # nothing to reject: the event is already handed off
        await store.release(key)
        await store.unlock(key, "a")
    finally:
        await store.close()


async def test_guard_bounds_a_hung_server(silent_server: int, key: str) -> None:
    """A server that never answers costs one `timeout`, then the fallback answers at once."""
    store = open_store(
        _redis_config(f"redis://127.0.0.1:{silent_server}/0", timeout=Duration(0.2), retry_after=60)
    )
    try:
        started = time.monotonic()
        assert await store.claim(key, 30) == "claimed"
        first = time.monotonic() - started
        assert first < 5  # bounded by state.timeout (generously, for a busy machine)
        started = time.monotonic()
        for i in range(20):
            assert await store.once(f"{key}:{i}", 30) is True
        assert time.monotonic() - started < first + 1  # no further timeouts while down
    finally:
        await store.close()


def test_state_config() -> None:
    """`state:` parses with its defaults; redis needs a redis URL; secrets stay out of errors."""
    base = "sources: {w: {provider: w3block, secret: abcdefgh}}\n"
    assert parse_config(base).state == StateConfig()
    config = parse_config(
        base + "state: {backend: redis, url: 'redis://:pw-123@127.0.0.1:1/0', timeout: 100ms}\n"
    )
    assert config.state.backend == "redis"
    assert config.state.timeout == pytest.approx(0.1)
    assert "pw-123" not in repr(config.state)
    for bad, where in (
        ("state: {backend: redis}", "state: `url` is required"),
        ("state: {backend: redis, url: 'http://x/'}", "state.url: expected a redis://"),
        ("state: {backend: etcd}", "state.backend"),
        ("state: {timeout: 0ms}", "state.timeout: must be positive"),
        ("state: {on_unavailable: ignore}", "state.on_unavailable"),
        ("state: {max_nonces: 0}", "state.max_nonces"),
        ("state: {bakend: redis}", "unknown key `bakend`"),
    ):
        with pytest.raises(ConfigError) as raised:
            parse_config(base + bad + "\n")
        assert where in str(raised.value), (bad, str(raised.value))


def test_per_process_warning() -> None:
    """The warning names the processes and replicas, and only for the memory backend."""
    memory = StateConfig()
    assert per_process_warning(memory, 1, 1) is None
    assert "2 worker processes" in (per_process_warning(memory, 2) or "")
    assert "3 replicas" in (per_process_warning(memory, 1, 3) or "")
    assert per_process_warning(_redis_config("redis://127.0.0.1:1/0"), 4, 3) is None


async def test_memory_nonces_are_bounded_evicting_the_soonest_to_expire() -> None:
    """Past `max_nonces` the nonce that would expire first is forgotten; newer ones still block."""
    store = MemoryStore(max_nonces=2)
    assert await store.once("a", 10)
    assert await store.once("b", 20)
    assert await store.once("c", 30)
    assert await store.once("c", 30) is False
    assert await store.once("b", 30) is False
    assert await store.once("a", 30) is True  # evicted: the bound holds memory, not promises
