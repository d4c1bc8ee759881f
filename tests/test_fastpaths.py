"""Every fast path can be switched off alone (GATEWAY_SLOW), and the gateway behaves the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.fastpaths import NAMES, _slow_names, fast

ROOT = Path(__file__).resolve().parent.parent
ALL_SLOW = ",".join(sorted(NAMES))


def _env(slow: str) -> dict[str, str]:
    return {**os.environ, "GATEWAY_SLOW": slow}


def test_slow_names_are_parsed_and_unknown_ones_refused() -> None:
    """A comma list (blanks tolerated) names fast paths; a typo is an error naming the choices."""
    assert _slow_names(" logline, gc ,") == {"logline", "gc"}
    assert _slow_names("") == frozenset()
    with pytest.raises(
        ValueError, match="unknown fast path nope; expected some of: amounts, deadline, dupkeys,"
    ):
        _slow_names("gc,nope")


@pytest.mark.skipif(bool(os.environ.get("GATEWAY_SLOW")), reason="GATEWAY_SLOW is set here")
def test_every_fast_path_is_on_by_default() -> None:
    """Without GATEWAY_SLOW every fast path is used."""
    assert all(fast(name) for name in NAMES)


def test_switched_off_fast_paths_use_the_references_they_replace() -> None:
    """With every fast path off, each module has picked the library/stdlib piece instead."""
    probe = """
import gc, json
from aiokafka.partitioner import murmur2
import prometheus_client
from gateway import event, metrics, observability
from gateway.cli import tune_gc
from gateway.destinations import kafka
from gateway import app, deadline, pipeline, state
from gateway.http import server
threshold = gc.get_threshold()
tune_gc()
print(json.dumps({
    "partitioner": kafka._murmur2 is murmur2,
    "metrics": isinstance(metrics.WEBHOOKS, prometheus_client.Counter),
    "logline": observability._FAST_LINE is False,
    "dupkeys": event._FAST_DUPKEYS is False,
    "gc": gc.get_threshold() == threshold and gc.get_freeze_count() == 0,
    "ingress": app._BYPASS is False,
    "amounts": event._FAST_AMOUNTS is False,
    "deadline": deadline._FAST is False,
    "memstore": pipeline._FAST_MEMSTORE is False,
    "onewrite": server._ONE_WRITE is False,
    "headbound": server.GuardedHttpToolsProtocol._bound is False,
    "seentable": type(state.MemoryStore()._seen).__name__ == "PlainSeenIds",
}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=_env(ALL_SLOW),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    picked = json.loads(done.stdout)
    assert picked == dict.fromkeys(NAMES, True)


def test_the_gateway_behaves_the_same_with_every_fast_path_off() -> None:
    """The ingress, event, log-line, deadline and memory-store tests pass unchanged on the
    reference implementations."""
    tests = ["tests/test_ingress.py", "tests/test_event.py", "tests/test_webhook_line.py"]
    tests += ["tests/test_partitioner.py", "tests/test_log_secrets.py"]
    tests += ["tests/test_deadline.py", "tests/test_memstore_fastpath.py"]
    tests += ["tests/test_hostile_serve.py", "tests/test_head_limits_fastpath.py"]
    tests += ["tests/test_pipeline_state.py"]  # dedupe through the plain window
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", *tests, "-x", "-q", "-p", "no:cacheprovider"),
            # Known difference: through Litestar's router a 405 says `Allow: POST, OPTIONS`
            # (Litestar answers OPTIONS itself); the ingress fast path says `Allow: POST`.
            "--deselect=tests/test_ingress.py::test_other_methods_are_405_with_allow",
        ],
        env=_env(ALL_SLOW),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
