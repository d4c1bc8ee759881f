"""The normalized event: one CloudEvents 1.0 envelope for every provider (SPEC §3)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

from gateway.errors import PayloadError
from gateway.fastpaths import fast

Integrity = Literal["signed", "headers-only"]

# The normalized status vocabulary of providers.md; anything else is `unknown`.
STATUSES = frozenset(
    {
        "created",
        "pending",
        "processing",
        "partially_paid",
        "completed",
        "failed",
        "declined",
        "cancelled",
        "expired",
        "unknown",
    }
)


class Money(msgspec.Struct, frozen=True):
    """An amount in a currency; the amount is an exact decimal string, never a float."""

    currency: str | None
    amount: str | None


class EventData(msgspec.Struct, frozen=True, kw_only=True):
    """`data` of the CloudEvent: the normalized view plus the provider's whole body."""

    kind: str
    id: str
    external_id: str | None = None
    status: str
    provider_status: str | None
    fiat: Money | None = None
    crypto: Money | None = None
    payload: Any


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A CloudEvents 1.0 event in JSON format with the gateway's extension attributes."""

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    subject: str
    time: str
    datacontenttype: str = "application/json"
    provider: str
    providerevent: str
    integrity: Integrity
    partitionkey: str
    data: EventData


def event_data(
    kind: str,
    object_id: str,
    status: str,
    provider_status: str | None,
    payload: Any,
    fiat: Money | None = None,
    crypto: Money | None = None,
    external_id: str | None = None,
) -> EventData:
    """`data` of an event: the object's kind, id and status, its money legs and the body."""
    return EventData(
        kind=kind,
        id=object_id,
        external_id=external_id,
        status=status,
        provider_status=provider_status,
        fiat=fiat,
        crypto=crypto,
        payload=payload,
    )


def build_event(
    source: str,
    provider: str,
    eid: str,
    data: EventData,
    happened: datetime,
    providerevent: str,
    integrity: Integrity = "signed",
    event_type: str | None = None,
    subject: str | None = None,
) -> CloudEvent:
    """The one CloudEvent builder: type `<kind>.<status>` and subject the object id, unless given.

    The subject is also the partition key (per-object order).
    """
    subject = data.id if subject is None else subject
    return CloudEvent(
        id=eid,
        source=f"/webhooks/{source}",
        type=f"{data.kind}.{data.status}" if event_type is None else event_type,
        subject=subject,
        time=rfc3339(happened),
        provider=provider,
        providerevent=providerevent,
        integrity=integrity,
        partitionkey=subject,
        data=data,
    )


def event_id(source: str, *natural_key: object) -> str:
    """Deterministic event id: the same provider state change always yields the same id."""
    parts = [source]
    for part in natural_key:
        parts.append(part if type(part) is str else "" if part is None else str(part))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with a `Z`, milliseconds only when there are any."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat is C; strftime with a format string cost three times as much per event.
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text[:-6] + "Z"  # "+00:00"


# Every conversion of a payload value below is total: it returns a value, None, or raises
# `PayloadError` naming the path. Nothing a signed body holds may surface as a 5xx.

# The moments a CloudEvent `time` can hold: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
_MIN_EPOCH = -62_135_596_800
_MAX_EPOCH = 253_402_300_799
# A decimal number as JSON or a provider spells it: ASCII digits only (not `\d`, which
# takes any Unicode digit; not Decimal's own syntax, which takes `1_000`, ` 1 `, `NaN`).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}", re.ASCII)
_MAX_NUMBER_CHARS = 100  # longer strings are never parsed: `int("9" * 10**6)` alone is slow


