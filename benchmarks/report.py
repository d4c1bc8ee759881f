"""One table of every benchmark's latest figures (benchmarks/results/*.json).

    .venv/bin/python benchmarks/report.py

`make bench` runs the benchmarks and then this. A benchmark whose JSON is missing is
listed as not run; nothing here measures anything.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _ok(met: bool | None) -> str:
    return "-" if met is None else ("ok" if met else "MISSED")


def _state_rows(ingest: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """state.backend redis against memory: from the full ingest run, else --state-only."""
    state = (ingest or {}).get("state") or (_load("ingest-state") or {}).get("median")
    if not state:
        return [("ingest", "state store (redis vs memory)", "not run", "")]
    memory, redis = state["memory"], state["redis"]
    target = 0.85
    return [
        (
            "ingest",
            "Whitepay, state.backend redis vs memory",
            f"{redis['rps']:,.0f} vs {memory['rps']:,.0f} req/s, ratio {redis['ratio']:.2f} "
            f"(CPU {redis['cpu_ratio']:.2f}"
            + (f", instr {redis['insn_ratio']:.2f}" if "insn_ratio" in redis else "")
            + f"), {redis['errors']} errors",
            f">= {target}: {_ok(redis['ratio'] >= target)}",
        )
    ]


def rows() -> list[tuple[str, str, str, str]]:
    """(benchmark, figure, value, target verdict) rows."""
    out: list[tuple[str, str, str, str]] = []
    ingest = _load("ingest")
    if ingest is None:
        out.append(("ingest", "not run", "", ""))
    else:
        median, met = ingest["median"], ingest.get("targets_met", {})
        base = median["baseline"]
        runs = f"median of {ingest['plan']['runs']}" + (", quick" if ingest["quick"] else "")
        out.append(("ingest", f"bare Litestar req/s ({runs})", f"{base['rps']:,.0f}", "baseline"))
        for key, label, target in (
            ("whitepay", "Whitepay HMAC", "whitepay_ratio"),
            ("velafi", "VelaFi RSA", "velafi_ratio"),
        ):
            row = median[key]
            instructions = f", instr {row['insn_ratio']:.2f}" if "insn_ratio" in row else ""
            value = (
                f"{row['rps']:,.0f} req/s, ratio {row['ratio']:.2f} "
                f"(CPU {row['cpu_ratio']:.2f}{instructions}), p99 {row['p99_ms']:.1f} ms, "
                f"{row['errors']} errors"
            )
            verdict = f">= {ingest['targets'][target]}: {_ok(met.get(target))}"
            out.append(("ingest", label, value, verdict))
        p99 = median["whitepay"]["p99_ms"]
        out.append(
            (
                "ingest",
                "Whitepay p99 at 64 connections",
                f"{p99:.1f} ms",
                f"< {ingest['targets']['whitepay_p99_ms']:g} ms: {_ok(met.get('whitepay_p99'))}",
            )
        )
        memory = ingest.get("memory") or {}
        if memory:
            first, second = memory["events"]
            out.append(
                (
                    "ingest",
                    f"RSS after {first:,} / {second:,} events",
                    f"{memory['rss_first_mb']:.1f} / {memory['rss_second_mb']:.1f} MB "
                    f"({memory['growth_pct']:+.1f}%)",
                    f"< 150 MB, < 5%: {_ok(met.get('rss') and met.get('rss_growth'))}",
                )
            )
    out.extend(_state_rows(ingest))
    routing = _load("routing")
    if routing is None:
        out.append(("routing", "not run", "", ""))
    else:
        for result in routing["results"]:
            out.append(
                (
                    "routing",
                    f"{result['routes']:,} routes, per event",
                    f"{result['compiled_us']:.1f} us compiled vs {result['naive_us']:.1f} us "
                    f"naive ({result['speedup']:.0f}x)",
                    "",
                )
            )
        target = routing.get("target")
        if target:
            out[-1] = (
                *out[-1][:3],
                f"<= {target['max_compiled_us']} us, >= {target['min_speedup']}x: "
                f"{_ok(target.get('met'))}",
            )
    out.append(_one_row("transform", _transform_row))
    out.append(_one_row("delivery", _delivery_row))
    return out


def _one_row(
    name: str, row: Callable[[dict[str, Any]], tuple[str, str, str]]
) -> tuple[str, str, str, str]:
    """The one row of benchmark `name` from its JSON, or `not run`."""
    data = _load(name)
    return (name, "not run", "", "") if data is None else (name, *row(data))


def _transform_row(transform: dict[str, Any]) -> tuple[str, str, str]:
    return (
        "10-field projection, per event",
        f"{transform['apply_us']:.1f} us applied ({transform['fast_path_us']:.1f} us "
        f"closures vs {transform['jmespath_us']:.1f} us jmespath, "
        f"{transform['speedup_vs_jmespath']:.1f}x)",
        f"<= {transform['target_us']:g} us: {_ok(transform['apply_us'] <= transform['target_us'])}",
    )


def _delivery_row(delivery: dict[str, Any]) -> tuple[str, str, str]:
    return (
        "deliveries/s, one worker process",
        f"{delivery['deliveries_per_second']:,.0f}",
        f">= {delivery['target_per_second']:,.0f}: {_ok(delivery.get('meets_target'))}",
    )


def main() -> int:
    """Print the table."""
    table = rows()
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
