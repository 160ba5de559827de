"""The gRPC health port under hostile and careless clients: bytes that are not HTTP/2,
connections that never speak, a flood of watchers. A monitor's Check is still answered
at once, and nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from tests.adapter.test_grpc_health import SERVING, check, grpc_adapter
from tests.faults.conftest import MAX_LATENCY


async def _exchange(port: int, data: bytes, wait: float = 5.0) -> bool:
    """Send raw bytes; True when the server closes the connection within `wait`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(data)
            await writer.drain()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
            except TimeoutError:
                return False
            except ConnectionError:
                return True
            if not chunk:
                return True
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def timed_check(stub: object) -> float:
    begin = time.monotonic()
    assert await check(stub, "") == SERVING
    return time.monotonic() - begin


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\n\r\n",
        bytes(range(256)) * 4,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(4096),
        b"\xff" * 1_000_000,
    ],
    ids=["http1-request", "every-byte", "preface-then-noise", "a-megabyte"],
)
async def test_bytes_that_are_not_grpc_are_closed_and_change_nothing(
    tmp_path: Path, garbage: bytes
) -> None:
    async with grpc_adapter(tmp_path) as (stub, port):
        assert await _exchange(port, garbage)
        assert await timed_check(stub) < MAX_LATENCY


async def test_connections_that_never_speak_do_not_slow_a_monitor(tmp_path: Path) -> None:
    async with grpc_adapter(tmp_path) as (stub, port):
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(100)]
        try:
            slowest = max([await timed_check(stub) for _ in range(10)])
            assert slowest < MAX_LATENCY
        finally:
            for _reader, writer in silent:
                writer.close()


async def test_a_flood_of_watchers_is_capped(tmp_path: Path) -> None:
    async with grpc_adapter(tmp_path, cap=10) as (stub, _port):
        watches = [stub.Watch(health_pb2.HealthCheckRequest(service="")) for _ in range(30)]
        accepted = refused = 0
        for watch in watches:
            try:
                await asyncio.wait_for(watch.read(), 5)
                accepted += 1
            except grpc.aio.AioRpcError as error:
                assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                refused += 1
        assert (accepted, refused) == (10, 20)
        for watch in watches:
            watch.cancel()
        deadline = time.monotonic() + 10
        while True:
            try:
                assert await timed_check(stub) < MAX_LATENCY
                break
            except grpc.aio.AioRpcError:
                assert time.monotonic() < deadline, "no room after the watchers left"
                await asyncio.sleep(0.05)
