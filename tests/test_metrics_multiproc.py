"""Metrics with several worker processes: exited processes' gauges leave the aggregate,
counters keep their counts, and the spool depth a scrape shows is the file's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Runs in a process of its own (PROMETHEUS_MULTIPROC_DIR must be set before gateway.metrics
# is imported): this "worker" reports a depth of 3 and a connected broker, then a second
# worker reports 7, disconnected, counts 5 spooled events and exits without cleaning up.
SCRIPT = """
import subprocess, sys
from gateway import metrics
metrics.SPOOL_DEPTH.set(3)
metrics.KAFKA_CONNECTED.set(1)
metrics.SPOOLED.inc()
subprocess.run([sys.executable, "-c",
    "from gateway import metrics\\n"
    "metrics.SPOOL_DEPTH.set(7)\\n"
    "metrics.KAFKA_CONNECTED.set(0)\\n"
    "metrics.SPOOLED.inc(5)\\n"], check=True)
print("BEFORE", metrics.render()[0].decode())
print("FORGOT", metrics.forget_dead_processes())
metrics.SPOOL_DEPTH.set(3)
print("AFTER", metrics.render()[0].decode())
"""


def _sample(page: str, name: str) -> str:
    return next(line.split()[1] for line in page.splitlines() if line.startswith(name + " "))


def test_exited_processes_leave_gauges_not_counters(tmp_path: Path) -> None:
    """After a worker exits, its gauges are dropped (depth 3, connected 1); its counts stay (6)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout
    before, rest = out.split("BEFORE", 1)[1].split("FORGOT", 1)
    forgot, after = rest.split("AFTER", 1)
    # Until it is forgotten, the exited worker's last readings win (most recent / minimum).
    assert _sample(before, "gateway_spool_depth") == "7.0"
    assert _sample(before, "gateway_kafka_connected") == "0.0"
    assert forgot.strip() not in ("", "[]")
    assert _sample(after, "gateway_spool_depth") == "3.0"  # the file's depth, not 3 + 7
    assert _sample(after, "gateway_kafka_connected") == "1.0"
    assert _sample(after, "gateway_spooled_total") == "6.0"
