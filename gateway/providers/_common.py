"""Small helpers every provider module shares: key loading, MAC comparison, decoding."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from gateway.errors import PayloadError, SignatureError
from gateway.event import Money, decimal_str
from gateway.types import Secrets

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


def rsa_keys(provider: str, public_key: Secrets) -> list[RSAPublicKey]:
    """A source's `public_key` setting parsed once; `ValueError` names the setting, not the key."""
    try:
        return load_rsa_public_keys(public_key.reveal())
    except ValueError as exc:
        raise ValueError(f"{provider} setting `public_key`: {exc}") from exc


def utf8_keys(secret: Secrets) -> list[bytes]:
    """HMAC keys from a source's `secret` setting: the UTF-8 bytes of each value."""
    return [value.encode("utf-8") for value in secret.reveal()]


HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def money(currency: str | None, value: Any) -> Money | None:
    """A money leg of an amount `amount()` has checked; None when neither is present."""
    if value is None and currency is None:
        return None
    return Money(currency, decimal_str(value))


def priced(currency: str | None, value: Any) -> Money | None:
    """A money leg only when there is an amount (a currency alone is no leg)."""
    text = decimal_str(value)
    return None if text is None else Money(currency, text)


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


def hmac_hex(key: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of `body` keyed with the secret's UTF-8 bytes (for `sign`)."""
    return hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def b64_lenient(text: str) -> bytes:
    """Base64 in the standard or URL-safe alphabet, whitespace and padding optional.

    Raises `binascii.Error` (a `ValueError`) on anything that is not base64.
    """
    compact = re.sub(r"\s+", "", text).replace("-", "+").replace("_", "/").rstrip("=")
    return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)


def b64decode_lenient(text: str) -> bytes:
    """`b64_lenient` of a received signature: `SignatureError` on anything not base64."""
    try:
        return b64_lenient(text)
    except ValueError as exc:
        raise SignatureError("signature is not valid base64") from exc


def convert_struct(value: Any, type_: type[T]) -> T:
    """`msgspec.convert` of decoded JSON; `PayloadError` names the path (`$.order.id`)."""
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT_PATH.search(message)
        raise PayloadError(message, path=match.group(1) if match else "$") from exc


# --- what a sender may have signed instead of the bytes it sent ---------------------------
# Whitepay's docs sign `JSON.stringify(payload)`, PHP integrations `json_encode($payload)`,
# W3Block senders `JSON.stringify(body)`, and some of them send the body pretty-printed (or
# through a proxy that re-serializes it). Building these candidates runs before anything is
# authenticated, so it must cost about what the MAC costs, whatever the body's shape: every
# step below is one C call over the whole body (msgspec, the stdlib's C string escaper,
# `str.replace`), never a Python loop per token. The cost guard is
# tests/providers/test_candidates.py; the figures are in benchmarks/forged_bench.py.

RESTYLE_MAX_BYTES = 16_384
"""Bodies up to this size also get the re-escaped candidates (JS/PHP string escaping).

Decoding into Python values costs up to ~100x more per byte than HMAC-SHA256 (a body of
tiny floats), the whitespace compaction under 10x. So re-escaping is bounded: real Whitepay
and W3Block notifications are 1-3 KB (the documented samples are all under 2.2 KB), 16 KiB
leaves a margin of 8, and a forged body at the cap costs about what the compaction of a
1 MiB body costs (benchmarks/forged_bench.py). Bigger bodies still get the raw and the
compacted candidates.
"""

# Floats stay as written (`1.50`, `1E2`): msgspec.Raw re-emits the token verbatim.
_RAW_NUMBERS = msgspec.json.Decoder(float_hook=msgspec.Raw)
_ESCAPE_ASCII = json.encoder.encode_basestring_ascii


def compact_json(raw: bytes) -> bytes | None:
    """`raw` without insignificant whitespace, every token byte for byte; None if not JSON.

    Key order, duplicate keys, numbers and string escapes all stay exactly as written:
    this is `JSON.stringify` / `json_encode` of a body that was pretty-printed after signing.
    """
    try:
        return msgspec.json.format(raw, indent=-1)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return None


