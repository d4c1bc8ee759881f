"""Remembers accepted event ids for the dedupe window, in bounded memory."""

from __future__ import annotations

from collections import OrderedDict


class SeenIds:
    """Event ids accepted within `window` seconds, at most `max_entries` of them.

    Ids are kept in acceptance order, so expiry only ever looks at the oldest entries.
    When more than `max_entries` ids arrive within one window the oldest are forgotten
    early: a provider retry of such an event is forwarded again, which consumers absorb
    by deduping on the event `id` (at-least-once, never loss).
    """

    def __init__(self, window: float, max_entries: int) -> None:
        self._window = window
        self._max = max_entries
        self._ids: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def seen(self, event_id: str, now: float) -> bool:
        """True if `event_id` was accepted within the window before `now`."""
        self._expire(now)
        return event_id in self._ids

    def remember(self, event_id: str, now: float) -> None:
        """Record `event_id` as accepted at `now`."""
        self._ids[event_id] = now
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._max:
            self._ids.popitem(last=False)

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        ids = self._ids
        while ids:
            oldest = next(iter(ids.values()))
            if oldest > horizon:
                break
            ids.popitem(last=False)
