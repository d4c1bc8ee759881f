"""The pipeline's use of the state store: nonces after verification, two-phase dedupe."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.broker import Broker
from gateway.config import load_config
from gateway.pipeline import Pipeline
from gateway.state import RedisStore
from tests import faults
from tests.conftest import Keys, write_config
from tests.faults import wait_ready
from tests.ingress_helpers import sample, signed, with_field
from tests.integration.test_kafka_ingress import consume, ready
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration


def fatpay_body(order: str) -> bytes:
    """A FaTPay order webhook body for order id `order`."""
    return with_field(sample("fatpay", "order-finished.json"), ["order", "orderId"], order)


async def test_nonce_is_claimed_only_by_an_accepted_request(
    tmp_path: Path, keys: Keys, broker: Broker
) -> None:
    """A reused FaTPay nonce is 401 whatever the body; a request refused for its body
    (400) does not burn the nonce, so the genuine request with it still goes through."""
    config = load_config(write_config(tmp_path, keys, bootstrap=broker.bootstrap))
    async with AsyncTestClient(app=create_app(config, run_workers=False)) as client:
        await ready(client)
        body = fatpay_body(uuid.uuid4().hex)
        headers, _ = signed("fatpay", body, keys)
        bad = await client.post("/webhooks/fatpay", content=b'{"order": 1}', headers=headers)
        assert bad.status_code == 400
        first = await client.post("/webhooks/fatpay", content=body, headers=headers)
        assert first.status_code == 200 and first.json()["status"] == "accepted"
        for replay in (body, fatpay_body(uuid.uuid4().hex)):
            again = await client.post("/webhooks/fatpay", content=replay, headers=headers)
            assert again.status_code == 401, again.text


@pytest.mark.parametrize("first_outcome", ["released", "confirmed"])
async def test_waiting_copy_follows_the_first_copys_outcome(
    tmp_path: Path, keys: Keys, broker: Broker, redis_server: RedisServer, first_outcome: str
) -> None:
    """A copy that finds another replica's claim waits for it: if that copy's hand-off
    failed (claim released) it hands the event off itself; if it succeeded (confirmed)
    it answers duplicate and forwards nothing."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    state = f"state: {{backend: redis, url: '{redis_server.url}', key_prefix: '{prefix}'}}"
    suffix = uuid.uuid4().hex[:8]
    config_path = write_config(
        tmp_path, keys, bootstrap=broker.bootstrap, extra=state, topic_suffix=suffix
    )
    config = load_config(config_path)
    body = with_field(sample("whitepay", "order-declined.json"), ["order", "id"], uuid.uuid4().hex)
    headers, body = signed("whitepay", body, keys)
    # The other replica, holding the claim on this event's id mid-hand-off.
    other = RedisStore.from_config(config.state)
    event = Pipeline(config, sender=_Unused()).event("whitepay", body, headers, time.time())
    key = f"{prefix}dedupe:{event.id}"
    assert await other.claim(key, 30) == "claimed"
    served = faults.serve(config_path, tmp_path / "gateway.log")
    try:
        wait_ready(served.url)
        async with httpx.AsyncClient(timeout=30) as client:
            copy = asyncio.create_task(
                client.post(f"{served.url}/webhooks/whitepay", content=body, headers=headers)
            )
            await asyncio.sleep(0.5)  # the copy polls the claim; it must still be waiting
            assert not copy.done(), copy.result().text
            if first_outcome == "released":
                await other.release(key)
            else:
                await other.confirm(key, 60)
            answer = await asyncio.wait_for(copy, 30)
    finally:
        await other.close()
        served.stop()
    records = await consume(broker.bootstrap, f"orders-{suffix}", 2, seconds=3)
    if first_outcome == "released":
        assert answer.json()["status"] == "accepted", answer.text
        assert len(records) == 1
    else:
        assert answer.json() == {"id": event.id, "status": "duplicate"}
        assert records == []


class _Unused:
    async def send(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("only Pipeline.event is used")