def _number(value: object) -> Decimal | None:
    """A JSON number or numeric string as a finite Decimal with a sane exponent, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        # msgspec never yields more than 4300 digits; this bound keeps `Decimal(int)` cheap.
        return Decimal(value) if value.bit_length() <= 300 else None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str) and len(value) <= _MAX_NUMBER_CHARS and _DECIMAL.fullmatch(value):
        try:
            number = Decimal(value)
        except InvalidOperation:  # an exponent beyond the context's (`"8e4366419178736190257"`)
            return None
    else:
        return None
    if not number.is_finite() or not -1000 < number.adjusted() < 1000:
        return None
    return number


def from_epoch(value: object, *, millis: bool = False) -> datetime | None:
    """A provider's epoch timestamp (seconds or milliseconds, number or string) as UTC.

    None when absent, malformed or outside years 1..9999 (huge digit strings, `1e999999999`,
    NaN, booleans, objects): the caller then uses the receive time (SPEC §3).
    """
    if value is None or value == "":
        return None
    if type(value) is str and _INT_TEXT.fullmatch(value):  # `"1735280582000"`: exact as int
        value = int(value)
    if type(value) is int:  # the usual case: whole seconds or milliseconds, exact
        seconds = value // 1000 if millis else value
        if not _MIN_EPOCH <= seconds <= _MAX_EPOCH:
            return None
        return _EPOCH + (timedelta(milliseconds=value) if millis else timedelta(seconds=value))
    number = _number(value)
    if number is None:
        return None
    total = number / 1000 if millis else number  # exact at this precision: |adjusted| < 1000
    whole = int(total.to_integral_value(rounding=ROUND_FLOOR))
    if not _MIN_EPOCH <= whole <= _MAX_EPOCH:
        return None
    micros = int(((total - whole) * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN))
    try:  # rounding up to the next second can still step past 9999-12-31T23:59:59
        return _EPOCH + timedelta(seconds=whole, microseconds=micros)
    except OverflowError:
        return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_iso(value: object) -> datetime | None:
    """An ISO 8601 / RFC 3339 time (`T` or space; no zone means UTC) as UTC, else None.

    None for anything unreadable or outside years 1..9999 once converted to UTC
    (`9999-12-31T23:59:59-01:00`): the caller then uses the receive time (SPEC §3).
    """
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


MAX_AMOUNT_INTEGER_DIGITS = 40
MAX_AMOUNT_FRACTION_DIGITS = 40
# Fast path `amounts` (gateway/fastpaths.py; off, every amount takes the Decimal check
# below): the common spellings, a plain decimal string with at most 40 digits before and 40
# after the point and no exponent, or an int under 10**40, are ones the Decimal check always
# accepts as they are, so they are answered without a Decimal. Anything else takes the check.
# Equivalence: tests/test_event.py and tests/test_amount_fast.py (against the check alone);
# benchmark: benchmarks/ingress_profile.py with GATEWAY_SLOW=amounts.
_PLAIN_AMOUNT = re.compile(
    rf"[+-]?(?:[0-9]{{1,{MAX_AMOUNT_INTEGER_DIGITS}}}(?:\.[0-9]{{0,{MAX_AMOUNT_FRACTION_DIGITS}}})?"
    rf"|\.[0-9]{{1,{MAX_AMOUNT_FRACTION_DIGITS}}})",
    re.ASCII,
)
_AMOUNT_INT_BOUND = 10**MAX_AMOUNT_INTEGER_DIGITS
_FAST_AMOUNTS = fast("amounts")


def amount(value: object, path: str) -> str | None:
    """An amount as an exact, finite decimal string; `PayloadError` naming `path` otherwise.

    Absent (`null`, `""`) is None. Accepted: a JSON number or a decimal string (ASCII digits,
    optional sign, fraction and exponent) with at most 40 digits before and 40 after the
    decimal point once the exponent is applied. Refused: NaN, Infinity, `1e999999999`,
    thousands of digits, booleans, objects, arrays and any other string. The amount keeps
    the provider's spelling (`"200.50"` stays `"200.50"`).
    """
    if value is None or value == "":
        return None
    if _FAST_AMOUNTS:
        if type(value) is str:
            if _PLAIN_AMOUNT.fullmatch(value):
                return value
        elif type(value) is int and -_AMOUNT_INT_BOUND < value < _AMOUNT_INT_BOUND:
            return str(value)
    number = _number(value)
    if number is not None:
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)  # finite: never "n", "N" or "F"
        if (
            number.adjusted() < MAX_AMOUNT_INTEGER_DIGITS
            and -exponent <= MAX_AMOUNT_FRACTION_DIGITS
        ):
            return value if isinstance(value, str) else str(value)
    raise PayloadError(
        f"Expected a finite decimal amount (at most {MAX_AMOUNT_INTEGER_DIGITS} integer and "
        f"{MAX_AMOUNT_FRACTION_DIGITS} fraction digits), got {_kind(value)} - at `{path}`",
        path=path,
    )


def _kind(value: object) -> str:
    """What arrived, without echoing it (a response never repeats body bytes)."""
    if isinstance(value, bool):
        return "`bool`"
    if isinstance(value, int | Decimal):
        return "an out-of-range number"
    if isinstance(value, str):
        return "a string that is not a bounded decimal"
    return (
        "`array`"
        if isinstance(value, list)
        else "`object`"
        if isinstance(value, dict)
        else "`null`"
    )


def decimal_str(value: object) -> str | None:
    """An amount already checked by `amount`, as an exact decimal string (never a float)."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        return str(value)
    return None


