"""Generic sources (SPEC §10): each scheme signed by an independent signer, over real HTTP.

The signers below never call the gateway: Standard Webhooks requests are signed with the
`standardwebhooks` library's `Webhook.sign`; GitHub, Shopify and Stripe requests with the
recipes their docs give, written out here; the custom HMAC with its own template.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shlex
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from litestar.testing import AsyncTestClient
from standardwebhooks.webhooks import Webhook

from gateway.app import create_app
from gateway.broker import Broker
from gateway.cli import main
from gateway.config import load_config, parse_config
from gateway.dev import examples
from gateway.errors import ConfigError, SignatureError
from gateway.pipeline import Pipeline
from tests import faults
from tests.faults import wait_ready
from tests.integration.test_kafka_ingress import consume, ready
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

SW_NEW = "whsec_" + base64.b64encode(b"standard-webhooks-new-secret-32b").decode()
SW_OLD = "whsec_" + base64.b64encode(b"standard-webhooks-old-secret-32b").decode()
GH_NEW, GH_OLD = "gh-new-secret", "gh-old-secret"
SHOP_NEW, SHOP_OLD = "shpss_new", "shpss_old"
STRIPE_NEW, STRIPE_OLD = "whsec_stripe_new", "whsec_stripe_old"
PARTNER_NEW, PARTNER_OLD = "partner-new", "partner-old"
WRONG = "not-the-secret"
WRONG_SW = "whsec_" + base64.b64encode(b"an-entirely-different-secret-32b").decode()


# The environment variables the commented generic sources of config/gateway.yaml and
# config/dev.yaml take their secrets from.
EXAMPLE_SECRET_VARS = (
    "ACME_WHSEC",
    "GITHUB_WEBHOOK_SECRET",
    "SHOPIFY_WEBHOOK_SECRET",
    "STRIPE_WEBHOOK_SECRET",
    "PARTNER_SECRET",
)


def config_text(bootstrap: str, suffix: str, extra: str = "") -> str:
    """A config with one source per generic scheme, every secret rotated (new, old)."""
    return textwrap.dedent(f"""\
        server: {{handoff_timeout: 5s, retry_after: 2s}}
        kafka:
          bootstrap_servers: {bootstrap}
          enable_idempotence: false
          compression: gzip
          create_topics: true
          request_timeout: 3s
          topic_partitions: 1
          session_timeout: 2s
          heartbeat_interval: 500ms
        sources:
          acme:
            provider: standard-webhooks
            secret: [{SW_NEW}, {SW_OLD}]
            tolerance: 5m
            event:
              type: {{path: type, map: {{invoice.paid: payment.completed}}}}
              subject: {{path: data.id}}
          gh: {{provider: github, secret: [{GH_NEW}, {GH_OLD}]}}
          shop: {{provider: shopify, secret: [{SHOP_NEW}, {SHOP_OLD}]}}
          stripe: {{provider: stripe, secret: [{STRIPE_NEW}, {STRIPE_OLD}]}}
          partner:
            provider: hmac
            secret: [{PARTNER_NEW}, {PARTNER_OLD}]
            header: X-Partner-Signature
            algorithm: sha512
            encoding: base64
            prefix: "v1="
            signed: "{{timestamp}}:{{header:X-Partner-Id}}:{{body}}"
            timestamp: {{header: X-Partner-Timestamp, tolerance: 5m}}
            event:
              id: {{header: X-Request-Id}}
              type: {{path: kind, default: partner.other}}
              time: {{path: at}}
        destinations:
          all: {{kafka: {{topic: generic-{suffix}}}}}
        routes: []
        unmatched: [all]
        {extra}
        """)


# --- the independent signers ----------------------------------------------------------------

Sign = Callable[[bytes, str, int], dict[str, str]]


def sign_sw(body: bytes, secret: str, ts: int) -> dict[str, str]:
    """Standard Webhooks, with the reference library's signer."""
    msg_id = "msg_" + hashlib.sha256(body).hexdigest()[:20]
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def sign_github(body: bytes, secret: str, ts: int) -> dict[str, str]:
    """GitHub: `X-Hub-Signature-256: sha256=` + hex HMAC-SHA256 of the body."""
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={mac}",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }


def sign_shopify(body: bytes, secret: str, ts: int) -> dict[str, str]:
    """Shopify: `X-Shopify-Hmac-Sha256:` base64 HMAC-SHA256 of the body."""
    mac = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "X-Shopify-Hmac-Sha256": mac,
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
    }


def sign_stripe(body: bytes, secret: str, ts: int) -> dict[str, str]:
    """Stripe: `t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">`, keyed with the whole secret."""
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={ts},v1={mac}"}


def sign_partner(body: bytes, secret: str, ts: int) -> dict[str, str]:
    """The custom scheme: base64 HMAC-SHA512 of `<ts ms>:<partner id>:<body>`, prefixed."""
    stamp = str(ts * 1000)  # milliseconds
    message = f"{stamp}:p-42:".encode() + body
    mac = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha512).digest()).decode()
    return {
        "X-Partner-Signature": f"v1={mac}",
        "X-Partner-Timestamp": stamp,
        "X-Partner-Id": "p-42",
        "X-Request-Id": str(uuid.uuid4()),
    }


@dataclass(frozen=True)
class Case:
    """One generic source and how its sender signs."""

    source: str
    sign: Sign
    new: str
    old: str
    wrong: str
    signature_header: str
    garbled: str
    timestamp_header: str | None  # None: the scheme has no timestamp


CASES = [
    Case(
        "acme",
        sign_sw,
        SW_NEW,
        SW_OLD,
        WRONG_SW,
        "webhook-signature",
        "v1,@@not base64@@",
        "webhook-timestamp",
    ),
    Case(
        "gh", sign_github, GH_NEW, GH_OLD, WRONG, "X-Hub-Signature-256", "sha256=zz-not-hex", None
    ),
    Case("shop", sign_shopify, SHOP_NEW, SHOP_OLD, WRONG, "X-Shopify-Hmac-Sha256", "%%%", None),
    Case(
        "stripe",
        sign_stripe,
        STRIPE_NEW,
        STRIPE_OLD,
        WRONG,
        "Stripe-Signature",
        "t=1,v1=nothex",
        "Stripe-Signature",
    ),
    Case(
        "partner",
        sign_partner,
        PARTNER_NEW,
        PARTNER_OLD,
        WRONG,
        "X-Partner-Signature",
        "v1=***",
        "X-Partner-Timestamp",
    ),
]


def body_of(kind: str = "invoice.paid") -> bytes:
    """A fresh JSON body (a new id each time, so dedupe never answers for it)."""
    oid = uuid.uuid4().hex
    doc = {
        "id": f"evt_{oid}",
        "type": kind,
        "kind": kind,
        "at": 1_700_000_000_123,
        "timestamp": "2024-05-01T10:00:00Z",
        "created": 1_700_000_000,
        "data": {"id": f"inv_{oid}", "object": {"id": f"obj_{oid}"}, "amount": 1.50},
    }
    # 1.50 as the sender wrote it: the payload keeps the number's exact spelling.
    return json.dumps(doc).replace('"amount": 1.5', '"amount": 1.50').encode()


def with_timestamp(case: Case, headers: dict[str, str], ts: int) -> dict[str, str]:
    """`headers` with the timestamp replaced (the signature left as it was)."""
    out = dict(headers)
    assert case.timestamp_header is not None
    if case.source == "stripe":
        _, rest = headers["Stripe-Signature"].split(",", 1)
        out["Stripe-Signature"] = f"t={ts},{rest}"
    elif case.source == "partner":
        out[case.timestamp_header] = str(ts * 1000)
    else:
        out[case.timestamp_header] = str(ts)
    return out


@pytest.fixture
async def client(tmp_path: Path, broker: Broker) -> AsyncIterator[tuple[AsyncTestClient, str, str]]:
    """A gateway with the five generic sources, handing off to a real broker."""
    suffix = uuid.uuid4().hex[:8]
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(broker.bootstrap, suffix))
    async with AsyncTestClient(app=create_app(load_config(path), run_workers=False)) as c:
        await ready(c)
        yield c, broker.bootstrap, f"generic-{suffix}"


