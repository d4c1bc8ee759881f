"""gateway/resp.py against a real redis-server: ordering, reconnects, TLS, unix sockets, ACLs."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.resp import Client, ReplyError
from tests.redis_server import RedisServer


async def test_replies_stay_matched_after_a_waiter_gives_up(redis_server: RedisServer) -> None:
    """A command whose caller timed out still gets its reply dropped, not handed to the next."""
    client = Client(redis_server.url)
    key = f"resp:{uuid.uuid4().hex}"
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.execute("BLPOP", key + ":empty", 1)  # blocks the server 1 s
        assert await client.execute("SET", key, "v") == b"OK"
        assert await client.execute("GET", key) == b"v"
        replies = await asyncio.gather(*(client.execute("INCR", key + ":n") for _ in range(200)))
        assert replies == list(range(1, 201))  # pipelined, in order
        with pytest.raises(ReplyError, match="WRONGTYPE"):
            await client.execute("LPUSH", key, "x")
        assert await client.execute("GET", key) == b"v"
    finally:
        await client.aclose()


async def test_the_commands_of_one_loop_turn_leave_in_one_write(
    redis_server: RedisServer,
) -> None:
    """200 commands issued in one turn are one write to the socket; replies stay matched,
    an error reply among them included, and a command of the next turn is a write of its own."""
    client = Client(redis_server.url)
    key = f"resp:{uuid.uuid4().hex}"
    try:
        assert await client.execute("SET", key, "v") == b"OK"  # connected
        protocol = client._protocol
        assert protocol is not None and protocol.transport is not None
        transport = protocol.transport
        writes: list[int] = []
        real_write = transport.write

        def counting_write(data: bytes) -> None:
            writes.append(len(data))
            real_write(data)

        protocol.transport = type("Counted", (), {})()  # a view of the real transport
        protocol.transport.write = counting_write  # type: ignore[attr-defined]
        protocol.transport.is_closing = transport.is_closing  # type: ignore[attr-defined]
        commands = [client.execute("INCR", key + ":n") for _ in range(199)]
        commands.insert(100, client.execute("LPUSH", key, "x"))  # WRONGTYPE
        replies = await asyncio.gather(*commands, return_exceptions=True)
        assert len(writes) == 1
        assert isinstance(replies[100], ReplyError)
        assert [r for i, r in enumerate(replies) if i != 100] == list(range(1, 200))
        assert await client.execute("GET", key) == b"v"
        assert len(writes) == 2
    finally:
        protocol.transport = transport
        await client.aclose()


async def test_commands_not_yet_written_fail_when_the_connection_is_lost(
    own_redis: RedisServer,
) -> None:
    """A connection lost before the turn's write fails those waiters; nothing hangs."""
    client = Client(own_redis.url)
    try:
        assert await client.execute("PING") == b"PONG"
        protocol = client._protocol
        assert protocol is not None and protocol.transport is not None
        pending = [asyncio.ensure_future(client.execute("PING")) for _ in range(3)]
        await asyncio.sleep(0)  # the commands are queued, not written
        protocol.transport.abort()
        async with asyncio.timeout(5):
            results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, ConnectionError) for r in results), results
        assert await client.execute("PING") == b"PONG"  # a new connection
    finally:
        await client.aclose()


async def test_reconnects_after_the_server_restarts(own_redis: RedisServer) -> None:
    """A lost connection fails what was in flight with ConnectionError; the next command reconnects."""
    client = Client(own_redis.url)
    try:
        assert await client.execute("PING") == b"PONG"
        own_redis.kill()
        with pytest.raises(ConnectionError):
            await client.execute("PING")
        own_redis.start()
        assert await client.execute("PING") == b"PONG"
    finally:
        await client.aclose()


async def test_unix_socket_database_and_acl_user(tmp_path: Path) -> None:
    """unix:// with ?db=, and a user:password ACL login in the URL."""
    server = RedisServer(tmp_path)
    socket_path = tmp_path / "redis.sock"
    server.extra_args = ["--unixsocket", str(socket_path), "--unixsocketperm", "700"]
    server.start()
    try:
        server.command("ACL", "SETUSER", "gw", "on", ">pw-9f3", "~*", "+@all")
        over_unix = Client(f"unix://{socket_path}?db=2")
        acl = Client(f"redis://gw:pw-9f3@127.0.0.1:{server.port}/2")
        wrong = Client(f"redis://gw:nope@127.0.0.1:{server.port}/2")
        default_db = Client(server.url)
        try:
            assert await over_unix.execute("SET", "k", "unix") == b"OK"
            assert await acl.execute("GET", "k") == b"unix"  # same database 2
            assert await default_db.execute("GET", "k") is None  # database 0
            with pytest.raises(ReplyError, match="WRONGPASS"):
                await wrong.execute("PING")
        finally:
            for c in (over_unix, acl, wrong, default_db):
                await c.aclose()
    finally:
        server.stop()


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it (PEM files)."""
    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("test ca")).issuer_name(name("test ca"))
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_rediss_verifies_the_server_certificate(tmp_path: Path) -> None:
    """rediss:// talks TLS, trusting `?ssl_ca_certs=`; without that CA the handshake fails."""
    ca, cert, key = _tls_files(tmp_path)
    server = RedisServer(tmp_path)
    tls_port = server.port
    server.port = 0  # no plain-text listener
    server.extra_args = [
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
    ]  # fmt: skip
    server.ready_port = tls_port
    server.start()
    try:
        trusted = Client(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}")
        untrusted = Client(f"rediss://127.0.0.1:{tls_port}/0")
        try:
            assert await trusted.execute("PING") == b"PONG"
            with pytest.raises(OSError):  # ssl.SSLCertVerificationError
                await untrusted.execute("PING")
        finally:
            await trusted.aclose()
            await untrusted.aclose()
    finally:
        server.stop()
