"""`gateway destinations list|pause|resume`: operator commands over the control topic."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gateway.config import Config
from gateway.destinations.control import (
    Circuit,
    circuits,
    ensure_control_topic,
    pause_key,
    pause_record,
    paused_destinations,
    read_control,
)
from gateway.destinations.delays import tier_topics
from gateway.destinations.kafka import client_options, producer_options


async def set_paused(config: Config, name: str, paused: bool) -> None:
    """Write the destination's pause state to the control topic and wait for the ack."""
    cfg = config.kafka
    if cfg.create_topics:
        await ensure_control_topic(cfg)
    producer = AIOKafkaProducer(**producer_options(cfg))
    await producer.start()
    try:
        await producer.send_and_wait(cfg.control_topic, pause_record(paused), key=pause_key(name))
    finally:
        await producer.stop()


async def queue_lag(config: Config) -> dict[str, int]:
    """Delivery queue lag of the worker group, per topic (the queue and each delay tier)."""
    cfg = config.kafka
    consumer = AIOKafkaConsumer(**client_options(cfg), group_id=cfg.consumer_group)
    await consumer.start()
    lag: dict[str, int] = {}
    try:
        await consumer.topics()
        for topic in [cfg.delivery_topic, *tier_topics(cfg)]:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            if not tps:
                continue
            ends = await consumer.end_offsets(tps)
            total = 0
            for tp in tps:
                total += ends[tp] - (await consumer.committed(tp) or 0)
            lag[topic] = total
    finally:
        await consumer.stop()
    return lag


async def list_destinations(config: Config) -> list[str]:
    """One line per webhook destination (state, settings) and the queue's lag."""
    control = await read_control(config.kafka)
    pauses = paused_destinations(control)
    breakers = circuits(control)
    lines = []
    for name, dest in sorted(config.webhook_destinations().items()):
        pause = pauses.get(name)
        if pause is not None and pause.paused:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pause.at))
            state = f"paused since {since}"
        else:
            state = "active"
        limit = f"{float(dest.rate_limit):g}/s" if dest.rate_limit is not None else "none"
        lines.append(
            f"{name}\t{state}\tcircuit={_circuit(breakers.get(name, {}))}\t"
            f"ordering={dest.ordering}\trate_limit={limit}\tconcurrency={dest.concurrency}"
        )
    lag = await queue_lag(config)
    lines.append("queue lag (all destinations): " + ", ".join(f"{t}={n}" for t, n in lag.items()))
    return lines


def _circuit(workers: dict[str, Circuit]) -> str:
    """`closed`, or e.g. `open in 1 of 3 workers (host-12 since 2026-...)`."""
    failing = {w: c for w, c in workers.items() if c.state != "closed"}
    if not failing:
        return "closed"
    worst = "open" if any(c.state == "open" for c in failing.values()) else "half_open"
    detail = ", ".join(
        f"{w} {c.state} since {time.strftime('%H:%M:%SZ', time.gmtime(c.at))}"
        for w, c in sorted(failing.items())
    )
    return f"{worst} in {len(failing)} of {len(workers)} workers ({detail})"
