"""Optional OpenTelemetry tracing: spans per webhook and delivery, trace context carried along."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import tracing
from gateway.app import create_app
from gateway.broker import Broker
from gateway.config import load_config
from gateway.tracing import TracingConfig
from tests.conftest import Keys, write_config
from tests.ingress_helpers import sample, signed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

UPSTREAM_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM = f"00-{UPSTREAM_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real HTTP receiver on 127.0.0.1 recording request headers."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    server.shutdown()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing installed with an in-memory exporter (the app's own set-up is then a no-op)."""
    exporter = InMemorySpanExporter()
    tracing.setup(TracingConfig(enabled=True), exporter=exporter)
    yield exporter
    tracing.shutdown()


def test_tracing_off_is_a_no_op() -> None:
    """With tracing off nothing is installed and no traceparent is produced."""
    tracing.setup(TracingConfig(enabled=False))
    assert not tracing.enabled()
    with tracing.span("x", {}) as span:
        assert span is None
        assert tracing.traceparent() is None


async def test_trace_context_reaches_kafka_and_the_webhook_receiver(
    tmp_path: Path,
    keys: Keys,
    broker: Broker,
    receiver: tuple[str, list[dict[str, str]]],
    spans: InMemorySpanExporter,
) -> None:
    """The webhook span continues an incoming traceparent; Kafka records and the outbound webhook carry it."""
    url, seen = receiver
    topic = f"traced-{uuid.uuid4().hex[:8]}"
    config = write_config(
        tmp_path,
        keys,
        bootstrap=broker.bootstrap,
        destinations=f"orders:\n  kafka: {{topic: {topic}}}\nother:\n  kafka: {{topic: {topic}-o}}\nhook:\n"
        f"  webhook: {{url: '{url}', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}}\n",
        routes="- name: orders\n  match: {type: 'order.*'}\n  to: [orders, hook]\n",
        extra="tracing:\n  enabled: true\n",
    )
    text = config.read_text().replace(
        "  topic_partitions: 2\n",
        f"  topic_partitions: 2\n"
        f"  delivery_topic: deliveries-{topic}\n  dead_letter_topic: dead-{topic}\n  consumer_group: g-{topic}\n",
    )
    config.write_text(text)
    app = create_app(load_config(config))
    async with AsyncTestClient(app=app) as client:
        # Ready to accept, and the in-process delivery workers joined their consumer group
        # (tansu can take tens of seconds to settle a group on a loaded machine).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = app.state.get("workers")
            if (await client.get("/readyz")).status_code == 200 and workers and workers.ready:
                break
            await asyncio.sleep(0.2)
        headers, body = signed("whitepay", sample("whitepay", "order-declined.json"), keys)
        response = await client.post(
            "/webhooks/whitepay", content=body, headers={**headers, "traceparent": UPSTREAM}
        )
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    assert seen, "the webhook never reached the receiver"
    assert seen[0]["traceparent"].split("-")[1] == UPSTREAM_TRACE

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    records = [r for rs in batch.values() for r in rs]
    assert records
    assert dict(records[0].headers)["traceparent"].decode().split("-")[1] == UPSTREAM_TRACE

    exported = spans.get_finished_spans()
    by_name = {s.name: s for s in exported}
    assert {"webhook", "webhook.delivery"} <= set(by_name), [s.name for s in exported]
    webhook, delivery = by_name["webhook"], by_name["webhook.delivery"]
    assert f"{webhook.context.trace_id:032x}" == UPSTREAM_TRACE
    assert f"{delivery.context.trace_id:032x}" == UPSTREAM_TRACE
    assert delivery.parent is not None and delivery.parent.span_id == webhook.context.span_id
    assert webhook.attributes["gateway.source"] == "whitepay"
    assert webhook.attributes["http.response.status_code"] == 200
    assert delivery.attributes["gateway.verdict"] == "success"
