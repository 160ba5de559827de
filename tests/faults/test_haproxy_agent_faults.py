"""The HAProxy agent's port under hostile and careless clients: slow readers, clients that
never close, floods that hold every slot, garbage bytes. HAProxy's own poll is answered at
once every time, and the adapter leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable

import pytest

from adapter.haproxy_agent import HaproxyAgent
from adapter.server import STORE, current_config, verdict_of
from adapter.side_listeners import start_side_listeners
from tests.conftest import free_port
from tests.faults.conftest import MAX_LATENCY, Footprint, assert_nothing_left, running_adapter

CONFIG = """
server:
  max_connections: 20
  keepalive_timeout: 1s
  haproxy_agent: {{listen: "127.0.0.1:{port}"}}
checks:
  - {{name: ok, interval: 100ms, plugin: {{class: 'tests.sample_probes:Ok'}}}}
"""


@contextlib.asynccontextmanager
async def running_agent() -> AsyncIterator[HaproxyAgent]:
    """The adapter with its agent port, started as `serve` starts them."""
    async with running_adapter(CONFIG.format(port=free_port())) as adapter:
        app = adapter.app
        side = await start_side_listeners(
            current_config(app).server,
            lambda service: verdict_of(app, service),
            app[STORE],
            details=lambda: True,
        )
        assert side.agent is not None
        try:
            await poll_until(side.agent, b"up ready 100%\n")
            yield side.agent
        finally:
            await side.stop()


async def ask(agent: HaproxyAgent, send: bytes = b"") -> tuple[bytes, float]:
    """What HAProxy does: connect, maybe send, read the line until the agent closes."""
    begin = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
    try:
        if send:
            writer.write(send)
        line = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return line, time.monotonic() - begin


async def poll_until(agent: HaproxyAgent, line: bytes, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    last = b""
    while time.monotonic() < deadline:
        last, _ = await ask(agent)
        if last == line:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the agent never said {line!r}; last {last!r}")


async def _silent(port: int, until: float) -> int:
    """Connect, never read, never close; reconnect once cut off."""
    connections = 0
    while time.monotonic() < until:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        connections += 1
        transport = writer.transport
        while not transport.is_closing() and time.monotonic() < until:
            await asyncio.sleep(0.05)
            with contextlib.suppress(OSError):
                writer.write(b"x")  # notices the reset
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return connections


async def test_clients_that_never_close_are_cut_off_after_the_linger() -> None:
    before = Footprint.take()
    async with running_agent() as agent:
        writers = []
        for _ in range(10):
            _reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
            writers.append(writer)
        await asyncio.sleep(0.1)
        assert len(agent._open) == 10
        deadline = time.monotonic() + 5
        while agent._open and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not agent._open, "lingering connections were not cut off"
        for writer in writers:
            writer.close()
    await assert_nothing_left(before)


def _loops() -> list[object]:
    params: list[object] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    with contextlib.suppress(ImportError):
        import uvloop

        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


@pytest.mark.parametrize("new_loop", _loops())
def test_a_flood_holding_every_slot_does_not_lock_haproxy_out(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    # Its own loop, so the agent meets uvloop's transports as `serve` does.
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(_flood_while_haproxy_polls())


async def _flood_while_haproxy_polls() -> None:
    # libuv keeps a spare descriptor from a loop's first listening socket on.
    warm_up = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    warm_up.close()
    await warm_up.wait_closed()
    before = Footprint.take()
    async with running_agent() as agent:
        port = agent.port
        assert port is not None
        until = time.monotonic() + 3
        flood = [asyncio.create_task(_silent(port, until)) for _ in range(40)]
        # Ask once the flood holds every slot (and has started to push the oldest out).
        while agent.evicted == 0:
            assert time.monotonic() < until - 1, "the flood never filled the slots"
            await asyncio.sleep(0.02)
        answers = []
        while time.monotonic() < until - 0.3:
            answers.append(await ask(agent))
            await asyncio.sleep(0.1)
        await asyncio.gather(*flood)
        assert len(agent._open) <= agent.max_connections
        evicted = agent.evicted
    assert len(answers) >= 10
    assert all(line == b"up ready 100%\n" for line, _ in answers), answers
    assert max(elapsed for _, elapsed in answers) < MAX_LATENCY
    assert evicted > 0  # the flood did fill the slots
    await assert_nothing_left(before)


@pytest.mark.parametrize(
    "garbage",
    [
        b"hello\n",
        b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
        bytes(range(256)),
        b"\xff" * 1_000_000,
    ],
    ids=["agent-send", "http-request", "every-byte", "a-megabyte"],
)
async def test_garbage_from_the_client_changes_nothing(
    garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    before = Footprint.take()
    async with running_agent() as agent:
        line, elapsed = await ask(agent, garbage)
        assert line == b"up ready 100%\n"
        assert elapsed < MAX_LATENCY
        assert (await ask(agent, os.urandom(4096)))[0] == b"up ready 100%\n"
    assert [r.getMessage() for r in caplog.records] == []
    await assert_nothing_left(before)


async def test_a_client_that_reads_slowly_still_gets_the_whole_line() -> None:
    async with running_agent() as agent:
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.port)
        await asyncio.sleep(0.5)  # the line waits in the socket, the agent has half-closed
        received = b""
        while byte := await asyncio.wait_for(reader.read(1), 5):
            received += byte
            await asyncio.sleep(0.01)
        writer.close()
        assert received == b"up ready 100%\n"
