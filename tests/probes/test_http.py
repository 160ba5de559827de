"""The HTTP probe against real servers on loopback: an aiohttp application as the
watched app (over TCP, TLS and a Unix socket), and raw sockets where a server
has to misbehave in ways aiohttp's own server will not."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import gzip
import re
import socket
import ssl
import time
import urllib.parse
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import brotli
import msgspec
import pytest
import trustme
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from probes import Reason, Resources, Result, Status
from probes.http import (
    BODY_LIMIT,
    HttpProbe,
    TlsSetupError,
    classify_error,
)
from probes.types import json_schema_of_custom
from tests.certificates import DAY, HOUR, make_chain
from tests.conftest import free_port
from tests.raw import raw_server
from tests.rotation import SecretDir

try:
    from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
except ImportError:
    from backports import zstd

NEEDLE = "needle-7f3a"
SECRET = "s3cret-token-value"
# Generous: these only tell a hung probe from a working one.
WAIT = 5.0

ServerFactory = Callable[..., Awaitable[TestServer]]


# --- the watched application -------------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    path: str
    method: str
    headers: CIMultiDictProxy[str]
    body: bytes
    peer: Any


SEEN = web.AppKey("seen", list[SeenRequest])
SLOW_STARTED = web.AppKey("slow_started", asyncio.Event)
CLIENT_LEFT = web.AppKey("client_left", asyncio.Event)


@web.middleware
async def record_requests(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    body = await request.read()
    peer = request.transport.get_extra_info("peername") if request.transport else None
    request.app[SEEN].append(SeenRequest(request.path, request.method, request.headers, body, peer))
    return await handler(request)


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="status: ok, version 1.2.3")


async def status_code(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.Response(status=code, text=f"answer {code}")


async def echo(request: web.Request) -> web.Response:
    return web.Response(text=f"{request.method} {(await request.read()).decode()}")


def redirect(location: str, status: int = 302) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


async def redirect_chain(request: web.Request) -> web.Response:
    left = int(request.match_info["left"])
    return redirect("/ok" if left == 0 else f"/chain/{left - 1}")


async def redirect_loop(request: web.Request) -> web.Response:
    return redirect("/loop")


async def redirect_absolute(request: web.Request) -> web.Response:
    return redirect(f"{request.scheme}://{request.host}/ok")


async def redirect_elsewhere(request: web.Request) -> web.Response:
    # localhost and 127.0.0.1 reach the same server but are two different hosts.
    other = "localhost" if request.url.host == "127.0.0.1" else "127.0.0.1"
    return redirect(f"http://{other}:{request.url.port}/ok")


async def redirect_with_code(request: web.Request) -> web.Response:
    return redirect("/echo", int(request.match_info["code"]))


async def redirect_without_location(request: web.Request) -> web.Response:
    return web.Response(status=302)


async def redirect_to_ftp(request: web.Request) -> web.Response:
    return redirect("ftp://127.0.0.1/file")


async def redirect_to_https(request: web.Request) -> web.Response:
    return redirect(f"https://{request.host}/ok")


async def redirect_to_garbage(request: web.Request) -> web.Response:
    return redirect("http://[not-an-address")


def body_with_needle(request: web.Request) -> bytes:
    size = int(request.query.get("size", 1024 * 1024))
    at = int(request.query.get("needle_at", 0))
    return b"." * at + NEEDLE.encode() + b"." * max(0, size - at)


async def big_body(request: web.Request) -> web.Response:
    return web.Response(body=body_with_needle(request), content_type="text/plain")


async def gzip_body(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(body_with_needle(request)),
        headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"},
    )


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as RFC 9110 has it
    "deflate-raw": lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS),
    "br": brotli.compress,
    "zstd": zstd.compress,
}


async def coded_body(request: web.Request) -> web.Response:
    coding = request.match_info["coding"]
    return web.Response(
        body=ENCODERS[coding](body_with_needle(request)),
        headers={"Content-Type": "text/plain", "Content-Encoding": coding.split("-")[0]},
    )


async def latin1_body(request: web.Request) -> web.Response:
    return web.Response(body=b"caf\xe9 \xff\xfe " + NEEDLE.encode(), content_type="text/plain")


async def endless_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        for _ in range(100_000):  # a bound, so a broken test cannot stream forever
            await response.write(b"." * 1024)
    return response


async def stream(request: web.Request) -> web.StreamResponse:
    """Chunked pieces (`piece` query items) sent at once; the answer then stays open."""
    response = web.StreamResponse(
        headers={"Content-Type": request.query.get("type", "text/event-stream")}
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    for piece in request.query.getall("piece", []):
        await response.write(piece.encode())
    await until_client_leaves(request)
    return response


async def until_client_leaves(request: web.Request) -> None:
    request.app[SLOW_STARTED].set()
    try:
        # aiohttp's test server cancels a handler when its client hangs up.
        await asyncio.sleep(WAIT)
    except asyncio.CancelledError:
        request.app[CLIENT_LEFT].set()
        raise


async def slow_headers(request: web.Request) -> web.Response:
    await until_client_leaves(request)
    return web.Response(text="too late")


async def slow_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    await response.write(b"the first part of the body, ")
    await until_client_leaves(request)
    return response


def make_app() -> web.Application:
    app = web.Application(middlewares=[record_requests])
    app[SEEN] = []
    app[SLOW_STARTED] = asyncio.Event()
    app[CLIENT_LEFT] = asyncio.Event()
    routes = {
        "/ok": healthy,
        "/status/{code}": status_code,
        "/echo": echo,
        "/chain/{left}": redirect_chain,
        "/loop": redirect_loop,
        "/absolute": redirect_absolute,
        "/elsewhere": redirect_elsewhere,
        "/redirect/{code}": redirect_with_code,
        "/no-location": redirect_without_location,
        "/to-ftp": redirect_to_ftp,
        "/to-https": redirect_to_https,
        "/to-garbage": redirect_to_garbage,
        "/big": big_body,
        "/gzip": gzip_body,
        "/coded/{coding}": coded_body,
        "/stream": stream,
        "/latin1": latin1_body,
        "/endless": endless_body,
        "/slow": slow_headers,
        "/slow-body": slow_body,
    }
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    return app


# --- fixtures ----------------------------------------------------------------


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    shared = Resources()
    yield shared
    await shared.aclose()


@pytest.fixture
def app() -> web.Application:
    return make_app()


@pytest.fixture
async def server(aiohttp_server: ServerFactory, app: web.Application) -> TestServer:
    return await aiohttp_server(app)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    client_cert: str
    client_key: str
    client_key_and_cert: str


@pytest.fixture(scope="module")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    folder = tmp_path_factory.mktemp("tls")
    client = ca.issue_cert("probe.health-adapter.test")
    files = TlsFiles(
        ca=str(folder / "ca.pem"),
        client_cert=str(folder / "client.pem"),
        client_key=str(folder / "client.key"),
        client_key_and_cert=str(folder / "client-with-key.pem"),
    )
    ca.cert_pem.write_to_path(files.ca)
    client.cert_chain_pems[0].write_to_path(files.client_cert)
    client.private_key_pem.write_to_path(files.client_key)
    client.private_key_and_cert_chain_pem.write_to_path(files.client_key_and_cert)
    return files


def server_tls_context(ca: trustme.CA, *, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # Issued for "localhost" only, so 127.0.0.1 is a host name mismatch.
    ca.issue_cert("localhost").configure_cert(context)
    if require_client_cert:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
        # TLS 1.3 servers reject a missing client certificate only after the
        # handshake, and asyncio's server then hangs up without an alert; with
        # TLS 1.2 the rejection is part of the handshake, as the test wants.
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


@pytest.fixture
async def tls_server(
    aiohttp_server: ServerFactory, app: web.Application, ca: trustme.CA
) -> TestServer:
    return await aiohttp_server(app, ssl=server_tls_context(ca))


@pytest.fixture
async def unix_socket(app: web.Application, tmp_path: Path) -> AsyncIterator[str]:
    path = str(tmp_path / "app.sock")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    yield path
    await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


def make_probe(resources: Resources, url: object, **options: Any) -> HttpProbe:
    return HttpProbe("api", {"url": str(url), **options}, resources)


async def run(resources: Resources, url: object, **options: Any) -> Result:
    return await make_probe(resources, url, **options).check()


def assert_result(
    result: Result, status: Status, reason: Reason | None, output: str | re.Pattern[str]
) -> None:
    assert (result.status, result.reason) == (status, reason), result
    if isinstance(output, re.Pattern):
        assert output.fullmatch(result.output), result.output
    else:
        assert result.output == output
    assert "\n" not in result.output


def paths_seen(app: web.Application) -> list[str]:
    return [seen.path for seen in app[SEEN]]


PASSED_200 = re.compile(r"HTTP 200 in \d+\.\d ms")


# --- status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expect_status", "status", "reason", "output"),
    [
        pytest.param("/ok", None, Status.PASS, None, PASSED_200, id="healthy"),
        pytest.param(
            "/status/500",
            None,
            Status.FAIL,
            Reason.STATUS,
            "HTTP 500, expected 200-399",
            id="500-fails-by-default",
        ),
        pytest.param(
            "/status/399",
            None,
            Status.PASS,
            None,
            re.compile(r"HTTP 399 in .* ms"),
            id="399-passes-by-default",
        ),
        pytest.param(
            "/status/500",
            ["500"],
            Status.PASS,
            None,
            re.compile(r"HTTP 500 in .* ms"),
            id="500-expected-as-string",
        ),
        pytest.param(
            "/status/204",
            ["2xx"],
            Status.PASS,
            None,
            re.compile(r"HTTP 204 in .* ms"),
            id="204-in-2xx",
        ),
        pytest.param(
            "/status/404",
            [200, "400-499"],
            Status.PASS,
            None,
            re.compile("HTTP 404 in .*"),
            id="404-in-a-range-of-a-list",
        ),
        pytest.param(
            "/status/201",
            [200],
            Status.FAIL,
            Reason.STATUS,
            "HTTP 201, expected 200",
            id="201-is-not-200",
        ),
        pytest.param(
            "/status/418",
            [200, "2xx", "300-302"],
            Status.FAIL,
            Reason.STATUS,
            "HTTP 418, expected 200, 200-299, 300-302",
            id="418-names-every-accepted-range",
        ),
    ],
)
async def test_status_is_judged_against_expect_status(
    server: TestServer,
    resources: Resources,
    path: str,
    expect_status: list[Any] | None,
    status: Status,
    reason: Reason | None,
    output: str | re.Pattern[str],
) -> None:
    options = {} if expect_status is None else {"expect_status": expect_status}
    result = await run(resources, server.make_url(path), **options)
    assert_result(result, status, reason, output)
    # A received answer is timed, whatever the verdict.
    assert result.observed_unit == "ms"
    assert isinstance(result.observed_value, float)
    assert 0 <= result.observed_value < WAIT * 1000


# --- what is sent --------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_each_method_is_sent(
    server: TestServer, app: web.Application, resources: Resources, method: str
) -> None:
    result = await run(resources, server.make_url("/echo"), method=method.lower())
    assert result.status is Status.PASS, result
    assert [seen.method for seen in app[SEEN]] == [method]


async def test_headers_are_sent_and_never_shown(
    server: TestServer, app: web.Application, resources: Resources
) -> None:
    headers = {"Authorization": f"Bearer {SECRET}", "X-Probe": "yes"}
    passed = await run(resources, server.make_url("/ok"), headers=headers)
    failed = await run(resources, server.make_url("/status/503"), headers=headers)
    assert (passed.status, failed.status) == (Status.PASS, Status.FAIL)
    for seen in app[SEEN]:
        assert seen.headers["Authorization"] == f"Bearer {SECRET}"
        assert seen.headers["X-Probe"] == "yes"
        assert seen.headers["User-Agent"] == "health-adapter"
        assert seen.headers["Connection"] == "close"
    assert SECRET not in passed.output + failed.output


async def test_a_configured_user_agent_replaces_the_default(
    server: TestServer, app: web.Application, resources: Resources
) -> None:
    await run(resources, server.make_url("/ok"), headers={"user-agent": "kube-probe/1.30"})
    assert app[SEEN][0].headers.getall("User-Agent") == ["kube-probe/1.30"]


async def test_the_body_is_sent(
    server: TestServer, app: web.Application, resources: Resources
) -> None:
    result = await run(
        resources,
        server.make_url("/echo"),
        method="POST",
        body='{"ping": 1}',
        headers={"Content-Type": "application/json"},
        body_contains='POST {"ping": 1}',
    )
    assert result.status is Status.PASS, result
    [seen] = app[SEEN]
    assert (seen.body, seen.headers["Content-Type"]) == (
        b'{"ping": 1}',
        "application/json",
    )


# --- the body ------------------------------------------------------------------

NOT_CONTAINED = "body does not contain the expected text"
NOT_CONTAINED_IN_PREFIX = "body does not contain the expected text in the first 10 KiB"
EARLY = {"needle_at": str(BODY_LIMIT - 2 * len(NEEDLE))}
LATE = {"needle_at": str(BODY_LIMIT + 1)}


@pytest.mark.parametrize(
    ("path", "query", "options", "reason", "output"),
    [
        pytest.param("/ok", {}, {"body_contains": "status: ok"}, None, PASSED_200, id="contains"),
        pytest.param(
            "/ok",
            {},
            {"body_contains": "status: down"},
            Reason.BODY_MISMATCH,
            NOT_CONTAINED,
            id="does-not-contain",
        ),
        pytest.param(
            "/ok",
            {},
            {"body_regex": r"version \d+\.\d+"},
            None,
            PASSED_200,
            id="matches",
        ),
        pytest.param(
            "/ok",
            {},
            {"body_regex": r"^status: (down|degraded)"},
            Reason.BODY_MISMATCH,
            "body does not match /^status: (down|degraded)/",
            id="does-not-match",
        ),
        pytest.param(
            "/ok",
            {},
            {"body_contains": "status: ok", "body_regex": "version 9"},
            Reason.BODY_MISMATCH,
            "body does not match /version 9/",
            id="both-must-hold",
        ),
        pytest.param(
            "/big",
            EARLY,
            {"body_contains": NEEDLE},
            None,
            PASSED_200,
            id="needle-inside-the-first-10KiB",
        ),
        pytest.param(
            "/big",
            LATE,
            {"body_contains": NEEDLE},
            Reason.BODY_MISMATCH,
            NOT_CONTAINED_IN_PREFIX,
            id="needle-after-10KiB-is-not-read",
        ),
        pytest.param(
            "/big",
            LATE,
            {"body_regex": "needle-[0-9a-f]+"},
            Reason.BODY_MISMATCH,
            "body does not match /needle-[0-9a-f]+/ in the first 10 KiB",
            id="regex-after-10KiB-is-not-read",
        ),
        pytest.param(
            "/big",
            {"size": "10"},
            {"body_contains": "nothing"},
            Reason.BODY_MISMATCH,
            NOT_CONTAINED,
            id="short-body-is-read-whole",
        ),
        pytest.param(
            "/gzip",
            EARLY,
            {"body_contains": NEEDLE},
            None,
            PASSED_200,
            id="gzip-is-decompressed",
        ),
        pytest.param(
            "/gzip",
            LATE,
            {"body_contains": NEEDLE},
            Reason.BODY_MISMATCH,
            NOT_CONTAINED_IN_PREFIX,
            id="gzip-cap-counts-decompressed-bytes",
        ),
        pytest.param(
            "/latin1",
            {},
            {"body_contains": NEEDLE},
            None,
            PASSED_200,
            id="invalid-utf8-is-replaced",
        ),
        pytest.param(
            "/latin1",
            {},
            {"body_regex": "caf\ufffd"},
            None,
            PASSED_200,
            id="replacement-character-can-be-matched",
        ),
    ],
)
async def test_body_checks(
    server: TestServer,
    resources: Resources,
    path: str,
    query: dict[str, str],
    options: dict[str, Any],
    reason: Reason | None,
    output: str | re.Pattern[str],
) -> None:
    result = await run(resources, server.make_url(path).with_query(query), **options)
    status = Status.PASS if reason is None else Status.FAIL
    assert_result(result, status, reason, output)
    assert result.observed_unit == "ms"
    assert NEEDLE not in result.output or NEEDLE in options.get("body_regex", "")
    assert "status: ok" not in result.output


async def test_the_gzip_route_really_compresses(server: TestServer) -> None:
    # Guards the test above: the needle is only there after decompression.
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(server.make_url("/gzip").with_query(EARLY)) as response,
    ):
        raw = await response.read()
    assert response.headers["Content-Encoding"] == "gzip"
    assert NEEDLE.encode() not in raw


@pytest.mark.parametrize(
    ("options", "output"),
    [
        pytest.param({}, PASSED_200, id="body-not-read-without-a-body-check"),
        pytest.param(
            {"body_contains": NEEDLE},
            re.compile(NOT_CONTAINED_IN_PREFIX),
            id="at-most-10KiB-read-with-one",
        ),
    ],
)
async def test_an_endless_body_is_never_read_to_the_end(
    server: TestServer,
    resources: Resources,
    options: dict[str, Any],
    output: re.Pattern[str],
) -> None:
    result = await asyncio.wait_for(run(resources, server.make_url("/endless"), **options), WAIT)
    assert output.fullmatch(result.output), result


# --- reading as the evidence arrives (one rule: probes.reading) ----------------


@pytest.mark.parametrize(
    ("query", "options"),
    [
        pytest.param(
            {"piece": "data: status ok\n\n"},
            {"body_contains": "status ok"},
            id="sse-contains",
        ),
        pytest.param(
            {"piece": ['data: {"status"', ': "ok"}\n\n']},
            {"body_regex": r'"status": "ok"'},
            id="sse-regex-across-two-chunks",
        ),
        pytest.param(
            {"piece": ['{"status": "ok"}\n'], "type": "application/x-ndjson"},
            {"body_regex": r'^\{"status":\s*"ok"\}$'},
            id="ndjson-line",
        ),
        pytest.param(
            {"piece": ["ready", "\n"]},
            {"body_contains": "ready", "body_regex": "^ready$"},
            id="both-checks-once-both-hold",
        ),
        pytest.param({"piece": "data: x\n\n"}, {}, id="status-only"),
    ],
)
async def test_a_stream_that_stays_open_is_judged_on_what_has_arrived(
    server: TestServer, resources: Resources, query: dict[str, Any], options: dict[str, Any]
) -> None:
    # The answer never ends: before, the probe waited for 10 KiB or the end.
    result = await asyncio.wait_for(
        run(resources, server.make_url("/stream").with_query(query), **options), WAIT
    )
    assert_result(result, Status.PASS, None, PASSED_200)


async def test_a_long_poll_with_a_length_is_judged_before_it_is_complete(
    resources: Resources,
) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nstatus ok; more to come"
    async with raw_server(reply, hold=True) as (port, _):
        result = await asyncio.wait_for(
            run(resources, f"http://127.0.0.1:{port}/poll", body_contains="status ok"), WAIT
        )
    assert_result(result, Status.PASS, None, PASSED_200)


async def test_a_stream_without_the_text_fails_when_it_ends(resources: Resources) -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"9\r\nstatus: b\r\n6\r\nusy...\r\n0\r\n\r\n"
    )
    async with raw_server(reply) as (port, _):
        result = await run(resources, f"http://127.0.0.1:{port}/", body_contains="status ok")
    assert_result(result, Status.FAIL, Reason.BODY_MISMATCH, NOT_CONTAINED)


# --- content codings ---------------------------------------------------------------

OK_HEAD = b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize("coding", list(ENCODERS))
@pytest.mark.parametrize(
    ("query", "reason", "output"),
    [
        pytest.param(EARLY, None, PASSED_200, id="needle-early"),
        pytest.param(LATE, Reason.BODY_MISMATCH, NOT_CONTAINED_IN_PREFIX, id="cap-after-decoding"),
    ],
)
async def test_every_coding_real_servers_send_is_decoded_for_a_body_check(
    server: TestServer,
    resources: Resources,
    coding: str,
    query: dict[str, str],
    reason: Reason | None,
    output: str | re.Pattern[str],
) -> None:
    url = server.make_url(f"/coded/{coding}").with_query(query)
    result = await run(resources, url, body_contains=NEEDLE)
    assert_result(result, Status.PASS if reason is None else Status.FAIL, reason, output)


async def test_the_codings_that_can_be_decoded_are_offered(
    server: TestServer, app: web.Application, resources: Resources
) -> None:
    await run(resources, server.make_url("/ok"))
    [seen] = app[SEEN]
    assert seen.headers["Accept-Encoding"] == "gzip, deflate, br, zstd"


@pytest.mark.parametrize(
    ("reply", "output"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 0\r\n\r\n",
            NOT_CONTAINED,  # an empty body is no brotli error: there is nothing in it
            id="br-empty",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: zstd\r\nContent-Length: 9\r\n\r\nnot zstd!",
            re.compile(r"cannot decode the zstd body: .+"),
            id="zstd-not-really",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 9\r\n\r\nnot brot!",
            re.compile(r"cannot decode the br body: .+"),
            id="br-not-really",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!",
            re.compile(r"cannot decode the gzip body: .+"),
            id="gzip-not-really",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: compress\r\nContent-Length: 4\r\n\r\nLZW?",
            "cannot decode the compress body: unknown content coding",
            id="unknown-coding",
        ),
    ],
)
async def test_a_coded_body_is_decoded_only_when_a_check_reads_it(
    resources: Resources, reply: bytes, output: str | re.Pattern[str]
) -> None:
    # The server labels its body with a coding nobody asked for, or sends it broken.
    async with raw_server(reply) as (port, _):
        status_only = await run(resources, f"http://127.0.0.1:{port}/")
        body_check = await run(resources, f"http://127.0.0.1:{port}/", body_contains="ok")
    assert_result(status_only, Status.PASS, None, PASSED_200)
    assert_result(body_check, Status.FAIL, Reason.BODY_MISMATCH, output)


@pytest.mark.parametrize(
    ("coding", "flag", "package"),
    [
        pytest.param("br", "HAS_BROTLI", "Brotli", id="br"),
        pytest.param("zstd", "HAS_ZSTD", "backports.zstd", id="zstd"),
    ],
)
async def test_a_status_check_never_needs_the_package_of_a_coding(
    resources: Resources, monkeypatch: pytest.MonkeyPatch, coding: str, flag: str, package: str
) -> None:
    # As on an install without the package: aiohttp's parser refused such an
    # answer outright ("invalid HTTP response"), before any check was made.
    monkeypatch.setattr(aiohttp.compression_utils, flag, False)
    monkeypatch.setattr(aiohttp.http_parser, flag, False)
    reply = (
        OK_HEAD
        + f"Content-Encoding: {coding}\r\nContent-Length: 4\r\n\r\n".encode()
        + b"\x00\x01\x02\x03"
    )
    async with raw_server(reply) as (port, _):
        status_only = await run(resources, f"http://127.0.0.1:{port}/")
        body_check = await run(resources, f"http://127.0.0.1:{port}/", body_contains="ok")
    assert_result(status_only, Status.PASS, None, PASSED_200)
    assert_result(
        body_check,
        Status.FAIL,
        Reason.BODY_MISMATCH,
        f"cannot decode the {coding} body: the {package} package "
        "(pip install 'health-adapter[codings]') is not installed",
    )


# --- framing: answers read the way curl and Go's client read them -------------------


@pytest.mark.parametrize(
    ("reply", "options", "output"),
    [
        pytest.param(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
            {},
            re.compile(r"HTTP 204 in .* ms"),
            id="204-with-stray-bytes",
        ),
        pytest.param(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello",
            {},
            re.compile(r"HTTP 304 in .* ms"),
            id="304-with-stray-bytes",
        ),
        pytest.param(
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            {},
            re.compile(r"HTTP 304 in .* ms"),
            id="304-with-a-chunked-body",
        ),
        pytest.param(
            OK_HEAD + b"Content-Length: 9\r\n\r\nstatus okEXTRA BYTES",
            {"body_regex": "^status ok$"},
            PASSED_200,
            id="excess-after-content-length-discarded",
        ),
        pytest.param(
            OK_HEAD + b"Content-Length: 500\r\n\r\n",
            {"method": "HEAD"},
            PASSED_200,
            id="HEAD-with-a-content-length",
        ),
        pytest.param(
            OK_HEAD + b"Content-Length: 9\r\n\r\nstatus ok",
            {"method": "HEAD"},
            PASSED_200,
            id="HEAD-answered-with-a-body",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
            + OK_HEAD
            + b"Content-Length: 9\r\n\r\nstatus ok",
            {"body_contains": "status ok"},
            PASSED_200,
            id="1xx-before-the-answer",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc",
            {},
            re.compile(r"HTTP 204 in .* ms"),
            id="1xx-then-204-with-stray-bytes",
        ),
        pytest.param(
            OK_HEAD
            + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n9\r\nstatus ok\r\n0\r\n\r\n",
            {"body_contains": "status ok"},
            PASSED_200,
            id="chunked-wins-over-a-content-length",
        ),
        pytest.param(
            OK_HEAD
            + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nstatus ok\r\n0\r\n\r\n",
            {},
            PASSED_200,
            id="chunked-wins-over-a-content-length-status-only",
        ),
    ],
)
async def test_a_complete_answer_is_judged_and_what_follows_it_discarded(
    resources: Resources, reply: bytes, options: dict[str, Any], output: str | re.Pattern[str]
) -> None:
    async with raw_server(reply) as (port, _):
        result = await run(resources, f"http://127.0.0.1:{port}/", **options)
    assert_result(result, Status.PASS, None, output)


@pytest.mark.parametrize(
    ("reply", "output"),
    [
        pytest.param(
            OK_HEAD + b"Content-Length: 500\r\n\r\n" + b"x" * 120,
            "body cut short: 120 of 500 bytes",
            id="content-length-not-reached",
        ),
        pytest.param(
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\na\r\nstatus: ok\r\n",
            "body cut short: the chunked body ended without its last chunk after 10 bytes",
            id="missing-last-chunk",
        ),
        pytest.param(
            OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nstatus: ok\r\n0\r\n\r\n",
            "body badly framed: invalid chunked encoding",
            id="chunk-size-not-hex",
        ),
        pytest.param(
            OK_HEAD + b"Content-Length: 9\r\nContent-Length: 10\r\n\r\nstatus ok",
            "body badly framed: invalid Content-Length header",
            id="two-content-lengths",
        ),
        pytest.param(
            OK_HEAD + b"Content-Length: nine\r\n\r\nstatus ok",
            "body badly framed: invalid Content-Length header",
            id="content-length-not-a-number",
        ),
    ],
)
@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="status-only"),
        # A text found before the break passes: it is judged as soon as it arrives.
        pytest.param({"body_contains": "not there"}, id="body"),
    ],
)
async def test_a_body_cut_short_or_badly_framed_fails_saying_so(
    resources: Resources, reply: bytes, output: str, options: dict[str, Any]
) -> None:
    async with raw_server(reply) as (port, _):
        result = await run(resources, f"http://127.0.0.1:{port}/", **options)
    assert_result(result, Status.FAIL, Reason.CONNECTION_ERROR, output)
    assert result.observed_unit == "ms"  # the answer had arrived


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"X-Broken header without a colon", id="no-colon"),
        pytest.param(b"X Bad Name: 1", id="name-not-a-token"),
        pytest.param(b"X-Trace: a\x00b", id="nul-in-a-value"),
        pytest.param(b"Set-Cookie: " + b"a" * 20_000, id="20KiB-header"),
        pytest.param(b"Content-Type: ;;;/=", id="invalid-content-type"),
        pytest.param(b"Content-Type: text/plain; charset=no-such-charset", id="unknown-charset"),
        pytest.param(b"Transfer-Encoding: x-custom", id="unknown-transfer-encoding"),
        pytest.param(b"Content-Encoding: br, zstd, x-custom", id="unknown-content-coding"),
    ],
)
async def test_a_header_the_check_does_not_read_never_fails_it(
    resources: Resources, header: bytes
) -> None:
    reply = OK_HEAD + header + b"\r\nConnection: close\r\n\r\nstatus ok"
    async with raw_server(reply) as (port, _):
        result = await run(resources, f"http://127.0.0.1:{port}/")
    assert_result(result, Status.PASS, None, PASSED_200)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", id="204-stray-bytes"
        ),
        pytest.param(
            OK_HEAD + b"Content-Length: 2\r\n\r\nok"
            b"HTTP/1.1 500 Leftover\r\nContent-Length: 0\r\n\r\n",
            id="excess-that-looks-like-an-answer",
        ),
    ],
)
async def test_keep_alive_never_reads_the_leftovers_of_an_earlier_answer(
    resources: Resources, reply: bytes
) -> None:
    async with raw_server(reply, keep_serving=True, hold=True) as (port, accepted):
        probe = make_probe(resources, f"http://127.0.0.1:{port}/", keep_alive=True)
        results = [await probe.check() for _ in range(3)]
    assert [result.status for result in results] == [Status.PASS] * 3, results
    # A connection with leftovers is closed, not reused.
    assert len(accepted) == 3


# --- redirects -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "options", "status", "reason", "output", "paths"),
    [
        pytest.param(
            "/chain/3",
            {},
            Status.PASS,
            None,
            re.compile(r"HTTP 200 in \d+\.\d ms after 4 redirects"),
            ["/chain/3", "/chain/2", "/chain/1", "/chain/0", "/ok"],
            id="same-host-chain",
        ),
        pytest.param(
            "/absolute",
            {},
            Status.PASS,
            None,
            re.compile(r"HTTP 200 in .* ms after 1 redirect"),
            ["/absolute", "/ok"],
            id="absolute-same-host",
        ),
        pytest.param(
            "/chain/9",
            {},
            Status.PASS,
            None,
            re.compile(r"HTTP 200 in .* ms after 10 redirects"),
            None,
            id="ten-redirects-are-fine",
        ),
        pytest.param(
            "/chain/10",
            {},
            Status.FAIL,
            Reason.REDIRECT,
            "more than 10 redirects",
            None,
            id="eleven-are-too-many",
        ),
        pytest.param(
            "/loop",
            {},
            Status.FAIL,
            Reason.REDIRECT,
            "more than 10 redirects",
            ["/loop"] * 11,
            id="loop",
        ),
        pytest.param(
            "/elsewhere",
            {},
            Status.PASS,
            None,
            re.compile(r"HTTP 302 in .* ms; redirect to another host \(localhost\) not followed"),
            ["/elsewhere"],
            id="another-host-is-judged-not-followed",
        ),
        pytest.param(
            "/elsewhere",
            {"expect_status": [200]},
            Status.FAIL,
            Reason.STATUS,
            "HTTP 302, expected 200; redirect to another host (localhost) not followed",
            ["/elsewhere"],
            id="another-host-can-fail-the-check",
        ),
        pytest.param(
            "/chain/1",
            {"follow_redirects": False, "expect_status": ["2xx"]},
            Status.FAIL,
            Reason.STATUS,
            "HTTP 302, expected 200-299",
            ["/chain/1"],
            id="follow-redirects-off",
        ),
        pytest.param(
            "/no-location",
            {},
            Status.PASS,
            None,
            re.compile(r"HTTP 302 in .* ms"),
            None,
            id="3xx-without-location",
        ),
        pytest.param(
            "/to-ftp",
            {},
            Status.PASS,
            None,
            re.compile(r"HTTP 302 in .* ms; redirect to a non-HTTP URL not followed"),
            None,
            id="non-http-location",
        ),
        pytest.param(
            "/to-garbage",
            {},
            Status.PASS,
            None,
            re.compile(r"HTTP 302 in .* ms; redirect with an invalid Location not followed"),
            None,
            id="unparsable-location",
        ),
    ],
)
async def test_redirects(
    server: TestServer,
    app: web.Application,
    resources: Resources,
    path: str,
    options: dict[str, Any],
    status: Status,
    reason: Reason | None,
    output: str | re.Pattern[str],
    paths: list[str] | None,
) -> None:
    result = await run(resources, server.make_url(path), **options)
    assert_result(result, status, reason, output)
    assert result.observed_unit == "ms"
    if paths is not None:
        assert paths_seen(app) == paths


async def test_a_redirect_from_localhost_to_127_0_0_1_is_not_followed(
    server: TestServer, app: web.Application, resources: Resources
) -> None:
    result = await run(resources, f"http://localhost:{server.port}/elsewhere")
    assert result.output.endswith("redirect to another host (127.0.0.1) not followed")
    assert paths_seen(app) == ["/elsewhere"]


@pytest.mark.parametrize(
    ("code", "method", "seen_method", "seen_body"),
    [
        pytest.param(301, "POST", "GET", b"", id="301-post"),
        pytest.param(302, "POST", "GET", b"", id="302-post"),
        pytest.param(303, "PUT", "GET", b"", id="303-put"),
        pytest.param(302, "HEAD", "HEAD", b"", id="302-head-stays-head"),
        pytest.param(307, "POST", "POST", b"payload", id="307-post"),
        pytest.param(308, "PATCH", "PATCH", b"payload", id="308-patch"),
    ],
)
async def test_redirect_status_decides_the_next_method(
    server: TestServer,
    app: web.Application,
    resources: Resources,
    code: int,
    method: str,
    seen_method: str,
    seen_body: bytes,
) -> None:
    body = None if method == "HEAD" else "payload"
    headers = {"Content-Type": "text/plain", "X-Kept": "yes"}
    result = await run(
        resources,
        server.make_url(f"/redirect/{code}"),
        method=method,
        body=body,
        headers=headers,
    )
    assert result.status is Status.PASS, result
    assert paths_seen(app) == [f"/redirect/{code}", "/echo"]
    followed = app[SEEN][1]
    assert (followed.method, followed.body) == (seen_method, seen_body)
    assert followed.headers["X-Kept"] == "yes"
    # A dropped body takes the headers describing it along.
    assert ("Content-Type" in followed.headers) == bool(seen_body)


# --- TLS -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "options", "reason", "output"),
    [
        pytest.param(
            "localhost",
            {},
            Reason.TLS,
            re.compile(
                r"TLS error with localhost:\d+: certificate verify failed "
                r"\(unable to get local issuer certificate\)"
            ),
            id="system-trust-fails",
        ),
        pytest.param("localhost", {"ca_file": "CA"}, None, PASSED_200, id="ca-file-passes"),
        pytest.param("localhost", {"tls_verify": False}, None, PASSED_200, id="verify-off-passes"),
        pytest.param(
            "127.0.0.1",
            {"ca_file": "CA"},
            Reason.TLS,
            re.compile(
                r"TLS error with 127\.0\.0\.1:\d+: certificate verify failed \(IP address mismatch.*\)"
            ),
            id="host-name-mismatch-fails",
        ),
        pytest.param(
            "127.0.0.1",
            {"ca_file": "CA", "tls_verify": False},
            None,
            PASSED_200,
            id="verify-off-ignores-host-name",
        ),
    ],
)
async def test_tls_verification(
    tls_server: TestServer,
    tls_files: TlsFiles,
    resources: Resources,
    host: str,
    options: dict[str, Any],
    reason: Reason | None,
    output: str | re.Pattern[str],
) -> None:
    options = {key: tls_files.ca if value == "CA" else value for key, value in options.items()}
    result = await run(resources, f"https://{host}:{tls_server.port}/ok", **options)
    assert_result(result, Status.PASS if reason is None else Status.FAIL, reason, output)


async def test_https_to_a_plain_http_port_is_a_tls_failure(
    server: TestServer, resources: Resources
) -> None:
    result = await run(resources, f"https://127.0.0.1:{server.port}/ok")
    assert_result(
        result,
        Status.FAIL,
        Reason.TLS,
        f"TLS error with 127.0.0.1:{server.port}: wrong version number",
    )
    assert result.observed_value is None


@pytest.mark.parametrize(
    ("client_files", "reason"),
    [
        pytest.param(("client_cert", "client_key"), None, id="cert-and-key-files"),
        pytest.param(("client_key_and_cert", None), None, id="key-inside-the-cert-file"),
        pytest.param((None, None), Reason.TLS, id="no-client-cert"),
    ],
)
async def test_client_certificate(
    aiohttp_server: ServerFactory,
    app: web.Application,
    ca: trustme.CA,
    tls_files: TlsFiles,
    resources: Resources,
    client_files: tuple[str | None, str | None],
    reason: Reason | None,
) -> None:
    server = await aiohttp_server(app, ssl=server_tls_context(ca, require_client_cert=True))
    cert, key = (getattr(tls_files, name) if name else None for name in client_files)
    options = {"ca_file": tls_files.ca, "cert_file": cert, "key_file": key}
    result = await run(resources, f"https://localhost:{server.port}/ok", **options)
    assert (result.status, result.reason) == (
        Status.PASS if reason is None else Status.FAIL,
        reason,
    ), result
    assert len(app[SEEN]) == (1 if reason is None else 0)


async def test_a_redirect_from_http_to_https_on_the_same_host_uses_the_tls_options(
    aiohttp_server: ServerFactory,
    ca: trustme.CA,
    tls_files: TlsFiles,
    resources: Resources,
) -> None:
    tls_app = make_app()
    tls_server = await aiohttp_server(tls_app, ssl=server_tls_context(ca))

    async def to_https(request: web.Request) -> web.Response:
        return redirect(f"https://localhost:{tls_server.port}/ok", 308)

    plain_app = web.Application()
    plain_app.router.add_get("/", to_https)
    plain_server = await aiohttp_server(plain_app)
    url = f"http://localhost:{plain_server.port}/"
    result = await run(resources, url, ca_file=tls_files.ca)
    assert result.status is Status.PASS, result
    assert paths_seen(tls_app) == ["/ok"]


async def test_tls_contexts_are_built_once_per_distinct_settings(
    tls_server: TestServer,
    tls_files: TlsFiles,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str | None] = []
    create_default_context = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs.get("cafile"))
        return create_default_context(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    url = f"https://localhost:{tls_server.port}/ok"
    twins = [make_probe(resources, url, ca_file=tls_files.ca) for _ in range(2)]
    for probe in twins * 2:
        assert (await probe.check()).status is Status.PASS
    assert (await run(resources, url, tls_verify=False)).status is Status.PASS
    assert built == [tls_files.ca, None]


async def test_unloadable_tls_files_are_a_setup_error_not_a_target_failure(
    tls_server: TestServer, resources: Resources, tmp_path: Path
) -> None:
    missing = str(tmp_path / "missing-ca.pem")
    probe = make_probe(resources, f"https://localhost:{tls_server.port}/ok", ca_file=missing)
    with pytest.raises(TlsSetupError, match=f"cannot load ca_file {re.escape(missing)}: No such"):
        await probe.check()


def named_server_tls(ca: trustme.CA, name: str, seen_sni: list[str | None]) -> ssl.SSLContext:
    """A server context with a certificate for `name` only, recording the SNI it is sent."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)

    def note(_: Any, server_name: str | None, __: Any) -> None:
        seen_sni.append(server_name)

    context.sni_callback = note
    return context


