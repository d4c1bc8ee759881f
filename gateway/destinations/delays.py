"""Tiered delay topics: where a delivery waits out a long backoff without being re-produced.

A retry due in more than the shortest tier is written to the topic of the longest tier
that does not exceed its wait (`<delivery_topic>.delay.<tier>`). Every record on a tier's
topic was written with that same delay, so a partition's records ripen in offset order:
the consumer takes a record when `written + tier` (or its own `not_before`, if earlier) has
come, and pauses the partition at the first record that has not. A ripe record whose wait
is still longer than the shortest tier moves down to the next tier that fits.

So a delivery waiting `w` seconds is written at most `floor(w / t[-1]) + sum(t[i+1] / t[i]
- 1)` times (tiers `t` ascending; with the default 10 s / 1 min / 10 min / 1 h: 19 for a
wait just under an hour, 2 for two minutes), whatever the wait; and it never holds back a
partition's commit point: the record it came from is done (committed) once the tier's copy
is acked. Waits shorter than the shortest tier are timers in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.config import KafkaConfig


def tier_label(seconds: float) -> str:
    """`10s`, `1m`, `10m`, `1h`: the tier's duration as it appears in its topic name."""
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


def tier_topics(cfg: KafkaConfig) -> dict[str, float]:
    """Topic name -> tier seconds, for every configured delay tier."""
    return {f"{cfg.delivery_topic}.delay.{tier_label(t)}": float(t) for t in cfg.delay_tiers}


def pick_tier(wait: float, tiers: Sequence[float]) -> float | None:
    """The longest tier not longer than `wait`; None when the wait is shorter than all."""
    fitting = [t for t in tiers if t <= wait]
    return max(fitting) if fitting else None


def ripe_at(written: float, tier: float, not_before: float) -> float:
    """When a record written to a tier at `written` is to be taken off it."""
    return min(written + tier, not_before) if not_before > 0 else written + tier
