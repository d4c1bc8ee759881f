"""What the commands share: load a config or exit with every problem, sign a curl line.

`gateway.cli` and `gateway.dev` both import this module; neither imports the other.
"""

from __future__ import annotations

import shlex
import sys
import time
from typing import TYPE_CHECKING

from gateway.config import Config, config_path, load_config
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.providers import Provider


def load_or_exit(path: str | None) -> Config:
    """Load the config or exit 1 printing every problem."""
    try:
        return load_config(config_path(path))
    except ConfigError as exc:
        print(f"invalid config ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(1) from None


def signed_curl(
    provider: str | Provider, key: str, body: bytes, url: str, partner_id: str | None
) -> str:
    """A ready-to-paste curl line carrying a correctly signed request."""
    from gateway.providers import registry

    chosen = registry()[provider] if isinstance(provider, str) else provider
    headers, payload = chosen.sign(key, body, time.time(), url=url, partner_id=partner_id)
    parts = ["curl", "-sS", "-X", "POST", shlex.quote(url)]
    for name, value in headers.items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    parts += ["--data-binary", shlex.quote(payload.decode("utf-8"))]
    return " ".join(parts)
