"""Records on the delivery and dead-letter topics (the durable outbound-webhook queue)."""

from __future__ import annotations

import msgspec


class DeliveryTask(msgspec.Struct, frozen=True, kw_only=True):
    """One outbound webhook delivery to make: produced by the ingress, consumed by workers.

    `body` is the exact JSON that will be POSTed (the CloudEvent after the route's `omit`),
    kept raw so every attempt signs and sends the same bytes.
    """

    destination: str
    event_id: str
    enqueued_at: float
    body: msgspec.Raw
    attempt: int = 0  # attempts already made (a re-queued retry carries its count)
    not_before: float = 0.0  # unix time before which the next attempt must not start
    replayed: bool = False
    traceparent: str | None = None  # W3C trace context of the webhook that produced it


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery that exhausted its attempts or failed permanently."""

    destination: str
    event_id: str
    enqueued_at: float
    failed_at: float
    attempts: int
    last_status: int | None
    last_error: str
    body: msgspec.Raw


TASK_DECODER = msgspec.json.Decoder(DeliveryTask)
DEAD_LETTER_DECODER = msgspec.json.Decoder(DeadLetter)
ENCODER = msgspec.json.Encoder()


def task_key(destination: str, partitionkey: str | None) -> bytes:
    """Queue key: deliveries of one object to one destination stay on one partition, in order."""
    return f"{destination}\x1f{partitionkey or ''}".encode()