def _unique_pairs(pairs: list[tuple[str, Any]]) -> None:
    if len(dict(pairs)) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise PayloadError(f"duplicate key {key!r} in a JSON object")
            seen.add(key)


# The precise duplicate-key check: the stdlib parser sees every key/value pair (msgspec
# keeps the last of a repeated key); values are left as strings, only keys matter here.
_PAIRS = json.JSONDecoder(
    object_pairs_hook=_unique_pairs, parse_float=str, parse_int=str, parse_constant=str
)
_PAYLOAD = msgspec.json.Decoder(float_hook=Decimal)
_COMPACT = msgspec.json.Encoder()
_FAST_DUPKEYS = fast("dupkeys")


def decode_payload(raw: bytes) -> Any:
    """The provider's body as plain JSON values, floats kept exact as Decimal.

    Raises `PayloadError` for anything that is not valid UTF-8 JSON, and for an object that
    repeats a key: parsers disagree on which duplicate wins (first, last, error), so such
    a body could read differently to the signature check, to us and to consumers.

    msgspec keeps the last of a repeated key, so duplicates are found by counting colons,
    at C speed (fast path `dupkeys`, gateway/fastpaths.py; off, the pairs check always runs;
    justified by benchmarks/ingest_bench.py --fast-paths): outside strings a colon only ever separates a key from its value, and
    inside strings the re-encoding of what was decoded writes every colon as it is. So
    `raw` and the compact re-encoding have the same number of colons unless a repeated
    key's pair was dropped (which takes at least its own colon with it), or unless `raw`
    spells a colon as a `\\u003a` escape: then, or when the counts differ, the stdlib's
    pair-by-pair check decides, and names the key.
    """
    try:
        value = _PAYLOAD.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # msgspec's answer to absurdly nested arrays/objects
        raise PayloadError("body is nested too deeply") from exc
    if (
        not _FAST_DUPKEYS
        or raw.count(b":") != _COMPACT.encode(value).count(b":")
        or b"\\u003" in raw
    ):
        try:
            _PAIRS.decode(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise PayloadError(f"body is not valid JSON: {type(exc).__name__}") from exc
    return value


def decode_object(raw: bytes) -> dict[str, Any]:
    """`decode_payload` of a body that must be a JSON object."""
    value = decode_payload(raw)
    if not isinstance(value, dict):
        kind = "array" if isinstance(value, list) else "null" if value is None else "a value"
        raise PayloadError(f"Expected `object`, got `{kind}`", path="$")
    return value


def reject_duplicate_keys(raw: bytes) -> None:
    """Raise `PayloadError` if `raw` is not JSON or any object in it repeats a key."""
    decode_payload(raw)


_ENCODER = msgspec.json.Encoder(decimal_format="string")


def encode(value: Any) -> bytes:
    """JSON bytes of an event or any part of it (Decimals as strings)."""
    return _ENCODER.encode(value)


def to_builtins(event: CloudEvent) -> dict[str, Any]:
    """The event as plain dicts/lists/strings (Decimals kept), the form routing and `omit` use."""
    view: dict[str, Any] = msgspec.to_builtins(event, builtin_types=(Decimal,))
    return view
