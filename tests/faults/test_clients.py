"""Hostile and careless clients: crowds, slow and idle connections, oversized and
malformed requests over raw sockets. The adapter keeps answering its monitors,
answers nobody else's garbage with more than a short error, and logs little."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapter.listener import ListenError, UnixAddress
from tests import sample_probes
from tests.faults.conftest import (
    MAX_LATENCY,
    Footprint,
    Running,
    assert_nothing_left,
    check_entry,
    running_adapter,
    within,
)

OK_CHECK = "  - {name: ok, interval: 100ms, plugin: {class: 'tests.sample_probes:Ok'}}\n"


def config(server: str = "", checks: str = OK_CHECK) -> str:
    return (f"server: {{{server}}}\n" if server else "") + "checks:\n" + checks


async def exchange(port: int, data: bytes, *, wait: float = 5.0) -> tuple[bytes, bool]:
    """Send raw bytes, read until the server closes (or `wait` passes);
    return what came back and whether the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        received = b""
        closed = False
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(
                    reader.read(65536), max(0.01, deadline - time.monotonic())
                )
            except TimeoutError:
                break
            except ConnectionError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
        return received, closed
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def answers(received: bytes) -> list[int]:
    """The status codes of every HTTP response in `received`."""
    return [int(line.split()[1]) for line in received.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def port_of(adapter: Running) -> int:
    port = adapter.site.port
    assert port is not None
    return port


# --- crowds ----------------------------------------------------------------------------------


async def test_hundreds_of_concurrent_pollers_on_a_cold_start() -> None:
    checks = (
        "  - {name: app, interval: 1h, "
        "plugin: {class: 'tests.sample_probes:Counting', key: cold, sleep: 0.3}}\n"
    )
    before = Footprint.take()
    async with running_adapter(config(checks=checks)) as adapter:

        async def poller() -> list[int]:
            statuses = []
            async with aiohttp.ClientSession() as session:
                for _ in range(5):
                    async with session.get(adapter.url + "/readyz") as response:
                        await response.read()
                        statuses.append(response.status)
                    await asyncio.sleep(0.1)
            return statuses

        begin = time.monotonic()
        results = await within(asyncio.gather(*(poller() for _ in range(250))), 30)
        elapsed = time.monotonic() - begin
    statuses = [status for result in results for status in result]
    # Before the first run ends every answer is "not ready"; then "ready". Never an error.
    assert set(statuses) <= {200, 503} and statuses.count(200) > 0
    assert all(result == sorted(result, reverse=True) for result in results)  # 503s, then 200s
    assert sample_probes.COUNTS["cold"] == 1  # 1,250 requests, one probe run
    assert elapsed < 20
    await assert_nothing_left(before)


async def test_connections_over_the_cap_take_the_place_of_the_oldest_idle_ones() -> None:
    before = Footprint.take()
    async with running_adapter(config("max_connections: 20")) as adapter:
        await adapter.until(lambda status, b: status == 200)  # the monitor holds one slot
        port = port_of(adapter)
        crowd = []
        for _ in range(40):  # one after the other: each is registered before the next
            crowd.append(await asyncio.open_connection("127.0.0.1", port))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)

        async def was_closed(reader: asyncio.StreamReader) -> bool:
            try:
                return await asyncio.wait_for(reader.read(1), 0.5) == b""
            except ConnectionError:
                return True  # reset
            except TimeoutError:
                return False  # still open: it holds a slot

        closed = list(await asyncio.gather(*(was_closed(reader) for reader, _ in crowd)))
        # 20 slots: the monitor's idle connection and the 20 oldest of the
        # crowd made room for the 20 newest, which hold the slots now.
        assert closed == [True] * 20 + [False] * 20
        assert (adapter.site.evicted, adapter.site.refused) == (21, 0)
        polls = await adapter.poll(20)  # the monitor reconnects and is answered
        assert set(polls.statuses) == {200} and polls.slowest < MAX_LATENCY
        for _, writer in crowd:
            writer.close()
        # Once the flood is over, a new connection lets go of every handler evicted
        # and closed meanwhile: nothing of the flood stays held.
        for _ in range(100):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            if adapter.site.evicted_pending == 0:
                break
            await asyncio.sleep(0.05)
        assert adapter.site.evicted_pending == 0
    await assert_nothing_left(before)


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ", id="slowloris-headers"),
        pytest.param(b"", id="connect-and-say-nothing"),
        pytest.param(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", id="idle-keep-alive"),
    ],
)
async def test_slow_and_idle_connections_are_closed_after_the_keepalive_timeout(
    attack: bytes,
) -> None:
    before = Footprint.take()
    async with running_adapter(config("max_connections: 10, keepalive_timeout: 1s")) as adapter:
        port = port_of(adapter)
        begin = time.monotonic()
        attackers = []
        for _ in range(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(attack)
            attackers.append((reader, writer))

        async def drip() -> None:  # slowloris: one more header byte every 200 ms
            while attack.endswith(b": "):
                await asyncio.sleep(0.2)
                for _, writer in attackers:
                    if not writer.is_closing():
                        writer.write(b"a")

        dripping = asyncio.create_task(drip())
        try:
            # Every slot is taken: a monitor takes the place of the oldest of them...
            await asyncio.sleep(0.1)
            status, _, _ = await adapter.get()
            evicted = adapter.site.evicted
            # ...and the server closes the others about a second after they connected.
            for reader, _ in attackers:
                await within(reader.read(), 5)
            held = time.monotonic() - begin
        finally:
            dripping.cancel()
            await asyncio.gather(dripping, return_exceptions=True)
            for _, writer in attackers:
                writer.close()
    assert 0.9 < held < 3.5
    assert (status, evicted) == (200, 1)
    await assert_nothing_left(before)


async def test_a_monitor_that_polls_keeps_its_connection_past_the_timeout() -> None:
    async with running_adapter(config("keepalive_timeout: 1s")) as adapter:
        await adapter.until(lambda status, b: status == 200)
        polls = await adapter.poll(15, pause=0.2)  # 3 s on one pooled connection
    assert set(polls.statuses) == {200}


async def test_a_monitor_hammering_health_while_checks_time_out() -> None:
    checks = "".join(
        f"  - {{name: slow{i}, interval: 100ms, timeout: 200ms, "
        "plugin: {class: 'tests.sample_probes:SleepAsync', sleep: 5}}\n"
        for i in range(10)
    ) + "".join(
        f"  - {{name: stuck{i}, interval: 100ms, timeout: 200ms, "
        "plugin: {class: 'tests.sample_probes:SleepSync', sleep: 1}}\n"
        for i in range(4)
    )
    before = Footprint.take()
    async with running_adapter(config(checks=checks)) as adapter:
        await adapter.until(lambda status, b: check_entry(b, "slow0").get("reason") == "timeout")

        async def monitor() -> list[float]:
            latencies = []
            for _ in range(100):
                status, body, elapsed = await adapter.get()
                assert status == 503 and body["status"] == "fail"
                latencies.append(elapsed)
            return latencies

        results = await within(asyncio.gather(*(monitor() for _ in range(5))), 60)
    latencies = sorted(latency for result in results for latency in result)
    assert latencies[-1] < MAX_LATENCY
    await assert_nothing_left(before, settle=8)  # the sleeping threads wake after 1 s


# --- what a request may be -------------------------------------------------------------------


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            request("GET /health HTTP/1.1\nHost: x\nX-Big: " + "a" * 9000 + "\n"), id="9KB-header"
        ),
        pytest.param(
            request("GET /health HTTP/1.1\nHost: x\nX-Big: " + "a" * 100_000 + "\n"),
            id="100KB-header",
        ),
        pytest.param(request("GET /health?" + "a" * 5000 + " HTTP/1.1\nHost: x\n"), id="5KB-url"),
        pytest.param(
            request("GET /health?" + "a" * 100_000 + " HTTP/1.1\nHost: x\n"), id="100KB-url"
        ),
        pytest.param(
            request(
                "GET /health HTTP/1.1\nHost: x\n" + "".join(f"X-{i}: {i}\n" for i in range(100))
            ),
            id="100-headers",
        ),
    ],
)
async def test_oversized_requests_get_a_short_error(data: bytes) -> None:
    before = Footprint.take()
    async with running_adapter(config()) as adapter:
        received, closed = await exchange(port_of(adapter), data)
        polls = await adapter.poll(5)
    assert answers(received) == [400] and closed
    assert polls.slowest < MAX_LATENCY
    await assert_nothing_left(before)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
