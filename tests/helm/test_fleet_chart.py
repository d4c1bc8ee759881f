"""The chart for a fleet: multi-process metrics with `serve.workers > 1`, the spool runbook."""

from __future__ import annotations

import pytest

from tests.helm.support import ALL_ON, ALL_ON_SPOOL, Doc, Helm
from tests.helm.test_chart import main_container, notes, workload

pytestmark = pytest.mark.helm


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_several_workers_share_metrics_through_an_emptydir(helm: Helm) -> None:
    """serve.workers=2: PROMETHEUS_MULTIPROC_DIR on an emptyDir mounted in the serve container only."""
    docs = helm.template(ALL_ON, extra=["--set", "serve.workers=2"])
    serve = main_container(docs, "serve")
    directory = _env(serve)["PROMETHEUS_MULTIPROC_DIR"]
    mounts = {m["name"]: m["mountPath"] for m in serve["volumeMounts"]}
    assert mounts["metrics-multiproc"] == directory
    volumes = {v["name"]: v for v in workload(docs, "serve")["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["metrics-multiproc"]
    worker = main_container(docs, "worker")  # one process: no shared directory to write to
    assert "PROMETHEUS_MULTIPROC_DIR" not in _env(worker)


def test_one_worker_process_needs_no_multiprocess_metrics(helm: Helm) -> None:
    """serve.workers=1 (the default): no PROMETHEUS_MULTIPROC_DIR and no extra volume."""
    docs = helm.template()
    serve = main_container(docs, "serve")
    assert "PROMETHEUS_MULTIPROC_DIR" not in _env(serve)
    assert "metrics-multiproc" not in {m["name"] for m in serve["volumeMounts"]}


def test_notes_carry_the_spool_scale_down_runbook(helm: Helm, fake_apiserver: str) -> None:
    """With the spool on, NOTES say readiness holds while it has room and how to drain a left claim."""
    text = notes(helm, fake_apiserver, ALL_ON, ALL_ON_SPOOL)
    assert "a broker outage keeps the pods ready" in text
    assert "Scale-down runbook" in text
    assert "gateway spool drain --path /var/lib/gateway/spool/spool.db --config" in text
    assert "logs `spool_shutdown`" in text
    many = notes(helm, fake_apiserver, extra=("--set", "serve.workers=3"))
    assert "serve pods run 3 worker processes; PROMETHEUS_MULTIPROC_DIR" in many
    assert "PROMETHEUS_MULTIPROC_DIR" not in notes(helm, fake_apiserver)
