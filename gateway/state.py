"""State the fleet shares: dedupe claims, replay nonces, rate limits and locks (SPEC §9).

One small interface, `Store`, with two backends:

- `memory`: this process only (the compact `SeenIds` table, a bounded nonce table, GCRA
  buckets and locks in dicts). Exact for one process; per process with several.
- `redis`: any Redis-protocol server. Every operation is one round trip (a single
  command, or a Lua script where it must read and write atomically).

`open_store(config)` wraps the `redis` backend in `Guarded`: every operation is bounded by
`state.timeout`, and while the server is unreachable the store either falls back to this
process's memory (`on_unavailable: local`) or raises `Unavailable` (`reject`: a 503 with
`Retry-After`). Either way the fallback is counted (`gateway_state_fallback_total`) and
logged once per transition (unavailable, recovered).

Keys are passed in whole: callers put `state.key_prefix` in front of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import msgspec
import structlog

from gateway import metrics
from gateway.deadline import deadline
from gateway.dedupe import seen_ids
from gateway.errors import Unavailable
from gateway.secrets import Secret
from gateway.types import Duration

ClaimResult = Literal["claimed", "seen", "pending"]
"""claimed: the caller owns the key now; seen: confirmed before; pending: another copy holds it."""

log = structlog.get_logger("gateway.state")
T = TypeVar("T")


class StateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`state:` where dedupe claims, nonces, rate limits and locks live (SPEC §9)."""

    backend: Literal["memory", "redis"] = "memory"
    url: Secret | None = None  # redis:// or rediss://; may carry the password
    password: Secret | None = None  # instead of one in the URL, e.g. ${file:/etc/redis/password}
    key_prefix: str = "gw:"
    timeout: Duration = Duration(0.25)
    on_unavailable: Literal["local", "reject"] = "local"
    retry_after: Duration = Duration(1)  # while unreachable, how long before the next try
    max_nonces: Annotated[int, msgspec.Meta(gt=0)] = 100_000  # the memory nonce table's bound


