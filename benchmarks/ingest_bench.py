"""Ingest benchmark: the gateway under wrk against a bare Litestar app, same run, same server.

    .venv/bin/python benchmarks/ingest_bench.py           # 3 runs of 10 s + memory (~6 min)
    .venv/bin/python benchmarks/ingest_bench.py --quick   # one short run, small memory phase
    .venv/bin/python benchmarks/ingest_bench.py --state-only [--quick]
    .venv/bin/python benchmarks/ingest_bench.py --tree /tmp/old [--quick] [--runs N]
        # also serve another checkout of the gateway (e.g. `git worktree add /tmp/old REV`)
        # in every run, after this tree, with PYTHONPATH pointing at it: old vs new, same run
    .venv/bin/python benchmarks/ingest_bench.py --fast-paths [--quick] [--runs N]
        # what each fast path (gateway/fastpaths.py) buys: per round the baseline, the
        # gateway, then the gateway with each fast path alone switched off (GATEWAY_SLOW)
        # only the state store comparison: Whitepay with state.backend memory vs redis
        # (gateway/resp.py, redis-py with and without hiredis), same run (~3.5 min; ~45 s)

What it does, all on 127.0.0.1:
- builds (once, cached in benchmarks/.corpus/) corpora of complete pre-signed requests,
  ~1 KB bodies with distinct order ids so dedupe never short-circuits: Whitepay (HMAC-SHA256)
  and VelaFi (SHA256withRSA, 2048-bit key);
- starts a real broker (tansu, memory storage) and pins it, and wrk, to one core;
- per run: serves the baseline (benchmarks/baseline_app.py: bare Litestar, one POST route
  that reads the body) and then the gateway (`gateway serve`, one worker process, one Kafka
  destination, acks=all) on the other core, each warmed up and then measured with
  `wrk -t1 -c64` cycling through the corpus (benchmarks/wrk/corpus.lua);
- memory: a fresh gateway takes Whitepay events until it has accepted 100k and then 200k
  (counted from its own /metrics); RSS is read from /proc at both points;
- prints medians over the runs (req/s, p50, p99, errors = non-2xx + socket errors, and the
  gateway/baseline ratio of each run's figures) and writes benchmarks/results/ingest.json.
  It also prints each server's CPU time per request and their ratio (baseline/gateway):
  on a shared machine a busy neighbour lowers req/s, but hardly what a request costs.
  Where `perf` can count instructions (Debian `linux-perf`), it prints the instructions
  per request and their ratio too: the steadiest figure of all on a shared machine.

State store (`--state`, on by default; `--state-only` runs just this): a redis-server
(Debian's package, no persistence) pinned with the broker; per round, the gateway with
`state.backend: memory`, then `redis` with the default client (gateway/resp.py), then with
redis-py (hiredis parser) and with redis-py's pure-Python parser; Redis is flushed between gateways so that no run sees the
previous one's ids. Ratios are redis / memory of the same round.

It installs nothing: wrk comes from the Debian package (`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import multiprocessing
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.broker import Broker, free_port, tansu_binary  # noqa: E402
from gateway.fastpaths import NAMES as FAST_PATHS  # noqa: E402

BENCH = ROOT / "benchmarks"
CORPUS = BENCH / ".corpus"
RESULTS = BENCH / "results" / "ingest.json"
LUA = BENCH / "wrk" / "corpus.lua"
PYTHON = sys.executable
GATEWAY = str(Path(PYTHON).with_name("gateway"))
# Bump when the bodies or the request format change: cached corpora are rebuilt.
CORPUS_VERSION = 2
WHITEPAY_SECRET = "bench-whitepay-signature-token"  # noqa: S105 - a throwaway bench secret
CONNECTIONS = 64

TARGETS = {
    "whitepay_ratio": 0.5,
    "whitepay_ratio_stretch": 0.7,
    "whitepay_p99_ms": 25.0,
    "velafi_ratio": 0.4,
    "rss_mb": 150.0,
    "rss_growth_pct": 5.0,
    "state_redis_ratio": 0.85,
}


@dataclass(frozen=True)
class Plan:
    """Durations and corpus sizes of one benchmark invocation."""

    runs: int
    warmup: int
    duration: int
    corpus: int
    warm_corpus: int
    memory_events: int


# Corpora hold more requests than a run sends at ~15k req/s, so no request repeats in a run.
FULL = Plan(
    runs=3, warmup=3, duration=10, corpus=200_000, warm_corpus=50_000, memory_events=200_000
)
QUICK = Plan(runs=1, warmup=1, duration=3, corpus=60_000, warm_corpus=20_000, memory_events=20_000)


# --- corpus ---------------------------------------------------------------------------------


def whitepay_body(tag: str, i: int) -> bytes:
    """A ~1 KB Whitepay `order::completed` notification with a distinct order id."""
    order_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"whitepay/{tag}/{i}"))
    order = {
        "id": order_id,
        "currency": "USD",
        "value": f"{1000 + i % 9000}.50",
        "expected_amount": f"{1000 + i % 9000}.50",
        "status": "COMPLETE",
        "external_order_id": f"INV-{tag}-{i:09d}",
        "created_at": "2024-03-22 14:01:34",
        "completed_at": "2024-03-22 14:03:34",
        "acquiring_url": f"https://merchant.pay.whitepay.com/fiat-order/{order_id}",
        "is_internal": False,
        "received_total": f"{1000 + i % 9000}.50",
        "received_currency": "USD",
        "exchange_rate": "1.00000000000000000000",
        "description": "Subscription renewal, premium plan, 12 months, billed annually",
        "merchant": {"id": f"m-{i % 400}", "name": "Example Merchant Ltd", "country": "GB"},
        "customer": {
            "email": f"customer{i}@example.com",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0",
        },
        "metadata": {"cart": f"cart-{i}", "campaign": "spring-2024", "channel": "web"},
        "payment_details": {"method": "card", "brand": "visa", "last4": f"{i % 10000:04d}"},
    }
    return json.dumps({"order": order, "event_type": "order::completed"}).encode()


def velafi_body(tag: str, i: int) -> bytes:
    """A ~1 KB VelaFi ORDER_WEBHOOK (order completed) with a distinct order id."""
    digest = hashlib.sha256(f"velafi/{tag}/{i}".encode()).hexdigest()
    body = {
        "webhookId": digest[:32],
        "eventType": "ORDER_WEBHOOK",
        "orderId": str(int(digest[32:48], 16)),
        "clientId": f"W{i:012d}",
        "userId": str(455472 + i % 1000),
        "merchantId": 4,
        "orderType": "SELL",
        "fiat": "MXN",
        "fiatAmount": f"{99 + i % 900}",
        "fiatFee": "0",
        "crypto": "USDT",
        "cryptoAmount": "5.00",
        "orderPrice": "19.8158",
        "orderStatus": "60",
        "failCode": "",
        "failReason": "",
        "network": "TRON",
        "walletAddress": "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE",
        "txHash": hashlib.sha256(digest.encode()).hexdigest(),
        "bankAccount": {"bank": "BBVA Mexico", "clabe": "012180001234567891", "holder": "J. Doe"},
        "remark": "Off-ramp order settled to the customer's bank account via SPEI transfer",
        "customer": {"email": f"customer{i}@example.com", "country": "MX", "kycLevel": 2},
        "rate": {"pair": "USDT_MXN", "price": "19.8158", "source": "aggregated", "ttl": 30},
        "createTime": "1735279907000",
        "updateTime": "1735280582000",
    }
    return json.dumps(body).encode()


def http_request(source: str, headers: dict[str, str], body: bytes) -> bytes:
    """The exact bytes wrk sends: HTTP/1.1, keep-alive, fixed Content-Length."""
    lines = [f"POST /webhooks/{source} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _whitepay_request(tag: str, i: int) -> bytes:
    body = whitepay_body(tag, i)
    mac = hmac.new(WHITEPAY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return http_request("whitepay", {"Content-Type": "application/json", "Signature": mac}, body)


_PRIVATE_KEY: Any = None


def _load_private_key(pem: bytes) -> None:
    global _PRIVATE_KEY
    from cryptography.hazmat.primitives import serialization

    _PRIVATE_KEY = serialization.load_pem_private_key(pem, password=None)


def _velafi_request(args: tuple[str, int]) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    tag, i = args
    body = velafi_body(tag, i)
    signature = _PRIVATE_KEY.sign(body, padding.PKCS1v15(), hashes.SHA256()).hex()
    return http_request(
        "velafi", {"Content-Type": "application/json", "signature": signature}, body
    )


def rsa_key() -> tuple[bytes, bytes]:
    """The benchmark's RSA-2048 key pair (private PEM, public PEM), generated once."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private_path, public_path = CORPUS / "velafi-private.pem", CORPUS / "velafi-public.pem"
    if not private_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        public_path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return private_path.read_bytes(), public_path.read_bytes()


