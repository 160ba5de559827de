"""The lifecycle in-process: start, drain, reload, stop, and the listeners beside HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapter.config import load_config, parse_config
from adapter.lifecycle import Lifecycle
from adapter.listener import ListenError
from adapter.notify import Notifier
from adapter.server import SCHEDULER, STORE
from tests.conftest import free_port

CONFIG = """
checks:
  - {name: api, groups: [live, ready], interval: 100ms,
     plugin: {class: "tests.sample_probes:Switch", key: api}}
"""


async def status_of(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


async def answers(url: str, status: int) -> bool:
    return await status_of(url) == status


async def until(condition: Callable[[], Any], what: str, bound: float = 10.0) -> None:
    """Poll `condition` (a plain or async callable) until it is true, within `bound` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while loop.time() < deadline:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


@dataclasses.dataclass
class Served:
    lifecycle: Lifecycle
    task: asyncio.Task[None]
    base: str


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    path = tmp_path / "health.yaml"
    path.write_text(CONFIG)
    port = free_port()
    lifecycle = Lifecycle(
        load_config(path), f"127.0.0.1:{port}", config_path=path, shutdown_delay=60.0
    )
    ready: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(lifecycle.serve(ready.set_result, handle_signals=False))
    await asyncio.wait_for(ready, 10)
    base = f"http://127.0.0.1:{port}"
    await until(lambda: answers(base + "/readyz", 200), "/readyz answers 200")
    yield Served(lifecycle, task, base)
    if not task.done():
        lifecycle.request_stop("SIGTERM")
        lifecycle.request_stop("SIGTERM")  # the second one ends the shutdown delay
    await asyncio.wait_for(task, 10)


async def test_a_stop_drains_readyz_at_once_and_keeps_serving_through_the_delay(
    served: Served,
) -> None:
    served.lifecycle.request_stop("SIGTERM")
    assert await status_of(served.base + "/readyz") == 503
    assert await status_of(served.base + "/livez") == 200  # liveness is not readiness
    assert not served.task.done()  # the shutdown delay: still serving
    served.lifecycle.request_stop("SIGINT")  # a second stop ends the delay
    await asyncio.wait_for(served.task, 10)
    assert not served.lifecycle.app[SCHEDULER].running  # type: ignore[index]
    with pytest.raises(aiohttp.ClientConnectionError):
        await status_of(served.base + "/readyz")


async def test_a_drain_without_a_stop_is_taken_back(served: Served) -> None:
    served.lifecycle.drain("drain file")
    assert await status_of(served.base + "/readyz") == 503
    assert served.lifecycle.draining_state.reasons == ["drain file"]
    served.lifecycle.undrain("drain file")
    assert await status_of(served.base + "/readyz") == 200
    assert not served.task.done()


async def test_a_reload_swaps_the_checks(served: Served, tmp_path: Path) -> None:
    (tmp_path / "health.yaml").write_text(CONFIG.replace("name: api", "name: web"))
    assert await served.lifecycle.reload("test")
    await until(lambda: answers(served.base + "/health/web", 200), "web runs and passes")
    assert await status_of(served.base + "/health/api") == 404
    # A reload during the stop is refused: the old config keeps running to the end.
    served.lifecycle.request_stop("SIGTERM")
    assert not await served.lifecycle.reload("test")


@dataclasses.dataclass
class Recorder:
    """A listener beside HTTP that notes what it saw when it was started and stopped."""

    base: str
    name: str = "recorder"
    stop_at_start: bool = False
    fail_at_start: bool = False
    seen: list[str] = dataclasses.field(default_factory=list)

    async def start(self, lifecycle: Lifecycle) -> None:
        # The HTTP port is bound already, and no check has run.
        assert lifecycle.app is not None
        runs = sum(sum(s.run_counts.values()) for s in lifecycle.app[STORE].states().values())
        self.seen.append(f"start: http {await status_of(self.base + '/livez')}, runs {runs}")
        if self.fail_at_start:
            raise OSError("address in use")
        if self.stop_at_start:
            lifecycle.request_stop("SIGTERM")

    async def stop(self) -> None:
        self.seen.append(f"stop: http {await status_of(self.base + '/livez')}")


def adapter_with(recorder: Recorder, port: int, shutdown_delay: float = 0.0) -> Lifecycle:
    config = parse_config(CONFIG, environ={})
    return Lifecycle(
        config, f"127.0.0.1:{port}", shutdown_delay=shutdown_delay, listeners=[recorder]
    )


async def test_a_listener_starts_between_bind_and_checks_and_stops_before_the_port_closes() -> None:
    port = free_port()
    recorder = Recorder(f"http://127.0.0.1:{port}")
    lifecycle = adapter_with(recorder, port)
    await lifecycle.start()
    assert lifecycle.started
    await until(lambda: lifecycle.app[STORE].get("api").last is not None, "api runs")  # type: ignore[index]
    await lifecycle.stop("SIGTERM")
    # 503 for /livez at the start: no result yet; 200 at the stop, the port still open.
    assert recorder.seen == ["start: http 503, runs 0", "stop: http 200"]


