"""Delivery settings and the pure parts of scheduling: delay tiers, rates, ordering chains."""

from __future__ import annotations

import random

import pytest
from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ConfigError, KafkaConfig, parse_config
from gateway.destinations.delays import pick_tier, ripe_at, tier_label, tier_topics
from gateway.destinations.lanes import Job, Lane
from gateway.destinations.offsets import Entry
from gateway.types import RateLimit
from tests.destinations.receiver import new_secret

CONFIG = """\
sources:
  wp: {{provider: whitepay, secret: s3cr3t-value}}
destinations:
  hook:
    webhook:
      url: https://example.com/hook
      secret: {secret}
      {extra}
routes:
  - {{name: all, match: {{type: "order.*"}}, to: [hook]}}
"""


def test_rate_limits_parse_per_second_and_per_minute() -> None:
    """`50/s` and `600/m` are requests per second; the burst is a tenth of a second's worth."""
    assert (RateLimit.parse("50/s"), RateLimit.parse("50/s").burst) == (50.0, 5)
    assert (RateLimit.parse(" 600 / m "), RateLimit.parse("600/m").burst) == (10.0, 1)
    assert RateLimit.parse("1/m").burst == 1
    for bad in ("50", "0/s", "-1/s", "50/h", "fast", ""):
        with pytest.raises(ValueError, match="expected a rate"):
            RateLimit.parse(bad)


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ("rate_limit: lots", "destinations.hook.webhook.rate_limit"),
        ("ordering: by-key", "destinations.hook.webhook.ordering"),
    ],
)
def test_bad_delivery_settings_are_config_errors(extra: str, path: str) -> None:
    """A bad `rate_limit` or `ordering` names its path, like every config error."""
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG.format(secret=new_secret(), extra=extra), "cfg.yaml")
    assert any(path in problem for problem in info.value.problems), info.value.problems


def test_delivery_settings_load() -> None:
    """`ordering: key` and `rate_limit: 20/s` load; the defaults are none and unlimited."""
    config = parse_config(CONFIG.format(secret=new_secret(), extra="ordering: key"))
    assert config.webhook_destinations()["hook"].ordering == "key"
    assert config.webhook_destinations()["hook"].rate_limit is None
    config = parse_config(CONFIG.format(secret=new_secret(), extra="rate_limit: 20/s"))
    assert config.webhook_destinations()["hook"].ordering == "none"
    assert config.webhook_destinations()["hook"].rate_limit == 20.0


def test_tier_topics_are_named_after_their_delay() -> None:
    """The default tiers: `<delivery_topic>.delay.10s` ... `.delay.1h`."""
    topics = tier_topics(KafkaConfig(delivery_topic="q"))
    assert topics == {
        "q.delay.10s": 10.0,
        "q.delay.1m": 60.0,
        "q.delay.10m": 600.0,
        "q.delay.1h": 3600.0,
    }
    assert tier_label(0.5) == "500ms" and tier_label(90) == "90s"


@given(st.floats(min_value=0.0, max_value=5 * 86_400.0))
def test_writes_per_wait_are_bounded(wait: float) -> None:
    """Moving down the tiers writes a delivery at most floor(w / t_max) + sum(t[i+1]/t[i] - 1) times."""
    tiers = [10.0, 60.0, 600.0, 3600.0]
    remaining, writes = wait, 0
    while (tier := pick_tier(remaining, tiers)) is not None and remaining > tiers[0]:
        remaining -= tier  # ripe after `tier`, the rest of the wait is what is left
        writes += 1
    assert remaining <= tiers[0] or pick_tier(remaining, tiers) is None
    assert writes <= wait // 3600 + (6 - 1) + (10 - 1) + (6 - 1)


def test_a_tier_record_ripens_after_its_tier_or_when_due() -> None:
    """Written at t with tier T: ripe at t + T, or at `not_before` if that is earlier."""
    assert ripe_at(100.0, 60.0, 500.0) == 160.0
    assert ripe_at(100.0, 60.0, 130.0) == 130.0
    assert ripe_at(100.0, 60.0, 0.0) == 160.0


def _job(key: bytes, offset: int) -> Job:
    return Job(TopicPartition("q", 0), Entry(offset), key, b"", None)


def test_ordering_key_chains_release_one_job_per_key_in_order() -> None:
    """With `ordering: key` only a key's first job is schedulable; finishing it yields the next."""
    lane = Lane(
        "hook",
        parse_config(
            CONFIG.format(secret=new_secret(), extra="ordering: key")
        ).webhook_destinations()["hook"],
    )
    rng = random.Random(3)
    jobs = [_job(rng.choice([b"a", b"b", b"c"]), offset) for offset in range(60)]
    runnable = [job for job in jobs if lane.join(job)]
    assert [job.key for job in runnable] == sorted(
        {job.key for job in jobs}, key=[j.key for j in jobs].index
    )
    finished: dict[bytes | None, list[int]] = {}
    while runnable:
        job = runnable.pop(rng.randrange(len(runnable)))  # keys finish in any order
        finished.setdefault(job.key, []).append(job.entry.offset)
        following = lane.leave(job)
        if following is not None:
            runnable.append(following)
    for key, offsets in finished.items():
        assert offsets == [job.entry.offset for job in jobs if job.key == key]
    assert lane.chains == {}