class Store(Protocol):
    """The operations every state backend provides (shared between all callers)."""

    name: str  # "memory" | "redis"

    async def claim(self, key: str, ttl: float) -> ClaimResult:
        """Take `key` for `ttl` seconds unless it is confirmed or claimed by another copy."""
        ...

    async def confirm(self, key: str, ttl: float) -> None:
        """Remember `key` as seen for `ttl` seconds (it replaces the claim)."""
        ...

    async def release(self, key: str) -> None:
        """Forget this copy's claim on `key` (its hand-off failed)."""
        ...

    async def once(self, key: str, ttl: float) -> bool:
        """True the first time `key` is seen within `ttl` seconds, False after."""
        ...

    async def acquire_rate(self, key: str, rate: float, burst: int) -> float:
        """GCRA: 0.0 if one unit is allowed now (and consumed), else seconds to wait."""
        ...

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """Take `key` for `owner` for `ttl` seconds unless someone holds it (SET NX PX)."""
        ...

    async def unlock(self, key: str, owner: str) -> None:
        """Let go of `key` if `owner` still holds it."""
        ...

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Keep `value` under `key` for `ttl` seconds (replacing what was there)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, or None if there is none (or it expired)."""
        ...

    async def delete(self, key: str) -> None:
        """Forget `key`."""
        ...

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


# ---------------------------------------------------------------------------------------------
# memory


class _Expiring:
    """Keys with an expiry time, bounded: over `max_size` the soonest to expire go first."""

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def live(self, key: str, now: float) -> bool:
        """Whether `key` is held and has not expired at `now`."""
        self._expire(now)
        return key in self._expiry

    def add(self, key: str, expires: float) -> None:
        """Hold `key` until `expires`."""
        self._expiry[key] = expires
        heapq.heappush(self._heap, (expires, key))
        # Over the bound, forgetting the soonest to expire beats refusing requests.
        while len(self._expiry) > self._max_size:
            self._drop()
        if len(self._heap) > 2 * self._max_size + 64:  # superseded entries: rebuild
            self._heap = [(e, k) for k, e in self._expiry.items()]
            heapq.heapify(self._heap)

    def discard(self, key: str) -> None:
        """Forget `key` (its heap entry goes when it surfaces)."""
        self._expiry.pop(key, None)

    def _expire(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            self._drop()

    def _drop(self) -> None:
        expires, key = heapq.heappop(self._heap)
        if self._expiry.get(key) == expires:
            del self._expiry[key]


class MemoryStore:
    """The store of one process: exact alone, per process in a fleet (SPEC §9).

    Confirmed keys live in `SeenIds` (about 64 bytes each, bounded by `max_entries`),
    created with the dedupe window: a key confirmed with that `ttl` expires exactly, one
    with another `ttl` is stamped so that it expires `ttl` after its confirmation (the
    table expires oldest-first, so a much shorter ttl may live until older keys go).
    """

    name = "memory"

    def __init__(
        self,
        window: float = 86_400.0,
        max_entries: int = 1_000_000,
        max_nonces: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._clock = clock
        self._seen = seen_ids(window, max_entries)
        self._claims = _Expiring(max_entries)
        self._nonces = _Expiring(max_nonces)
        self._locks: dict[str, tuple[str, float]] = {}
        self._buckets: dict[str, float] = {}  # key -> theoretical arrival time (GCRA)
        self._values: dict[str, tuple[bytes, float]] = {}  # key -> (value, expiry)

    async def claim(self, key: str, ttl: float) -> ClaimResult:
        """See `Store.claim`."""
        return self.claim_now(key, ttl)

    async def confirm(self, key: str, ttl: float) -> None:
        """See `Store.confirm`."""
        self.confirm_now(key, ttl)

    # The same two operations without a coroutine each: this store never waits, so the
    # pipeline may call them directly (fast path `memstore`, gateway/fastpaths.py).

    def claim_now(self, key: str, ttl: float) -> ClaimResult:
        """`claim`, synchronously."""
        now = self._clock()
        if self._seen.seen(key, now):
            return "seen"
        if self._claims.live(key, now):
            return "pending"
        self._claims.add(key, now + ttl)
        return "claimed"

    def confirm_now(self, key: str, ttl: float) -> None:
        """`confirm`, synchronously."""
        now = self._clock()
        self._claims.discard(key)
        self._seen.remember(key, now + ttl - self._window)

    async def release(self, key: str) -> None:
        """See `Store.release`."""
        self._claims.discard(key)

    async def once(self, key: str, ttl: float) -> bool:
        """See `Store.once`."""
        now = self._clock()
        if self._nonces.live(key, now):
            return False
        self._nonces.add(key, now + ttl)
        return True

    async def acquire_rate(self, key: str, rate: float, burst: int) -> float:
        """See `Store.acquire_rate`."""
        now = self._clock()
        interval = 1.0 / rate
        tat = max(self._buckets.get(key, now), now)
        wait = tat + interval - max(burst, 1) * interval - now
        if wait > 1e-9:
            return wait
        self._buckets[key] = tat + interval
        if len(self._buckets) > 10_000:  # drop buckets that are full again
            self._buckets = {k: t for k, t in self._buckets.items() if t > now}
        return 0.0

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """See `Store.lock`."""
        now = self._clock()
        held = self._locks.get(key)
        if held is not None and held[1] > now:
            return False
        self._locks[key] = (owner, now + ttl)
        if len(self._locks) > 10_000:
            self._locks = {k: v for k, v in self._locks.items() if v[1] > now}
        return True

    async def unlock(self, key: str, owner: str) -> None:
        """See `Store.unlock`."""
        held = self._locks.get(key)
        if held is not None and held[0] == owner:
            del self._locks[key]

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """See `Store.put`."""
        now = self._clock()
        self._values[key] = (value, now + ttl)
        if len(self._values) > 10_000:
            self._values = {k: v for k, v in self._values.items() if v[1] > now}

    async def get(self, key: str) -> bytes | None:
        """See `Store.get`."""
        held = self._values.get(key)
        if held is None or held[1] <= self._clock():
            return None
        return held[0]

    async def delete(self, key: str) -> None:
        """See `Store.delete`."""
        self._values.pop(key, None)

    async def close(self) -> None:
        """Nothing to release."""


# ---------------------------------------------------------------------------------------------
# redis

# A claim's value names the process that took it, so that `release` only ever removes the
# caller's own claim (never a later copy's after this one's expired). "s" marks confirmed.
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 0
end
if v == 's' then return 1 end
return 2
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_UNLOCK = _RELEASE
# GCRA on the server's clock, in microseconds: one bucket for the whole fleet. Answers the
# wait in microseconds (0: allowed, one unit consumed); a refusal writes nothing.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat + interval - burst * interval - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil((tat + interval - now) / 1000) + 1)
return 0
"""
_CLAIM_RESULTS: tuple[ClaimResult, ...] = ("claimed", "seen", "pending")


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class _Script:
    """A Lua script run by its SHA-1 (EVALSHA), loaded with EVAL the first time a server lacks it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


_CLAIM_SCRIPT, _RELEASE_SCRIPT, _GCRA_SCRIPT = _Script(_CLAIM), _Script(_RELEASE), _Script(_GCRA)
_UNLOCK_SCRIPT = _RELEASE_SCRIPT

Execute = Callable[..., Awaitable[Any]]
DEFAULT_CLIENT: Literal["resp", "redis-py"] = "resp"  # see gateway/resp.py for why


class RedisStore:
    """The fleet's store on a Redis-protocol server; every operation is one round trip.

    `execute(*args)` sends one command: `gateway.resp.Client` (the default) or redis-py's
    `execute_command` (`client="redis-py"`); both pass the same contract tests.
    """

    name = "redis"

    def __init__(self, execute: Execute, close: Callable[[], Awaitable[None]]) -> None:
        self._execute = execute
        self._close = close
        self._token = "p:" + secrets.token_hex(8)  # this process's claims

    @classmethod
    def from_config(
        cls, config: StateConfig, client: Literal["resp", "redis-py"] | None = None
    ) -> RedisStore:
        """A store on `config.url`: bounded connect timeout, no hidden retries."""
        if config.url is None:
            raise ValueError("state.url is required with `backend: redis`")
        password = config.password.reveal() if config.password is not None else None
        if (client or DEFAULT_CLIENT) == "resp":
            from gateway.resp import Client

            fast = Client(config.url.reveal(), password, timeout=float(config.timeout))
            return cls(fast.execute, fast.aclose)
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        library = Redis.from_url(
            config.url.reveal(),
            password=password,
            socket_timeout=float(config.timeout),
            socket_connect_timeout=float(config.timeout),
            retry=Retry(NoBackoff(), 0),  # the guard decides what happens on failure
        )
        return cls(library.execute_command, library.aclose)

    async def _script(self, script: _Script, key: str, *args: str | int) -> Any:
        try:
            return await self._execute("EVALSHA", script.sha, 1, key, *args)
        except Exception as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self._execute("EVAL", script.text, 1, key, *args)

    async def claim(self, key: str, ttl: float) -> ClaimResult:
        """See `Store.claim`."""
        code = await self._script(_CLAIM_SCRIPT, key, self._token, _ms(ttl))
        return _CLAIM_RESULTS[int(code)]

    async def confirm(self, key: str, ttl: float) -> None:
        """See `Store.confirm`."""
        await self._execute("SET", key, "s", "PX", _ms(ttl))

    async def release(self, key: str) -> None:
        """See `Store.release`."""
        await self._script(_RELEASE_SCRIPT, key, self._token)

    async def once(self, key: str, ttl: float) -> bool:
        """See `Store.once`."""
        return bool(await self._execute("SET", key, "1", "PX", _ms(ttl), "NX"))

    async def acquire_rate(self, key: str, rate: float, burst: int) -> float:
        """See `Store.acquire_rate`."""
        interval = max(1, round(1_000_000 / rate))
        wait = await self._script(_GCRA_SCRIPT, key, interval, max(burst, 1))
        return int(wait) / 1_000_000

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """See `Store.lock`."""
        return bool(await self._execute("SET", key, owner, "PX", _ms(ttl), "NX"))

    async def unlock(self, key: str, owner: str) -> None:
        """See `Store.unlock`."""
        await self._script(_UNLOCK_SCRIPT, key, owner)

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """See `Store.put`."""
        await self._execute("SET", key, value, "PX", _ms(ttl))

    async def get(self, key: str) -> bytes | None:
        """See `Store.get`."""
        value = await self._execute("GET", key)
        return None if value is None else bytes(value)

    async def delete(self, key: str) -> None:
        """See `Store.delete`."""
        await self._execute("DEL", key)

    async def close(self) -> None:
        """Close the connection(s)."""
        await self._close()


# ---------------------------------------------------------------------------------------------
# the guard: timeouts and fallback


def _store_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    from gateway.resp import ReplyError

    return (TimeoutError, OSError, RedisError, ReplyError)


class Guarded:
    """A shared store whose outages never stall or fail a request unannounced.

    Each operation gets `timeout` seconds. A failure marks the store unavailable for
    `retry_after` seconds, during which operations skip it and go straight to the
    fallback (no request pays the timeout twice in a row); the first success after that
    marks it recovered. `local` falls back to `fallback` (this process's memory);
    `reject` raises `Unavailable` for the operations that decide something (claim, once,
    acquire_rate, lock) and drops the ones that only tidy up (confirm, release, unlock).
    """

    def __init__(
        self,
        primary: Store,
        fallback: MemoryStore,
        timeout: float,
        on_unavailable: Literal["local", "reject"],
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = primary.name
        self.primary = primary
        self.fallback = fallback
        self._timeout = timeout
        self._reject = on_unavailable == "reject"
        self._retry_after = retry_after
        self._clock = clock
        self._down_until: float | None = None  # None: available
        self._errors = _store_errors()

    @property
    def available(self) -> bool:
        """False while the last operation on the shared store failed."""
        return self._down_until is None

    async def _run(
        self,
        operation: str,
        call: Callable[[Store], Awaitable[T]],
        decides: bool,
    ) -> T | None:
        if self._down_until is None or self._clock() >= self._down_until:
            try:
                async with deadline(self._timeout):
                    result = await call(self.primary)
            except self._errors as exc:
                self._mark_down(operation, exc)
            else:
                if self._down_until is not None:
                    self._down_until = None
                    log.warning("state_store_recovered", backend=self.name)
                return result
        metrics.STATE_FALLBACK.labels(operation).inc()
        if not self._reject:
            return await call(self.fallback)
        if decides:
            raise Unavailable(
                "the shared state store is unavailable", retry_after=max(1, int(self._retry_after))
            )
        return None

    def _mark_down(self, operation: str, exc: BaseException) -> None:
        first = self._down_until is None
        self._down_until = self._clock() + self._retry_after
        if first:
            log.warning(
                "state_store_unavailable",
                backend=self.name,
                operation=operation,
                error=type(exc).__name__,
                fallback="reject" if self._reject else "local",
            )

    async def claim(self, key: str, ttl: float) -> ClaimResult:
        """See `Store.claim`."""
        result = await self._run("claim", lambda s: s.claim(key, ttl), decides=True)
        assert result is not None
        return result

    async def confirm(self, key: str, ttl: float) -> None:
        """See `Store.confirm`."""
        await self._run("confirm", lambda s: s.confirm(key, ttl), decides=False)

    async def release(self, key: str) -> None:
        """See `Store.release`."""
        await self._run("release", lambda s: s.release(key), decides=False)

    async def once(self, key: str, ttl: float) -> bool:
        """See `Store.once`."""
        result = await self._run("once", lambda s: s.once(key, ttl), decides=True)
        assert result is not None
        return result

    async def acquire_rate(self, key: str, rate: float, burst: int) -> float:
        """See `Store.acquire_rate`."""
        result = await self._run(
            "acquire_rate", lambda s: s.acquire_rate(key, rate, burst), decides=True
        )
        assert result is not None
        return result

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """See `Store.lock`."""
        result = await self._run("lock", lambda s: s.lock(key, owner, ttl), decides=True)
        assert result is not None
        return result

    async def unlock(self, key: str, owner: str) -> None:
        """See `Store.unlock`."""
        await self._run("unlock", lambda s: s.unlock(key, owner), decides=False)

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """See `Store.put`."""
        await self._run("put", lambda s: s.put(key, value, ttl), decides=False)

    async def get(self, key: str) -> bytes | None:
        """See `Store.get` (None too when the store is unavailable and `reject` is set)."""
        return await self._run("get", lambda s: s.get(key), decides=False)

    async def delete(self, key: str) -> None:
        """See `Store.delete`."""
        await self._run("delete", lambda s: s.delete(key), decides=False)

    async def close(self) -> None:
        """Close the shared store's connections."""
        try:
            async with asyncio.timeout(self._timeout):
                await self.primary.close()
        except self._errors:
            pass


def open_store(
    config: StateConfig,
    *,
    window: float = 86_400.0,
    max_entries: int = 1_000_000,
) -> Store:
    """The configured store; `window`/`max_entries` size the memory table (dedupe settings)."""
    memory = MemoryStore(window, max_entries, config.max_nonces)
    if config.backend == "memory":
        return memory
    return Guarded(
        RedisStore.from_config(config),
        memory,
        float(config.timeout),
        config.on_unavailable,
        float(config.retry_after),
    )


def store_for(config: Any) -> Store:
    """The store of a whole gateway `Config` (its `state:` and dedupe settings)."""
    return open_store(
        config.state,
        window=float(config.server.dedupe_window),
        max_entries=config.server.dedupe_max_entries,
    )


def describe(config: StateConfig) -> dict[str, str]:
    """A secret-free description of the store for logs and `gateway check`."""
    out: dict[str, str] = {"backend": config.backend}
    if config.backend == "memory":
        out["scope"] = "this process only"
        return out
    if config.url is not None:
        url = urlsplit(config.url.reveal())
        host = url.hostname or url.path
        out["server"] = f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")
    out["key_prefix"] = config.key_prefix
    out["timeout"] = f"{float(config.timeout):g}s"
    out["on_unavailable"] = config.on_unavailable
    return out


def per_process_warning(config: StateConfig, workers: int, replicas: int = 1) -> str | None:
    """What to tell an operator whose state is per process although they run several."""
    if config.backend != "memory" or (workers <= 1 and replicas <= 1):
        return None
    processes = f"{workers} worker processes" if workers > 1 else ""
    pods = f"{replicas} replicas" if replicas > 1 else ""
    running = " x ".join(p for p in (pods, processes) if p)
    return (
        f"state.backend is memory but the gateway runs as {running}: dedupe and replay "
        "protection are per process (a retry or a replayed request that reaches another "
        "process is forwarded again); set `state.backend: redis` to share them"
    )