@pytest.mark.parametrize(
    ("options", "status", "sni", "output"),
    [
        pytest.param(
            {},
            Status.FAIL,
            None,
            r"TLS error with 127\.0\.0\.1:\d+: certificate verify failed \(IP address mismatch, "
            r"certificate is not valid for '127\.0\.0\.1'\.\)",
            id="by-ip-without-server-name",
        ),
        pytest.param(
            {"server_name": "app.example.test"},
            Status.PASS,
            "app.example.test",
            PASSED_200.pattern,
            id="server-name",
        ),
        pytest.param(
            {"headers": {"Host": "app.example.test:8443"}},
            Status.PASS,
            "app.example.test",
            PASSED_200.pattern,
            id="host-header-names-the-server",
        ),
        pytest.param(
            {"headers": {"Host": "wrong.test"}, "server_name": "app.example.test"},
            Status.PASS,
            "app.example.test",
            PASSED_200.pattern,
            id="server-name-wins-over-host-header",
        ),
        pytest.param(
            {"server_name": "other.test"},
            Status.FAIL,
            "other.test",
            r"TLS error with 127\.0\.0\.1:\d+: certificate verify failed \(Hostname mismatch, "
            r"certificate is not valid for 'other\.test'\.\)",
            id="wrong-server-name",
        ),
        pytest.param(
            {"server_name": "other.test", "tls_verify": False},
            Status.PASS,
            "other.test",
            PASSED_200.pattern,
            id="verify-off-still-sends-the-name",
        ),
    ],
)
async def test_server_name_is_sent_and_verified(
    aiohttp_server: ServerFactory,
    app: web.Application,
    ca: trustme.CA,
    tls_files: TlsFiles,
    resources: Resources,
    options: dict[str, Any],
    status: Status,
    sni: str | None,
    output: str,
) -> None:
    seen_sni: list[str | None] = []
    server = await aiohttp_server(app, ssl=named_server_tls(ca, "app.example.test", seen_sni))

    result = await run(
        resources, f"https://127.0.0.1:{server.port}/ok", ca_file=tls_files.ca, **options
    )

    assert_result(result, status, None if status is Status.PASS else Reason.TLS, re.compile(output))
    assert seen_sni == [sni]