def restyled_json(raw: bytes, style: Literal["js", "php"]) -> bytes | None:
    """`raw` re-encoded as JS `JSON.stringify` or PHP `json_encode` would; None if not JSON.

    The value is what `JSON.parse` / `json_decode` would read: keys in wire order, a
    repeated key at its first position with its last value (the gateway refuses such bodies
    after authentication anyway), floats as written. Strings are re-escaped: JS escapes
    only `"`, `\\` and controls; PHP's defaults also write `/` as `\\/` and everything
    non-ASCII as lowercase `\\uXXXX` (surrogate pairs above the BMP).
    """
    try:
        value = _RAW_NUMBERS.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    js = msgspec.json.encode(value)  # JSON.stringify's escaping: `"`, `\\`, controls
    if style == "js" or (js.isascii() and b"/" not in js):
        return js
    # PHP: escape the whole JS text as if it were one string (C), then undo what that did
    # to the JSON syntax. Afterwards every backslash starts `\\`, `\"` or `\uXXXX`; parking
    # `\\` as NUL first (a raw NUL cannot occur: controls are escaped) makes the later
    # replacements unambiguous. DEL stays raw, as json_encode leaves it.
    text = _ESCAPE_ASCII(js.decode("utf-8"))[1:-1]
    text = text.replace("\\\\", "\x00").replace("\\u007f", "\x7f").replace('\\"', '"')
    return text.replace("\x00", "\\").replace("/", "\\/").encode("ascii")


def json_candidates(raw: bytes, styles: tuple[Literal["js", "php"], ...]) -> Iterator[bytes]:
    """The distinct messages a sender may have MACed for `raw`, cheapest first (lazily).

    The raw body; its whitespace-free compaction; for bodies up to `RESTYLE_MAX_BYTES`,
    its re-encodings in `styles`. A body that is not JSON has only the raw candidate.
    """
    yield raw
    compact = compact_json(raw)
    if compact is None:
        return
    seen = [raw]
    if compact != raw:
        seen.append(compact)
        yield compact
    if len(raw) > RESTYLE_MAX_BYTES:
        return
    for style in styles:
        restyled = restyled_json(raw, style)
        if restyled is None:
            return
        if restyled not in seen:
            seen.append(restyled)
            yield restyled


class BodyMacVerifier:
    """HMAC-SHA256 of the body in one header: the raw body first, then its re-encodings.

    `read` takes the MAC out of the headers (`SignatureError` if it is missing or
    malformed); `styles` are the JSON re-encodings a sender may have signed instead of the
    bytes it sent (`json_candidates`). Whitepay and W3Block are this with their own header.
    """

    __slots__ = ("_keys", "_read", "_styles")

    def __init__(
        self,
        keys: list[bytes],
        read: Callable[[Mapping[str, str]], bytes],
        styles: tuple[Literal["js", "php"], ...],
    ) -> None:
        self._keys = keys
        self._read = read
        self._styles = styles

    def verify(self, raw: bytes, headers: Mapping[str, str], now: float) -> bytes:
        """Return the raw body if any configured secret signed one of its candidates."""
        received = self._read(headers)
        if mac_match(self._keys, json_candidates(raw, self._styles), (received,)):
            return raw
        raise SignatureError("signature does not match")


def mac_match(
    keys: Sequence[bytes] | Iterable[bytes],
    messages: Iterable[bytes],
    received: Sequence[bytes] | Iterable[bytes],
    digest: Any = hashlib.sha256,
) -> bool:
    """Whether any key's HMAC of any message equals any received MAC (constant time each).

    The MAC is computed once per key and message; the candidate messages are consumed
    lazily (cheapest first), so the usual raw-body match never builds the others.
    """
    keys = keys if isinstance(keys, list | tuple) else list(keys)
    received = received if isinstance(received, list | tuple) else list(received)
    for message in messages:
        for key in keys:
            mac = hmac.new(key, message, digest).digest()
            for candidate in received:
                if hmac.compare_digest(mac, candidate):
                    return True
    return False
