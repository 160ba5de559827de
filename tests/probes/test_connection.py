"""One wording of connection and TLS failures, whichever probe met them."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from probes import Reason, Resources, Result
from probes.connection import classify_connect_error, elapsed_ms, tls_failure
from probes.http import HttpProbe
from probes.tcp import TcpProbe


@pytest.fixture
async def resetting_port() -> AsyncIterator[int]:
    """A port whose server resets every connection as soon as it is accepted."""

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _http(port: int) -> Result:
    resources = Resources()
    try:
        return await HttpProbe("h", {"url": f"https://127.0.0.1:{port}/"}, resources).check()
    finally:
        await resources.aclose()


async def _tcp(port: int) -> Result:
    return await TcpProbe("t", {"port": port, "tls": True}).check()


@pytest.mark.parametrize("probe", [_http, _tcp], ids=["http", "tcp"])
async def test_a_reset_during_the_handshake_is_worded_alike(
    resetting_port: int, probe: Any
) -> None:
    result = await asyncio.wait_for(probe(resetting_port), 10)

    assert result.reason is Reason.TLS, result.output
    assert result.output == (
        f"TLS error with 127.0.0.1:{resetting_port}: "
        "the server closed the connection during the handshake"
    )


@pytest.mark.parametrize(
    ("error", "tls", "reason", "output"),
    [
        pytest.param(
            ConnectionResetError(104, "Connection reset by peer"),
            True,
            Reason.TLS,
            "TLS error with db:5432: the server closed the connection during the handshake",
            id="reset-over-tls",
        ),
        pytest.param(
            ConnectionResetError(104, "Connection reset by peer"),
            False,
            Reason.CONNECTION_ERROR,
            "cannot connect to db:5432: Connection reset by peer",
            id="reset-without-tls",
        ),
        pytest.param(
            OSError("Multiple exceptions: [Errno 111] Connect call failed, [Errno 111] …"),
            False,
            Reason.CONNECTION_REFUSED,
            "connection refused by db:5432",
            id="every-address-refused",
        ),
        pytest.param(
            ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            True,
            Reason.TLS,
            "TLS error with db:5432: [SSL: WRONG_VERSION_NUMBER] wrong version number",
            id="ssl-error-without-a-reason",
        ),
    ],
)
def test_connect_errors(error: BaseException, tls: bool, reason: Reason, output: str) -> None:
    assert classify_connect_error(error, "db:5432", tls=tls) == (reason, output)


@pytest.mark.parametrize(
    ("details", "output"),
    [
        pytest.param(
            "Ssl handshake failed: SSL_ERROR_SSL: CERTIFICATE_VERIFY_FAILED: unable to get "
            "local issuer certificate",
            "certificate verify failed (unable to get local issuer certificate)",
            id="grpc-verify",
        ),
        pytest.param(
            "Socket closed", "the server closed the connection during the handshake", id="closed"
        ),
    ],
)
def test_grpc_details_are_worded_like_the_ssl_module(details: str, output: str) -> None:
    assert tls_failure("h:1", details) == f"TLS error with h:1: {output}"
    assert tls_failure(None, details) == f"TLS error: {output}"


def test_elapsed_is_in_tenths_of_a_millisecond() -> None:
    started = time.perf_counter() - 0.01234
    value = elapsed_ms(started)
    assert 12.3 <= value < 5000
    assert round(value, 1) == value
