"""Transforms end to end: what a Kafka consumer and a verifying webhook receiver get."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jmespath
import pytest
from cloudevents.v1.kafka import KafkaMessage, from_binary

from gateway.broker import Broker
from gateway.config import parse_config
from gateway.destinations.worker import DeliveryWorkers
from tests.conftest import Keys
from tests.delivery_helpers import kafka_section
from tests.destinations.receiver import Receiver, new_secret
from tests.integration.test_delivery import ingest_one, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SLIM = (
    "{order: subject, amount: data.fiat.amount, currency: data.fiat.currency,"
    " status: data.status, raw_status: data.provider_status, first: data.payload.order.id}"
)
# Not on the closure fast path: jmespath's interpreter, with a function and a filter.
LEDGER = "{kind: data.kind, keys: sort(keys(data)), big: data.fiat.amount != '0'}"
ENVELOPE = ("specversion", "id", "source", "type", "subject", "time", "provider", "partitionkey")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A verifying receiver on 127.0.0.1."""
    instance = Receiver([new_secret()])
    await instance.start()
    yield instance
    await instance.stop()


def config_text(bootstrap: str, receiver: Receiver, whitepay_secret: str) -> tuple[str, str]:
    """A config whose orders go untransformed to one topic and transformed to three places."""
    s = uuid.uuid4().hex[:10]
    text = (
        kafka_section(bootstrap, s)
        + f"""\
sources:
  whitepay: {{provider: whitepay, secret: {whitepay_secret}}}
destinations:
  full:
    kafka: {{topic: full-{s}}}
  slim:
    kafka: {{topic: slim-{s}}}
    transform: {json.dumps(SLIM)}
  slimbin:
    kafka: {{topic: slimbin-{s}, mode: binary, key: data.id}}
    transform: {json.dumps(SLIM)}
  ledger:
    webhook:
      url: {receiver.url}/ledger
      secret: {json.dumps(receiver.secrets)}
      backoff: {{initial: 10ms, max: 50ms}}
      headers: {{X-Team: payments}}
    transform: {json.dumps(LEDGER)}
routes:
  - name: everything
    match: {{provider: whitepay}}
    to: [full]
  - name: reshaped
    match: {{provider: whitepay}}
    to: [slim, slimbin, ledger]
    omit: [data.provider_status]
"""
    )
    return text, s


async def test_transformed_records_and_webhook_equal_jmespath_of_the_event(
    broker: Broker, receiver: Receiver, keys: Keys, running: list[DeliveryWorkers]
) -> None:
    """Each destination's `data` is jmespath.search(expr, event after omit); the envelope stays."""
    text, s = config_text(broker.bootstrap, receiver, keys.whitepay)
    config = parse_config(text)
    event_id = await ingest_one(config, running, keys)

    [full] = await read_topic(broker.bootstrap, f"full-{s}", 1)
    event: dict[str, Any] = json.loads(full.value)
    assert event["id"] == event_id and event["data"]["provider_status"] is not None
    omitted = json.loads(full.value)
    del omitted["data"]["provider_status"]  # the `reshaped` route's omit comes first

    [slim] = await read_topic(broker.bootstrap, f"slim-{s}", 1)
    shaped = json.loads(slim.value)
    assert shaped["data"] == jmespath.search(SLIM, omitted)
    assert shaped["data"]["raw_status"] is None and shaped["data"]["order"] == event["subject"]
    assert {k: shaped[k] for k in ENVELOPE} == {k: event[k] for k in ENVELOPE}
    assert slim.key == full.key == event["partitionkey"].encode()

    [binary] = await read_topic(broker.bootstrap, f"slimbin-{s}", 1)
    message = KafkaMessage(headers=dict(binary.headers), key=binary.key, value=binary.value)
    ce = from_binary(message)
    assert ce.data == jmespath.search(SLIM, omitted)
    assert ce["id"] == event_id and ce["type"] == event["type"]
    # `key: data.id` reads the event before its transform (the transform has no `id`).
    assert binary.key == event["data"]["id"].encode()

    await receiver.wait(lambda: receiver.delivered("/ledger"), 15, "the transformed delivery")
    [got] = receiver.on("/ledger")
    assert got.verified_by == (0,), "standardwebhooks must verify the transformed body"
    delivered = json.loads(got.body)
    assert delivered["data"] == jmespath.search(LEDGER, omitted)
    assert "provider_status" not in delivered["data"]["keys"]
    assert {k: delivered[k] for k in ENVELOPE} == {k: event[k] for k in ENVELOPE}
    assert got.event_id == event_id
    print(f"\nslim data: {shaped['data']}\nledger data: {delivered['data']}")