async def post(client: AsyncTestClient, source: str, body: bytes, headers: dict[str, str]) -> Any:
    """POST one webhook as JSON."""
    return await client.post(
        f"/webhooks/{source}", content=body, headers={"content-type": "application/json", **headers}
    )


@pytest.mark.parametrize("case", CASES, ids=[c.source for c in CASES])
async def test_scheme_accepts_its_senders_requests_and_refuses_every_forgery(
    client: tuple[AsyncTestClient, str, str], case: Case
) -> None:
    """Valid and rotated-secret requests are 200; a tampered body, wrong secret, stale or
    future timestamp, a timestamp the MAC does not cover, a missing or garbled header are
    401; a validly signed body that is not JSON is 400; never a 5xx."""
    http, _, _ = client
    now = int(time.time())
    seen: dict[str, int] = {}

    async def expect(name: str, status: int, body: bytes, headers: dict[str, str]) -> None:
        response = await post(http, case.source, body, headers)
        seen[name] = response.status_code
        assert response.status_code == status, (name, response.text)
        if status == 200:
            assert response.json()["status"] == "accepted", (name, response.text)
        else:
            assert response.headers["content-type"].startswith("application/problem+json")
            for secret in (case.new, case.old):
                assert secret not in response.text

    body = body_of()
    await expect("valid", 200, body, case.sign(body, case.new, now))
    body = body_of()
    await expect("rotated", 200, body, case.sign(body, case.old, now))
    await expect("tampered", 401, body_of(), case.sign(body_of(), case.new, now))
    body = body_of()
    await expect("wrong secret", 401, body, case.sign(body, case.wrong, now))
    body = body_of()
    missing = {
        k: v
        for k, v in case.sign(body, case.new, now).items()
        if k.lower() != case.signature_header.lower()
    }
    await expect("missing header", 401, body, missing)
    garbled = {**case.sign(body, case.new, now), case.signature_header: case.garbled}
    await expect("garbled header", 401, body, garbled)
    not_json = b"this is not json"
    await expect("not json", 400, not_json, case.sign(not_json, case.new, now))
    if case.source != "acme":  # the reference library signs only text bodies
        not_utf8 = b'{"id": "\xff\xfe"}'
        await expect("not utf-8", 400, not_utf8, case.sign(not_utf8, case.new, now))
    body = body_of()
    valid = case.sign(body, case.new, now)[case.signature_header]
    wrong = case.sign(body, case.wrong, now)[case.signature_header]
    sep = " " if case.source == "acme" else ","
    rotating = {**case.sign(body, case.new, now), case.signature_header: wrong + sep + valid}
    await expect("two signatures, one valid", 200, body, rotating)
    body = body_of()
    valid = case.sign(body, case.new, now)[case.signature_header]
    wrong = case.sign(body, case.wrong, now)[case.signature_header]
    # Only the first 16 listed signatures are checked: a flood costs 16 MACs, never more.
    flood = {**case.sign(body, case.new, now), case.signature_header: sep.join([wrong] * 2000)}
    await expect(
        "2000 signatures",
        401,
        body,
        {**flood, case.signature_header: flood[case.signature_header] + sep + valid},
    )
    if case.timestamp_header is not None:
        for name, ts in (("stale", now - 400), ("future", now + 400)):
            body = body_of()
            await expect(name, 401, body, case.sign(body, case.new, ts))
        body = body_of()
        moved = with_timestamp(case, case.sign(body, case.new, now), now + 1)
        await expect("timestamp not covered", 401, body, moved)
        no_stamp = case.sign(body, case.new, now)
        if case.timestamp_header != case.signature_header:
            del no_stamp[case.timestamp_header]
            await expect("missing timestamp", 401, body, no_stamp)
    print(case.source, seen)


