"""Hostile input at the HTTP edge: nothing forged gets through, nothing malformed causes a 5xx."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import load_config
from tests.conftest import Keys, write_config
from tests.ingress_helpers import REPRESENTATIVE, sample, signed, with_field

PROVIDERS = list(REPRESENTATIVE)
SIGNATURE_HEADERS = {
    "fatpay": ["x-fp-signature", "x-fp-partner-id", "x-fp-nonce", "x-fp-timestamp", "x-fp-version"],
    "velafi": ["signature"],
    "pay3": [],
    "whitepay": ["signature"],
    "w3block": ["x-w3block-commerce-signature"],
}


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    """A config whose broker is unreachable: an accepted request would surface as 503, not 200."""
    return write_config(
        tmp_path_factory.mktemp("hostile"),
        keys,
        server="handoff_timeout: 200ms\n  max_body_bytes: 65536",
    )


@pytest.fixture
async def client(config_path: Path) -> AsyncIterator[AsyncTestClient]:
    """A fresh gateway app per test."""
    async with AsyncTestClient(app=create_app(load_config(config_path), run_workers=False)) as c:
        yield c


def assert_rejected(response: object, allow_503: bool = False) -> None:
    """4xx, never 2xx or 5xx (503 only where a valid signature was expected to pass)."""
    status = response.status_code  # type: ignore[attr-defined]
    assert (status != 500 and status < 503) or (allow_503 and status == 503), (
        status,
        response.text,
    )  # type: ignore[attr-defined]
    assert not 200 <= status < 300, response.text  # type: ignore[attr-defined]
    assert "Traceback" not in response.text  # type: ignore[attr-defined]


header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=600),
    st.binary(max_size=64).map(lambda b: b.hex()),
    st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
    st.just(""),
)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=40),
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=30,
    ).map(lambda v: json.dumps(v).encode()),
)


@pytest.mark.parametrize("provider", PROVIDERS)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=bodies,
    values=st.lists(header_values, min_size=5, max_size=5),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", ""]
    ),
)
async def test_fuzzed_requests_never_pass_or_crash(
    client: AsyncTestClient, provider: str, body: bytes, values: list[str], content_type: str
) -> None:
    """Random bodies and signature headers: always a 4xx, never accepted, never a 5xx."""
    headers = {
        name: value for name, value in zip(SIGNATURE_HEADERS[provider], values, strict=False)
    }
    if content_type:
        headers["content-type"] = content_type
    try:
        response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    except UnicodeEncodeError:
        return  # the HTTP client refuses to send it at all
    assert_rejected(response)


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "fatpay"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_any_single_byte_change_of_a_signed_body_is_rejected(
    client: AsyncTestClient, keys: Keys, provider: str, data: st.DataObject
) -> None:
    """Flip any byte of a correctly signed body: 401 or 400, never accepted."""
    name, _ = REPRESENTATIVE[provider]
    headers, body = signed(provider, sample(provider, name), keys)
    index = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    mutated = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    assert_rejected(await client.post(f"/webhooks/{provider}", content=mutated, headers=headers))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_fatpay_any_signed_header_change_is_rejected(
    client: AsyncTestClient, keys: Keys, data: st.DataObject
) -> None:
    """FaTPay signs headers, not the body: changing any signed header value is a 401."""
    headers, body = signed("fatpay", sample("fatpay", "order-finished.json"), keys)
    name = data.draw(
        st.sampled_from(["x-fp-partner-id", "x-fp-nonce", "x-fp-timestamp", "x-fp-signature"])
    )
    value = headers[name]
    replacement = data.draw(
        st.text(alphabet="0123456789abcdefABCDEF+/=", min_size=1, max_size=len(value) + 2).filter(
            lambda v: v != value
        )
    )
    headers[name] = replacement
    assert_rejected(await client.post("/webhooks/fatpay", content=body, headers=headers))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jws(header: dict, claims: bytes, key: bytes, digest: str | None) -> str:  # type: ignore[type-arg]
    signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(claims)
    signature = b"" if digest is None else hmac.new(key, signing_input.encode(), digest).digest()
    return signing_input + "." + _b64url(signature)


@pytest.mark.parametrize(
    "header,digest,key_kind",
    [
        ({"alg": "none"}, None, "secret"),
        ({"alg": "HS256"}, "sha256", "secret"),
        ({"alg": "HS512"}, "sha512", "secret"),
        (
            {"alg": "RS256"},
            "sha256",
            "public_pem",
        ),  # HS/RS confusion: public key used as HMAC secret
        ({"alg": "HS384"}, "sha384", "public_pem"),
        ({"alg": "HS384", "crit": ["exp"]}, "sha384", "secret"),
    ],
    ids=["alg-none", "hs256", "hs512", "rs256-confusion", "hs384-with-public-key", "crit"],
)
async def test_pay3_algorithm_attacks(
    client: AsyncTestClient, keys: Keys, header: dict, digest: str | None, key_kind: str
) -> None:  # type: ignore[type-arg]
    """pay3 tokens with alg none, other HS sizes, RS/HS confusion or crit are 401."""
    claims = sample("pay3", "claims-nested.json")
    key = keys.pay3.encode() if key_kind == "secret" else keys.fatpay.public_pem.encode()
    body = json.dumps({"payload": _jws(header, claims, key, digest)}).encode()
    response = await client.post(
        "/webhooks/pay3", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("signature", ["", "00", "ab" * 5000, "v1,abc", "=" * 64, "\u00e9" * 10])
@pytest.mark.parametrize("provider", ["whitepay", "w3block", "velafi"])
async def test_empty_and_huge_signatures(
    client: AsyncTestClient, keys: Keys, provider: str, signature: str
) -> None:
    """Empty, tiny, huge and non-ASCII signature headers are 401 (never 5xx)."""
    headers, body = signed(provider, sample(provider, REPRESENTATIVE[provider][0]), keys)
    headers = {k: v for k, v in headers.items() if k.lower() == "content-type"}
    headers[SIGNATURE_HEADERS[provider][0]] = signature
    try:
        response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    except UnicodeEncodeError:
        return
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("provider", ["whitepay", "w3block", "velafi", "pay3", "fatpay"])
async def test_duplicate_keys_with_valid_signature_are_400(
    client: AsyncTestClient, keys: Keys, provider: str
) -> None:
    """A correctly signed body with a duplicate key is refused (parser differential), with 400."""
    name, id_path = REPRESENTATIVE[provider]
    text = sample(provider, name).decode()
    key = id_path[-1]
    # Insert a second occurrence of the id key right after the first one's object opens.
    raw = json.loads(text)
    target = raw
    for part in id_path[:-1]:
        target = target[part]
    inner = json.dumps(target)
    duplicated = inner.replace("{", '{"' + key + '": "shadow-id", ', 1)
    body = json.dumps(raw).replace(inner, duplicated).encode()
    assert body.count(f'"{key}"'.encode()) >= 2
    headers, payload = signed(provider, body, keys)
    response = await client.post(f"/webhooks/{provider}", content=payload, headers=headers)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("provider", ["whitepay", "w3block", "velafi", "fatpay"])
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 30_000 + b"]" * 30_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"order": "\xc0\xaf"}',  # overlong encoding of "/"
        b'{"order": "\xed\xa0\x80"}',  # encoded surrogate
        b'{"order": "\xff"}',
        b"\xef\xbb\xbf{}",  # BOM
        b"",
        b"null",
        b'{"order": "\\ud800"}',  # an escaped lone surrogate (a pair is fine)
        b'{"order": {"id": NaN}}',
        b'{"order": {"id": "x"}} trailing',
        b'{"order": {"a": 1, "b": {"c": 1, "c": 2}}}',  # a duplicate deep down
    ],
    ids=[
        "deep-array",
        "deep-object",
        "overlong",
        "surrogate",
        "invalid-utf8",
        "bom",
        "empty",
        "null",
        "lone-surrogate-escape",
        "nan",
        "trailing-data",
        "nested-duplicate",
    ],
)
async def test_malformed_bodies_with_valid_signature_are_400(
    client: AsyncTestClient, keys: Keys, provider: str, body: bytes
) -> None:
    """Deeply nested JSON, invalid UTF-8 and overlong encodings, correctly signed: 400, never 5xx."""
    headers, payload = signed(provider, body, keys)
    response = await client.post(f"/webhooks/{provider}", content=payload, headers=headers)
    assert response.status_code == 400, (response.status_code, response.text[:200])


async def test_fatpay_timestamp_window_boundaries_and_nonce_replay(
    client: AsyncTestClient, keys: Keys
) -> None:
    """FaTPay: just inside the 5-minute window passes; just outside fails; a replayed nonce fails."""
    body = sample("fatpay", "order-finished.json")
    now = time.time()
    inside_past, _ = signed("fatpay", body, keys, now=now - 290)
    inside_future, _ = signed("fatpay", body, keys, now=now + 290)
    outside_past, _ = signed("fatpay", body, keys, now=now - 310)
    outside_future, _ = signed("fatpay", body, keys, now=now + 310)
    for headers in (outside_past, outside_future):
        assert (
            await client.post("/webhooks/fatpay", content=body, headers=headers)
        ).status_code == 401
    for headers in (inside_past, inside_future):  # valid: only the broker is missing
        assert (
            await client.post("/webhooks/fatpay", content=body, headers=headers)
        ).status_code == 503
    replay = await client.post("/webhooks/fatpay", content=body, headers=inside_past)
    assert replay.status_code == 401


async def test_fatpay_wrong_partner_id(client: AsyncTestClient, keys: Keys) -> None:
    """A validly signed FaTPay request for another partner id is 401."""
    from gateway.providers import fatpay
    from tests.conftest import FATPAY_URL

    headers, body = fatpay.sign(
        keys.fatpay.private_pem,
        sample("fatpay", "order-finished.json"),
        time.time(),
        url=FATPAY_URL,
        partner_id="someone-else",
    )
    assert (await client.post("/webhooks/fatpay", content=body, headers=headers)).status_code == 401


async def test_whitepay_body_with_other_order_is_not_accepted_with_old_signature(
    client: AsyncTestClient, keys: Keys
) -> None:
    """A signature over one order does not authenticate another order's body."""
    headers, _ = signed("whitepay", sample("whitepay", "order-declined.json"), keys)
    other = with_field(sample("whitepay", "order-declined.json"), ["order", "value"], "999999")
    assert (
        await client.post("/webhooks/whitepay", content=other, headers=headers)
    ).status_code == 401


def test_hmac_helper_is_real() -> None:
    """Sanity: the JWS helper above produces a verifiable HS384 signature."""
    token = _jws({"alg": "HS384"}, b"{}", b"k", "sha384")
    head, claims, sig = token.split(".")
    expected = hmac.new(b"k", f"{head}.{claims}".encode(), hashlib.sha384).digest()
    assert base64.urlsafe_b64decode(sig + "==") == expected
