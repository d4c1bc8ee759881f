"""End to end against a real broker: what a Kafka consumer reads after a provider's webhook."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from cloudevents.v1.kafka import KafkaMessage, from_binary, from_structured
from httpx import Response
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.broker import Broker, free_port, tansu_binary
from gateway.config import load_config
from tests.conftest import Keys, write_config
from tests.ingress_helpers import REPRESENTATIVE, sample, signed, with_field

pytestmark = pytest.mark.integration


async def consume(bootstrap: str, topic: str, expected: int, seconds: float = 10.0) -> list[Any]:
    """Read `topic` from the beginning until `expected` records arrived or time ran out."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(records) < expected:
            batch = await consumer.getmany(timeout_ms=300)
            for items in batch.values():
                records.extend(items)
        # Linger a little so that an unexpected extra record would be seen too.
        extra = await consumer.getmany(timeout_ms=700)
        for items in extra.values():
            records.extend(items)
    finally:
        await consumer.stop()
    return records


async def ready(client: AsyncTestClient, seconds: float = 15.0) -> None:
    """Wait until the gateway's producer is connected."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("gateway never became ready")


@pytest.fixture
async def gateway(
    tmp_path: Path, keys: Keys, broker: Broker
) -> AsyncIterator[tuple[AsyncTestClient, str]]:
    """A gateway on the session broker; yields the client and this test's topic suffix."""
    suffix = uuid.uuid4().hex[:8]
    config = load_config(
        write_config(tmp_path, keys, bootstrap=broker.bootstrap, topic_suffix=suffix)
    )
    async with AsyncTestClient(app=create_app(config, run_workers=False)) as client:
        await ready(client)
        yield client, suffix


async def only_record(
    client: AsyncTestClient, broker: Broker, keys: Keys, provider: str, name: str, topic: str
) -> tuple[Response, Any]:
    """POST the signed sample `name` of `provider`: a 200, then exactly one record on `topic`."""
    headers, body = signed(provider, sample(provider, name), keys)
    response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    records = await consume(broker.bootstrap, topic, 1)
    assert len(records) == 1
    return response, records[0]


def _message(record: Any) -> KafkaMessage:
    return KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)


@pytest.mark.parametrize("provider", list(REPRESENTATIVE))
async def test_order_event_reaches_topic_as_structured_cloudevent(
    gateway: tuple[AsyncTestClient, str], broker: Broker, keys: Keys, provider: str
) -> None:
    """An accepted order webhook is one structured CloudEvent on the topic, keyed by subject."""
    client, suffix = gateway
    name, _ = REPRESENTATIVE[provider]
    response, record = await only_record(client, broker, keys, provider, name, f"orders-{suffix}")
    event = from_structured(_message(record))
    assert event["source"] == f"/webhooks/{provider}"
    assert event["type"].startswith("order.")
    assert event["provider"] == provider
    assert record.key == event["partitionkey"].encode() == event["subject"].encode()
    headers_seen = dict(record.headers)
    assert headers_seen["content-type"] == b"application/cloudevents+json; charset=UTF-8"
    if provider == "velafi":
        assert response.json() == {"callbackStatus": "SUCCESS"}
    else:
        assert response.json() == {"id": event["id"], "status": "accepted"}
    if provider == "w3block":  # the route omits the live payment secret
        assert "clientSecret" not in record.value.decode()
        assert event.data["payload"]["data"]["paymentInfo"]["publicKey"]


async def test_binary_mode_and_key_path(
    gateway: tuple[AsyncTestClient, str], broker: Broker, keys: Keys
) -> None:
    """A `mode: binary` destination carries data as value and attributes as ce_* headers."""
    client, suffix = gateway
    _, record = await only_record(
        client, broker, keys, "whitepay", "transaction-completed.json", f"moves-{suffix}"
    )
    event = from_binary(_message(record))
    assert event["type"] == "transaction.completed"
    assert event["specversion"] == "1.0"
    data = event.data if isinstance(event.data, dict) else json.loads(event.data)
    assert data["kind"] == "transaction"
    assert record.key == data["id"].encode()  # key: data.id
    assert dict(record.headers)["content-type"] == b"application/json"


async def test_retried_webhook_is_duplicate_and_not_forwarded_again(
    gateway: tuple[AsyncTestClient, str], broker: Broker, keys: Keys
) -> None:
    """The provider's retry of the same event answers `duplicate` and produces no second record."""
    client, suffix = gateway
    headers, body = signed("w3block", sample("w3block", "order-created.json"), keys)
    first = await client.post("/webhooks/w3block", content=body, headers=headers)
    second = await client.post("/webhooks/w3block", content=body, headers=headers)
    assert first.json()["status"] == "accepted"
    assert second.json() == {"id": first.json()["id"], "status": "duplicate"}
    assert len(await consume(broker.bootstrap, f"orders-{suffix}", 2, seconds=3)) == 1


