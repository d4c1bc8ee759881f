"""Source allowlists: the client address (peer, or X-Forwarded-For behind a trusted proxy)."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.http.ingress import client_address

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(
    "peer,xff,expected",
    [
        ("203.0.113.7", None, "203.0.113.7"),  # direct
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # untrusted peer: XFF ignored
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),  # trusted proxy: its client
        ("10.1.2.3", "198.51.100.1, 10.9.9.9", "198.51.100.1"),  # chain of trusted proxies
        ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # client-forged left part ignored
        ("10.1.2.3", "10.4.4.4, 10.5.5.5", "10.4.4.4"),  # all trusted: the leftmost
        ("10.1.2.3", "not-an-ip", None),  # garbage: no address, so no allowlist match
        ("::1", None, "::1"),
        ("testclient", None, None),
    ],
)
def test_client_address(peer: str, xff: str | None, expected: str | None) -> None:
    """X-Forwarded-For counts only behind a trusted proxy and is read right to left."""
    address = client_address(peer, xff, TRUSTED)
    assert (str(address) if address else None) == expected
