"""A flood that holds every connection slot and reconnects as fast as it is
closed: monitors must still be answered, on either event loop, and the log
must stay quiet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp
import pytest

from adapter.listener import LimitedSite
from tests.faults.conftest import Footprint, assert_nothing_left, running_adapter

CONFIG = """
server: {max_connections: 20, keepalive_timeout: 5s}
checks:
  - {name: ok, interval: 100ms, plugin: {class: 'tests.sample_probes:Ok'}}
"""


def _loops() -> list[object]:
    params: list[object] = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    with contextlib.suppress(ImportError):
        import uvloop

        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


async def _hold_a_slot(port: int, until: float) -> int:
    """Connect, say nothing, and reconnect as soon as the adapter closes us."""
    connections = 0
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        connections += 1
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(reader.read(1), max(0.01, until - time.monotonic()))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return connections


@pytest.mark.parametrize("new_loop", _loops())
def test_a_reconnecting_flood_does_not_lock_monitors_out(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Its own loop, so the listener meets uvloop's transports as `serve` does.
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(_flood_while_a_monitor_polls(caplog))


async def _flood_while_a_monitor_polls(caplog: pytest.LogCaptureFixture) -> None:
    # libuv keeps a spare descriptor (on /dev/null) from a loop's first listening
    # socket on, for running out of descriptors; it is the loop's, not a leak.
    warm_up = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    warm_up.close()
    await warm_up.wait_closed()
    before = Footprint.take()
    caplog.set_level(logging.WARNING)
    async with running_adapter(CONFIG) as adapter:
        await adapter.until(lambda status, body: status == 200)
        site = adapter.site
        port = site.port
        assert port is not None
        until = time.monotonic() + 4
        flood = [asyncio.create_task(_hold_a_slot(port, until)) for _ in range(40)]
        await asyncio.sleep(0.5)  # every slot is taken, and keeps being retaken
        answered = asked = 0
        # A kubelet-like monitor: a new connection per poll.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=2),
        ) as monitor:
            while time.monotonic() < until - 0.3:
                asked += 1
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with monitor.get(f"{adapter.url}/health") as response:
                        answered += response.status == 200
                await asyncio.sleep(0.1)
        reconnects = sum(await asyncio.gather(*flood))
    assert reconnects > 40  # the flood did turn over the slots
    assert asked >= 10 and answered >= 0.9 * asked, (answered, asked)
    assert site.evicted > 0
    noisy = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert noisy == []
    await assert_nothing_left(before)


class _Handler:
    """Stands in for aiohttp's handler of one connection: busy or not."""

    def __init__(self, busy: bool) -> None:
        self._request_in_progress = busy
        self.closed = False

    def force_close(self) -> None:
        self.closed = True


def test_when_every_slot_is_busy_answering_a_new_connection_is_refused() -> None:
    site = LimitedSite.__new__(LimitedSite)  # only the slot accounting is under test
    site.max_connections, site._accepting, site._evicted = 3, 0, set()
    site.evicted = site.refused = 0
    busy = [_Handler(busy=True) for _ in range(3)]
    assert not site._room_made(busy)  # type: ignore[arg-type]
    assert not any(handler.closed for handler in busy)
    mixed = [_Handler(busy=True), _Handler(busy=False), _Handler(busy=False)]
    assert site._room_made(mixed)  # type: ignore[arg-type]
    assert [handler.closed for handler in mixed] == [False, True, False]  # the oldest idle
