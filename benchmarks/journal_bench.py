"""Journal benchmark: HMAC (Whitepay) ingest with the journal on vs off, same run, same server.

    .venv/bin/python benchmarks/journal_bench.py           # 3 alternating pairs of 10 s runs
    .venv/bin/python benchmarks/journal_bench.py --quick   # one short pair (smoke check)

Each pair serves `gateway serve` (one worker process, one Kafka destination, acks=all) twice
on the same pinned core and broker: once with `kafka.journal_topic` unset, once with it set
(every request then also journals its outcome and CloudEvent). Same corpus of pre-signed
requests with distinct order ids (benchmarks/ingest_bench.py builds and caches it), same
wrk load (`-t1 -c64`). The order alternates between pairs so a warming or cooling machine
does not favour one side. It prints, per pair and as medians, requests/s, p99 and server
CPU per request, and the ratio on/off of each (target: req/s ratio >= 0.9). The journal's
own counters (records acknowledged, dropped) are read from /metrics after each "on" run.
Writes benchmarks/results/journal.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import ingest_bench as ib  # noqa: E402

TARGET = 0.9
RESULTS = BENCH / "results" / "journal.json"
_JOURNAL = re.compile(r'^(gateway_journal_\w+_total)(\{reason="(\w+)"\})? ([0-9.e+]+)$', re.M)


def config_file(directory: Path, bootstrap: str, journal: bool) -> Path:
    """ingest_bench's config, with the journal topic set or not."""
    path = ib.write_config(directory, bootstrap, ib.rsa_key()[1])
    text = path.read_text()
    if journal:
        text = text.replace(
            "  create_topics: true\n", "  create_topics: true\n  journal_topic: bench.journal\n"
        )
    target = directory / f"gateway-journal-{'on' if journal else 'off'}.yaml"
    target.write_text(text)
    return target


def journal_counters(port: int) -> dict[str, float]:
    """The gateway's journal counters from /metrics."""
    status, body = ib.get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return {}
    return {
        f"{name}{'/' + reason if reason else ''}": float(value)
        for name, _, reason, value in _JOURNAL.findall(body.decode())
    }


def journal_cost(count: int = 20_000) -> float:
    """The journal's own CPU per request, in process: `answered` plus packing and snappy, in us."""
    import asyncio
    from datetime import UTC, datetime

    from aiokafka.codec import snappy_encode

    from gateway.config import load_config
    from gateway.journal import Journal
    from gateway.pipeline import Outcome
    from gateway.providers import registry

    config = load_config(config_file(Path(tempfile.mkdtemp()), "127.0.0.1:1", True))
    module = registry()["whitepay"]
    body = ib.whitepay_body("cost", 1)
    event = module.normalize(module.decode(body), "whitepay", datetime.now(UTC))
    placed = ({"destination": "orders", "topic": "payments.orders", "partition": 0, "offset": 1},)
    outcome = Outcome("accepted", event, ("all-orders",), ("orders",), placed=placed)

    async def run() -> tuple[float, list[bytes]]:
        journal = Journal(config, buffer=count + 1)  # never started: nothing is sent
        started = time.process_time()
        for _ in range(count):
            journal.answered("whitepay", "whitepay", outcome, None, time.perf_counter())
        lines = journal._take(count)
        for i in range(0, len(lines), 30):  # ~48 KB records, as the drainer packs them
            snappy_encode(b"\n".join(lines[i : i + 30]))
        return (time.process_time() - started) / count * 1e6, lines

    return asyncio.run(run())


def codec_costs(lines: list[bytes], rounds: int = 200) -> dict[str, dict[str, float]]:
    """What each of aiokafka's codecs costs on one packed journal record (~48 KB), and its size.

    Why the journal uses snappy: aiokafka compresses lz4 at level 9 (high compression),
    which on these records costs more than zstd does.
    """
    from aiokafka import codec

    record = b"\n".join(lines)[:48_000]
    costs: dict[str, dict[str, float]] = {}
    for name in ("snappy", "lz4", "zstd", "gzip"):
        encode = getattr(codec, f"{name}_encode")
        started = time.process_time()
        for _ in range(rounds):
            packed = encode(record)
        costs[name] = {
            "us_per_record": round((time.process_time() - started) / rounds * 1e6, 1),
            "bytes": len(packed),
        }
    return costs


def one(setup: dict[str, Any], journal: bool, index: int) -> dict[str, Any]:
    """One measured run of the gateway with the journal on or off."""
    plan: ib.Plan = setup["plan"]
    port = ib.free_port()
    command = [
        ib.GATEWAY,
        "serve",
        "--config",
        str(setup["configs"][journal]),
        "--host",
        "127.0.0.1",
    ]
    command += ["--port", str(port), "--workers", "1"]
    log = setup["workdir"] / f"gateway-{'on' if journal else 'off'}-{index}.log"
    with ib.server(ib.pinned(command, setup["core"]), port, "/readyz", log) as process:
        ib.wrk(port, setup["warm"], plan.warmup)
        figures = ib.measured(process.pid, port, setup["run"], plan.duration)
        accepted = ib.outcomes(port).get(("whitepay", "accepted"), 0)
        figures["accepted_total"] = accepted
        if journal:
            figures["journal"] = journal_counters(port)
    return figures


