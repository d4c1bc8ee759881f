"""Forged requests cost what hashing their bytes costs, whatever the body's shape (issue 14).

CPU time is measured in-process (`time.process_time`, best of several runs) and compared
as a ratio to HMAC-SHA256 over the same bytes in the same run: a guard against per-token
Python loops and quadratic work, not a timing benchmark (benchmarks/forged_bench.py
prints the figures). Before the fix the worst shape here cost ~1100x the MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import SignatureError
from gateway.providers import _common, w3block, whitepay
from gateway.types import Secrets

MIB = 1 << 20
RATIO = 25  # today's worst shape is ~9x (two keys: every candidate is MACed twice)


def fill(prefix: bytes, unit: bytes, suffix: bytes, size: int = MIB) -> bytes:
    """`prefix + unit * n + suffix`, as close to `size` bytes as whole units allow."""
    return prefix + unit * ((size - len(prefix) - len(suffix)) // len(unit)) + suffix


def shapes(size: int) -> dict[str, bytes]:
    """Bodies built to be expensive to re-encode, all valid JSON unless said otherwise."""
    return {
        "tiny-tokens": fill(b"[0", b",0", b"]", size),
        "tiny-floats": fill(b"[0.0", b",0.0", b',"\\\\"]', size),
        "tokens-and-whitespace": fill(b"[0", b" ,\n0", b"]", size),
        "escapes": fill(b'{"a":"', b'\\"', b'"}', size),
        "unicode-escapes": fill(b'["', b"\\u00e9", b'"]', size),
        "short-strings": fill(b'["a"', b',"\xc3\xa9/"', b"]", size),
        "tiny-objects": fill(b"[{}", b',{"a":"\\/"}', b"]", size),
        "deep-nesting": b"[" * (size // 2) + b"]" * (size // 2),
        "deep-then-flat": b"[" * 500 + b"0," * ((size - 1002) // 2) + b"0" + b"]" * 500,
        "invalid-at-the-end": fill(b"[0", b",0", b",]", size),
    }


def cpu(fn: Callable[[], Any], runs: int = 5) -> float:
    """The least CPU time of `runs` calls (the least disturbed by neighbours)."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def mac_cost(body: bytes) -> float:
    """CPU of one HMAC-SHA256 over `body`."""
    return cpu(lambda: hmac.new(b"k" * 32, body, hashlib.sha256).digest())


VERIFIERS = {
    "whitepay": (
        whitepay.build_verifier(whitepay.Settings(secret=Secrets.parse(["s1", "s2"]))),
        "signature",
    ),
    "w3block": (
        w3block.build_verifier(w3block.Settings(secret=Secrets.parse(["s1", "s2"]))),
        w3block.HEADER,
    ),
}


def forged_cost(provider: str, body: bytes) -> float:
    """CPU of verifying `body` under a wrong signature (which must be refused)."""
    verifier, header = VERIFIERS[provider]

    def attempt() -> None:
        with pytest.raises(SignatureError):
            verifier.verify(body, {header: "0" * 64}, 0.0)

    return cpu(attempt)


@pytest.mark.parametrize("shape", list(shapes(MIB)))
@pytest.mark.parametrize("provider", list(VERIFIERS))
def test_a_forged_1_mib_body_costs_a_small_multiple_of_its_mac(provider: str, shape: str) -> None:
    """Many tiny tokens, deep nesting, long runs of escapes: 401 within RATIO x HMAC-SHA256."""
    body = shapes(MIB)[shape]
    spent, mac = forged_cost(provider, body), mac_cost(body)
    print(f"\n{provider} {shape}: {spent * 1000:.2f} ms, {spent / mac:.1f}x HMAC-SHA256")
    assert spent <= RATIO * mac, f"{spent / mac:.0f}x the MAC's CPU"


@pytest.mark.parametrize("shape", list(shapes(_common.RESTYLE_MAX_BYTES)))
@pytest.mark.parametrize("provider", list(VERIFIERS))
def test_re_escaping_at_the_size_cap_stays_within_the_1_mib_budget(
    provider: str, shape: str
) -> None:
    """The re-escaped candidates (bodies up to the cap) never cost more than a 1 MiB forgery may."""
    body = shapes(_common.RESTYLE_MAX_BYTES)[shape]
    assert len(body) <= _common.RESTYLE_MAX_BYTES
    spent = forged_cost(provider, body)
    assert spent <= RATIO * mac_cost(b"\0" * MIB), f"{spent * 1000:.2f} ms"


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.sampled_from([None, 0, 1, 2, "\t"]), st.booleans())
def test_compaction_equals_the_whitespace_free_encoding(
    value: Any, indent: Any, ascii_: bool
) -> None:
    """The compacted candidate is the body without whitespace, every token as written."""
    raw = json.dumps(value, indent=indent, ensure_ascii=ascii_).encode()
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_).encode()
    assert _common.compact_json(raw) == expected


def test_a_body_over_the_cap_gets_no_re_escaped_candidate() -> None:
    """Over RESTYLE_MAX_BYTES only the raw body and its compaction are candidates."""
    body = b'{"a": "\\u00e9", "pad": "' + b"x" * _common.RESTYLE_MAX_BYTES + b'"}'
    assert list(_common.json_candidates(body, ("php", "js"))) == [body, _common.compact_json(body)]
    small = b'{"a": "\\u00e9/"}'
    assert list(_common.json_candidates(small, ("php", "js"))) == [
        small,
        b'{"a":"\\u00e9/"}',
        b'{"a":"\\u00e9\\/"}',
        '{"a":"é/"}'.encode(),
    ]