def corpus_file(provider: str, tag: str, count: int) -> Path:
    """A corpus file of `count` requests ("<length>\\n<bytes>" records), built if missing."""
    path = CORPUS / f"v{CORPUS_VERSION}-{provider}-{tag}-{count}.req"
    if path.exists():
        return path
    started = time.monotonic()
    if provider == "whitepay":
        requests = [_whitepay_request(tag, i) for i in range(count)]
    else:
        private_pem, _ = rsa_key()
        workers = max(1, len(os.sched_getaffinity(0)))
        with multiprocessing.Pool(workers, _load_private_key, (private_pem,)) as pool:
            requests = pool.map(_velafi_request, [(tag, i) for i in range(count)], 500)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        for request in requests:
            out.write(b"%d\n" % len(request))
            out.write(request)
    partial.rename(path)
    body = requests[0].split(b"\r\n\r\n", 1)[1]
    print(
        f"  built {path.name}: {count} requests, {len(body)}-byte bodies, "
        f"{time.monotonic() - started:.1f}s",
        flush=True,
    )
    return path


def check_corpus_verifies(public_pem: bytes) -> None:
    """Fail early if a corpus request would not pass the gateway's own verifiers."""
    from gateway.providers import velafi, whitepay
    from gateway.types import Secrets

    for provider, module, settings in (
        ("whitepay", whitepay, whitepay.Settings(secret=Secrets.parse(WHITEPAY_SECRET))),
        ("velafi", velafi, velafi.Settings(public_key=Secrets.parse(public_pem.decode()))),
    ):
        raw = CORPUS.glob(f"v{CORPUS_VERSION}-{provider}-run-*.req")
        data = next(iter(sorted(raw))).read_bytes()
        request = data[data.index(b"\n") + 1 :]
        head, body = request.split(b"\r\n\r\n", 1)
        head_lines = head.decode().split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head_lines)}
        body = body[: int(headers["content-length"])]
        verifier = module.build_verifier(settings)
        content = verifier.verify(body, headers, time.time())
        module.normalize(module.decode(content), "bench", datetime.now(UTC))


