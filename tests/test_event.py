"""The event helpers every provider shares: stable ids, RFC 3339 times, the routing view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from gateway.event import event_id, rfc3339, to_builtins
from gateway.providers import registry

SAMPLES = Path(__file__).parent / "samples"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (
            ("whitepay-live", "order", "df57e8c0", "completed", "COMPLETE", None),
            "f960be3434b7047effbf0c81ce5085f7",
        ),
        (("velafi", "ORDER_WEBHOOK", 123456, "60"), "ee90b610f51e067d2de9f9198b582fc4"),
        (("pay3", "tx", Decimal("10.50"), "é✓"), "1252a89586c7f995b2380140847c8f04"),
        (("fatpay",), "1fb250c087b24e01c85627635731d55c"),
    ],
)
def test_event_ids_never_change(parts: tuple[object, ...], expected: str) -> None:
    """Ids are pinned: a release that changed them would re-deliver every retried event."""
    assert event_id(*parts) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 3, 22, 14, 3, 34, tzinfo=UTC), "2024-03-22T14:03:34Z"),
        (datetime(2024, 3, 22, 14, 3, 34, 123456, tzinfo=UTC), "2024-03-22T14:03:34.123Z"),
        (datetime(2024, 3, 22, 14, 3, 34, 500, tzinfo=UTC), "2024-03-22T14:03:34.000Z"),
        (
            datetime(2024, 3, 22, 16, 3, 34, tzinfo=timezone(timedelta(hours=2))),
            "2024-03-22T14:03:34Z",
        ),
        (datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), "0999-01-02T03:04:05Z"),
    ],
)
def test_rfc3339_is_utc_with_z_and_milliseconds_only_when_present(
    moment: datetime, expected: str
) -> None:
    """Any zone becomes UTC with `Z`; sub-second times carry milliseconds; years are 4 digits."""
    assert rfc3339(moment) == expected


def _sample_events() -> list[tuple[str, object]]:
    received = datetime(2024, 1, 1, tzinfo=UTC)
    events = []
    for provider, module in registry().items():
        for path in sorted((SAMPLES / provider).glob("*.json")):
            event = module.normalize(module.decode(path.read_bytes()), provider, received)
            events.append((f"{provider}/{path.name}", event))
    return events


@pytest.mark.parametrize(("name", "event"), _sample_events())
def test_routing_view_equals_msgspec_to_builtins(name: str, event: object) -> None:
    """The routing view of every sample event is exactly `msgspec.to_builtins` of it."""
    expected = msgspec.to_builtins(event, builtin_types=(Decimal,))
    assert to_builtins(event) == expected  # type: ignore[arg-type]
    assert msgspec.json.encode(to_builtins(event)) == msgspec.json.encode(expected)  # type: ignore[arg-type]
