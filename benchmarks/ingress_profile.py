"""Where a webhook's CPU goes inside the gateway: its ASGI app in-process, no server, no broker.

    .venv/bin/python benchmarks/ingress_profile.py                   # CPU us/request
    .venv/bin/python benchmarks/ingress_profile.py --tree /tmp/old   # ... and another checkout
    .venv/bin/python benchmarks/ingress_profile.py --profile         # cProfile, top functions
    .venv/bin/python benchmarks/ingress_profile.py --journal         # with kafka.journal_topic

Each tree is measured in a fresh child process (`--tree`: with PYTHONPATH pointing at that
checkout, same venv), alternating rounds, so both trees see the same machine. The child
builds the app with `create_app` (the defaults: memory state store, header limits are the
HTTP server's and so not in here) and a sender that acknowledges every record at once, runs
its lifespan, then drives Whitepay (HMAC) requests with distinct order ids straight into
the ASGI app and reads the process CPU time per request. What it leaves out (uvicorn's
HTTP parsing, aiokafka's send) is the same for both trees; `ingest_bench.py --tree` measures
the whole thing against bare Litestar.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import hmac
import inspect
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
SECRET = "bench-whitepay-signature-token"  # noqa: S105 - a throwaway bench secret

CONFIG = """\
server:
  log_format: json
kafka:
  bootstrap_servers: 127.0.0.1:9
  acks: all
  enable_idempotence: false
  create_topics: false
{journal}sources:
  whitepay: {{provider: whitepay, secret: {secret}}}
destinations:
  orders:
    kafka: {{topic: payments.orders}}
routes:
  - name: all-orders
    match: {{type: "order.*"}}
    to: [orders]
"""


def corpus(count: int, tag: str) -> list[tuple[bytes, str]]:
    """Signed Whitepay bodies with distinct order ids (the shape ingest_bench.py sends)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ingest_bench import whitepay_body  # the same ~1 KB body as the HTTP benchmark

    sys.path.pop(0)
    out = []
    for i in range(count):
        body = whitepay_body(tag, i)
        out.append((body, hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()))
    return out


# --- the child: one tree, measured ------------------------------------------------------------


class _Ack:
    partition = 0
    offset = 0


class InstantProducer:
    """The producer's interface; every record is acknowledged at once."""

    def __init__(self) -> None:
        self.sent = 0

    def ready(self) -> bool:
        return True

    async def start(self, wait: bool = False) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, value: Any, key: Any = None, headers: Any = None) -> Any:
        self.sent += 1
        return _Ack()

    async def enqueue(self, topic: str, value: Any, key: Any = None, headers: Any = None) -> Any:
        future = asyncio.get_running_loop().create_future()
        future.set_result(_Ack())
        return future


async def _drive(app: Any, requests: list[tuple[bytes, str]], concurrency: int) -> None:
    """Send each request through the ASGI app, `concurrency` at a time; all must be 200."""
    statuses: list[int] = []

    async def one(body: bytes, mac: str) -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/webhooks/whitepay",
            "raw_path": b"/webhooks/whitepay", "query_string": b"", "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                (b"signature", mac.encode()), (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080), "state": {},
        }  # fmt: skip
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)

    for start in range(0, len(requests), concurrency):
        await asyncio.gather(*(one(b, m) for b, m in requests[start : start + concurrency]))
    bad = [s for s in statuses if s != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(statuses)} requests not 200: {bad[:5]}")


async def _lifespan(app: Any) -> tuple[asyncio.Task[None], asyncio.Queue[Any]]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   inbox.get, send))  # fmt: skip
    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(started.wait(), 30)
    return task, inbox


