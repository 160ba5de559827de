"""Where the adapter listens: every spelling of a TCP address that `validate` accepts binds."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest
from aiohttp import web

from adapter.config import parse_config
from adapter.listener import (
    ListenError,
    TcpAddress,
    UnixAddress,
    parse_listen,
    start_listening,
)
from tests.conftest import free_port

CONFIG = "checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]"


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("spelling", "family", "address"),
    [
        pytest.param("127.0.0.1:{port}", socket.AF_INET, "127.0.0.1", id="ipv4"),
        pytest.param("[::1]:{port}", socket.AF_INET6, "::1", id="ipv6"),
        pytest.param("localhost:{port}", socket.AF_INET, "127.0.0.1", id="name"),
        pytest.param(
            "[::ffff:127.0.0.1]:{port}", socket.AF_INET, "127.0.0.1", id="ipv4-mapped-ipv6"
        ),
    ],
)
async def test_an_accepted_listen_address_binds(spelling: str, family: int, address: str) -> None:
    if family == socket.AF_INET6 and not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    config = parse_config(CONFIG, environ={})
    listen = spelling.format(port=free_port())
    runner = await start_listening(web.Application(), config, listen, shutdown_timeout=0.1)
    try:
        port = int(listen.rpartition(":")[2])
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), 5)
        writer.write(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 404")
        writer.close()
    finally:
        await runner.cleanup()


async def test_a_listen_address_that_cannot_work_is_refused_with_its_reason() -> None:
    config = parse_config(CONFIG, environ={})
    with pytest.raises(ListenError, match=r"write an IPv6 address in brackets with its port"):
        await start_listening(web.Application(), config, "::1:9180")


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        ("0.0.0.0:9180", TcpAddress("0.0.0.0", 9180)),
        ("127.0.0.1:80", TcpAddress("127.0.0.1", 80)),
        ("[::]:9180", TcpAddress("::", 9180)),
        ("[::1]:9", TcpAddress("::1", 9)),
        (":9180", TcpAddress("0.0.0.0", 9180)),
        ("9180", TcpAddress("0.0.0.0", 9180)),
        ("localhost:1", TcpAddress("localhost", 1)),
        ("unix:/run/health.sock", UnixAddress("/run/health.sock")),
    ],
)
def test_listen_addresses(listen: str, address: TcpAddress | UnixAddress) -> None:
    assert parse_listen(listen) == address
    assert parse_listen(str(address)) == address


@pytest.mark.parametrize(
    "listen",
    [
        "localhost",
        "host:0",
        "host:65536",
        "host:http",
        "",
        "unix:relative.sock",
        "unix:",
        "unix:/" + "x" * 120,
    ],
)
def test_invalid_listen_addresses(listen: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid listen address {listen!r}")):
        parse_listen(listen)