async def test_other_methods_get_405_without_their_body_being_read(method: str) -> None:
    before = Footprint.take()
    async with running_adapter(config()) as adapter:
        begin = time.monotonic()
        # 10 MB announced, none sent: the answer cannot wait for the body.
        received, closed = await exchange(
            port_of(adapter),
            request(f"{method} /health HTTP/1.1\nHost: x\nContent-Length: 10000000\n"),
        )
        elapsed = time.monotonic() - begin
    assert answers(received) == [405] and closed and elapsed < 2
    assert b"Allow: GET,HEAD" in received or b"Allow: HEAD,GET" in received
    await assert_nothing_left(before)


async def test_a_body_sent_to_get_is_not_read() -> None:
    before = Footprint.take()
    async with running_adapter(config()) as adapter:
        await adapter.until(lambda status, b: status == 200)
        begin = time.monotonic()
        received, closed = await exchange(
            port_of(adapter),
            request("GET /health HTTP/1.1\nHost: x\nContent-Length: 10000000\n", b"x" * 1000),
        )
        elapsed = time.monotonic() - begin
    # Answered at once; the connection is then closed rather than drained.
    assert answers(received) == [200] and closed and elapsed < 2
    await assert_nothing_left(before)


SMUGGLED = "GET /health/secret HTTP/1.1\nHost: x\n\n"


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(
            "POST /health HTTP/1.1\nHost: x\nContent-Length: 4\nTransfer-Encoding: chunked\n",
            id="CL-and-TE",
        ),
        pytest.param(
            "GET /health HTTP/1.1\nHost: x\nContent-Length: 0\nContent-Length: 45\n",
            id="duplicate-Content-Length",
        ),
        pytest.param(
            "GET /health HTTP/1.1\nHost: x\nContent-Length: 0, 45\n", id="Content-Length-list"
        ),
        pytest.param("GET /health HTTP/1.1\nHost: x\nX-Folded: a\n b\n", id="obs-fold"),
        pytest.param(
            "GET /health HTTP/1.1\nHost: x\nTransfer-Encoding: xchunked\n",
            id="unknown-Transfer-Encoding",
        ),
        pytest.param(
            "GET /health HTTP/1.1\nHost: x\nTransfer-Encoding: chunked, identity\n",
            id="chunked-not-last",
        ),
        pytest.param(
            "GET /health HTTP/1.1\nHost: x\nContent-Length : 45\n", id="space-before-colon"
        ),
        pytest.param(
            "GET /health HTTP/1.1\nHost: x\nContent-Length: +45\n", id="signed-Content-Length"
        ),
        pytest.param(
            "GET /health HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\nzz\n", id="bad-chunk-size"
        ),
        pytest.param("GET /health HTTP/1.1\nHost: a\nHost: b\n", id="duplicate-Host"),
        pytest.param("GET /health HTTP/1.1\nHo\0st: x\n", id="NUL-in-header"),
        pytest.param("GET /health HTTP/1.1\rHost: x\n", id="bare-CR"),
    ],
)
async def test_request_smuggling_shapes_are_refused(head: str, caplog: Any) -> None:
    before = Footprint.take()
    caplog.set_level(logging.INFO, "health_adapter")
    async with running_adapter(config()) as adapter:
        # A second request rides in the same bytes: it must never be answered.
        received, closed = await exchange(port_of(adapter), request(head) + request(SMUGGLED))
        polls = await adapter.poll(3)
    assert answers(received) == [400] and closed, received
    assert b'"status"' not in received  # no health document: the smuggled one was not served
    assert polls.slowest < MAX_LATENCY
    assert "Traceback" not in caplog.text
    await assert_nothing_left(before)