def test_server_name_needs_https() -> None:
    with pytest.raises(msgspec.ValidationError, match="server_name needs an https:// url"):
        HttpProbe.parse_options({"url": "http://127.0.0.1/", "server_name": "app.test"})


async def test_a_rotated_ca_is_used_at_the_next_run(
    aiohttp_server: ServerFactory, app: web.Application, resources: Resources, tmp_path: Path
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    secret = SecretDir(tmp_path / "secret")
    secret.publish({"ca.pem": old_ca.cert_pem.bytes()})
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    old_ca.issue_cert("localhost").configure_cert(server_tls)
    server = await aiohttp_server(app, ssl=server_tls)
    probe = make_probe(
        resources, f"https://localhost:{server.port}/ok", ca_file=secret.path("ca.pem")
    )
    assert (await probe.check()).status is Status.PASS

    # The server moves to a certificate of the new CA: the old bundle cannot verify it.
    new_ca.issue_cert("localhost").configure_cert(server_tls)
    assert (await probe.check()).reason is Reason.TLS
    secret.publish({"ca.pem": new_ca.cert_pem.bytes()})
    assert_result(await probe.check(), Status.PASS, None, PASSED_200)

    # A bundle caught half written keeps the one in use.
    secret.publish({"ca.pem": new_ca.cert_pem.bytes()[:100]})
    assert_result(await probe.check(), Status.PASS, None, PASSED_200)


# --- Unix sockets ---------------------------------------------------------------


async def test_unix_socket_option_uses_the_url_host_as_host_header(
    unix_socket: str, app: web.Application, resources: Resources
) -> None:
    result = await run(resources, "http://app.internal/ok", unix_socket=unix_socket)
    assert_result(result, Status.PASS, None, PASSED_200)
    assert app[SEEN][0].headers["Host"] == "app.internal"


async def test_http_unix_url(unix_socket: str, app: web.Application, resources: Resources) -> None:
    url = f"http+unix://{urllib.parse.quote(unix_socket, safe='')}/chain/2?probe=1"
    result = await run(resources, url, body_contains="status: ok")
    assert_result(result, Status.PASS, None, re.compile(r"HTTP 200 in .* ms after 3 redirects"))
    assert paths_seen(app) == ["/chain/2", "/chain/1", "/chain/0", "/ok"]
    assert app[SEEN][0].headers["Host"] == "localhost"


async def test_a_redirect_to_https_is_not_followed_on_a_unix_socket(
    unix_socket: str, app: web.Application, resources: Resources
) -> None:
    result = await run(resources, "http://localhost/to-https", unix_socket=unix_socket)
    assert_result(
        result,
        Status.PASS,
        None,
        re.compile(r"HTTP 302 in .* ms; redirect to https not followed on a unix socket"),
    )
    assert paths_seen(app) == ["/to-https"]


async def test_missing_socket_is_refused(resources: Resources, tmp_path: Path) -> None:
    path = str(tmp_path / "gone.sock")
    result = await run(resources, "http://app/ok", unix_socket=path)
    assert_result(result, Status.FAIL, Reason.CONNECTION_REFUSED, f"no socket at {path}")


async def test_socket_nobody_listens_on_is_refused(resources: Resources, tmp_path: Path) -> None:
    path = str(tmp_path / "idle.sock")
    with socket.socket(socket.AF_UNIX) as idle:
        idle.bind(path)  # bound, never listening
        result = await run(resources, "http://app/ok", unix_socket=path)
    assert_result(result, Status.FAIL, Reason.CONNECTION_REFUSED, f"connection refused by {path}")


# --- connections -----------------------------------------------------------------


async def test_each_run_opens_a_fresh_connection(
    server: TestServer, app: web.Application, resources: Resources
) -> None:
    probe = make_probe(resources, server.make_url("/ok"))
    for _ in range(3):
        assert (await probe.check()).status is Status.PASS
    peers = {seen.peer for seen in app[SEEN]}
    assert len(peers) == 3


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
async def test_keep_alive_reuses_one_connection(
    server: TestServer, app: web.Application, resources: Resources, method: str
) -> None:
    probe = make_probe(resources, server.make_url("/echo"), keep_alive=True, method=method)
    for _ in range(3):
        assert (await probe.check()).status is Status.PASS
    assert [seen.method for seen in app[SEEN]] == [method] * 3
    assert len({seen.peer for seen in app[SEEN]}) == 1


async def test_keep_alive_and_fresh_checks_do_not_share_connections(
    server: TestServer, app: web.Application, resources: Resources
) -> None:
    kept = make_probe(resources, server.make_url("/ok"), keep_alive=True)
    fresh = make_probe(resources, server.make_url("/ok"))
    for _ in range(2):
        assert (await kept.check()).status is Status.PASS
        assert (await fresh.check()).status is Status.PASS
    peers = [seen.peer for seen in app[SEEN]]
    assert peers[0] == peers[2]  # the kept connection, twice
    assert len(set(peers)) == 3  # and a new one for each fresh run


async def test_keep_alive_survives_the_app_closing_idle_connections(
    app: web.Application, resources: Resources
) -> None:
    runner = web.AppRunner(app, keepalive_timeout=0.05)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        probe = make_probe(resources, f"http://127.0.0.1:{port}/ok", keep_alive=True)
        first = await probe.check()
        await asyncio.sleep(0.3)  # the app hangs up the idle connection meanwhile
        second = await probe.check()
    finally:
        await runner.cleanup()
    assert (first.status, second.status) == (Status.PASS, Status.PASS), second
    assert len({seen.peer for seen in app[SEEN]}) == 2


@pytest.mark.parametrize("runs_while_down", [0, 3], ids=["restart-between-runs", "long-outage"])
async def test_keep_alive_passes_at_the_first_run_after_the_app_is_back(
    app: web.Application, resources: Resources, runs_while_down: int
) -> None:
    port = free_port()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    runner = await start()
    probe = make_probe(resources, f"http://127.0.0.1:{port}/ok", keep_alive=True)
    assert (await probe.check()).status is Status.PASS
    await runner.cleanup()  # the app goes, and its kept connection with it
    for _ in range(runs_while_down):
        down = await probe.check()
        assert (down.status, down.reason) == (Status.FAIL, Reason.CONNECTION_REFUSED)
    runner = await start()
    try:
        back = await probe.check()
    finally:
        await runner.cleanup()
    assert_result(back, Status.PASS, None, PASSED_200)


async def test_keep_alive_over_a_unix_socket(
    unix_socket: str, app: web.Application, resources: Resources
) -> None:
    probe = make_probe(resources, "http://app/ok", unix_socket=unix_socket, keep_alive=True)
    for _ in range(3):
        assert (await probe.check()).status is Status.PASS
    assert len(app[SEEN]) == 3


async def test_proxies_in_the_environment_are_ignored(
    server: TestServer, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with raw_server(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n") as (
        proxy_port,
        proxy_connections,
    ):
        proxy = f"http://127.0.0.1:{proxy_port}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy)
            monkeypatch.setenv(name.lower(), proxy)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        result = await run(resources, server.make_url("/ok"))
        assert result.status is Status.PASS, result
        assert proxy_connections == []
        # The control: a client that trusts the environment does reach the proxy.
        async with aiohttp.ClientSession(trust_env=True) as session:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(server.make_url("/ok")) as response:
                    assert response.status == 502
        assert len(proxy_connections) == 1


@pytest.mark.parametrize(
    ("host", "printed"), [("127.0.0.1", "127.0.0.1"), ("[::1]", "[::1]")], ids=["ipv4", "ipv6"]
)
async def test_closed_port_is_refused(resources: Resources, host: str, printed: str) -> None:
    port = closed_port()
    result = await run(resources, f"http://{host}:{port}/ok")
    assert_result(
        result,
        Status.FAIL,
        Reason.CONNECTION_REFUSED,
        f"connection refused by {printed}:{port}",
    )
    assert (result.observed_value, result.observed_unit) == (None, None)


@pytest.mark.parametrize(
    ("reply", "options", "output", "answered"),
    [
        pytest.param(
            b"",
            {},
            "server closed the connection without a complete answer",
            False,
            id="hang-up-without-answer",
        ),
        pytest.param(
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            {},
            "invalid HTTP response",
            False,
            id="not-http",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * (100 * 1024) + b"\r\n\r\n",
            {},
            "invalid HTTP response: a header line longer than 64 KiB",
            False,
            id="header-line-over-64KiB",
        ),
    ],
)
async def test_broken_answers_are_connection_errors(
    resources: Resources,
    reply: bytes,
    options: dict[str, Any],
    output: str,
    answered: bool,
) -> None:
    async with raw_server(reply) as (port, _):
        result = await run(resources, f"http://127.0.0.1:{port}/ok", **options)
    assert_result(result, Status.FAIL, Reason.CONNECTION_ERROR, output)
    # Timed only when an answer had arrived.
    assert (result.observed_unit == "ms") is answered


async def test_dns_failure_through_a_resolver_that_fails(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for the system resolver: the test must send no DNS query.
    class FailingResolver(aiohttp.abc.AbstractResolver):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[Any]:
            raise OSError(socket.EAI_NONAME, "Name or service not known")

        async def close(self) -> None:
            pass

    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", FailingResolver)
    result = await run(resources, "http://app.invalid:8080/healthz")
    assert_result(
        result,
        Status.FAIL,
        Reason.DNS,
        "cannot resolve app.invalid: Name or service not known",
    )


@pytest.mark.parametrize(
    ("path", "options"),
    [
        pytest.param("/slow", {}, id="waiting-for-the-answer"),
        pytest.param("/slow-body", {"body_contains": "never there"}, id="reading-the-body"),
    ],
)
async def test_cancellation_leaves_nothing_open(
    server: TestServer,
    app: web.Application,
    resources: Resources,
    path: str,
    options: dict[str, Any],
) -> None:
    task = asyncio.create_task(run(resources, server.make_url(path), **options))
    await asyncio.wait_for(app[SLOW_STARTED].wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The server sees the connection go away...
    await asyncio.wait_for(app[CLIENT_LEFT].wait(), WAIT)
    # ...and closing up afterwards finds nothing left to warn about
    # (filterwarnings=error turns an "Unclosed ..." ResourceWarning into a failure).
    await resources.aclose()
    gc.collect()


# --- error classification ---------------------------------------------------------


def connection_key(host: str = "app.example", port: int = 8080) -> ConnectionKey:
    return ConnectionKey(host, port, False, True, None, None, None)


def cert_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    error.verify_message = "certificate has expired"
    return error


def ssl_error(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] ...")
    error.reason = reason
    return error


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "over_tls", "reason", "output"),
    [
        pytest.param(
            aiohttp.ClientConnectorDNSError(
                connection_key(),
                socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            ),
            False,
            Reason.DNS,
            "cannot resolve app.example: Name or service not known",
            id="dns",
        ),
        pytest.param(
            aiohttp.ClientConnectorError(connection_key(), ConnectionRefusedError(111, "refused")),
            False,
            Reason.CONNECTION_REFUSED,
            "connection refused by app.example:8080",
            id="refused",
        ),
        pytest.param(
            aiohttp.ClientConnectorError(connection_key(), OSError(113, "No route to host")),
            False,
            Reason.CONNECTION_ERROR,
            "cannot connect to app.example:8080: No route to host",
            id="unreachable",
        ),
        pytest.param(
            aiohttp.ClientConnectorError(connection_key(), ConnectionResetError(104, "reset")),
            True,
            Reason.TLS,
            "TLS error with app.example:8080: the server closed the connection during the handshake",
            id="reset-during-tls-handshake",
        ),
        pytest.param(
            aiohttp.ClientConnectorError(connection_key(), ConnectionResetError(104, "reset")),
            False,
            Reason.CONNECTION_ERROR,
            "cannot connect to app.example:8080: reset",
            id="reset-without-tls",
        ),
        pytest.param(
            caused(
                aiohttp.ClientConnectorCertificateError(connection_key(), cert_error()),
                cert_error(),
            ),
            True,
            Reason.TLS,
            "TLS error with app.example:8080: certificate verify failed (certificate has expired)",
            id="certificate",
        ),
        pytest.param(
            # A TLS alert after the handshake reaches aiohttp as a plain OS error.
            caused(
                aiohttp.ClientOSError(1, "[SSL: ...]"),
                ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"),
            ),
            True,
            Reason.TLS,
            "TLS error with app.example:8080: tlsv13 alert certificate required",
            id="tls-alert-later",
        ),
        pytest.param(
            aiohttp.ServerDisconnectedError(),
            False,
            Reason.CONNECTION_ERROR,
            "server closed the connection without a complete answer",
            id="server-disconnected",
        ),
        pytest.param(
            aiohttp.ClientConnectionResetError(104, "Connection reset by peer"),
            False,
            Reason.CONNECTION_ERROR,
            "connection reset by the server",
            id="reset",
        ),
        pytest.param(
            aiohttp.ClientPayloadError("Response payload is not completed"),
            False,
            Reason.CONNECTION_ERROR,
            "response body broken off or badly encoded",
            id="payload",
        ),
        pytest.param(
            aiohttp.ClientConnectionError("Connection closed"),
            False,
            Reason.CONNECTION_ERROR,
            "connection error: ClientConnectionError",
            id="other",
        ),
    ],
)
def test_classify_error(exc: BaseException, over_tls: bool, reason: Reason, output: str) -> None:
    assert classify_error(exc, over_tls=over_tls, where="app.example:8080") == (reason, output)


# --- options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({}, "Object missing required field `url`", id="url-missing"),
        pytest.param(
            {"url": "http://app", "timeout": "2s"},
            "Object contains unknown field `timeout`",
            id="unknown-option",
        ),
        pytest.param(
            {"url": "ftp://app/file"},
            "invalid url 'ftp://app/file': it must start with http://, https:// or "
            "http+unix:// - at `$.url`",
            id="other-scheme",
        ),
        pytest.param(
            {"url": "localhost:8080/healthz"},
            "invalid url 'localhost:8080/healthz': it must start with http://, https:// or "
            "http+unix:// - at `$.url`",
            id="no-scheme",
        ),
        pytest.param(
            {"url": "http:///healthz"},
            "invalid url 'http:///healthz': it has no host - at `$.url`",
            id="no-host",
        ),
        pytest.param(
            {"url": 8080},
            "expected a URL, got 8080 - at `$.url`",
            id="url-not-a-string",
        ),
        pytest.param(
            {"url": "http://app/a b"},
            "contains white space (percent-encode it) - at `$.url`",
            id="white-space",
        ),
        pytest.param(
            {"url": "http+unix:///healthz"},
            "needs the percent-encoded socket path",
            id="http-unix-without-socket",
        ),
        pytest.param(
            {"url": "http://app:99999/"},
            "Port out of range 0-65535 - at `$.url`",
            id="bad-port",
        ),
        pytest.param(
            {"url": "http://app", "method": "FETCH"},
            "Invalid enum value 'FETCH' - at `$.method`",
            id="unknown-method",
        ),
        pytest.param(
            {"url": "http://app", "expect_status": [200, "abc"]},
            "invalid status 'abc': write a code (200), a range (200-299) or a class (2xx)"
            " - at `$.expect_status[1]`",
            id="status-garbage",
        ),
        pytest.param(
            {"url": "http://app", "expect_status": ["200-299", 600]},
            "invalid status 600: status codes are 100-599 - at `$.expect_status[1]`",
            id="status-out-of-range",
        ),
        pytest.param(
            {"url": "http://app", "expect_status": ["299-200"]},
            "invalid status '299-200': the range ends before it starts - at `$.expect_status[0]`",
            id="status-range-reversed",
        ),
        pytest.param(
            {"url": "http://app", "expect_status": ["6xx"]},
            "invalid status '6xx'",
            id="status-class-out-of-range",
        ),
        pytest.param(
            {"url": "http://app", "expect_status": [True]},
            "invalid status True",
            id="status-bool",
        ),
        pytest.param(
            {"url": "http://app", "expect_status": []},
            "length >= 1 - at `$.expect_status`",
            id="status-empty-list",
        ),
        pytest.param(
            {"url": "http://app", "body_regex": "(unclosed"},
            "invalid regular expression '(unclosed'",
            id="bad-regex",
        ),
        pytest.param(
            {"url": "http://app", "tls_verify": "maybe"},
            "Expected `bool`, got `str` - at `$.tls_verify`",
            id="tls-verify-not-bool",
        ),
        pytest.param(
            {"url": "http://app", "headers": {"X-Count": 3}},
            "Expected `str`, got `int` - at `$.headers[...]`",
            id="header-value-not-string",
        ),
        pytest.param(
            {"url": "http://app", "headers": {"Bad Name": "x"}},
            "invalid header name 'Bad Name'",
            id="header-name-invalid",
        ),
        pytest.param(
            {"url": "http://app", "headers": {"X-Token": f"{SECRET}\r\nX-Evil: 1"}},
            "the value of 'X-Token' contains a line break or NUL",
            id="header-value-injection",
        ),
        pytest.param(
            {"url": "http://app", "key_file": "client.key"},
            "key_file requires cert_file",
            id="key-without-cert",
        ),
        pytest.param(
            {"url": "http+unix://%2Frun%2Fapp.sock/", "unix_socket": "/run/other.sock"},
            "give the socket either in an http+unix:// url or as unix_socket",
            id="two-sockets",
        ),
        pytest.param(
            {"url": "https://app/", "unix_socket": "/run/app.sock"},
            "https is not supported through unix_socket",
            id="https-over-unix-socket",
        ),
        pytest.param(
            {"url": "http://app", "unix_socket": ""},
            "length >= 1 - at `$.unix_socket`",
            id="empty-socket-path",
        ),
        pytest.param(
            {"url": "http://app", "method": "HEAD", "body_contains": "ok"},
            "body_contains and body_regex need a method other than HEAD",
            id="head-with-body-check",
        ),
        pytest.param(
            {"url": "http://app", "method": "POST", "keep_alive": True},
            "keep_alive needs a method that may be sent twice "
            "(DELETE, GET, HEAD, OPTIONS, PUT), not POST",
            id="keep-alive-with-post",
        ),
        pytest.param(
            {"url": "http://app", "method": "patch", "keep_alive": True},
            "not PATCH",
            id="keep-alive-with-patch",
        ),
        pytest.param(
            {"url": f"http://user:{SECRET}@app/", "headers": {"authorization": "Bearer x"}},
            "an Authorization header and credentials in the url exclude each other: keep one"
            " - at `$.headers`",
            id="credentials-twice",
        ),
    ],
)
def test_invalid_options(options: dict[str, Any], error: str) -> None:
    with pytest.raises(msgspec.ValidationError) as raised:
        HttpProbe.parse_options(options)
    message = str(raised.value)
    if " - at `" in error:
        assert message.endswith(error), message
    else:
        assert error in message, message
    assert SECRET not in message


