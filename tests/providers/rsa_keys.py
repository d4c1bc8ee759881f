"""Real RSA-2048 keys and SHA256withRSA signing for the FaTPay and VelaFi tests.

Keys are generated once per test session (by name) so the suites stay quick.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@functools.cache
def private_key(name: str) -> rsa.RSAPrivateKey:
    """A freshly generated RSA-2048 key, the same object for the same name."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(name: str) -> str:
    """The named key's private half as unencrypted PKCS#8 PEM text."""
    return (
        private_key(name)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode("ascii")
    )


def public_pem(name: str) -> str:
    """The named key's public half as an X.509 SubjectPublicKeyInfo PEM."""
    return (
        private_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def public_der_b64(name: str) -> str:
    """The named key's public half as bare base64 DER (how VelaFi hands out `publicKey`)."""
    der = (
        private_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode("ascii")


def ec_public_pem() -> str:
    """A valid public key that is not RSA."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def rsa_sign(name: str, message: bytes) -> bytes:
    """PKCS#1 v1.5 SHA-256 signature, what Java's `SHA256withRSA` produces."""
    return private_key(name).sign(message, padding.PKCS1v15(), hashes.SHA256())


def sample_bytes(provider: str, filename: str) -> bytes:
    """A sample body copied from the provider's docs, byte for byte."""
    return (SAMPLES / provider / filename).read_bytes()


def sample_json(provider: str, filename: str) -> Any:
    """A sample body parsed as plain JSON (for building variants)."""
    return json.loads(sample_bytes(provider, filename))
