"""A watched application that misbehaves over HTTP: the verdict stays true, /health
stays fast, nothing leaks, and the adapter never goes anywhere it was not sent."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.faults.conftest import (
    MAX_LATENCY,
    ConnectAudit,
    Footprint,
    assert_nothing_left,
    check_entry,
    running_adapter,
)
from tests.raw import RawHandler, raw_server


def http_check(url: str, **options: Any) -> str:
    extra = "".join(f", {key}: {value!r}" for key, value in options.items())
    return (
        "checks:\n"
        f"  - {{name: app, interval: 200ms, timeout: 500ms, http: {{url: {url!r}{extra}}}}}\n"
    )


async def read_request(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await reader.read()  # until the adapter gives up and closes


async def header_drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while True:
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def app_server(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[TestServer]:
    server = TestServer(app, host=host)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def body_drip(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "100000"})
    await response.prepare(request)
    for _ in range(100_000):
        await response.write(b"x")
        await asyncio.sleep(0.05)
    return response


TWENTY_MB = 20 * 1024 * 1024


@functools.cache
def big_body() -> bytes:
    return b"ok " + b"x" * TWENTY_MB + b" needle"


@functools.cache
def gzip_bomb() -> bytes:
    # 200 MB of zeros squeezed into about 200 KB.
    return gzip.compress(bytes(200 * 1024 * 1024), compresslevel=9)


def target_app() -> web.Application:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=big_body())

    async def bomb(request: web.Request) -> web.Response:
        return web.Response(body=gzip_bomb(), headers={"Content-Encoding": "gzip"})

    async def loop_a(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop-b")

    async def loop_b(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop-a")

    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/drip", body_drip)
    app.router.add_get("/big", big)
    app.router.add_get("/bomb", bomb)
    app.router.add_get("/loop-a", loop_a)
    app.router.add_get("/loop-b", loop_b)
    app.router.add_get("/elsewhere", elsewhere)
    app.router.add_get("/ok", ok)
    return app


async def judge(config: str, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Run the adapter on `config` until the check's entry satisfies `predicate`; then
    poll /health a while longer, asserting every answer is fast."""
    async with running_adapter(config) as adapter:
        body = await adapter.until(
            lambda status, b: has_result(check_entry(b, "app")) and predicate(check_entry(b, "app"))
        )
        polls = await adapter.poll(20)
    assert polls.slowest < MAX_LATENCY
    return check_entry(body, "app")


def has_result(entry: dict[str, Any]) -> bool:
    return entry.get("reason") != "no_result"


# --- connections that go nowhere ---------------------------------------------------------


async def test_a_target_that_never_answers() -> None:
    # A listening socket nobody accepts on: the kernel completes the handshake
    # from its backlog, and nothing is ever read or written.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        before = Footprint.take()
        entry = await judge(
            http_check(f"http://127.0.0.1:{port}/"), lambda e: e["status"] == "fail"
        )
        await assert_nothing_left(before)
    assert (entry["reason"], entry["output"]) == ("timeout", "timed out after 500ms")


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(silent, id="accepts-and-never-sends"),
        pytest.param(header_drip, id="drips-its-headers"),
    ],
)
async def test_a_target_that_accepts_but_never_completes_an_answer(handler: RawHandler) -> None:
    async with raw_server(handler) as (port, _):
        before = Footprint.take()
        entry = await judge(
            http_check(f"http://127.0.0.1:{port}/"), lambda e: e["status"] == "fail"
        )
        await assert_nothing_left(before)
    assert (entry["reason"], entry["output"]) == ("timeout", "timed out after 500ms")


# --- bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "status", "output"),
    [
        pytest.param({}, "pass", "HTTP 200 in", id="body-not-checked-is-never-read"),
        pytest.param(
            {"body_contains": "ok"}, "fail", "timed out after 500ms", id="body-checked-times-out"
        ),
    ],
)
async def test_a_body_dripped_a_byte_at_a_time(
    options: dict[str, str], status: str, output: str
) -> None:
    async with app_server(target_app()) as target:
        before = Footprint.take()
        entry = await judge(http_check(str(target.make_url("/drip")), **options), has_result)
        await assert_nothing_left(before)
    assert entry["status"] == status and entry["output"].startswith(output)