def test_a_password_in_a_bad_url_is_not_repeated() -> None:
    with pytest.raises(msgspec.ValidationError) as raised:
        HttpProbe.parse_options({"url": "ftp://admin:hunter2@app/"})
    assert "hunter2" not in str(raised.value)
    assert "admin:***@app" in str(raised.value)


async def test_a_block_with_only_a_url_gets_what_the_defaults_promise(
    server: TestServer, app: web.Application, resources: Resources
) -> None:
    # The status defaults (200-399) and TLS verification have their own
    # tests above; here, what the others make the probe do to a real app.
    probe = make_probe(resources, server.make_url("/chain/1"))
    for _ in range(2):
        assert (await probe.check()).status is Status.PASS
    seen = app[SEEN]
    # Redirects followed, with GET and no body.
    assert [(request.method, request.path) for request in seen] == [
        ("GET", "/chain/1"),
        ("GET", "/chain/0"),
        ("GET", "/ok"),
    ] * 2
    assert all(request.body == b"" for request in seen)
    # No keep_alive: each run on a connection of its own.
    assert seen[0].peer != seen[3].peer


@pytest.mark.parametrize(
    ("written", "accepted", "rejected"),
    [
        pytest.param(200, [200], [199, 201], id="int"),
        pytest.param("204", [204], [200], id="string"),
        pytest.param("200-299", [200, 250, 299], [199, 300], id="range"),
        pytest.param(" 300 - 302 ", [300, 302], [303], id="range-with-spaces"),
        pytest.param("2xx", [200, 299], [199, 300], id="class"),
        pytest.param("5XX", [500, 599], [499], id="class-upper-case"),
    ],
)
def test_expect_status_forms(written: Any, accepted: list[int], rejected: list[int]) -> None:
    [status_range] = HttpProbe.parse_options(
        {"url": "http://app", "expect_status": [written]}
    ).expect_status
    assert all(code in status_range for code in accepted)
    assert not any(code in status_range for code in rejected)


