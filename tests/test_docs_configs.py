"""Every config block in the README and docs/ loads, as `gateway check` would load it.

A block is a ```yaml fence whose top-level keys are config sections (a whole file or a
part of one), or a list of routes. What a part leaves out is filled in minimally: a source
when it names none, a Kafka destination for each destination its routes name but do not
define. `${env:NAME}` references get a value of the right kind, `${file:...}` references a
file with a generated key or token. So a doc that shows a key the config does not take, or
a value of the wrong type, fails here.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import parse_config
from tests.conftest import make_keys

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {
    "server",
    "kafka",
    "state",
    "spool",
    "sources",
    "destinations",
    "routes",
    "unmatched",
    "console",
    "tracing",
}
FENCE = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
FILE = re.compile(r"(\w+)?(:\s*)?\$\{file:([^}]*)\}")
REF = re.compile(r'(?<!["\'])(\$\{(?:env|file):[^}]*\})')  # unquoted: YAML flow maps choke on it
# What a route's `provider:` needs to be served by some source (a fragment may name none).
SOURCE_FOR = {
    "whitepay": {"provider": "whitepay", "secret": "doc-whitepay-secret"},
    "w3block": {"provider": "w3block", "secret": "doc-w3block-secret"},
    "pay3": {"provider": "pay3", "secret": "doc-pay3-secret"},
}


def _blocks() -> list[tuple[str, str]]:
    out = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, match in enumerate(FENCE.finditer(doc.read_text())):
            out.append((f"{doc.relative_to(ROOT)}#{n + 1}", match.group(1)))
    return out


def _config_shaped(text: str) -> Any:
    if text.startswith("# Helm values"):  # the chart's values, not the gateway's config
        return None
    try:
        data = yaml.safe_load(ENV.sub("x", FILE.sub("x", text)))
    except yaml.YAMLError:
        return None
    if isinstance(data, dict) and data and set(data) <= SECTIONS:
        return data
    if isinstance(data, list) and data and all(isinstance(r, dict) and "to" in r for r in data):
        return data
    return None


BLOCKS = [(name, text) for name, text in _blocks() if _config_shaped(text) is not None]


def test_the_docs_have_config_blocks_to_check() -> None:
    """The collection below is not empty by accident (a renamed fence would empty it)."""
    assert len(BLOCKS) >= 10, [name for name, _ in BLOCKS]


def _env_value(name: str) -> str:
    if "WHSEC" in name:
        return "whsec_" + base64.b64encode(os.urandom(24)).decode()
    if "REDIS" in name:
        return "redis://127.0.0.1:1/0"
    return "doc-secret-" + name.lower()


def _filled(text: str, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The block with its references resolvable and what a part leaves out added."""
    for name in set(ENV.findall(text)):
        monkeypatch.setenv(name, _env_value(name))
    public_pem = make_keys().fatpay.public_pem
    counter = iter(range(10_000))

    def file_ref(m: re.Match[str]) -> str:
        path = tmp / f"ref-{next(counter)}"
        key = (m.group(1) or "").endswith("key")
        path.write_text(public_pem if key else "doc-token-value-0123456789")
        return f"{m.group(1) or ''}{m.group(2) or ''}${{file:{path}}}"

    text = REF.sub(r'"\1"', FILE.sub(file_ref, text))
    data = yaml.safe_load(text)
    if isinstance(data, list):
        data = {"routes": data}
    sources = data.setdefault("sources", {})
    if not sources:
        sources["whitepay"] = {"provider": "whitepay", "secret": "doc-whitepay-secret"}
    destinations = data.setdefault("destinations", {}) or {}
    data["destinations"] = destinations
    named = {d for route in data.get("routes") or [] for d in route.get("to", [])}
    named |= set(data.get("unmatched") or [])
    for name in named - set(destinations):
        destinations[name] = {"kafka": {"topic": f"docs.{name}"}}
    if not destinations:
        destinations["docs"] = {"kafka": {"topic": "docs.all"}}
    served = {s.get("provider") for s in sources.values()}
    for route in data.get("routes") or []:
        match = route.get("match") or {}
        providers = _as_list(match.get("provider"))
        for source in _as_list(match.get("source")):
            sources.setdefault(source, dict(SOURCE_FOR[(providers or ["whitepay"])[0]]))
        for provider in providers:
            if provider not in served and provider in SOURCE_FOR:
                sources.setdefault(provider, dict(SOURCE_FOR[provider]))
                served.add(provider)
    return yaml.safe_dump(data, sort_keys=False)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize(("name", "text"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_config_block_loads(
    name: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The block, completed minimally, is a valid config (every problem reported at once)."""
    parse_config(_filled(text, tmp_path, monkeypatch), name)