async def test_concurrent_identical_requests_forward_once(
    gateway: tuple[AsyncTestClient, str], broker: Broker, keys: Keys
) -> None:
    """Two identical webhooks arriving together produce one record; one is `duplicate`."""
    client, suffix = gateway
    headers, body = signed("whitepay", sample("whitepay", "order-declined.json"), keys)
    responses = await asyncio.gather(
        *(client.post("/webhooks/whitepay", content=body, headers=headers) for _ in range(2))
    )
    assert sorted(r.json()["status"] for r in responses) == ["accepted", "duplicate"]
    assert len(await consume(broker.bootstrap, f"orders-{suffix}", 2, seconds=3)) == 1


async def test_unmatched_events_go_to_unmatched_destination(
    gateway: tuple[AsyncTestClient, str], broker: Broker, keys: Keys
) -> None:
    """An event no route matches goes to the `unmatched` destinations."""
    client, suffix = gateway
    body = with_field(
        sample("whitepay", "order-declined.json"), ["event_type"], "rollback::to_client"
    )
    headers, payload = signed("whitepay", body, keys)
    response = await client.post("/webhooks/whitepay", content=payload, headers=headers)
    assert response.json()["status"] == "accepted"
    records = await consume(broker.bootstrap, f"other-{suffix}", 1)
    assert [from_structured(_message(r))["type"] for r in records] == ["rollback.unknown"] or len(
        records
    ) == 1


async def test_unrouted_without_unmatched(tmp_path: Path, keys: Keys, broker: Broker) -> None:
    """With no route matching and no `unmatched`, the answer is 200 `unrouted`."""
    config = load_config(
        write_config(
            tmp_path,
            keys,
            bootstrap=broker.bootstrap,
            unmatched="[]",
            routes='- name: nothing\n  match: {type: "nothing.*"}\n  to: [orders]\n',
        )
    )
    async with AsyncTestClient(app=create_app(config, run_workers=False)) as client:
        await ready(client)
        headers, body = signed("whitepay", sample("whitepay", "order-declined.json"), keys)
        response = await client.post("/webhooks/whitepay", content=body, headers=headers)
        assert response.status_code == 200
        assert response.json()["status"] == "unrouted"


async def test_broker_down_answers_503_then_recovers(tmp_path: Path, keys: Keys) -> None:
    """With its broker stopped the gateway answers 503 (never 200) and recovers when it is back."""
    own = Broker(tansu_binary(), free_port(), log_path=str(tmp_path / "tansu.log"))
    own.start()
    try:
        config = load_config(
            write_config(
                tmp_path,
                keys,
                bootstrap=own.bootstrap,
                server="handoff_timeout: 2s\n  retry_after: 3s",
            )
        )
        async with AsyncTestClient(app=create_app(config, run_workers=False)) as client:
            await ready(client)
            body = sample("whitepay", "order-declined.json")
            headers, payload = signed("whitepay", body, keys)
            assert (
                await client.post("/webhooks/whitepay", content=payload, headers=headers)
            ).status_code == 200

            own.stop()
            down = with_field(body, ["order", "id"], "order-while-down")
            headers, payload = signed("whitepay", down, keys)
            during = await client.post("/webhooks/whitepay", content=payload, headers=headers)
            assert during.status_code == 503
            assert during.headers["retry-after"] == "3"

            own.start()
            deadline = time.monotonic() + 30
            status = 0
            while time.monotonic() < deadline:
                again = await client.post("/webhooks/whitepay", content=payload, headers=headers)
                status = again.status_code
                if status == 200:
                    break
                assert status == 503
                await asyncio.sleep(0.5)
            assert status == 200, "the gateway did not recover after the broker came back"
            # The event that got a 503 was not remembered as seen: its retry was accepted.
            assert again.json()["status"] == "accepted"
    finally:
        own.stop()


async def test_keys_land_where_the_java_client_puts_them(
    gateway: tuple[AsyncTestClient, str], broker: Broker, keys: Keys
) -> None:
    """Each record's partition is murmur2(key) mod partitions, as every Kafka client computes it."""
    from gateway.destinations.kafka import murmur2

    client, suffix = gateway
    name, id_path = REPRESENTATIVE["whitepay"]
    for i in range(12):
        body = with_field(sample("whitepay", name), id_path, f"order-{suffix}-{i}")
        headers, payload = signed("whitepay", body, keys)
        response = await client.post("/webhooks/whitepay", content=payload, headers=headers)
        assert response.status_code == 200, response.text
    records = await consume(broker.bootstrap, f"orders-{suffix}", 12)
    assert len(records) == 12
    assert len({r.partition for r in records}) > 1  # the test means something: several partitions
    for record in records:
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % 2, record.key