async def test_a_stop_during_start_up_skips_the_checks_and_the_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    recorder = Recorder(f"http://127.0.0.1:{port}", stop_at_start=True)
    lifecycle = adapter_with(recorder, port, shutdown_delay=60.0)
    with caplog.at_level(logging.INFO, logger="health_adapter"):
        await asyncio.wait_for(lifecycle.serve(handle_signals=False), 10)  # not the 60 s delay
    assert not lifecycle.started
    assert not lifecycle.app[SCHEDULER].running  # type: ignore[index]
    assert lifecycle.app[STORE].get("api").last is None  # type: ignore[index]
    (stopping,) = [r for r in caplog.records if r.getMessage() == "stopping"]
    assert stopping.fields == {  # type: ignore[attr-defined]
        "signal": "SIGTERM",
        "shutdown_delay": "0s",
        "during": "start-up",
    }
    assert [r.getMessage() for r in caplog.records][-1] == "stopped"
    assert recorder.seen[-1] == "stop: http 503"  # no result yet, and the port still open


async def test_a_stop_before_start_binds_nothing() -> None:
    port = free_port()
    recorder = Recorder(f"http://127.0.0.1:{port}")
    lifecycle = adapter_with(recorder, port)
    lifecycle.request_stop("SIGTERM")
    await asyncio.wait_for(lifecycle.serve(handle_signals=False), 10)
    assert lifecycle.app is None and recorder.seen == []


async def test_a_listener_that_cannot_start_fails_the_start_and_frees_the_port() -> None:
    port = free_port()
    recorder = Recorder(f"http://127.0.0.1:{port}", fail_at_start=True)
    lifecycle = adapter_with(recorder, port)
    with pytest.raises(OSError, match="address in use"):
        await lifecycle.serve(handle_signals=False)
    assert not lifecycle.started
    assert lifecycle.app[STORE].get("api").last is None  # type: ignore[index]
    with pytest.raises(aiohttp.ClientConnectionError):
        await status_of(recorder.base + "/livez")


async def test_a_port_in_use_is_a_listen_error_before_any_listener() -> None:
    port = free_port()
    recorder = Recorder(f"http://127.0.0.1:{port}")
    first = adapter_with(Recorder(recorder.base), port)
    await first.start()
    try:
        with pytest.raises(ListenError):
            await adapter_with(recorder, port).serve(handle_signals=False)
        assert recorder.seen == []
    finally:
        await first.stop("SIGTERM")


async def agent_line(port: int) -> str:
    """What HAProxy's agent check reads: one line, then the agent closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return (await asyncio.wait_for(reader.read(), 5)).decode().strip()
    finally:
        writer.close()


async def agent_says(port: int, line: str) -> bool:
    try:
        return await agent_line(port) == line
    except OSError:  # not listening yet
        return False


async def test_the_agent_port_lives_with_the_lifecycle_and_reads_its_drain(
    tmp_path: Path,
) -> None:
    port, agent = free_port(), free_port()
    drain = tmp_path / "drain"
    config = parse_config(
        CONFIG
        + f'server: {{haproxy_agent: {{listen: "127.0.0.1:{agent}"}}, drain_file: {drain}}}\n',
        environ={},
    )
    base = f"http://127.0.0.1:{port}"
    lifecycle = Lifecycle(config, f"127.0.0.1:{port}", shutdown_delay=60.0)
    task = asyncio.create_task(lifecycle.serve(handle_signals=False))
    try:
        await until(lambda: agent_says(agent, "up ready 100%"), "the agent says up")
        drain.touch()  # the drain file: /readyz and the agent alike
        assert await agent_line(agent) == f"drain #draining: drain file {drain} exists"
        assert await status_of(base + "/readyz") == 503
        drain.unlink()
        assert await agent_line(agent) == "up ready 100%"
        lifecycle.request_stop("SIGTERM")  # the delay: drained, both ports still open
        assert await agent_line(agent) == "drain #shutting down"
        assert await status_of(base + "/readyz") == 503
    finally:
        lifecycle.request_stop("SIGTERM")
        await asyncio.wait_for(task, 10)
    with pytest.raises(OSError):
        await agent_line(agent)


async def test_systemd_hears_ready_after_the_first_round_and_stopping_at_the_stop(
    tmp_path: Path,
) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    port = free_port()
    lifecycle = Lifecycle(
        parse_config(CONFIG, environ={}),
        f"127.0.0.1:{port}",
        notifier=Notifier(str(tmp_path / "notify")),
    )
    try:
        await lifecycle.start()
        ready = (await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)).decode()
        assert ready.splitlines() == ["READY=1", f"STATUS=listening on 127.0.0.1:{port}"]
        assert lifecycle.app[STORE].get("api").last is not None  # type: ignore[index]
        lifecycle.request_stop("SIGTERM")
        stopping = await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)
        assert stopping == b"STOPPING=1"
    finally:
        await lifecycle.stop("SIGTERM")
        sock.close()
