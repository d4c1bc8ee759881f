"""Small helpers every provider module shares: key loading, MAC comparison, decoding."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from gateway.errors import PayloadError, SignatureError

T = TypeVar("T")

_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")


def load_rsa_public_keys(values: Iterable[str]) -> list[RSAPublicKey]:
    """RSA public keys from PEM or bare base64 DER (X.509 SubjectPublicKeyInfo).

    Raises `ValueError` with a message that never contains the key material.
    """
    keys: list[RSAPublicKey] = []
    for index, value in enumerate(values):
        text = value.strip()
        try:
            if text.startswith("-----BEGIN"):
                key = serialization.load_pem_public_key(text.encode("ascii"))
            else:
                der = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
                key = serialization.load_der_public_key(der)
        except (ValueError, TypeError, binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(
                f"public key #{index} is neither a PEM nor a base64 DER SubjectPublicKeyInfo"
            ) from exc
        if not isinstance(key, RSAPublicKey):
            raise ValueError(f"public key #{index} is not an RSA key")
        keys.append(key)
    return keys


def rsa_sha256_valid(keys: Iterable[RSAPublicKey], signature: bytes, message: bytes) -> bool:
    """Whether any key verifies the PKCS#1 v1.5 SHA-256 signature (Java `SHA256withRSA`)."""
    for key in keys:
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def load_rsa_private_key(pem: str) -> RSAPrivateKey:
    """An unencrypted RSA private key from PEM (for `gateway sign`)."""
    try:
        key = serialization.load_pem_private_key(pem.strip().encode("ascii"), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("key is not an unencrypted PEM private key") from exc
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("key is not an RSA private key")
    return key


def rsa_sha256_sign(pem: str, message: bytes) -> bytes:
    """PKCS#1 v1.5 SHA-256 signature with a PEM private key (what the RSA providers send)."""
    return load_rsa_private_key(pem).sign(message, padding.PKCS1v15(), hashes.SHA256())


def macs_equal(expected: bytes, received: bytes) -> bool:
    """Constant-time MAC comparison."""
    return hmac.compare_digest(expected, received)


def b64decode_lenient(text: str) -> bytes:
    """Base64 in the standard or URL-safe alphabet, whitespace and missing padding tolerated.

    Raises `SignatureError` on anything that is not base64.
    """
    compact = re.sub(r"\s+", "", text).replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("signature is not valid base64") from exc


def decode_struct(decoder: msgspec.json.Decoder[T], content: bytes) -> T:
    """Decode with a typed decoder, turning msgspec's errors into `PayloadError` with the path."""
    try:
        return decoder.decode(content)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT_PATH.search(message)
        path = match.group(1) if match else "$"
        raise PayloadError(message, path=path) from exc
    except msgspec.DecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:  # msgspec raises this, not DecodeError, inside strings
        raise PayloadError("body is not valid UTF-8") from exc
    except RecursionError as exc:  # msgspec's answer to absurdly nested arrays/objects
        raise PayloadError("body is nested too deeply") from exc


def convert_struct(value: Any, type_: type[T]) -> T:
    """`msgspec.convert` with the same error translation as `decode_struct`."""
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT_PATH.search(message)
        raise PayloadError(message, path=match.group(1) if match else "$") from exc