# --- processes ------------------------------------------------------------------------------


def cores() -> tuple[int | None, int | None]:
    """(server core, load core): the first two CPUs this process may use, or no pinning."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or shutil.which("taskset") is None:
        return None, None
    return allowed[0], allowed[1]


def pinned(command: list[str], core: int | None) -> list[str]:
    """`command` under `taskset -c core` (unchanged when not pinning)."""
    return command if core is None else ["taskset", "-c", str(core), *command]


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET (status 0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


@contextlib.contextmanager
def server(
    command: list[str], port: int, ready_path: str, log: Path, *, any_answer: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """Run an HTTP server process until the block ends.

    Ready when `ready_path` answers 200 (with `any_answer`, when it answers at all).
    """
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while (status := get(f"http://127.0.0.1:{port}{ready_path}", 1.0)[0]) != 200:
            if any_answer and status:
                break
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} not ready within 60s; see {log}")
            time.sleep(0.2)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wrk(port: int, corpus: Path, seconds: int, *, interrupt: Any = None) -> dict[str, Any]:
    """One wrk run (one thread, 64 connections) over the corpus; its WRK_JSON figures.

    `interrupt`, when given, is polled every half second and ends the run early when true.
    """
    command = [
        "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "2s",
        "-s", str(LUA), f"http://127.0.0.1:{port}", "--", str(corpus),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if interrupt is not None:
        while process.poll() is None:
            time.sleep(0.5)
            if interrupt():
                process.send_signal(signal.SIGINT)  # wrk stops and still prints its summary
                break
    output = process.communicate(timeout=seconds + 60)[0].decode(errors="replace")
    line = next((x for x in output.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    figures: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    seconds_run = figures["duration_us"] / 1e6
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "requests": figures["requests"],
        "rps": round(figures["requests"] / seconds_run, 1),
        "p50_ms": figures["p50_us"] / 1000,
        "p90_ms": figures["p90_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "max_ms": figures["max_us"] / 1000,
        "errors": errors,
        "non_2xx": figures["status"],
        "socket_errors": errors - figures["status"],
    }


_COUNTER = re.compile(
    r'^gateway_webhooks_received_total\{outcome="([^"]+)",source="([^"]+)"\} ([0-9.e+]+)$', re.M
)


def outcomes(port: int) -> dict[tuple[str, str], int]:
    """(source, outcome) -> count, from the gateway's /metrics."""
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return {(s, o): int(float(n)) for o, s, n in _COUNTER.findall(body.decode())}


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (granian serves from a child process)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            pids += _tree(int(child))
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its descendants have used so far."""
    total = 0
    for each in _tree(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def perf_available() -> bool:
    """Whether `perf stat` can count instructions here (not on every VM or container)."""
    if shutil.which("perf") is None:
        return False
    probe = subprocess.run(
        ["perf", "stat", "-x,", "-e", "instructions", "true"], capture_output=True, text=True
    )
    return probe.returncode == 0 and "not supported" not in probe.stderr


@contextlib.contextmanager
def instructions(pids: list[int]) -> Iterator[dict[str, int]]:
    """Instructions the processes execute in the block (`perf stat`), as `{"count": n}`.

    An instruction count does not change with a busy neighbour or a slower CPU the way
    time does: the steadiest of the per-request figures on a shared machine.
    """
    result: dict[str, int] = {}
    command = ["perf", "stat", "-x,", "-e", "instructions", "-p", ",".join(map(str, pids))]
    perf = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)  # perf attaches before the clock starts
    try:
        yield result
    finally:
        perf.send_signal(signal.SIGINT)
        report = perf.communicate(timeout=30)[1]
        for line in report.splitlines():
            value = line.split(",", 1)[0]
            if ",instructions" in line and value.isdigit():
                result["count"] = int(value)


PERF = perf_available()


def measured(pid: int, port: int, corpus: Path, seconds: int) -> dict[str, Any]:
    """A wrk run plus the server's CPU time (and instructions) per request.

    Both are robust to a noisy neighbour in a way requests/s is not.
    """
    counter = instructions(_tree(pid)) if PERF else contextlib.nullcontext({})
    with counter as counted:
        before = cpu_seconds(pid)
        figures = wrk(port, corpus, seconds)
        used = cpu_seconds(pid) - before
    requests = max(figures["requests"], 1)
    figures["cpu_us_per_request"] = round(used / requests * 1e6, 1)
    figures["cpu_share"] = round(used / seconds, 2)
    if "count" in counted:
        figures["kinsn_per_request"] = round(counted["count"] / requests / 1000, 1)
    return figures


def rss_mb(pid: int) -> float:
    """Resident set size of the process that serves (the deepest descendant), in MB."""
    serving = _tree(pid)[-1]
    for line in Path(f"/proc/{serving}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {serving}")


def write_config(directory: Path, bootstrap: str, public_pem: bytes) -> Path:
    """The gateway config: Whitepay and VelaFi sources, one Kafka destination, acks=all."""
    (directory / "velafi.pem").write_bytes(public_pem)
    path = directory / "gateway.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        server:
          log_format: json
        kafka:
          bootstrap_servers: {bootstrap}
          acks: all
          enable_idempotence: false   # tansu has no idempotent producer
          create_topics: true
        sources:
          whitepay: {{provider: whitepay, secret: {WHITEPAY_SECRET}}}
          velafi: {{provider: velafi, public_key: "${{file:velafi.pem}}"}}
        destinations:
          orders:
            kafka: {{topic: payments.orders}}
        routes:
          - name: all-orders
            match: {{type: "order.*"}}
            to: [orders]
        """)
    )
    return path


