"""gRPC health, asked with the reference client (grpcio-health-checking's stub) against the
adapter running its checks, as `serve` starts it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapter.server import STORE, current_config, verdict_of
from adapter.side_listeners import SideListeners, start_side_listeners
from tests import sample_probes
from tests.conftest import free_port
from tests.faults.conftest import running_adapter

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

CONFIG = """
server:
  max_connections: {cap}
  grpc: {{listen: "127.0.0.1:{port}"}}
  drain_file: {drain}
checks:
  - {{name: api, interval: 100ms, plugin: {{class: "tests.sample_probes:Switch", key: api}}}}
  - {{name: heartbeat, groups: [live], interval: 100ms,
     plugin: {{class: "tests.sample_probes:Switch", key: heartbeat}}}}
  - {{name: cache, critical: false, interval: 100ms,
     plugin: {{class: "tests.sample_probes:Switch", key: cache}}}}
"""


@contextlib.asynccontextmanager
async def grpc_adapter(
    tmp_path: Path, cap: int = 256, details: bool = True
) -> AsyncIterator[tuple[Any, int]]:
    """The running adapter with its gRPC port; yields the reference client's stub, and the port."""
    text = CONFIG.format(cap=cap, port=free_port(), drain=tmp_path / "drain")
    async with running_adapter(text) as adapter:
        app = adapter.app
        side: SideListeners = await start_side_listeners(
            current_config(app).server,
            lambda service: verdict_of(app, service),
            app[STORE],
            details=lambda: details,
        )
        assert side.grpc is not None
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{side.grpc.port}")
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            await until(stub, "", SERVING)
            assert side.grpc.port is not None
            yield stub, side.grpc.port
        finally:
            await channel.close()
            await side.stop(0)


async def check(stub: Any, service: str) -> int:
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(response.status)


async def until(stub: Any, service: str, status: int, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = await check(stub, service)
        if last == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{service!r} never answered {status}; last {last}")


@pytest.mark.parametrize(
    ("switches", "answers"),
    [
        ({}, {"": SERVING, "live": SERVING, "ready": SERVING, "startup": SERVING, "api": SERVING}),
        (
            {"api": "fail"},
            {"": NOT_SERVING, "live": SERVING, "ready": NOT_SERVING, "api": NOT_SERVING},
        ),
        (
            {"heartbeat": "fail"},
            {"": NOT_SERVING, "live": NOT_SERVING, "ready": SERVING, "heartbeat": NOT_SERVING},
        ),
        # A non-critical failure only warns the groups: still serving; the check itself is not.
        ({"cache": "fail"}, {"": SERVING, "ready": SERVING, "cache": NOT_SERVING}),
        ({"api": "warn"}, {"": SERVING, "ready": SERVING, "api": SERVING}),
    ],
    ids=["all-pass", "ready-check-fails", "live-check-fails", "non-critical-fails", "warn"],
)
async def test_check_answers_each_service_name(
    tmp_path: Path, switches: dict[str, str], answers: dict[str, int]
) -> None:
    async with grpc_adapter(tmp_path) as (stub, _port):
        sample_probes.SWITCHES.update(switches)
        for service, status in answers.items():
            await until(stub, service, status)


async def test_an_unknown_service_is_not_found(tmp_path: Path) -> None:
    async with grpc_adapter(tmp_path) as (stub, _port):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await check(stub, "nope")
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        watch = stub.Watch(health_pb2.HealthCheckRequest(service="nope"))
        first = await asyncio.wait_for(watch.read(), 5)
        assert first.status == SERVICE_UNKNOWN
        watch.cancel()


async def test_the_drain_file_takes_ready_out_only(tmp_path: Path) -> None:
    async with grpc_adapter(tmp_path) as (stub, _port):
        (tmp_path / "drain").touch()
        await until(stub, "ready", NOT_SERVING)
        assert await check(stub, "live") == SERVING
        assert await check(stub, "") == SERVING
        (tmp_path / "drain").unlink()
        await until(stub, "ready", SERVING)


async def test_watch_sends_each_change_and_nothing_in_between(tmp_path: Path) -> None:
    async with grpc_adapter(tmp_path) as (stub, _port):
        watch = stub.Watch(health_pb2.HealthCheckRequest(service="ready"))
        seen = [(await asyncio.wait_for(watch.read(), 5)).status]
        assert seen == [SERVING]
        sample_probes.SWITCHES["api"] = "fail"
        seen.append((await asyncio.wait_for(watch.read(), 5)).status)
        # Many runs at 100ms, the status unchanged: no message.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(next_message := asyncio.ensure_future(watch.read())), 1.0
            )
        sample_probes.SWITCHES["api"] = "pass"
        seen.append((await asyncio.wait_for(next_message, 5)).status)
        assert seen == [SERVING, NOT_SERVING, SERVING]
        watch.cancel()


async def test_rpcs_beyond_the_cap_are_refused_and_room_comes_back(tmp_path: Path) -> None:
    async with grpc_adapter(tmp_path, cap=3) as (stub, _port):
        watches = [stub.Watch(health_pb2.HealthCheckRequest(service="")) for _ in range(3)]
        for watch in watches:
            assert (await asyncio.wait_for(watch.read(), 5)).status == SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await check(stub, "")
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        watches[0].cancel()
        # The cancel reaches the server asynchronously: room comes back soon after.
        for _ in range(100):
            with contextlib.suppress(grpc.aio.AioRpcError):
                assert await check(stub, "") == SERVING
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no room after a watcher left")
        for watch in watches[1:]:
            watch.cancel()


async def test_stopping_ends_watches_at_once(tmp_path: Path) -> None:
    text = CONFIG.format(cap=256, port=free_port(), drain=tmp_path / "drain")
    async with running_adapter(text) as adapter:
        app = adapter.app
        side = await start_side_listeners(
            current_config(app).server,
            lambda service: verdict_of(app, service),
            app[STORE],
            details=lambda: True,
        )
        assert side.grpc is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{side.grpc.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="")
            )
            await asyncio.wait_for(watch.read(), 5)
            loop = asyncio.get_running_loop()
            begin = loop.time()
            await side.stop(grace=30)
            assert loop.time() - begin < 10  # not the 30 s grace: the watch ended
            # Messages sent before the stop may still be in flight; then the stream ends
            # (an end of stream or the RPC's error, both an ended watch).
            with contextlib.suppress(grpc.aio.AioRpcError):
                for _ in range(10):
                    if await asyncio.wait_for(watch.read(), 5) is grpc.aio.EOF:
                        break
                else:
                    raise AssertionError("the watch went on after the server stopped")


async def test_without_public_details_check_names_are_unknown(tmp_path: Path) -> None:
    async with grpc_adapter(tmp_path, details=False) as (stub, _port):
        assert await check(stub, "ready") == SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await check(stub, "api")
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