async def test_records_consumers_read(client: tuple[AsyncTestClient, str, str]) -> None:
    """Kafka records of generic sources: mapped type, subject, time, provider, payload."""
    http, bootstrap, topic = client
    now = int(time.time())
    sw_body, stripe_body, gh_body, partner_body = body_of(), body_of(), body_of(), body_of("x")
    partner_doc = json.loads(partner_body)
    partner_doc.pop("kind")
    partner_body = json.dumps(partner_doc).encode()
    sent = {
        "acme": (sw_body, sign_sw(sw_body, SW_NEW, now)),
        "stripe": (stripe_body, sign_stripe(stripe_body, STRIPE_NEW, now)),
        "gh": (gh_body, sign_github(gh_body, GH_NEW, now)),
        "partner": (partner_body, sign_partner(partner_body, PARTNER_NEW, now)),
    }
    for source, (body, headers) in sent.items():
        response = await post(http, source, body, headers)
        assert response.status_code == 200, response.text
    records = await consume(bootstrap, topic, len(sent))
    events = {e["source"].rsplit("/", 1)[1]: e for e in (json.loads(r.value) for r in records)}
    assert len(records) == len(sent)
    sw, stripe, gh, partner = events["acme"], events["stripe"], events["gh"], events["partner"]
    sw_doc = json.loads(sw_body)
    assert sw["provider"] == "standard-webhooks" and sw["type"] == "payment.completed"
    assert sw["subject"] == sw["partitionkey"] == sw_doc["data"]["id"]
    assert sw["time"] == "2024-05-01T10:00:00Z" and sw["providerevent"] == "invoice.paid"
    assert sw["integrity"] == "signed" and sw["data"]["payload"]["id"] == sw_doc["id"]
    assert sw["data"]["payload"]["data"]["amount"] == "1.50"  # exact, never a float
    stripe_doc = json.loads(stripe_body)
    assert stripe["provider"] == "stripe" and stripe["type"] == "invoice.paid"
    assert stripe["subject"] == stripe_doc["data"]["object"]["id"]
    assert stripe["time"] == "2023-11-14T22:13:20Z" and stripe["data"]["id"] == stripe_doc["id"]
    assert gh["provider"] == "github" and gh["type"] == "push"
    assert gh["data"]["id"] == sent["gh"][1]["X-GitHub-Delivery"] == gh["subject"]
    assert partner["provider"] == "hmac" and partner["type"] == "partner.other"
    assert partner["time"] == "2023-11-14T22:13:20.123Z"
    assert partner["data"]["id"] == sent["partner"][1]["X-Request-Id"]


async def test_replay_is_refused_across_processes(
    tmp_path: Path, broker: Broker, redis_server: RedisServer
) -> None:
    """A captured timestamped request replayed to another `gateway serve` process (shared
    Redis state) answers duplicate and is forwarded once, even with a new unsigned
    request id; a request signed anew with a new id is a new event."""
    suffix = uuid.uuid4().hex[:8]
    prefix = f"t{suffix}:"
    state = f"state: {{backend: redis, url: '{redis_server.url}', key_prefix: '{prefix}'}}"
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(broker.bootstrap, suffix, extra=state))
    first = faults.serve(path, tmp_path / "one.log")
    second = faults.serve(path, tmp_path / "two.log")
    try:
        wait_ready(first.url)
        wait_ready(second.url)
        body = body_of()
        headers = {
            "content-type": "application/json",
            **sign_partner(body, PARTNER_NEW, int(time.time())),
        }
        async with httpx.AsyncClient(timeout=30) as client:
            one = await client.post(f"{first.url}/webhooks/partner", content=body, headers=headers)
            replay = {**headers, "X-Request-Id": str(uuid.uuid4())}
            two = await client.post(f"{second.url}/webhooks/partner", content=body, headers=replay)
            fresh = {
                "content-type": "application/json",
                **sign_partner(body, PARTNER_NEW, int(time.time()) + 1),
            }
            three = await client.post(f"{second.url}/webhooks/partner", content=body, headers=fresh)
    finally:
        first.stop()
        second.stop()
    assert one.json()["status"] == "accepted", one.text
    assert two.status_code == 200 and two.json()["status"] == "duplicate", two.text
    assert three.json()["status"] == "accepted", three.text
    records = await consume(broker.bootstrap, f"generic-{suffix}", 3, seconds=5)
    print(
        "replay answers:",
        one.json()["status"],
        two.json()["status"],
        three.json()["status"],
        "records:",
        len(records),
    )
    assert len(records) == 2