# --- phases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """Everything the phases share."""

    plan: Plan
    config: Path
    workdir: Path
    server_core: int | None
    corpora: dict[str, Path]
    asgi_server: str = "uvicorn"
    redis_client: str = "resp"  # "resp" (gateway/resp.py) | "redis-py" | "redis-py-pure"
    tree: Path | None = None  # another checkout served after this one in every run (--tree)

    def gateway(
        self, port: int, log: Path, slow: str = "", tree: Path | None = None
    ) -> contextlib.AbstractContextManager[Any]:
        """`gateway serve` with one worker process, pinned to the server core.

        `slow`: the fast paths to switch off (GATEWAY_SLOW, gateway/fastpaths.py).
        `tree`: serve that checkout's `gateway` package instead (PYTHONPATH, same venv).
        """
        os.environ["GATEWAY_SLOW"] = slow  # inherited by the server process
        if tree is not None:
            os.environ["PYTHONPATH"] = str(tree)
        else:
            os.environ.pop("PYTHONPATH", None)
        if self.redis_client != "resp":
            # One worker: uvicorn serves in this very process, so the patches hold.
            serve = ["serve", "--config", str(self.config), "--host", "127.0.0.1"]
            serve += ["--port", str(port), "--workers", "1"]
            patches = "import gateway.state as s; s.DEFAULT_CLIENT = 'redis-py'; "
            if self.redis_client == "redis-py-pure":  # redis-py without hiredis
                patches += (
                    "import redis.asyncio.connection as c; c.DefaultParser = c._AsyncRESP2Parser; "
                )
            code = (
                f"import sys; {patches}from gateway.cli import main; sys.exit(main(sys.argv[1:]))"
            )
            command = [PYTHON, "-c", code, *serve]
        elif self.asgi_server == "granian":
            os.environ["GATEWAY_CONFIG"] = str(self.config)
            command = granian("gateway.cli:app_factory", port, factory=True)
        else:
            command = [GATEWAY, "serve", "--config", str(self.config), "--host", "127.0.0.1"]
            command += ["--port", str(port), "--workers", "1"]
        return server(pinned(command, self.server_core), port, "/readyz", log)

    def baseline(self, port: int, log: Path) -> contextlib.AbstractContextManager[Any]:
        """The bare Litestar app, pinned to the server core."""
        if self.asgi_server == "granian":
            command = granian("benchmarks.baseline_app:app", port)
        else:
            command = [PYTHON, str(BENCH / "baseline_app.py"), "--port", str(port)]
        return server(pinned(command, self.server_core), port, "/", log, any_answer=True)