def child(args: argparse.Namespace) -> int:
    """Measure this interpreter's `gateway` package (whatever PYTHONPATH points at)."""
    import uvloop

    import gateway
    from gateway import observability
    from gateway.app import create_app
    from gateway.cli import tune_gc
    from gateway.config import parse_config

    journal = "  journal_topic: gateway.journal\n" if args.journal else ""
    config = parse_config(CONFIG.format(journal=journal, secret=SECRET), "profile.yaml")
    extra: dict[str, Any] = {}
    if "secrets" in inspect.signature(observability.configure_logging).parameters:  # newer
        extra["secrets"] = observability.config_secret_values(config)
    observability.configure_logging(
        config.server.log_level, config.server.log_format, final=True, **extra
    )
    producer = InstantProducer()
    app = create_app(config, producer=producer)  # type: ignore[arg-type]
    data = json.loads(Path(args.corpus).read_text())
    warm = [(bytes.fromhex(b), m) for b, m in data["warm"]]
    run = [(bytes.fromhex(b), m) for b, m in data["run"]]

    async def main() -> dict[str, Any]:
        task, inbox = await _lifespan(app)
        pipeline = app.state.pipeline
        if args.journal:  # no broker here: the journal's buffer is drained by hand below
            assert pipeline.journal is not None
            pipeline.journal._limit = 10**9
        tune_gc()
        await _drive(app, warm, args.concurrency)
        profiler = cProfile.Profile() if args.profile else None
        cpu = time.process_time()
        if profiler is not None:
            profiler.enable()
        await _drive(app, run, args.concurrency)
        if profiler is not None:
            profiler.disable()
        used = time.process_time() - cpu
        if args.journal:
            pipeline.journal._buffer.clear()
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 30)
        if profiler is not None:
            out = Path(args.result).with_suffix(".prof")
            profiler.dump_stats(out)
        return {"tree": str(Path(gateway.__file__).parent.parent), "sent": producer.sent,
                "cpu_us_per_request": used / len(run) * 1e6}  # fmt: skip

    result = uvloop.run(main())
    Path(args.result).write_text(json.dumps(result))
    return 0


# --- the parent: rounds over the trees ----------------------------------------------------------


def measure(
    tree: Path | None, slow: str, corpus_path: Path, args: argparse.Namespace, tmp: Path
) -> Any:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["GATEWAY_SLOW"] = slow
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    result = tmp / "result.json"
    command = [sys.executable, str(HERE), "--child", "--corpus", str(corpus_path),
               "--result", str(result), "--concurrency", str(args.concurrency)]  # fmt: skip
    command += ["--journal"] * args.journal + ["--profile"] * args.profile
    with (tmp / "child.log").open("wb") as log:  # its log lines (and any traceback)
        done = subprocess.run(command, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = (tmp / "child.log").read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError("the child failed:\n" + "\n".join(tail))
    figures = json.loads(result.read_text())
    if args.profile:
        stats = pstats.Stats(str(result.with_suffix(".prof")))
        print(f"--- cProfile, {figures['tree']} (tottime, top {args.top})")
        stats.sort_stats("tottime").print_stats(args.top)
        if args.callees:
            stats.print_callees(args.callees)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="another checkout to measure in the same run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow", action="append", default=[], metavar="NAMES",
                        help="also this tree with GATEWAY_SLOW=NAMES (repeatable)")  # fmt: skip
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--journal", action="store_true", help="with kafka.journal_topic set")
    parser.add_argument("--profile", action="store_true", help="cProfile one round per tree")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--callees", help="with --profile: also print what functions matching "
                        "this regular expression call")  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.profile:
        args.rounds = 1
    trees: list[tuple[str, Path | None, str]] = [("this tree", None, "")]
    for slow in args.slow:
        trees.append((f"GATEWAY_SLOW={slow}", None, slow))
    if args.tree:
        trees.append((str(args.tree.resolve()), args.tree.resolve(), ""))
    with tempfile.TemporaryDirectory(prefix="ingress-profile-") as name:
        tmp = Path(name)
        corpus_path = tmp / "corpus.json"
        warm, run = corpus(2_000, "profile-warm"), corpus(args.requests, "profile-run")
        corpus_path.write_text(json.dumps({
            "warm": [(b.hex(), m) for b, m in warm], "run": [(b.hex(), m) for b, m in run],
        }))  # fmt: skip
        figures: dict[str, list[float]] = {}
        for index in range(args.rounds):
            for label, tree, slow in trees:
                row = measure(tree, slow, corpus_path, args, tmp)
                figures.setdefault(label, []).append(row["cpu_us_per_request"])
                print(f"round {index + 1}: {label:<40} "
                      f"{row['cpu_us_per_request']:.1f} us/request", flush=True)  # fmt: skip
    print(f"\nCPU us per Whitepay request, in-process ASGI, median of {args.rounds}"
          f"{' (journal on)' if args.journal else ''}:")  # fmt: skip
    medians = {label: statistics.median(values) for label, values in figures.items()}
    for label, value in medians.items():
        share = value / medians["this tree"]
        print(f"  {label:<40}{value:8.1f}  {share:6.3f} x this tree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