def test_method_is_case_insensitive() -> None:
    assert HttpProbe.parse_options({"url": "http://app", "method": "pAtCh"}).method == "PATCH"


def test_every_option_is_described_in_the_json_schema() -> None:
    schema = msgspec.json.schema(HttpProbe.Options, schema_hook=json_schema_of_custom)
    properties = schema["$defs"]["Options"]["properties"]
    assert set(properties) == set(HttpProbe.Options.__struct_fields__)
    assert all(prop.get("description") for prop in properties.values())
    assert properties["expect_status"]["default"] == ["200-399"]
    assert properties["method"]["default"] == "GET"


# --- negative body matches, header matches, warn statuses, require_tls --------------------------


async def status_down(request: web.Request) -> web.Response:
    return web.json_response({"status": "DOWN", "checks": {"db": "DOWN"}})


async def with_headers(request: web.Request) -> web.Response:
    headers = CIMultiDict([("X-Status", "degraded"), ("X-Status", "ok"), ("X-Version", "2.4.1")])
    return web.Response(text="ok", headers=headers)


def extended_app() -> web.Application:
    app = make_app()
    app.router.add_get("/down", status_down)
    app.router.add_get("/headers", with_headers)
    return app


@pytest.fixture
async def extended(aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(extended_app())


@pytest.mark.parametrize(
    ("path", "options", "status", "reason", "output"),
    [
        pytest.param(
            "/ok", {"body_not_contains": '"DOWN"'}, Status.PASS, None, PASSED_200, id="absent"
        ),
        pytest.param(
            "/down",
            {"body_not_contains": '"status": "DOWN"'},
            Status.FAIL,
            Reason.BODY_MISMATCH,
            "body contains the forbidden text (body_not_contains)",
            id="status-down-in-a-200",
        ),
        pytest.param(
            "/down",
            {"body_not_regex": r'"(db|cache)":\s*"DOWN"'},
            Status.FAIL,
            Reason.BODY_MISMATCH,
            'body matches /"(db|cache)":\\s*"DOWN"/ (body_not_regex)',
            id="regex",
        ),
        pytest.param(
            "/down",
            {"body_contains": "status", "body_not_contains": "DOWN"},
            Status.FAIL,
            Reason.BODY_MISMATCH,
            "body contains the forbidden text (body_not_contains)",
            id="wanted-and-forbidden",
        ),
        pytest.param(
            "/ok",
            {"body_contains": "status: ok", "body_not_regex": "DOWN"},
            Status.PASS,
            None,
            PASSED_200,
            id="wanted-without-forbidden",
        ),
        pytest.param(
            "/ok",
            {"body_contains": "nothing", "body_not_regex": "DOWN"},
            Status.FAIL,
            Reason.BODY_MISMATCH,
            "body does not contain the expected text",
            id="forbidden-absent-wanted-absent",
        ),
        pytest.param(
            f"/big?size={BODY_LIMIT}&needle_at={BODY_LIMIT // 2}",
            {"body_not_contains": NEEDLE},
            Status.FAIL,
            Reason.BODY_MISMATCH,
            "body contains the forbidden text (body_not_contains)",
            id="within-the-cap",
        ),
        pytest.param(
            f"/big?needle_at={2 * BODY_LIMIT}",
            {"body_not_contains": NEEDLE},
            Status.PASS,
            None,
            PASSED_200,
            id="beyond-the-cap-is-not-read",
        ),
        pytest.param(
            "/gzip?size=100&needle_at=10",
            {"body_not_regex": "needle-[0-9a-f]+"},
            Status.FAIL,
            Reason.BODY_MISMATCH,
            "body matches /needle-[0-9a-f]+/ (body_not_regex)",
            id="decoded",
        ),
        pytest.param(
            "/endless", {"body_not_contains": NEEDLE}, Status.PASS, None, PASSED_200, id="endless"
        ),
        pytest.param(
            "/stream?piece=status:%20DOWN",
            {"body_not_contains": "DOWN"},
            Status.FAIL,
            Reason.BODY_MISMATCH,
            "body contains the forbidden text (body_not_contains)",
            id="open-stream-judged-when-it-appears",
        ),
    ],
)
async def test_negative_body_matches(
    extended: TestServer,
    resources: Resources,
    path: str,
    options: dict[str, Any],
    status: Status,
    reason: Reason | None,
    output: str | re.Pattern[str],
) -> None:
    result = await asyncio.wait_for(
        run(resources, f"http://127.0.0.1:{extended.port}{path}", **options), WAIT
    )
    assert_result(result, status, reason, output)


async def test_a_negative_match_cannot_pass_before_the_body_ends(
    extended: TestServer, resources: Resources
) -> None:
    url = f"http://127.0.0.1:{extended.port}/stream?piece=status:%20ok"
    probe = make_probe(resources, url, body_not_contains="DOWN")

    # The body stays open and has not shown the forbidden text: no verdict yet.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(probe.check(), 0.5)


@pytest.mark.parametrize(
    ("options", "status", "output"),
    [
        pytest.param({"header_regex": {"X-Version": r"^2\."}}, Status.PASS, None, id="matches"),
        pytest.param(
            {"header_regex": {"x-version": r"^2\."}}, Status.PASS, None, id="any-case-name"
        ),
        pytest.param(
            {"header_regex": {"X-Status": "^ok$"}}, Status.PASS, None, id="one-of-many-values"
        ),
        pytest.param(
            {"header_regex": {"X-Status": "^down$"}},
            Status.FAIL,
            "header 'X-Status' does not match /^down$/ in any of its 2 values",
            id="no-value-matches",
        ),
        pytest.param(
            {"header_regex": {"X-Version": "^3"}},
            Status.FAIL,
            "header 'X-Version' does not match /^3/",
            id="one-value-mismatch",
        ),
        pytest.param(
            {"header_regex": {"X-Build": "."}},
            Status.FAIL,
            "header 'X-Build' is missing (header_regex wants /./)",
            id="missing",
        ),
        pytest.param(
            {"header_not_regex": {"X-Status": "degraded"}},
            Status.FAIL,
            "header 'X-Status' matches /degraded/ (header_not_regex)",
            id="forbidden-in-one-value",
        ),
        pytest.param(
            {"header_not_regex": {"X-Build": "."}}, Status.PASS, None, id="forbidden-missing"
        ),
        pytest.param(
            {"header_not_regex": {"X-Version": "^1"}}, Status.PASS, None, id="forbidden-absent"
        ),
    ],
)
async def test_header_matches(
    extended: TestServer,
    resources: Resources,
    options: dict[str, Any],
    status: Status,
    output: str | None,
) -> None:
    result = await run(resources, f"http://127.0.0.1:{extended.port}/headers", **options)

    reason = None if status is Status.PASS else Reason.HEADER_MISMATCH
    assert (result.status, result.reason) == (status, reason), result
    if output is not None:
        assert result.output == output
    # Header values are the target's text, never shown.
    assert "degraded" not in result.output or "degraded" in str(options)


@pytest.mark.parametrize(
    ("path", "options", "status", "output"),
    [
        pytest.param(
            "/status/429", {"warn_status": [429]}, Status.WARN, "HTTP 429, a warn_status", id="429"
        ),
        pytest.param(
            "/status/503",
            {"warn_status": ["500-503"]},
            Status.WARN,
            "HTTP 503, a warn_status",
            id="range",
        ),
        pytest.param(
            "/status/502",
            {"warn_status": ["5xx"]},
            Status.WARN,
            "HTTP 502, a warn_status",
            id="class",
        ),
        pytest.param(
            "/status/500",
            {"warn_status": [429]},
            Status.FAIL,
            "HTTP 500, expected 200-399",
            id="not-a-warn-status",
        ),
        pytest.param("/ok", {"warn_status": [429]}, Status.PASS, None, id="expected-passes"),
        pytest.param(
            "/status/429",
            {"warn_status": [429], "body_contains": "never checked"},
            Status.WARN,
            "HTTP 429, a warn_status",
            id="body-not-judged-on-a-warn-status",
        ),
    ],
)
async def test_warn_status(
    server: TestServer,
    resources: Resources,
    path: str,
    options: dict[str, Any],
    status: Status,
    output: str | None,
) -> None:
    result = await run(resources, f"http://127.0.0.1:{server.port}{path}", **options)

    assert result.status is status, result
    if output is not None:
        assert (result.output, result.reason) == (output, Reason.STATUS)


async def test_require_tls(
    aiohttp_server: ServerFactory,
    ca: trustme.CA,
    tls_files: TlsFiles,
    resources: Resources,
) -> None:
    ports: dict[str, int] = {}

    async def to_https(request: web.Request) -> web.Response:
        return redirect(f"https://localhost:{ports['tls']}/ok", 308)

    async def to_http(request: web.Request) -> web.Response:
        return redirect(f"http://localhost:{ports['plain']}/ok", 302)

    tls_app, plain_app = make_app(), make_app()
    plain_app.router.add_get("/up", to_https)
    tls_app.router.add_get("/down", to_http)
    ports["tls"] = (await aiohttp_server(tls_app, ssl=server_tls_context(ca))).port
    ports["plain"] = (await aiohttp_server(plain_app)).port
    plain_url = f"http://localhost:{ports['plain']}"
    tls_url = f"https://localhost:{ports['tls']}"

    upgraded = await run(resources, f"{plain_url}/up", require_tls=True, ca_file=tls_files.ca)
    direct = await run(resources, f"{tls_url}/ok", require_tls=True, ca_file=tls_files.ca)
    plain = await run(resources, f"{plain_url}/ok", require_tls=True)
    downgraded = await run(resources, f"{tls_url}/down", require_tls=True, ca_file=tls_files.ca)

    assert (upgraded.status, direct.status) == (Status.PASS, Status.PASS), (upgraded, direct)
    assert_result(
        plain, Status.FAIL, Reason.NOT_TLS, "the answer came over plain http (require_tls)"
    )
    assert (downgraded.status, downgraded.reason) == (Status.FAIL, Reason.NOT_TLS)
    assert paths_seen(plain_app) == ["/up", "/ok", "/ok"]


# --- certificate expiry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "options", "status", "said"),
    [
        pytest.param(
            HOUR, {}, Status.FAIL, "(in 59 minutes), within cert_expiry_fail 1d", id="hour"
        ),
        pytest.param(
            10 * DAY, {}, Status.WARN, "(in 9 days), within cert_expiry_warn 14d", id="10d"
        ),
        pytest.param(365 * DAY, {}, Status.PASS, "(in 364 days)", id="year"),
        pytest.param(-DAY, {"tls_verify": False}, Status.FAIL, "(1 day ago)", id="expired"),
    ],
)
async def test_certificate_expiry(
    aiohttp_server: ServerFactory,
    resources: Resources,
    tmp_path: Path,
    expires_in: float,
    options: dict[str, Any],
    status: Status,
    said: str,
) -> None:
    not_after = int(time.time() + expires_in)
    chain = make_chain(not_after)
    server = await aiohttp_server(make_app(), ssl=chain.server_context(tmp_path))
    verify = {} if options else {"ca_file": chain.ca_file(tmp_path)}

    result = await run(
        resources,
        f"https://localhost:{server.port}/ok",
        cert_expiry_warn="14d",
        cert_expiry_fail="1d",
        **verify,
        **options,
    )

    assert result.status is status, result
    assert result.reason == (None if status is Status.PASS else Reason.CERT_EXPIRY)
    assert result.cert_not_after == not_after
    date = datetime.datetime.fromtimestamp(not_after, datetime.UTC)
    assert f"certificate 'localhost' {'expired' if expires_in < 0 else 'expires'} " in (
        result.output
    )
    assert f" {date:%Y-%m-%d %H:%M} UTC {said}" in result.output
    assert "HTTP 200 in " in result.output


