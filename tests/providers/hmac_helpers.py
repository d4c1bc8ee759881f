"""Independent signing code for the HMAC providers (pay3, Whitepay, W3Block), from providers.md.

Nothing here calls the gateway: tests sign requests the way the providers (or their PHP and
JS integrations) do, then check the gateway accepts them.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.errors import PayloadError, SignatureError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NOW = 1_700_000_000.0
BAD = (SignatureError, PayloadError)


def sample(provider: str, name: str) -> bytes:
    """The bytes of a provider's sample body, copied from the shared docs samples."""
    return (SAMPLES / provider / name).read_bytes()


def sample_names(provider: str) -> list[str]:
    """The JSON sample files of one provider."""
    return sorted(p.name for p in (SAMPLES / provider).glob("*.json"))


def hmac_hex(secret: str | bytes, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256, as Whitepay and W3Block send it."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def hmac_b64(secret: str, message: bytes) -> str:
    """Standard base64 HMAC-SHA256 (W3Block's undocumented alternative encoding)."""
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def php_json(value: Any) -> bytes:
    """PHP `json_encode($value)` with default flags: compact, \\uXXXX for non-ASCII, `\\/`.

    Exact for strings without DEL (Python escapes it, PHP does not), ints, bools and null.
    """
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode()


def js_json(value: Any) -> bytes:
    """JS `JSON.stringify(value)`: compact, non-ASCII and `/` left as they are."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def jws(
    claims: bytes,
    secret: str | bytes,
    alg: str = "HS384",
    header: dict[str, Any] | None = None,
) -> str:
    """A compact JWS over the exact claims bytes, built with pyjwt like pay3's backend."""
    return jwt.api_jws.encode(
        claims, secret, algorithm=alg, headers={"typ": None, **(header or {})}
    )


def b64url(data: bytes) -> str:
    """base64url without padding (a JWS segment)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jws(header: bytes, claims: bytes, key: bytes, digest: Any = hashlib.sha384) -> str:
    """A JWS assembled by hand, for headers pyjwt refuses to produce."""
    signing_input = f"{b64url(header)}.{b64url(claims)}"
    mac = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(mac)}"


def envelope(token: str) -> bytes:
    """pay3's request body around a token."""
    return json.dumps({"payload": token}).encode()


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    """An RSA-2048 key for the algorithm-confusion tests (generated once per session)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_public_pem() -> bytes:
    """The PEM of `rsa_key()`'s public half, what an attacker would use as an HMAC secret."""
    return (
        rsa_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
