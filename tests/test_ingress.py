"""HTTP ingress: every rejection of SPEC §2 is the right 4xx, never a 500; no broker needed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import load_config
from tests.conftest import Keys, write_config
from tests.ingress_helpers import REPRESENTATIVE, sample, signed, with_field

PROVIDERS = list(REPRESENTATIVE)


@pytest.fixture
async def client(tmp_path: Path, keys: Keys) -> AsyncIterator[AsyncTestClient]:
    """A gateway whose broker is unreachable: everything before the hand-off is testable."""
    config = load_config(
        write_config(
            tmp_path,
            keys,
            extra="",
            server="handoff_timeout: 1s\n  retry_after: 7s\n  max_body_bytes: 4096",
        )
    )
    async with AsyncTestClient(app=create_app(config, run_workers=False)) as c:
        yield c


def _body(provider: str) -> bytes:
    name, _ = REPRESENTATIVE[provider]
    return sample(provider, name)


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"] and body["detail"]
    return body


async def test_unknown_source_is_404(client: AsyncTestClient) -> None:
    """A source that is not configured answers 404 problem+json."""
    response = await client.post(
        "/webhooks/nope", content=b"{}", headers={"content-type": "application/json"}
    )
    _assert_problem(response, 404)


async def test_unknown_path_is_problem_json(client: AsyncTestClient) -> None:
    """Paths outside the API are problem+json 404s too, and GET on the ingress is 405."""
    _assert_problem(await client.get("/nothing-here"), 404)
    _assert_problem(await client.get("/webhooks/whitepay"), 405)


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "velafi"])
async def test_wrong_content_type_is_415(
    client: AsyncTestClient, keys: Keys, provider: str
) -> None:
    """A signed request that is not application/json answers 415."""
    headers, body = signed(provider, _body(provider), keys)
    headers["content-type"] = "text/plain"
    _assert_problem(await client.post(f"/webhooks/{provider}", content=body, headers=headers), 415)


async def test_json_with_charset_parameter_is_accepted_media(
    client: AsyncTestClient, keys: Keys
) -> None:
    """`application/json; charset=utf-8` passes the media-type check (then 503: no broker)."""
    headers, body = signed("whitepay", _body("whitepay"), keys)
    headers["content-type"] = "application/json; charset=UTF-8"
    response = await client.post("/webhooks/whitepay", content=body, headers=headers)
    assert response.status_code == 503


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "velafi"])
async def test_oversized_body_is_413(client: AsyncTestClient, keys: Keys, provider: str) -> None:
    """A body over `max_body_bytes` answers 413 (streamed bodies: tests/integration/test_serve.py)."""
    big = b'{"pad": "' + b"x" * 5000 + b'"}'
    headers = {"content-type": "application/json"}
    _assert_problem(await client.post(f"/webhooks/{provider}", content=big, headers=headers), 413)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_missing_signature_is_401(client: AsyncTestClient, keys: Keys, provider: str) -> None:
    """A request without the provider's signature answers 401 (VelaFi: FAIL body)."""
    headers, body = signed(provider, _body(provider), keys)
    stripped = {k: v for k, v in headers.items() if k.lower() in ("content-type",)}
    if provider == "pay3":  # pay3 signs inside the body: send the bare claims instead
        body = b'{"payload": "not.a.jws"}'
    response = await client.post(f"/webhooks/{provider}", content=body, headers=stripped)
    assert response.status_code == 401
    if provider == "velafi":
        assert response.json() == {"callbackStatus": "FAIL"}
    else:
        _assert_problem(response, 401)


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "fatpay"])
async def test_tampered_body_is_401(client: AsyncTestClient, keys: Keys, provider: str) -> None:
    """Changing one byte of a signed body fails authentication."""
    headers, body = signed(provider, _body(provider), keys)
    tampered = body.replace(b"a", b"b", 1)
    assert tampered != body
    response = await client.post(f"/webhooks/{provider}", content=tampered, headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_non_utf8_body_is_4xx(client: AsyncTestClient, keys: Keys, provider: str) -> None:
    """A body that is not UTF-8 is rejected with a 4xx, signed or not."""
    raw = b'{"order": "\xff\xfe"}'
    headers, body = (
        signed(provider, raw, keys)
        if provider != "pay3"
        else ({"content-type": "application/json"}, raw)
    )
    response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_wrong_shape_after_valid_signature_is_400_with_path(
    client: AsyncTestClient, keys: Keys, provider: str
) -> None:
    """A correctly signed body of the wrong shape answers 400 naming the JSON path."""
    name, id_path = REPRESENTATIVE[provider]
    body = with_field(sample(provider, name), id_path, {"not": "an id"})
    headers, payload = signed(provider, body, keys)
    response = await client.post(f"/webhooks/{provider}", content=payload, headers=headers)
    assert response.status_code == 400, response.text
    if provider == "velafi":
        assert response.json() == {"callbackStatus": "FAIL"}
    else:
        problem = _assert_problem(response, 400)
        assert problem["path"].startswith("$")
        assert id_path[-1] in problem["detail"] or id_path[-1] in problem["path"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_valid_request_without_broker_is_503_with_retry_after(
    client: AsyncTestClient, keys: Keys, provider: str
) -> None:
    """With the broker unreachable a valid webhook is never 200: 503 and Retry-After."""
    headers, body = signed(provider, _body(provider), keys)
    response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "7"
    if provider == "velafi":
        assert response.json() == {"callbackStatus": "FAIL"}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_old_key_still_accepted(client: AsyncTestClient, keys: Keys, provider: str) -> None:
    """During rotation a request signed with the old key passes verification (then 503)."""
    headers, body = signed(provider, _body(provider), keys, old_key=True)
    response = await client.post(f"/webhooks/{provider}", content=body, headers=headers)
    assert response.status_code == 503, response.text


async def test_health_and_readiness(client: AsyncTestClient) -> None:
    """`/healthz` is 200 while serving; `/readyz` is 503 while the broker is unreachable."""
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["kafka"] == "disconnected"


async def test_errors_never_echo_secrets_or_signatures(client: AsyncTestClient, keys: Keys) -> None:
    """No rejection body carries a secret, the signature or body bytes."""
    headers, body = signed("whitepay", _body("whitepay"), keys)
    signature = headers["Signature"] if "Signature" in headers else headers["signature"]
    bad = dict(headers)
    bad["Signature" if "Signature" in headers else "signature"] = signature[:-4] + "abcd"
    response = await client.post("/webhooks/whitepay", content=body, headers=bad)
    assert response.status_code == 401
    for secret in [*keys.all_secrets(), signature, "08d585b1"]:
        assert secret not in response.text


async def test_trailing_slash_reaches_the_same_ingress(client: AsyncTestClient, keys: Keys) -> None:
    """`/webhooks/{source}/` is the same ingress (then 503: no broker)."""
    headers, body = signed("whitepay", _body("whitepay"), keys)
    response = await client.post("/webhooks/whitepay/", content=body, headers=headers)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "7"
    response = await client.post("/webhooks/nope/", content=b"{}", headers=headers)
    _assert_problem(response, 404)


async def test_other_methods_are_405_with_allow(client: AsyncTestClient) -> None:
    """Any method but POST on the ingress answers 405 with `Allow: POST`, known source or not."""
    for method, path in [("GET", "/webhooks/whitepay"), ("PUT", "/webhooks/nope")]:
        response = await client.request(method, path)
        _assert_problem(response, 405)
        assert response.headers["allow"] == "POST"


async def test_nested_ingress_path_is_404(client: AsyncTestClient) -> None:
    """`/webhooks/a/b` is not an ingress path: Litestar's problem+json 404."""
    response = await client.post("/webhooks/whitepay/extra", content=b"{}")
    _assert_problem(response, 404)


async def test_a_bug_in_the_pipeline_is_a_bare_500(
    client: AsyncTestClient, keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception answers a problem+json 500 without the traceback, and is logged."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom: internal detail")

    client.app.ingress.pipeline.accept = broken  # type: ignore[attr-defined]
    headers, body = signed("whitepay", _body("whitepay"), keys)
    response = await client.post("/webhooks/whitepay", content=body, headers=headers)
    problem = _assert_problem(response, 500)
    assert problem["detail"] == "internal error"
    assert "boom" not in response.text and "Traceback" not in response.text
    logged = capsys.readouterr()
    assert "unhandled_error" in logged.out + logged.err


def _receiver(*messages: dict[str, object]):
    queue = list(messages)

    async def receive() -> dict[str, object]:
        return queue.pop(0)

    return receive


async def test_read_body_joins_chunks_and_stops_at_the_limit() -> None:
    """A body in several ASGI messages is joined; one byte over the limit is a 413 mid-stream."""
    from gateway.errors import BodyTooLarge
    from gateway.http.ingress import read_body

    def chunks(*parts: bytes) -> list[dict[str, object]]:
        return [
            {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
            for i, p in enumerate(parts)
        ]

    assert await read_body(_receiver(*chunks(b"ab", b"cd", b"e")), None, 5) == b"abcde"
    assert await read_body(_receiver(*chunks(b"abcde")), "5", 5) == b"abcde"
    with pytest.raises(BodyTooLarge):
        await read_body(_receiver(*chunks(b"abc", b"def")), None, 5)
    with pytest.raises(BodyTooLarge):  # the declared length alone is enough: nothing is read
        await read_body(_receiver(), "6", 5)


async def test_client_gone_mid_body_is_an_incomplete_request() -> None:
    """A disconnect before the body is complete is a 400-class rejection, not a bug."""
    from gateway.errors import IncompleteRequest
    from gateway.http.ingress import read_body
    from gateway.http.problems import status_of

    receive = _receiver(
        {"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}
    )
    with pytest.raises(IncompleteRequest) as caught:
        await read_body(receive, None, 100)
    assert status_of(caught.value) == 400
    with pytest.raises(IncompleteRequest):
        await read_body(_receiver({"type": "http.disconnect"}), None, 100)


async def test_under_a_root_path_litestar_routes_to_the_same_ingress(
    tmp_path: Path, keys: Keys
) -> None:
    """Served under a root path, the ingress is reached through Litestar's router, same answers."""
    config = load_config(
        write_config(tmp_path, keys, extra="", server="handoff_timeout: 1s\n  retry_after: 7s")
    )
    app = create_app(config, run_workers=False)
    async with AsyncTestClient(app=app, root_path="/gw") as client:
        headers, body = signed("whitepay", _body("whitepay"), keys)
        response = await client.post("/gw/webhooks/whitepay", content=body, headers=headers)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "7"
        bad = {**headers, "content-type": "text/plain"}
        response = await client.post("/gw/webhooks/whitepay", content=body, headers=bad)
        _assert_problem(response, 415)
        _assert_problem(await client.get("/gw/webhooks/whitepay"), 405)


async def test_openapi_documents_the_ingress(client: AsyncTestClient) -> None:
    """The OpenAPI document Litestar serves (SPEC §2) lists `POST /webhooks/{source}`."""
    schema = (await client.get("/schema/openapi.json")).json()
    assert "post" in schema["paths"]["/webhooks/{source}"]
