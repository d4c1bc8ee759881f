"""A broker that keeps its data through a SIGKILL: tansu on S3 storage served by moto_server.

tansu's memory storage dies with the process, so a fault test could only cut the network in
front of it (tests/faults.py `Proxy`). With `--storage-engine s3://BUCKET/` on a local
`moto_server`, records the broker acknowledged are in the bucket, and a tansu restarted on
the same port serves them again: the fault tests can SIGKILL the broker itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.broker import Broker, free_port, tansu_binary

REGION = "eu-west-2"


class MotoServer:
    """`moto_server` on a free 127.0.0.1 port, with one bucket created."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = f"tansu-{uuid.uuid4().hex[:8]}"
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        if binary is None:
            raise RuntimeError("moto_server is not installed (pip install 'moto[server]')")
        self._process = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log_path.read_text()[-2000:]}")
            try:
                httpx.get(self.endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not answer within 30s") from None
                time.sleep(0.1)
        import boto3  # here: the fixture module is imported by every session (conftest)

        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        s3.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )

    @property
    def env(self) -> dict[str, str]:
        """What tansu needs to use this server as its S3."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": REGION,
        }

    def stop(self) -> None:
        """Stop the server (the bucket is gone with it)."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A local S3 (moto_server) for the durable brokers of one test module."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def durable_broker(moto_s3: MotoServer, tmp_path: Path) -> Iterator[Broker]:
    """tansu storing in its own S3 prefix: `kill()` then `start()` keeps every acked record."""
    prefix = uuid.uuid4().hex[:8]
    broker = Broker(
        tansu_binary(),
        free_port(),
        log_path=str(tmp_path / "tansu.log"),
        storage=f"s3://{moto_s3.bucket}/{prefix}/",
        env=moto_s3.env,
    )
    broker.start()
    yield broker
    broker.stop()