def test_config_errors_are_all_reported_with_file_line_and_path() -> None:
    """Unknown algorithm, missing header, unknown placeholder, a preset given a key it does
    not take, a bad Standard Webhooks secret: every problem at once, file:line: path."""
    text = textwrap.dedent("""\
        sources:
          a:
            provider: hmac
            secret: s
            header: X-Sig
            algorithm: md5
          b:
            provider: hmac
            secret: s
          c:
            provider: hmac
            secret: s
            header: X-Sig
            signed: "{body}.{nonce}"
          d:
            provider: github
            secret: s
            header: X-Other
          e:
            provider: standard-webhooks
            secret: not base64!
          f:
            provider: hmac
            secret: s
            header: X-Sig
            signed: "{timestamp}.{body}"
          g:
            provider: stripe
            secret: s
            event: {type: {path: type, header: X-Type}}
        destinations: {k: {kafka: {topic: t}}}
        routes: []
        unmatched: [k]
        """)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cfg.yaml")
    problems = caught.value.problems
    print(*problems, sep="\n")
    expected = [
        ("cfg.yaml:6: sources.a.algorithm:", "sha1"),
        ("cfg.yaml:8: sources.b:", "missing required key `header`"),
        ("cfg.yaml:14: sources.c.signed:", "{nonce}"),
        ("cfg.yaml:18: sources.d.header:", "does not take `header`"),
        ("cfg.yaml:21: sources.e.secret:", "whsec_"),
        ("cfg.yaml:26: sources.f.signed:", "timestamp"),
        ("cfg.yaml:30: sources.g.event.type:", "exactly one of"),
    ]
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in problems), (where, problems)
    assert len(problems) == len(expected)


def parse_curl(line: str) -> tuple[str, dict[str, str], bytes]:
    """The URL, headers (lowercase names) and body of a curl line `gateway sign` prints."""
    words = shlex.split(line)
    headers = {}
    for i, word in enumerate(words):
        if word == "-H":
            name, _, value = words[i + 1].partition(": ")
            headers[name.lower()] = value
    return words[4], headers, words[words.index("--data-binary") + 1].encode()