async def test_the_expiry_is_recorded_without_limits_and_after_a_redirect(
    aiohttp_server: ServerFactory, resources: Resources, tmp_path: Path
) -> None:
    not_after = int(time.time() + 30 * DAY)
    chain = make_chain(not_after, intermediate_not_after=int(time.time() + 60 * DAY))
    server = await aiohttp_server(make_app(), ssl=chain.server_context(tmp_path))
    url = f"https://localhost:{server.port}/chain/2"

    result = await run(resources, url, ca_file=chain.ca_file(tmp_path))

    assert (result.status, result.cert_not_after) == (Status.PASS, not_after)
    assert "certificate" not in result.output


async def test_a_failing_status_keeps_its_reason_and_notes_the_expiry(
    aiohttp_server: ServerFactory, resources: Resources, tmp_path: Path
) -> None:
    chain = make_chain(int(time.time() + 10 * DAY))
    server = await aiohttp_server(make_app(), ssl=chain.server_context(tmp_path))

    result = await run(
        resources,
        f"https://localhost:{server.port}/status/500",
        ca_file=chain.ca_file(tmp_path),
        cert_expiry_warn="14d",
    )

    assert (result.status, result.reason) == (Status.FAIL, Reason.STATUS)
    assert result.output.startswith("HTTP 500, expected 200-399; certificate 'localhost' expires")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param(
            {"method": "HEAD", "body_not_contains": "DOWN"},
            "body_not_contains and body_not_regex need a method other than HEAD",
            id="head-with-negative-body-match",
        ),
        pytest.param(
            {"body_not_regex": "(unclosed"},
            "invalid regular expression '(unclosed': missing ), unterminated subpattern "
            "at position 0 - at `$.body_not_regex`",
            id="bad-negative-pattern",
        ),
        pytest.param(
            {"header_regex": {"X Status": "ok"}},
            "invalid header name 'X Status' - at `$.header_regex`",
            id="bad-header-name",
        ),
        pytest.param(
            {"header_not_regex": {"Server": "(x"}},
            "invalid regular expression '(x': missing ), unterminated subpattern at position 0"
            " - at `$.header_not_regex[...]`",
            id="bad-header-pattern",
        ),
        pytest.param(
            {"warn_status": ["3xx"]},
            "warn_status 300-399 overlaps expect_status 200-399: a status either passes or "
            "warns - at `$.warn_status`",
            id="warn-and-expect-overlap",
        ),
        pytest.param(
            {"warn_status": [429], "expect_status": ["200", "400-499"]},
            "warn_status 429 overlaps expect_status 400-499: a status either passes or warns"
            " - at `$.warn_status`",
            id="warn-inside-an-expected-range",
        ),
        pytest.param(
            {"cert_expiry_warn": "14d"},
            "cert_expiry_warn needs an https:// url, or require_tls: true for a redirect"
            " - at `$.cert_expiry_warn`",
            id="expiry-over-plain-http",
        ),
        pytest.param(
            {"url": "https://localhost/", "cert_expiry_warn": "1d", "cert_expiry_fail": "1d"},
            "cert_expiry_warn (1d) must be longer than cert_expiry_fail (1d), or the warning "
            "never shows - at `$.cert_expiry_warn`",
            id="warn-not-longer-than-fail",
        ),
        pytest.param(
            {"unix_socket": "/run/app.sock", "require_tls": True},
            "require_tls cannot hold: requests go through a unix socket - at `$.require_tls`",
            id="require-tls-on-a-unix-socket",
        ),
    ],
)
def test_invalid_match_and_expiry_options(options: dict[str, Any], error: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        HttpProbe.parse_options({"url": "http://127.0.0.1/", **options})
    assert str(caught.value) == error


def test_expiry_limits_over_plain_http_are_allowed_with_require_tls() -> None:
    options = HttpProbe.parse_options(
        {"url": "http://127.0.0.1/", "require_tls": True, "cert_expiry_fail": "3d"}
    )
    assert options.cert_expiry_fail == 3 * DAY


async def test_a_kept_connection_still_reports_its_certificate(
    aiohttp_server: ServerFactory, resources: Resources, tmp_path: Path
) -> None:
    not_after = int(time.time() + 10 * DAY)
    chain = make_chain(not_after)
    app = make_app()
    server = await aiohttp_server(app, ssl=chain.server_context(tmp_path))
    probe = make_probe(
        resources,
        f"https://localhost:{server.port}/ok",
        ca_file=chain.ca_file(tmp_path),
        keep_alive=True,
        cert_expiry_warn="14d",
    )

    first, second = await probe.check(), await probe.check()

    peers = {seen.peer for seen in app[SEEN]}
    assert len(peers) == 1  # the second run came over the first run's connection
    assert (first.status, second.status) == (Status.WARN, Status.WARN)
    assert second.cert_not_after == not_after
