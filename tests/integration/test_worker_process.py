"""`gateway worker --port`: a separate delivery process with health, readiness and metrics."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from gateway.broker import Broker, free_port
from tests.conftest import Keys, write_config
from tests.faults import gateway_process

pytestmark = pytest.mark.integration


def test_worker_process_serves_health_readiness_and_metrics(
    tmp_path: Path, keys: Keys, broker: Broker
) -> None:
    """The worker answers /healthz, turns ready once consuming, exports delivery metrics, stops on SIGTERM."""
    config = write_config(
        tmp_path,
        keys,
        bootstrap=broker.bootstrap,
        server="log_format: json",
        destinations="orders:\n  kafka: {topic: w-orders}\nother:\n  kafka: {topic: w-other}\nhook:\n"
        "  webhook: {url: 'http://127.0.0.1:9/x', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n",
        routes="- name: hooks\n  match: {type: 'order.*'}\n  to: [hook]\n",
        extra="",
    )
    text = config.read_text().replace(
        "  topic_partitions: 2\n",
        "  topic_partitions: 2\n",
    )
    config.write_text(text)
    port = free_port()
    log = tmp_path / "worker.log"
    process = gateway_process("worker", config, log, port, {**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 40
        ready = 0
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code
            except httpx.HTTPError:
                ready = 0
            if ready == 200:
                break
            time.sleep(0.3)
        assert ready == 200, log.read_text()[-2000:]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        body = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert body == {"status": "ready", "kafka": "connected", "workers": "consuming"}
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "gateway_delivery_queue_lag" in metrics and "gateway_build_info" in metrics
        assert httpx.post(
            f"http://127.0.0.1:{port}/webhooks/whitepay", content=b"{}"
        ).status_code in (404, 405)
    finally:
        process.terminate()
        code = process.wait(timeout=40)
    assert code in (0, -15), log.read_text()[-2000:]
