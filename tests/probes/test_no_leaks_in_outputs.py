"""What a probe's output never holds, whatever happens: the target's response body,
the values of request headers or URL passwords, a file's content, other processes'
command lines or environments. Outputs are shown to monitors (and, with
`server.details: public`, to anyone who can reach the port)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probes import Result
from probes.file import FileProbe
from probes.http import HttpProbe
from probes.process import ProcessProbe
from tests.conftest import free_port

SECRETS = (
    "BODY-SECRET",
    "HEADER-SECRET",
    "KEY-SECRET",
    "URL-SECRET",
    "LOCATION-SECRET",
    "COOKIE-SECRET",
)


@pytest.fixture
async def target() -> AsyncIterator[TestServer]:
    async def handle(request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        headers = {"Set-Cookie": "session=COOKIE-SECRET", "X-Echo": "BODY-SECRET"}
        if kind == "redirect-away":
            headers["Location"] = "http://127.0.0.2/LOCATION-SECRET?k=LOCATION-SECRET"
            return web.Response(status=302, headers=headers)
        if kind == "redirect-bad":
            headers["Location"] = "ftp://LOCATION-SECRET/"
            return web.Response(status=302, headers=headers)
        status = {"ok": 200, "error": 500}[kind]
        # A body that echoes what the adapter sent, secrets included.
        echo = f"BODY-SECRET {dict(request.headers)!r}"
        return web.Response(status=status, text=echo, headers=headers)

    app = web.Application()
    app.router.add_get("/{kind}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


HEADERS = {"Authorization": "Bearer HEADER-SECRET", "X-Api-Key": "KEY-SECRET"}


@pytest.mark.parametrize(
    ("path", "options"),
    [
        pytest.param("/ok", {"body_contains": "absent"}, id="body-mismatch"),
        pytest.param("/ok", {"body_regex": "^absent"}, id="regex-mismatch"),
        pytest.param("/error", {}, id="status-mismatch"),
        pytest.param("/ok", {}, id="pass"),
        pytest.param("/redirect-away", {}, id="redirect-to-another-host"),
        pytest.param("/redirect-bad", {}, id="redirect-to-another-scheme"),
    ],
)
@pytest.mark.parametrize("credentials", ["header", "url"])
async def test_http_outputs_never_hold_the_body_headers_or_url_password(
    target: TestServer, path: str, options: dict[str, Any], credentials: str
) -> None:
    url = str(target.make_url(path))
    headers = dict(HEADERS)
    if credentials == "url":  # aiohttp takes one or the other, not both
        url = url.replace("http://", "http://user:URL-SECRET@")
        del headers["Authorization"]
    probe = HttpProbe("api", {"url": url, "headers": headers, **options})
    try:
        result = await probe.check()
    finally:
        await probe.resources.aclose()
    assert_no_secret(result)


async def test_http_connection_errors_never_hold_the_url_password() -> None:
    probe = HttpProbe(
        "api",
        {
            "url": f"http://user:URL-SECRET@127.0.0.1:{free_port()}/",
            "headers": {"X-Api-Key": "KEY-SECRET"},
        },
    )
    try:
        result = await probe.check()
    finally:
        await probe.resources.aclose()
    assert result.reason is not None and result.reason.value == "connection_refused"
    assert_no_secret(result)


def assert_no_secret(result: Result) -> None:
    for secret in SECRETS:
        assert secret not in result.output, result.output
    assert "user:" not in result.output


@pytest.mark.parametrize(
    "options",
    [{"contains": "absent"}, {"regex": "^absent"}, {"contains": "FILE-SECRET"}],
    ids=["contains-mismatch", "regex-mismatch", "match"],
)
def test_file_outputs_never_quote_the_content(tmp_path: Path, options: dict[str, str]) -> None:
    path = tmp_path / "status"
    path.write_text("password=FILE-SECRET\n" * 10)
    result = FileProbe("status", {"path": str(path), **options}).check()
    assert "password=" not in result.output


@pytest.fixture
def secret_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    marker = f"leak-marker-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", marker, "--password=ARGV-SECRET"],
        env={**os.environ, "DB_PASSWORD": "ENV-SECRET"},
    )
    yield process, marker
    process.kill()
    process.wait()


@pytest.mark.parametrize(
    ("options", "status"),
    [
        ({"min_count": 1}, "pass"),
        ({"min_count": 2}, "fail"),
        ({"max_count": 0, "min_count": 0}, "fail"),
    ],
    ids=["pass", "too-few", "too-many"],
)
async def test_process_outputs_name_the_pattern_and_pids_never_command_lines(
    secret_process: tuple[subprocess.Popen[bytes], str], options: dict[str, int], status: str
) -> None:
    process, marker = secret_process
    result = await ProcessProbe("worker", {"cmdline": marker, **options}).check()
    assert result.status.value == status
    assert f"cmdline /{marker}/" in result.output
    if status == "pass":
        assert str(process.pid) in result.output
    for secret in ("ARGV-SECRET", "ENV-SECRET", "--password", "time.sleep"):
        assert secret not in result.output
