"""Duplicates caused by a rolling restart of two `gateway worker` processes under load.

The scenario of `tests/integration/test_delivery_fleet.py::rolling_restart` (real tansu,
two real worker processes, a `standardwebhooks`-verifying receiver, 100 events/s, 5 % of
requests taking 3.5 s against a 6 s destination timeout): stop and restart one worker,
then the other, and count requests beyond the first per event. Run with the session
timeout covering the revoke wait (8 s, the recommended setting) and shorter than it (3 s:
tansu then ends the rebalance before in-flight requests finish), `--runs` times each.

    .venv/bin/python benchmarks/rolling_restart_bench.py [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.broker import Broker, free_port, tansu_binary  # noqa: E402
from tests.destinations.receiver import Receiver  # noqa: E402
from tests.integration.test_delivery_fleet import rolling_restart  # noqa: E402


async def one(broker: Broker, long_session: bool) -> tuple[int, int, int]:
    """One rollout; (events, requests, duplicates)."""
    receiver = Receiver([])
    await receiver.start()
    queue = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    await queue.start()
    try:
        with tempfile.TemporaryDirectory(prefix="rolling-") as tmp:
            return await rolling_restart(broker, receiver, queue, Path(tmp), 100, long_session)
    finally:
        await queue.stop()
        await receiver.stop()


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="rolling-broker-") as tmp:
        broker = Broker(tansu_binary(), free_port(), log_path=str(Path(tmp) / "tansu.log"))
        broker.start()
        try:
            for long_session, label in ((True, "session 8s >= wait 7s"), (False, "session 3s")):
                for n in range(runs):
                    events, requests, duplicates = await one(broker, long_session)
                    print(
                        f"{label:<22} run {n + 1}: {events:,} events, {requests:,} requests, "
                        f"{duplicates} duplicates ({duplicates / events:.1%})",
                        flush=True,
                    )
        finally:
            broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=2)
    asyncio.run(main(parser.parse_args().runs))