def main() -> int:
    """Run the pairs, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short pair (smoke check)")
    parser.add_argument("--pairs", type=int, help="override the number of pairs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="no core pinning: the broker may use both cores (it does twice the work with "
        "the journal on, and pinned beside wrk that throttles the load itself)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("journal_bench: install wrk first (apt-get install -y wrk)", file=sys.stderr)
        return 2
    plan = ib.QUICK if args.quick else ib.FULL
    pairs = args.pairs or plan.runs
    server_core, load_core = (None, None) if args.no_pin else ib.cores()
    ib.CORPUS.mkdir(exist_ok=True)
    warm = ib.corpus_file("whitepay", "warm", plan.warm_corpus)
    run = ib.corpus_file("whitepay", "run", plan.corpus)
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})  # inherited by tansu and wrk
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="journal-bench-") as tmp:
        workdir = Path(tmp)
        broker = ib.Broker(ib.tansu_binary(), ib.free_port(), log_path=str(workdir / "tansu.log"))
        broker.start()
        try:
            setup = {
                "plan": plan,
                "workdir": workdir,
                "core": server_core,
                "warm": warm,
                "run": run,
                "configs": {
                    False: config_file(workdir, broker.bootstrap, False),
                    True: config_file(workdir, broker.bootstrap, True),
                },
            }
            for index in range(pairs):
                order = (False, True) if index % 2 == 0 else (True, False)
                result = {("on" if j else "off"): one(setup, j, index) for j in order}
                on, off = result["on"], result["off"]
                result["rps_ratio"] = round(on["rps"] / off["rps"], 3)
                result["cpu_ratio"] = round(off["cpu_us_per_request"] / on["cpu_us_per_request"], 3)
                rows.append(result)
                print(
                    f"pair {index + 1}/{pairs}: off {off['rps']:.0f} req/s p99 {off['p99_ms']:.1f} ms "
                    f"{off['cpu_us_per_request']} us/req | on {on['rps']:.0f} req/s p99 "
                    f"{on['p99_ms']:.1f} ms {on['cpu_us_per_request']} us/req | ratio "
                    f"{result['rps_ratio']} (cpu {result['cpu_ratio']}) | journal {on['journal']}",
                    flush=True,
                )
        finally:
            broker.stop()
    cost, lines = journal_cost()
    codecs = codec_costs(lines)
    median = {key: statistics.median(r[key] for r in rows) for key in ("rps_ratio", "cpu_ratio")}
    off_cpu = statistics.median(r["off"]["cpu_us_per_request"] for r in rows)
    median["journal_us_per_request"] = round(cost, 1)
    median["off_cpu_us_per_request"] = off_cpu
    median["implied_ratio"] = round(off_cpu / (off_cpu + cost), 3)
    median["off_rps"] = statistics.median(r["off"]["rps"] for r in rows)
    median["on_rps"] = statistics.median(r["on"]["rps"] for r in rows)
    median["off_p99_ms"] = statistics.median(r["off"]["p99_ms"] for r in rows)
    median["on_p99_ms"] = statistics.median(r["on"]["p99_ms"] for r in rows)
    errors = sum(r[s]["errors"] for r in rows for s in ("on", "off"))
    met = median["rps_ratio"] >= TARGET
    print(
        f"\nmedian of {pairs}: journal off {median['off_rps']:.0f} req/s (p99 "
        f"{median['off_p99_ms']:.1f} ms), on {median['on_rps']:.0f} req/s (p99 "
        f"{median['on_p99_ms']:.1f} ms); on/off req/s {median['rps_ratio']} (target >= {TARGET}: "
        f"{'met' if met else 'MISSED'}), CPU per request off/on {median['cpu_ratio']}; "
        f"errors {errors}"
    )
    print(
        f"journal's own CPU per request (in process, this run): {cost:.1f} us against "
        f"{off_cpu} us per request with the journal off: implied ratio "
        f"{median['implied_ratio']}"
    )
    print(
        "codecs on one packed journal record (48 KB): "
        + ", ".join(f"{n} {c['us_per_record']} us -> {c['bytes']} B" for n, c in codecs.items())
    )
    report = {
        "benchmark": "journal",
        "codecs": codecs,
        "quick": args.quick,
        "plan": plan.__dict__,
        "pinning": {"server_core": server_core, "load_core": load_core},
        "load_average_1m": round(os.getloadavg()[0], 2),
        "median": median,
        "target_rps_ratio": TARGET,
        "target_met": met,
        "pairs": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