@pytest.mark.parametrize(
    ("path", "options", "status", "output"),
    [
        pytest.param(
            "/big", {"body_contains": "ok"}, "pass", "HTTP 200 in", id="20MB-text-at-the-start"
        ),
        pytest.param(
            "/big",
            {"body_contains": "needle"},
            "fail",
            "body does not contain the expected text in the first 10 KiB",
            id="20MB-text-past-10KiB",
        ),
        pytest.param(
            "/bomb",
            {"body_contains": "ok"},
            "fail",
            "body does not contain the expected text in the first 10 KiB",
            id="gzip-bomb-200MB",
        ),
    ],
)
async def test_huge_bodies_are_read_10KiB_deep_only(
    path: str, options: dict[str, str], status: str, output: str
) -> None:
    big_body(), gzip_bomb()  # built before measuring
    async with app_server(target_app()) as target:
        before = Footprint.take()
        rss_before = psutil.Process().memory_info().rss
        entry = await judge(http_check(str(target.make_url(path)), **options), has_result)
        grown = psutil.Process().memory_info().rss - rss_before
        await assert_nothing_left(before)
    assert entry["status"] == status and entry["output"].startswith(output)
    # Neither the 20 MB nor the 200 MB the bomb expands to were held in memory
    # (the target serving it lives in this process too).
    assert grown < 60 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"


# --- redirects ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def counting_server(host: str) -> AsyncIterator[tuple[TestServer, list[str]]]:
    hits: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        hits.append(str(request.rel_url))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    async with app_server(app, host) as server:
        yield server, hits


async def test_a_redirect_loop_stops_after_10() -> None:
    async with app_server(target_app()) as target:
        before = Footprint.take()
        with ConnectAudit() as connects:
            entry = await judge(
                http_check(str(target.make_url("/loop-a"))), lambda e: e["status"] == "fail"
            )
        await assert_nothing_left(before)
    assert (entry["reason"], entry["output"]) == ("redirect", "more than 10 redirects")
    assert {address[0] for address in connects} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("location", "host"),
    [
        pytest.param("http://127.0.0.2:{port}/ok", "127.0.0.2", id="another-loopback-host"),
        pytest.param("http://localhost:{port}/ok", "localhost", id="same-address-other-name"),
        # Link-local: the cloud metadata service. It is never contacted (the
        # audit below would see any connect), so no traffic is sent there.
        pytest.param(
            "http://169.254.169.254/latest/meta-data/", "169.254.169.254", id="link-local-metadata"
        ),
        pytest.param(
            "http://127.0.0.1@169.254.169.254/", "169.254.169.254", id="link-local-behind-userinfo"
        ),
        pytest.param("http://[fe80::1%25lo]/", "fe80::1%lo", id="ipv6-link-local"),
    ],
)
async def test_a_redirect_to_another_host_is_judged_not_followed(location: str, host: str) -> None:
    async with counting_server("127.0.0.2") as (other, hits), app_server(target_app()) as target:
        url = target.make_url("/elsewhere").with_query(to=location.format(port=other.port))
        before = Footprint.take()
        with ConnectAudit() as connects:
            entry = await judge(
                http_check(str(url), expect_status=["200"]), lambda e: e["status"] == "fail"
            )
        await assert_nothing_left(before)
    assert entry["reason"] == "status"
    assert entry["output"] == (
        f"HTTP 302, expected 200; redirect to another host ({host}) not followed"
    )
    assert hits == []
    assert {address[0] for address in connects} == {"127.0.0.1"}


async def test_proxies_in_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    async with counting_server("127.0.0.1") as (proxy, proxied), app_server(target_app()) as target:
        for name in (
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        before = Footprint.take()
        with ConnectAudit() as connects:
            entry = await judge(
                http_check(str(target.make_url("/ok")), body_contains="ok"),
                lambda e: e["status"] == "pass",
            )
        await assert_nothing_left(before)
    assert proxied == []
    assert proxy.port not in {address[1] for address in connects}
    assert entry["output"].startswith("HTTP 200 in")