def _curl(args: list[str]) -> tuple[str, dict[str, str], bytes]:
    """Run `gateway sign ...`; the URL, headers and body of the curl line it prints."""
    gateway = str(Path(sys.executable).with_name("gateway"))
    out = subprocess.run([gateway, "sign", *args], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return parse_curl(out.stdout)


def test_sign_command_produces_valid_requests_for_every_generic_scheme(tmp_path: Path) -> None:
    """`gateway sign --provider standard-webhooks|github|shopify|stripe` and `--source` for a
    custom hmac source print requests the gateway accepts (Standard Webhooks: and the
    reference library too); `--provider hmac` alone says it needs the source."""
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text("127.0.0.1:1", "x"))
    body = tmp_path / "body.json"
    body.write_bytes(body_of())
    pipeline = Pipeline(load_config(path), sender=_Unused())
    signs = {
        "acme": ["--provider", "standard-webhooks", "--key", SW_OLD],
        "gh": ["--provider", "github", "--key", GH_NEW],
        "shop": ["--provider", "shopify", "--key", SHOP_OLD],
        "stripe": ["--provider", "stripe", "--key", STRIPE_NEW],
        "partner": ["--source", "partner", "--config", str(path), "--key", PARTNER_NEW],
    }
    for source, args in signs.items():
        url, headers, payload = _curl([*args, "--body", str(body)])
        assert payload == body.read_bytes()
        if source == "partner":
            assert url.endswith("/webhooks/partner")
        event = pipeline.event(source, payload, headers, time.time())
        assert event.data.payload["id"] == json.loads(payload)["id"]
    _, headers, payload = _curl(
        ["--provider", "standard-webhooks", "--key", SW_NEW, "--body", str(body)]
    )
    Webhook(SW_NEW).verify(payload, headers)  # the reference verifier agrees
    gateway = str(Path(sys.executable).with_name("gateway"))
    refused = subprocess.run(
        [gateway, "sign", "--provider", "hmac", "--key", "k", "--body", str(body)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "--source" in refused.stderr


def test_svix_header_names_and_github_sha1_only_when_configured(tmp_path: Path) -> None:
    """Standard Webhooks sources accept the `svix-*` header names; GitHub's legacy sha1
    `X-Hub-Signature` is refused unless `accept_sha1: true`."""
    text = config_text("127.0.0.1:1", "x").replace(
        "  shop:", f"  gh1: {{provider: github, secret: {GH_NEW}, accept_sha1: true}}\n  shop:"
    )
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    pipeline = Pipeline(load_config(path), sender=_Unused())
    now = int(time.time())
    body = body_of()
    sw = sign_sw(body, SW_NEW, now)
    svix = {k.replace("webhook-", "svix-"): v for k, v in sw.items()}
    assert pipeline.event("acme", body, svix, now).provider == "standard-webhooks"
    sha1 = "sha1=" + hmac.new(GH_NEW.encode(), body, hashlib.sha1).hexdigest()
    legacy = {"x-hub-signature": sha1, "x-github-event": "ping"}
    assert pipeline.event("gh1", body, legacy, now).type == "ping"
    with pytest.raises(SignatureError):
        pipeline.event("gh", body, legacy, now)


class _Unused:
    async def send(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("only Pipeline.event is used")


def test_documented_generic_sources_load_and_match_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commented generic sources in config/gateway.yaml are a valid config, and the
    committed JSON Schema accepts them (and refuses a preset given a key it does not take)."""
    root = Path(__file__).resolve().parents[2]
    lines = (root / "config" / "gateway.yaml").read_text().splitlines()
    block = "\n".join("  " + line.split("#> ", 1)[1] for line in lines if "#> " in line)
    for name in EXAMPLE_SECRET_VARS:
        monkeypatch.setenv(name, SW_NEW)
    text = f"sources:\n{block}\ndestinations: {{k: {{kafka: {{topic: t}}}}}}\nunmatched: [k]\n"
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    config = load_config(path)
    assert {s.provider for s in config.sources.values()} == {
        "standard-webhooks",
        "github",
        "shopify",
        "stripe",
        "hmac",
    }
    schema = json.loads((root / "config" / "gateway.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(yaml.safe_load(text)))
    wrong = {"sources": {"g": {"provider": "github", "secret": "x", "header": "X-Other"}}}
    assert list(validator.iter_errors(wrong))


def test_explain_shows_what_a_generic_source_becomes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway explain` on a Standard Webhooks request signed by the reference library
    prints its CloudEvent (mapped type, subject) and the destination it would go to."""
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text("127.0.0.1:1", "x"))
    body = body_of()
    (tmp_path / "body.json").write_bytes(body)
    now = int(time.time())
    args = ["explain", "--config", str(path), "--source", "acme"]
    args += ["--body", str(tmp_path / "body.json")]
    for name, value in sign_sw(body, SW_NEW, now).items():
        args += ["-H", f"{name}: {value}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    event = json.loads(out[: out.index("\n}\n") + 2])
    assert event["type"] == "payment.completed" and event["provider"] == "standard-webhooks"
    assert event["subject"] == json.loads(body)["data"]["id"]
    assert "generic-x" in out  # the Kafka destination it is routed to


def test_dev_examples_of_generic_sources_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make dev` prints a signed curl line for every generic source of config/dev.yaml, each
    with its own scheme, and each verifies and normalizes."""
    root = Path(__file__).resolve().parents[2]
    for name in EXAMPLE_SECRET_VARS:
        monkeypatch.delenv(name, raising=False)
    dev = str(root / "config" / "dev.yaml")
    pipeline = Pipeline(load_config(dev), sender=_Unused())
    lines = dict(examples(dev, 8000))
    types = {}
    for source in ("acme", "github", "shopify", "stripe", "partner"):
        _, headers, body = parse_curl(lines[source])
        types[source] = pipeline.event(source, body, headers, time.time()).type
    assert types == {
        "acme": "order.completed",
        "github": "github.received",
        "shopify": "shopify.received",
        "stripe": "payment_intent.succeeded",
        "partner": "payout.sent",
    }