def granian(target: str, port: int, *, factory: bool = False) -> list[str]:
    """Granian serving `target` like uvicorn does here: one worker, uvloop, HTTP/1.1 only."""
    command = [str(Path(PYTHON).with_name("granian")), "--interface", "asgi", "--loop", "uvloop"]
    command += ["--http", "1", "--no-ws", "--workers", "1", "--runtime-mode", "st"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return [*command, *(["--factory"] if factory else []), target]


def run_once(setup: Setup, index: int) -> dict[str, Any]:
    """One run: baseline, then the gateway with Whitepay and VelaFi."""
    plan, corpora = setup.plan, setup.corpora
    result: dict[str, Any] = {}
    port = free_port()
    with setup.baseline(port, setup.workdir / "baseline.log") as process:
        wrk(port, corpora["whitepay-warm"], plan.warmup)
        result["baseline"] = measured(process.pid, port, corpora["whitepay-run"], plan.duration)
    port = free_port()
    with setup.gateway(port, setup.workdir / f"gateway-run{index}.log") as process:
        for provider in ("whitepay", "velafi"):
            wrk(port, corpora[f"{provider}-warm"], plan.warmup)
            before = outcomes(port)
            figures = measured(process.pid, port, corpora[f"{provider}-run"], plan.duration)
            after = outcomes(port)
            for outcome in ("accepted", "duplicate"):
                key = (provider, outcome)
                figures[outcome] = after.get(key, 0) - before.get(key, 0)
            result[provider] = figures
        result["gateway_rss_mb"] = round(rss_mb(process.pid), 1)
    providers = ["whitepay", "velafi"]
    if setup.tree is not None:
        port = free_port()
        log = setup.workdir / f"gateway-tree-run{index}.log"
        with setup.gateway(port, log, tree=setup.tree) as process:
            for provider in ("whitepay", "velafi"):
                wrk(port, corpora[f"{provider}-warm"], plan.warmup)
                before = outcomes(port)
                figures = measured(process.pid, port, corpora[f"{provider}-run"], plan.duration)
                after = outcomes(port)
                for outcome in ("accepted", "duplicate"):
                    key = (provider, outcome)
                    figures[outcome] = after.get(key, 0) - before.get(key, 0)
                result[f"tree_{provider}"] = figures
                providers.append(f"tree_{provider}")
        os.environ.pop("PYTHONPATH", None)
    base = result["baseline"]
    for provider in providers:
        row = result[provider]
        row["ratio"] = round(row["rps"] / base["rps"], 3)
        row["cpu_ratio"] = round(base["cpu_us_per_request"] / row["cpu_us_per_request"], 3)
        if "kinsn_per_request" in row and "kinsn_per_request" in base:
            row["insn_ratio"] = round(base["kinsn_per_request"] / row["kinsn_per_request"], 3)
    return result


def fast_path_round(setup: Setup, index: int) -> dict[str, Any]:
    """One round: baseline, the gateway, then the gateway with each fast path off (Whitepay)."""
    plan, corpora = setup.plan, setup.corpora
    result: dict[str, Any] = {}
    port = free_port()
    with setup.baseline(port, setup.workdir / "baseline.log") as process:
        wrk(port, corpora["whitepay-warm"], plan.warmup)
        result["baseline"] = measured(process.pid, port, corpora["whitepay-run"], plan.duration)
    for slow in ("", *sorted(FAST_PATHS)):
        port = free_port()
        log = setup.workdir / f"gateway-fast{index}-{slow or 'all'}.log"
        with setup.gateway(port, log, slow=slow) as process:
            wrk(port, corpora["whitepay-warm"], plan.warmup)
            result[f"no {slow}" if slow else "gateway"] = measured(
                process.pid, port, corpora["whitepay-run"], plan.duration
            )
    base, gateway = result["baseline"], result["gateway"]
    for name, row in result.items():
        if name == "baseline":
            continue
        row["ratio"] = round(row["rps"] / base["rps"], 3)
        row["cpu_ratio"] = round(base["cpu_us_per_request"] / row["cpu_us_per_request"], 3)
        # What switching this fast path off costs: its CPU (instructions) per request
        # over the gateway's with every fast path on, same round.
        row["cpu_cost"] = round(row["cpu_us_per_request"] / gateway["cpu_us_per_request"], 3)
        if "kinsn_per_request" in row and "kinsn_per_request" in base:
            row["insn_ratio"] = round(base["kinsn_per_request"] / row["kinsn_per_request"], 3)
            row["insn_cost"] = round(row["kinsn_per_request"] / gateway["kinsn_per_request"], 3)
    return result


def print_fast_path_table(rounds: list[dict[str, Any]]) -> None:
    """Medians over the rounds: each variant's figures and its cost against the gateway."""
    columns = ("rps", "cpu_us_per_request", "kinsn_per_request", "ratio", "cpu_ratio",
               "insn_ratio", "cpu_cost", "insn_cost")  # fmt: skip
    print(f"\nfast paths (Whitepay HMAC, median of {len(rounds)} round(s)):")
    print(f"{'variant':<16}" + "".join(f"{c:>20}" for c in columns))
    for name in rounds[0]:
        cells = []
        for column in columns:
            values = [r[name][column] for r in rounds if column in r[name]]
            cells.append(f"{statistics.median(values):>20.3f}" if values else f"{'-':>20}")
        print(f"{name:<16}" + "".join(cells))
    print(
        "ratio/cpu_ratio/insn_ratio: baseline over variant (>= 0.5 is the floor); "
        "cpu_cost/insn_cost: variant over the gateway with every fast path on"
    )


def memory(setup: Setup) -> dict[str, Any]:
    """RSS of a fresh gateway after 100k and 200k accepted events (or the quick plan's)."""
    total = setup.plan.memory_events
    marks = [total // 2, total]
    port = free_port()
    samples: dict[int, float] = {}
    accepted_at: dict[int, int] = {}
    with setup.gateway(port, setup.workdir / "gateway-memory.log") as process:
        start_rss = rss_mb(process.pid)

        def reached() -> bool:
            accepted = outcomes(port).get(("whitepay", "accepted"), 0)
            while marks and accepted >= marks[0]:
                mark = marks.pop(0)
                samples[mark] = rss_mb(process.pid)
                accepted_at[mark] = accepted
            return not marks

        started = time.monotonic()
        load = wrk(port, setup.corpora["whitepay-memory"], 30 + total // 300, interrupt=reached)
        elapsed = time.monotonic() - started
        if marks:
            raise RuntimeError(f"memory phase ended before {marks[0]} accepted events")
        counts = outcomes(port)
    first, second = (samples[m] for m in sorted(samples))
    return {
        "events": sorted(samples),
        "accepted_at_sample": [accepted_at[m] for m in sorted(samples)],
        "rss_start_mb": round(start_rss, 1),
        "rss_first_mb": round(first, 1),
        "rss_second_mb": round(second, 1),
        "growth_pct": round((second / first - 1) * 100, 2),
        "duplicates": counts.get(("whitepay", "duplicate"), 0),
        "errors": load["errors"],
        "seconds": round(elapsed, 1),
    }


class RedisProcess:
    """A redis-server without persistence on a free port (CPU affinity: this process's)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install -y redis-server")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=(workdir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while self.command(b"PING") != b"+PONG\r\n":
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def command(self, line: bytes) -> bytes:
        """One inline command; its reply (b"" when nothing answers)."""
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
                conn.sendall(line + b"\r\n")
                return conn.recv(1024)
        except OSError:
            return b""

    def stop(self) -> None:
        """Terminate the server."""
        self.process.terminate()
        self.process.wait(10)


def state_config(config: Path, redis_port: int) -> Path:
    """The bench config with `state.backend: redis` on the local redis-server."""
    path = config.with_name("gateway-redis.yaml")
    path.write_text(
        config.read_text() + f"state:\n  backend: redis\n  url: redis://127.0.0.1:{redis_port}/0\n"
    )
    return path


STATE_VARIANTS = ("memory", "redis", "redis-py", "redis-py-pure")


def state_round(setup: Setup, redis: RedisProcess, index: int) -> dict[str, Any]:
    """One round of the state comparison: Whitepay under each store variant."""
    import dataclasses

    redis_config = state_config(setup.config, redis.port)
    variants = {
        "memory": setup,
        **{
            name: dataclasses.replace(setup, config=redis_config, redis_client=name)
            for name in ("redis-py", "redis-py-pure")
        },
        "redis": dataclasses.replace(setup, config=redis_config, redis_client="resp"),
    }
    result: dict[str, Any] = {}
    for name in STATE_VARIANTS:
        redis.command(b"FLUSHALL")
        port = free_port()
        log = setup.workdir / f"gateway-state-{name}-{index}.log"
        with variants[name].gateway(port, log) as process:
            wrk(port, setup.corpora["whitepay-warm"], setup.plan.warmup)
            before = outcomes(port)
            figures = measured(
                process.pid, port, setup.corpora["whitepay-run"], setup.plan.duration
            )
            after = outcomes(port)
        for outcome in ("accepted", "duplicate"):
            key = ("whitepay", outcome)
            figures[outcome] = after.get(key, 0) - before.get(key, 0)
        result[name] = figures
    memory_row = result["memory"]
    for name in STATE_VARIANTS[1:]:
        row = result[name]
        row["ratio"] = round(row["rps"] / memory_row["rps"], 3)
        row["cpu_ratio"] = round(memory_row["cpu_us_per_request"] / row["cpu_us_per_request"], 3)
        if "kinsn_per_request" in row and "kinsn_per_request" in memory_row:
            row["insn_ratio"] = round(memory_row["kinsn_per_request"] / row["kinsn_per_request"], 3)
    return result


def state_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per variant over the rounds."""
    summary: dict[str, Any] = {}
    for name in STATE_VARIANTS:
        rows = [r[name] for r in rounds]
        entry = {
            key: round(statistics.median(row[key] for row in rows), 3)
            for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")
        }
        entry["errors"] = sum(row["errors"] for row in rows)
        entry["duplicates"] = sum(row["duplicate"] for row in rows)
        if all("kinsn_per_request" in row for row in rows):
            entry["kinsn_per_request"] = statistics.median(row["kinsn_per_request"] for row in rows)
        if name != "memory":
            entry["ratio"] = round(statistics.median(row["ratio"] for row in rows), 3)
            entry["cpu_ratio"] = round(statistics.median(row["cpu_ratio"] for row in rows), 3)
            if all("insn_ratio" in row for row in rows):
                entry["insn_ratio"] = statistics.median(row["insn_ratio"] for row in rows)
        summary[name] = entry
    return summary


def print_state_table(summary: dict[str, Any], rounds: int) -> None:
    """The state comparison, redis against memory in the same run."""
    print()
    print(f"state store: gateway Whitepay HMAC, median of {rounds} round(s)")
    print(f"{'':30}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'ratio':>8}"
          f"{'CPU us/req':>12}{'CPU ratio':>11}{'k instr/req':>13}{'instr ratio':>13}")  # fmt: skip
    labels = {
        "memory": "state.backend memory",
        "redis": "redis (gateway/resp.py)",
        "redis-py": "redis (redis-py + hiredis)",
        "redis-py-pure": "redis (redis-py, no hiredis)",
    }
    for name, label in labels.items():
        row = summary[name]
        kinsn = f"{row['kinsn_per_request']:,.0f}" if "kinsn_per_request" in row else "-"
        insn_ratio = f"{row.get('insn_ratio', 1.0):.2f}" if kinsn != "-" else "-"
        print(
            f"{label:<30}{row['rps']:>9,.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['errors']:>8}{row.get('ratio', 1.0):>8.2f}{row['cpu_us_per_request']:>12,.0f}"
            f"{row.get('cpu_ratio', 1.0):>11.2f}{kinsn:>13}{insn_ratio:>13}"
        )
    met = summary["redis"]["ratio"] >= TARGETS["state_redis_ratio"]
    print(f"target: redis >= {TARGETS['state_redis_ratio']}x memory: {'ok' if met else 'MISSED'}")
    if any(summary[n]["duplicates"] for n in STATE_VARIANTS):
        print("warning: duplicates seen: a corpus wrapped around; enlarge it")


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per target: the median of each figure over the runs (errors: the total)."""
    summary: dict[str, Any] = {}
    targets = ["baseline", "whitepay", "velafi"]
    targets += [t for t in ("tree_whitepay", "tree_velafi") if all(t in run for run in runs)]
    for target in targets:
        rows = [run[target] for run in runs]
        entry = {
            key: round(statistics.median(row[key] for row in rows), 3)
            for key in ("rps", "p50_ms", "p99_ms", "max_ms", "cpu_us_per_request")
        }
        entry["errors"] = sum(row["errors"] for row in rows)
        if all("kinsn_per_request" in row for row in rows):
            entry["kinsn_per_request"] = statistics.median(row["kinsn_per_request"] for row in rows)
        if target != "baseline":
            entry["ratio"] = round(statistics.median(row["ratio"] for row in rows), 3)
            entry["cpu_ratio"] = round(statistics.median(row["cpu_ratio"] for row in rows), 3)
            if all("insn_ratio" in row for row in rows):
                entry["insn_ratio"] = statistics.median(row["insn_ratio"] for row in rows)
            entry["duplicates"] = sum(row["duplicate"] for row in rows)
        summary[target] = entry
    return summary


def verdict(summary: dict[str, Any], mem: dict[str, Any]) -> dict[str, bool]:
    """Which targets of issue 7 the figures meet."""
    wp, vf = summary["whitepay"], summary["velafi"]
    return {
        "whitepay_ratio": wp["ratio"] >= TARGETS["whitepay_ratio"],
        "whitepay_ratio_stretch": wp["ratio"] >= TARGETS["whitepay_ratio_stretch"],
        "whitepay_p99": wp["p99_ms"] < TARGETS["whitepay_p99_ms"],
        "zero_errors": wp["errors"] == 0 and vf["errors"] == 0 and mem["errors"] == 0,
        "velafi_ratio": vf["ratio"] >= TARGETS["velafi_ratio"],
        "rss": mem["rss_second_mb"] < TARGETS["rss_mb"],
        "rss_growth": mem["growth_pct"] < TARGETS["rss_growth_pct"],
    }


def print_table(report: dict[str, Any]) -> None:
    """The human-readable summary."""
    plan, summary, mem = report["plan"], report["median"], report["memory"]
    pin = report["pinning"]
    where = (
        f"server on cpu {pin['server_core']}, wrk + tansu on cpu {pin['load_core']}"
        if pin["server_core"] is not None
        else "unpinned (fewer than 2 CPUs or no taskset)"
    )
    print()
    print(
        f"ingest: wrk -t1 -c{CONNECTIONS}, {plan['duration']}s after {plan['warmup']}s warm-up, "
        f"median of {plan['runs']} run(s); {where}"
    )
    print(
        f"{'':22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'ratio':>8}"
        f"{'CPU us/req':>12}{'CPU ratio':>11}{'k instr/req':>13}{'instr ratio':>13}"
    )
    labels = {
        "baseline": "bare Litestar",
        "whitepay": "gateway Whitepay HMAC",
        "velafi": "gateway VelaFi RSA",
        "tree_whitepay": "--tree Whitepay HMAC",
        "tree_velafi": "--tree VelaFi RSA",
    }
    for target, label in labels.items():
        if target not in summary:
            continue
        row = summary[target]
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else "1.00"
        cpu_ratio = f"{row['cpu_ratio']:.2f}" if "cpu_ratio" in row else "1.00"
        kinsn = f"{row['kinsn_per_request']:,.0f}" if "kinsn_per_request" in row else "-"
        insn_ratio = f"{row.get('insn_ratio', 1.0):.2f}" if kinsn != "-" else "-"
        print(
            f"{label:<22}{row['rps']:>9,.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['errors']:>8}{ratio:>8}{row['cpu_us_per_request']:>12,.0f}{cpu_ratio:>11}"
            f"{kinsn:>13}{insn_ratio:>13}"
        )
    duplicates = sum(row.get("duplicates", 0) for row in summary.values())
    if duplicates:
        print(f"warning: {duplicates} duplicate(s): a corpus wrapped around; enlarge it")
    if not mem:
        return
    first, second = mem["events"]
    print(
        f"memory: RSS {mem['rss_start_mb']:.1f} MB at start, {mem['rss_first_mb']:.1f} MB after "
        f"{first:,} accepted, {mem['rss_second_mb']:.1f} MB after {second:,} "
        f"(growth {mem['growth_pct']:+.1f}%)"
    )
    met = report["targets_met"]
    print("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in met.items()))


def main() -> int:
    """Run the benchmark, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short run (smoke check)")
    parser.add_argument("--runs", type=int, help="override the number of runs")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory phase")
    parser.add_argument("--no-state", action="store_true", help="skip the state store phase")
    parser.add_argument(
        "--state-only",
        action="store_true",
        help="only the state store comparison (memory vs redis), written to ingest-state.json",
    )
    parser.add_argument(
        "--fast-paths",
        action="store_true",
        help="only the fast path comparison (each one switched off alone), "
        "written to ingest-fast-paths.json",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        help="another checkout of the gateway (a `git worktree add PATH REV`) to serve after "
        "this one in every run, with PYTHONPATH pointing at it (same venv): old vs new",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--server",
        choices=["uvicorn", "granian"],
        default="uvicorn",
        help="ASGI server for both apps (granian must be installed; it is not a dependency)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "ingest_bench: `wrk` is not installed. Install the Debian package first:\n"
            "    apt-get update && apt-get install -y wrk\n"
            "(`make bench` does this for you.)",
            file=sys.stderr,
        )
        return 2
    load_start = round(os.getloadavg()[0], 2)
    if args.server == "granian" and not Path(PYTHON).with_name("granian").exists():
        print("ingest_bench: --server granian needs `pip install granian`", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    if args.runs:
        plan = Plan(**{**plan.__dict__, "runs": args.runs})
    server_core, load_core = cores()
    CORPUS.mkdir(exist_ok=True)
    print("corpus:", flush=True)
    _, public_pem = rsa_key()
    corpora = {
        "whitepay-warm": corpus_file("whitepay", "warm", plan.warm_corpus),
        "whitepay-run": corpus_file("whitepay", "run", plan.corpus),
    }
    if not args.state_only and not args.fast_paths:
        corpora["velafi-warm"] = corpus_file("velafi", "warm", plan.warm_corpus)
        corpora["velafi-run"] = corpus_file("velafi", "run", plan.corpus)
    if not args.no_memory and not args.state_only and not args.fast_paths:
        # Headroom: wrk's in-flight requests when it is stopped must not wrap around.
        count = plan.memory_events + plan.memory_events // 10
        corpora["whitepay-memory"] = corpus_file("whitepay", "memory", count)
    if not args.state_only and not args.fast_paths:
        check_corpus_verifies(public_pem)
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})  # inherited by tansu and wrk

    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        workdir = Path(tmp)
        broker = Broker(tansu_binary(), free_port(), log_path=str(workdir / "tansu.log"))
        broker.start()
        try:
            setup = Setup(
                plan, write_config(workdir, broker.bootstrap, public_pem), workdir,
                server_core, corpora, args.server,
                tree=args.tree.resolve() if args.tree else None,
            )  # fmt: skip
            if args.fast_paths:
                fast_rounds = []
                for index in range(plan.runs):
                    print(f"fast path round {index + 1}/{plan.runs}", flush=True)
                    fast_rounds.append(fast_path_round(setup, index))
                    print("  " + json.dumps({k: v["rps"] for k, v in fast_rounds[-1].items()}),
                          flush=True)  # fmt: skip
                print_fast_path_table(fast_rounds)
                output = args.output.with_name("ingest-fast-paths.json")
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_text(json.dumps({
                    "benchmark": "ingest-fast-paths", "quick": args.quick, "plan": plan.__dict__,
                    "pinning": {"server_core": server_core, "load_core": load_core},
                    "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
                    "rounds": fast_rounds,
                }, indent=2) + "\n")  # fmt: skip
                print(f"wrote {output}")
                return 0
            state_rounds: list[dict[str, Any]] = []
            if not args.no_state or args.state_only:
                redis = RedisProcess(workdir)
                try:
                    for index in range(plan.runs):
                        print(f"state round {index + 1}/{plan.runs}", flush=True)
                        state_rounds.append(state_round(setup, redis, index))
                        print("  " + json.dumps({k: v["rps"] for k, v in state_rounds[-1].items()}),
                              flush=True)  # fmt: skip
                finally:
                    redis.stop()
            if args.state_only:
                state = state_summary(state_rounds)
                print_state_table(state, len(state_rounds))
                output = args.output.with_name("ingest-state.json")
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_text(json.dumps({
                    "benchmark": "ingest-state", "quick": args.quick, "plan": plan.__dict__,
                    "pinning": {"server_core": server_core, "load_core": load_core},
                    "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
                    "median": state, "rounds": state_rounds,
                    "target": TARGETS["state_redis_ratio"],
                }, indent=2) + "\n")  # fmt: skip
                print(
                    f"wrote {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}"
                )
                return 0
            runs = []
            for index in range(plan.runs):
                print(f"run {index + 1}/{plan.runs}", flush=True)
                runs.append(run_once(setup, index))
                print("  " + json.dumps({k: v.get("rps", v) if isinstance(v, dict) else v
                                         for k, v in runs[-1].items()}), flush=True)  # fmt: skip
            mem: dict[str, Any] = {}
            if not args.no_memory:
                print(f"memory: {plan.memory_events:,} accepted events", flush=True)
                mem = memory(setup)
        except BaseException:
            for log in sorted(workdir.glob("*.log")):
                print(f"--- last lines of {log.name}", file=sys.stderr)
                print(
                    "\n".join(log.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr
                )
            raise
        finally:
            broker.stop()

    summary = medians(runs)
    report: dict[str, Any] = {
        "benchmark": "ingest",
        "quick": args.quick,
        "plan": plan.__dict__,
        "connections": CONNECTIONS,
        "server": (
            "granian (uvloop, HTTP/1.1, single-threaded runtime), 1 worker process"
            if args.server == "granian"
            else "uvicorn (uvloop, httptools), 1 worker process"
        ),
        "pinning": {"server_core": server_core, "load_core": load_core},
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "tree": str(args.tree) if args.tree else None,
        "median": summary,
        "memory": mem,
        "runs": runs,
        "state": state_summary(state_rounds) if state_rounds else {},
        "state_rounds": state_rounds,
        "targets": TARGETS,
    }
    if mem:
        report["targets_met"] = verdict(summary, mem)
    print_table(report)
    if state_rounds:
        print_state_table(report["state"], len(state_rounds))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
