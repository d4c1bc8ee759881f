"""Forged-request benchmark: CPU to refuse a forged body, against HMAC-SHA256 of its bytes.

    .venv/bin/python benchmarks/forged_bench.py           # ~1 min
    .venv/bin/python benchmarks/forged_bench.py --quick   # 256 KiB bodies, fewer runs

For Whitepay and W3Block (whose verifiers also try re-encodings of the body when the raw
bytes fail), each body shape of tests/test_hostile_cost.py is verified under a wrong
signature, in-process, two configured secrets. Printed per shape, best of N runs of CPU
time: today's verifier, the token-by-token Python re-encoder it replaced (issue 14; kept
here as `TokenReencoder` so the before/after is measured in the same run), and HMAC-SHA256
over the same bytes, with both ratios to that baseline. Writes
benchmarks/results/forged.json.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from gateway.errors import SignatureError  # noqa: E402
from gateway.providers import w3block, whitepay  # noqa: E402
from gateway.types import Secrets  # noqa: E402
from tests.test_hostile_cost import shapes  # noqa: E402

# --- the re-encoder before issue 14 (gateway/providers/whitepay.py at ea1eac2) -------------
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[ \t\n\r]+|[^" \t\n\r]+', re.DOTALL)
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JS_ESCAPE = re.compile('["\\\\\x00-\x1f\ud800-\udfff]')
_PHP_ESCAPE = re.compile('["\\\\/\x00-\x1f\x80-\U0010ffff]')


def _js_char(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT.get(char) or f"\\u{ord(char):04x}"


def _php_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    if char == "/":
        return "\\/"
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"
    return f"\\u{code:04x}"


def old_compact_json(raw: bytes, style: Literal["js", "php"]) -> bytes | None:
    """The pre-issue-14 candidate builder: a Python loop over every token."""
    try:
        msgspec.json.decode(raw)
        text = raw.decode("utf-8")
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    escape, pattern = (_js_char, _JS_ESCAPE) if style == "js" else (_php_char, _PHP_ESCAPE)
    out: list[str] = []
    for token in _TOKENS.findall(text):
        if token[0] == '"':
            value = json.loads(token) if "\\" in token else token[1:-1]
            out.append('"' + pattern.sub(escape, value) + '"')
        elif token[0] not in " \t\n\r":
            out.append(token)
    return "".join(out).encode("utf-8", "surrogatepass")


def old_candidates(raw: bytes, styles: tuple[Literal["js", "php"], ...]) -> Iterator[bytes]:
    """Raw body, then each style's re-encoding (as the old verifiers tried them)."""
    yield raw
    seen = [raw]
    for style in styles:
        message = old_compact_json(raw, style)
        if message is None:
            return
        if message not in seen:
            seen.append(message)
            yield message


def old_verify(keys: list[bytes], styles: tuple[Literal["js", "php"], ...], raw: bytes) -> None:
    """The old verifiers' loop, refusing a wrong signature."""
    received = b"\0" * 32
    for message in old_candidates(raw, styles):
        for key in keys:
            if hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), received):
                return
    raise SignatureError("signature does not match")


def cpu(fn: Callable[[], Any], runs: int) -> float:
    """Least CPU time of `runs` calls."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        try:
            fn()
        except SignatureError:
            pass
        best = min(best, time.process_time() - started)
    return best


def main() -> int:
    """Measure every shape for both providers; print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size, runs, old_runs = (256 * 1024, 3, 1) if args.quick else (1 << 20, 7, 2)
    keys = [b"s1", b"s2"]
    providers: dict[str, tuple[Any, str, tuple[Literal["js", "php"], ...]]] = {
        "whitepay": (
            whitepay.build_verifier(whitepay.Settings(secret=Secrets.parse(["s1", "s2"]))),
            "signature",
            ("php", "js"),
        ),
        "w3block": (
            w3block.build_verifier(w3block.Settings(secret=Secrets.parse(["s1", "s2"]))),
            w3block.HEADER,
            ("js",),
        ),
    }
    rows = []
    print(
        f"forged {size // 1024} KiB bodies, two secrets, CPU ms (best of {runs}; old: {old_runs})"
    )
    print(f"{'provider':<9} {'shape':<22} {'hmac':>6} {'now':>7} {'x':>6} {'before':>8} {'x':>7}")
    for provider, (verifier, header, styles) in providers.items():
        for shape, body in shapes(size).items():
            mac = cpu(lambda b=body: hmac.new(b"k" * 32, b, hashlib.sha256).digest(), runs)
            now = cpu(lambda b=body, v=verifier, h=header: v.verify(b, {h: "0" * 64}, 0.0), runs)
            before = cpu(lambda b=body, s=styles: old_verify(keys, s, b), old_runs)
            rows.append(
                {
                    "provider": provider,
                    "shape": shape,
                    "bytes": len(body),
                    "hmac_ms": mac * 1000,
                    "now_ms": now * 1000,
                    "before_ms": before * 1000,
                    "now_ratio": now / mac,
                    "before_ratio": before / mac,
                }
            )
            print(
                f"{provider:<9} {shape:<22} {mac * 1000:6.2f} {now * 1000:7.2f} {now / mac:6.1f}"
                f" {before * 1000:8.1f} {before / mac:7.1f}"
            )
    worst = max(rows, key=lambda r: r["now_ratio"])
    print(
        f"worst now: {worst['provider']} {worst['shape']} {worst['now_ms']:.1f} ms "
        f"({worst['now_ratio']:.1f}x HMAC); worst before: "
        f"{max(r['before_ms'] for r in rows):.0f} ms ({max(r['before_ratio'] for r in rows):.0f}x)"
    )
    out = ROOT / "benchmarks" / "results" / "forged.json"
    out.write_text(json.dumps({"size": size, "runs": runs, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