async def test_malformed_requests_are_logged_at_a_bounded_rate(caplog: Any) -> None:
    caplog.set_level(logging.INFO, "health_adapter")
    async with running_adapter(config()) as adapter:
        port = port_of(adapter)
        for i in range(100):
            await exchange(
                port,
                f"GET /health HTTP/1.1\nHost: x\nBad Header {i}: y\n\n".replace(
                    "\n", "\r\n"
                ).encode(),
            )
    lines = [r for r in caplog.records if r.name == "health_adapter.http"]
    assert 1 <= len(lines) <= 10
    assert all(r.getMessage() == "bad_request" and r.exc_info is None for r in lines)
    assert lines[0].fields["client"] == "127.0.0.1"  # type: ignore[attr-defined]
    assert lines[0].fields["error"].startswith("BadHttpMessage")  # type: ignore[attr-defined]
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(("share", "expected"), [(0, 0), (1, 20)])
async def test_the_access_log_is_off_by_default_and_sampled(
    share: float, expected: int, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, "health_adapter")
    async with running_adapter(config(f"access_log: {share}")) as adapter:
        await adapter.poll(20, pause=0)
    lines = [r for r in caplog.records if r.name == "health_adapter.access"]
    assert len(lines) == expected
    if lines:
        fields = lines[0].fields  # type: ignore[attr-defined]
        assert (fields["method"], fields["path"], fields["status"]) in {
            ("GET", "/health", 503),
            ("GET", "/health", 200),
        }


# --- a Unix socket -------------------------------------------------------------------------


def socket_path(tmp_path: Path) -> Path:
    # sun_path is short: pytest's tmp_path may be too deep for it.
    return Path(f"/tmp/ha-{os.getpid()}-{tmp_path.name[-20:]}.sock")


async def test_listening_on_a_unix_socket(tmp_path: Path) -> None:
    path = socket_path(tmp_path)
    path.unlink(missing_ok=True)
    before = Footprint.take()
    try:
        async with running_adapter(config("socket_mode: '0600'"), listen=UnixAddress(str(path))):
            assert stat.S_ISSOCK(path.stat().st_mode)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            connector = aiohttp.UnixConnector(path=str(path))
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(100):
                    async with session.get("http://adapter/health") as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.05)
            assert response.status == 200
        assert not path.exists()  # removed on stop
    finally:
        path.unlink(missing_ok=True)
    await assert_nothing_left(before)


async def test_a_stale_unix_socket_is_replaced_but_a_file_is_not(tmp_path: Path) -> None:
    path = socket_path(tmp_path)
    path.unlink(missing_ok=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on, as a killed adapter leaves it
    try:
        async with running_adapter(config(), listen=UnixAddress(str(path))):
            assert stat.S_ISSOCK(path.stat().st_mode)
        path.write_text("not a socket")
        with pytest.raises(ListenError, match="exists and is not a socket"):
            async with running_adapter(config(), listen=UnixAddress(str(path))):
                pass
        assert path.read_text() == "not a socket"
    finally:
        path.unlink(missing_ok=True)
