"""In-process cost of the five built-ins: `Pipeline.event()`, and `decode`, `normalize` alone.

Times `Pipeline.event()` on every sample body in tests/samples, per provider, for this
tree and a baseline tree (e.g. `git archive main gateway routing | tar -x -C /tmp/base`),
alternating the two in child processes so both see the same machine load. Prints the
best microseconds per call of each (least disturbed by other load) and the ratio new/baseline.

    .venv/bin/python benchmarks/providers_bench.py --baseline /tmp/base [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "samples"
PROVIDERS = ("fatpay", "velafi", "pay3", "whitepay", "w3block")
URL = "https://hooks.example.com/webhooks/fatpay"


def _child(number: int) -> dict[str, float]:
    """Microseconds per `Pipeline.event()` call per provider in the imported tree."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from gateway.config import load_config
    from gateway.pipeline import Pipeline
    from gateway.providers import registry

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "key.pem").write_bytes(public)
        config = Path(tmp) / "gateway.yaml"
        config.write_text(
            textwrap.dedent(f"""\
            kafka: {{bootstrap_servers: "127.0.0.1:1"}}
            sources:
              fatpay: {{provider: fatpay, public_key: ["${{file:key.pem}}"],
                        partner_id: p1, url: "{URL}"}}
              velafi: {{provider: velafi, public_key: ["${{file:key.pem}}"]}}
              pay3: {{provider: pay3, secret: [s3cret]}}
              whitepay: {{provider: whitepay, secret: [s3cret]}}
              w3block: {{provider: w3block, secret: [s3cret]}}
            destinations: {{all: {{kafka: {{topic: all}}}}}}
            routes: [{{name: all, match: {{}}, to: [all]}}]
            """)
        )
        pipeline = Pipeline(load_config(config), sender=None)  # type: ignore[arg-type]
    providers = registry()
    now = time.time()
    figures: dict[str, float] = {}
    received = datetime.fromtimestamp(now, tz=UTC)
    for name in PROVIDERS:
        secret = private if name in ("fatpay", "velafi") else "s3cret"
        calls = []
        for sample in sorted((SAMPLES / name).glob("*.json")):
            headers, body = providers[name].sign(
                secret, sample.read_bytes(), now, url=URL, partner_id="p1"
            )
            headers = {k.lower(): v for k, v in headers.items()}
            pipeline.event(name, body, headers, now)  # warm up, and it must succeed
            calls.append((body, headers))

        def run(calls: list[tuple[bytes, dict[str, str]]] = calls, name: str = name) -> None:
            for body, headers in calls:
                pipeline.event(name, body, headers, now)

        provider = providers[name]
        contents = [pipeline._ingress(name).verifier.verify(b, h, now) for b, h in calls]
        decoded = [provider.decode(c) for c in contents]

        def decode(contents: list[bytes] = contents, provider: Any = provider) -> None:
            for content in contents:
                provider.decode(content)

        def normalize(decoded: list[Any] = decoded, provider: Any = provider) -> None:
            for value in decoded:
                provider.normalize(value, "bench", received)

        for part, fn in (("event", run), ("decode", decode), ("normalize", normalize)):
            best = min(timeit.repeat(fn, number=number, repeat=5))
            figures[f"{name} {part}"] = best / number / len(calls) * 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a tree holding gateway/ and routing/")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=300)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_child(args.number)))
        return
    trees = {"new": ROOT}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve(), **trees}
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    for _ in range(args.rounds):
        for label, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree)}
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(tree), "--number", str(args.number)],
                env=env,
                cwd=tree,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[label].append(json.loads(out))
    print(
        "us per call, the best of 5 repeats x "
        f"{args.rounds} alternating rounds (the least disturbed by other load on the machine);"
        " event = Pipeline.event(): verify+decode+normalize"
    )
    print(f"{'provider part':20}" + "".join(f"{label:>10}" for label in trees) + "     ratio")
    for name in runs["new"][0]:
        medians = {label: min(r[name] for r in runs[label]) for label in trees}
        row = f"{name:20}" + "".join(f"{medians[label]:10.2f}" for label in trees)
        if "baseline" in medians:
            row += f"{medians['new'] / medians['baseline']:10.3f}"
        print(row)


if __name__ == "__main__":
    main()
