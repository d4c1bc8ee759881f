"""Building signed requests for ingress tests, with each provider's own `sign`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from gateway.providers import registry
from tests.conftest import FATPAY_URL, Keys

SAMPLES = Path(__file__).parent / "samples"


def sample(provider: str, name: str) -> bytes:
    """Bytes of a sample body copied from the providers' docs."""
    return (SAMPLES / provider / name).read_bytes()


def signed(
    provider: str,
    body: bytes,
    keys: Keys,
    *,
    now: float | None = None,
    old_key: bool = False,
) -> tuple[dict[str, str], bytes]:
    """Headers and body the provider would send for `body`, signed with the test keys."""
    module = registry()[provider]
    key: Any = {
        "fatpay": (keys.fatpay_old if old_key else keys.fatpay).private_pem,
        "velafi": (keys.velafi_old if old_key else keys.velafi).private_pem,
        "pay3": keys.pay3_old if old_key else keys.pay3,
        "whitepay": keys.whitepay_old if old_key else keys.whitepay,
        "w3block": keys.w3block_old if old_key else keys.w3block,
    }[provider]
    headers, payload = module.sign(
        key, body, now or time.time(), url=FATPAY_URL, partner_id=keys.partner_id
    )
    return headers, payload


def with_field(body: bytes, path: list[str], value: Any) -> bytes:
    """`body` with one field replaced (for distinct order ids)."""
    doc = json.loads(body)
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return json.dumps(doc).encode()


# One representative sample per provider, and the path of its object id.
REPRESENTATIVE = {
    "fatpay": ("order-finished.json", ["order", "orderId"]),
    "velafi": ("order-webhook-documented-fields.json", ["orderId"]),
    "pay3": ("claims-nested.json", ["data", "orderId"]),
    "whitepay": ("order-declined.json", ["order", "id"]),
    "w3block": ("order-concluded.json", ["data", "id"]),
}
