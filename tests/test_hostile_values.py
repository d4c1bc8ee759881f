"""Signed bodies with hostile values: every answer is a 200 or a 4xx, never a 5xx (issue 14)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import load_config
from gateway.errors import PayloadError
from gateway.event import rfc3339
from gateway.pipeline import Pipeline
from gateway.providers import w3block
from tests.conftest import Keys, write_config
from tests.ingress_helpers import REPRESENTATIVE, sample, signed

# Every field each provider reads, as a path into its representative sample.
FIELDS: dict[str, list[tuple[str, ...]]] = {
    "fatpay": [
        ("order", name)
        for name in (
            "orderId",
            "orderStatus",
            "payTime",
            "deliverTime",
            "finishTime",
            "fiatCurrency",
            "currencyAmount",
            "cryptoCurrency",
            "cryptoCurrencyCode",
            "cryptoCurrencyAmount",
        )
    ],
    "velafi": [
        (name,)
        for name in (
            "eventType",
            "orderId",
            "merchantId",
            "orderType",
            "fiat",
            "fiatAmount",
            "orderAmount",
            "crypto",
            "cryptoAmount",
            "quantity",
            "orderStatus",
            "status",
            "createTime",
            "updateTime",
        )
    ],
    "pay3": [
        ("requestId",),
        ("type",),
        ("data",),
        ("data", "orderId"),
        ("data", "orderStatus"),
        ("data", "orderType"),
        ("data", "paymentStatus"),
        ("data", "error"),
    ],
    "whitepay": [("event_type",), ("order",)]
    + [
        ("order", name)
        for name in (
            "id",
            "currency",
            "value",
            "status",
            "external_order_id",
            "created_at",
            "completed_at",
            "received_total",
            "received_currency",
            "is_internal",
        )
    ],
    "w3block": [("event",), ("timestamp",), ("data",)]
    + [("data", name) for name in ("id", "status", "currencyId", "currencyAmount", "updatedAt")],
}

# Number spellings json.dumps cannot write: they go into the body as raw JSON text.
RAW_NUMBERS = [
    "1e999999999",
    "-1e999999999",
    "1e-999999999",
    "9" * 4300,
    "-" + "9" * 400,
    "1" + "0" * 30,
    "-0",
    "0.000000000000000000000000000000000000000000001",
    "253402300800000",
    "1E308",
    "4.9e-324",
]
HOSTILE_STRINGS = [
    "9" * 5000,
    "1e999999999",
    "-1e999999999",
    "NaN",
    "-Infinity",
    "Infinity",
    "\u0661\u0662\u0663",
    "1_000",
    " 12 ",
    "0x1F",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31 23:59:59",
    "2024-02-30T00:00:00Z",
    "",
    "null",
]


class RawNumber(str):
    """A JSON number written into the body exactly as spelled."""


extreme = st.one_of(st.sampled_from(RAW_NUMBERS).map(RawNumber), st.sampled_from(HOSTILE_STRINGS))
hostile = st.one_of(
    extreme,
    extreme,  # twice: half of all values are the extremes the review found
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    ),
)


def dumps(doc: Any) -> bytes:
    """JSON with `RawNumber`s spliced in verbatim."""
    raws: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, RawNumber):
            raws.append(str(value))
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(doc))
    text = re.sub(r'"\\u0000raw(\d+)\\u0000"', lambda m: raws[int(m.group(1))], text)
    return text.encode()


def set_path(doc: Any, path: tuple[str, ...], value: Any) -> None:
    """Put `value` at `path` (creating objects on the way; replacing non-objects)."""
    target = doc
    for part in path[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[path[-1]] = value


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    """No routes and no `unmatched`: an accepted event answers 200 `unrouted`, no broker needed."""
    return write_config(
        tmp_path_factory.mktemp("values"),
        keys,
        server="handoff_timeout: 200ms",
        routes="[]",
        unmatched="[]",
    )


@pytest.fixture
async def client(config_path: Path) -> AsyncIterator[AsyncTestClient]:
    """A fresh gateway app per test."""
    async with AsyncTestClient(app=create_app(load_config(config_path), run_workers=False)) as c:
        yield c


@pytest.mark.parametrize("provider", list(FIELDS))
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_any_signed_values_in_read_fields_answer_200_or_4xx(
    client: AsyncTestClient, keys: Keys, provider: str, data: st.DataObject
) -> None:
    """Arbitrary (and extreme) JSON values, correctly signed, in the fields a provider reads."""
    doc = json.loads(sample(provider, REPRESENTATIVE[provider][0]))
    fields = data.draw(st.lists(st.sampled_from(FIELDS[provider]), min_size=1, max_size=4))
    for path in fields:
        set_path(doc, path, data.draw(hostile))
    headers, body = signed(provider, dumps(doc), keys)
    response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code == 200 or 400 <= response.status_code < 500, (
        response.status_code,
        response.text,
    )
    assert "Traceback" not in response.text


# --- the documented answers ----------------------------------------------------------------

NOW = time.time()
RECEIVED = rfc3339(datetime.fromtimestamp(NOW, tz=UTC))

# (provider, path, raw JSON of the value): a time nobody can represent -> the receive time.
EXTREME_TIMES = [
    (p, path, raw)
    for p, path in [
        ("fatpay", ("order", "finishTime")),
        ("velafi", ("updateTime",)),
        ("w3block", ("timestamp",)),
    ]
    for raw in ['"' + "9" * 5000 + '"', '"1e999999999"', '"-1e999999999"', "9" * 400, '"NaN"']
] + [
    ("whitepay", ("order", "completed_at"), '"9999-12-31T23:59:59-23:59"'),
    ("whitepay", ("order", "completed_at"), '"0001-01-01T00:00:00+23:59"'),
    ("whitepay", ("order", "completed_at"), '"' + "2" * 5000 + '"'),
]

# (provider, path, raw JSON of the value): an amount that is not a bounded finite decimal.
BAD_AMOUNTS = [
    (p, path, raw)
    for p, path in [
        ("fatpay", ("order", "currencyAmount")),
        ("fatpay", ("order", "cryptoCurrencyAmount")),
        ("velafi", ("fiatAmount",)),
        ("velafi", ("cryptoAmount",)),
        ("whitepay", ("order", "value")),
        ("whitepay", ("order", "received_total")),
        ("w3block", ("data", "currencyAmount")),
    ]
    for raw in ['"NaN"', '"Infinity"', '"-Infinity"', "1e999999999", '"1e999999999"', "9" * 3000]
]


def pipeline(config_path: Path) -> Pipeline:
    """The pipeline of the test config (verify, decode, normalize are pure: no broker)."""

    class _NoSender:
        async def send(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("nothing is sent here")

    return Pipeline(load_config(config_path), _NoSender())


def body_with(provider: str, path: tuple[str, ...], raw: str) -> bytes:
    """The representative sample with the raw JSON `raw` at `path`."""
    doc = json.loads(sample(provider, REPRESENTATIVE[provider][0]))
    if provider == "fatpay":  # the other times would stand in for finishTime
        for name in ("payTime", "deliverTime"):
            doc["order"].pop(name, None)
    if provider == "velafi":
        doc.pop("createTime", None)
    set_path(doc, path, RawNumber(raw))
    return dumps(doc)


@pytest.mark.parametrize(("provider", "path", "raw"), EXTREME_TIMES)
async def test_unrepresentable_times_fall_back_to_the_receive_time(
    client: AsyncTestClient,
    config_path: Path,
    keys: Keys,
    provider: str,
    path: tuple[str, ...],
    raw: str,
) -> None:
    """Huge digit strings, 1e999999999, NaN, years past 9999: accepted, `time` = receive time."""
    headers, body = signed(provider, body_with(provider, path, raw), keys, now=NOW)
    event = pipeline(config_path).event(provider, body, headers, NOW)
    assert event.time == RECEIVED
    response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    if provider == "fatpay":  # the nonce was used by the in-process check above
        headers, body = signed(provider, body_with(provider, path, raw), keys)
        response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("provider", "path", "raw"), BAD_AMOUNTS)
async def test_non_finite_or_absurd_amounts_are_400_naming_the_path(
    client: AsyncTestClient,
    config_path: Path,
    keys: Keys,
    provider: str,
    path: tuple[str, ...],
    raw: str,
) -> None:
    """NaN, Infinity, 1e999999999, thousands of digits: 400 whose detail names the JSON path."""
    headers, body = signed(provider, body_with(provider, path, raw), keys, now=NOW)
    where = "$." + ".".join(path)
    with pytest.raises(PayloadError) as info:
        pipeline(config_path).event(provider, body, headers, NOW)
    assert info.value.path == where
    headers, body = signed(provider, body_with(provider, path, raw), keys)
    response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code == 400, response.text
    if provider != "velafi":  # VelaFi sources answer VelaFi's own `{"callbackStatus": "FAIL"}`
        assert where in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (("data", "error"), '{"code": ' + "9" * 4300 + ', "message": "x"}'),
        (("data", "error"), '{"code": 1e999999999}'),
        (("requestId",), '"' + "9" * 5000 + '"'),
        (("data", "orderId"), "9" * 400),
    ],
)
async def test_pay3_extreme_values_are_never_5xx(
    client: AsyncTestClient, keys: Keys, path: tuple[str, ...], raw: str
) -> None:
    """pay3 reads no times or amounts; extreme values where it reads any are 200 or 400."""
    headers, body = signed("pay3", body_with("pay3", path, raw), keys)
    response = await client.post("/webhooks/pay3", content=body, headers=headers)
    assert response.status_code in (200, 400), response.text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"200.50"', "200.50"),
        ("150.25", "150.25"),
        ('"1e3"', "1e3"),
        ('"' + "9" * 40 + '"', "9" * 40),
        ('"0.' + "0" * 39 + '1"', "0." + "0" * 39 + "1"),
    ],
)
def test_bounded_amounts_keep_their_spelling(value: str, expected: str) -> None:
    """Up to 40 integer and 40 fraction digits: accepted, written as the provider spelled it."""
    body = body_with("w3block", ("data", "currencyAmount"), value)
    event = w3block.normalize(w3block.decode(body), "w3block", datetime.now(UTC))
    assert event.data.fiat is not None and event.data.fiat.amount == expected
