"""The same TLS failure is worded the same in every probe that speaks TLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from probes import Probe, Reason, Resources, Status
from probes.http import HttpProbe
from probes.tcp import TcpProbe

grpc_probe = pytest.importorskip("probes.grpc")
pytest.importorskip("grpc", reason="the grpc extra is not installed (CI installs it)")


@contextlib.asynccontextmanager
async def tls_port(ca: trustme.CA) -> AsyncIterator[int]:
    """A loopback port that does TLS handshakes with a certificate for localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def tls_probes(port: int, options: dict[str, Any], resources: Resources) -> dict[str, Probe]:
    return {
        "http": HttpProbe("h", {"url": f"https://127.0.0.1:{port}/", **options}, resources),
        "tcp": TcpProbe("t", {"port": port, "tls": True, **options}),
        "grpc": grpc_probe.GrpcProbe("g", {"port": port, "tls": True, **options}),
    }


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        pytest.param(
            {"server_name": "localhost"},
            "certificate verify failed (unable to get local issuer certificate)",
            id="untrusted-ca",
        ),
        pytest.param(
            {"server_name": "other.test", "ca_file": "CA"},
            "certificate verify failed (Hostname mismatch, certificate is not valid for "
            "'other.test'.)",
            id="host-name-mismatch",
        ),
        pytest.param(
            {"ca_file": "CA"},
            "certificate verify failed (IP address mismatch, certificate is not valid for "
            "'127.0.0.1'.)",
            id="ip-address-mismatch",
        ),
    ],
)
async def test_one_wording_in_http_tcp_and_grpc(
    tmp_path: Path, options: dict[str, Any], reason: str
) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    options = {
        key: str(tmp_path / "ca.pem") if value == "CA" else value for key, value in options.items()
    }
    resources = Resources()
    async with tls_port(ca) as port:
        checks = tls_probes(port, options, resources)
        try:
            results = {name: await probe.check() for name, probe in checks.items()}
        finally:
            await checks["grpc"].close()
            await resources.aclose()

    for name, result in results.items():
        assert (name, result.status, result.reason) == (name, Status.FAIL, Reason.TLS)
        assert (name, result.output) == (name, f"TLS error with 127.0.0.1:{port}: {reason}")
