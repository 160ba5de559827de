"""What the real monitors are pointed at: a running adapter watching a real local app.

`watched_app` is a real HTTP server on a loopback port whose health the test
switches; `start_adapter` runs `health-adapter serve` as its own process, as
in production, and always stops what it started.
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port


class WatchedApp:
    """An application with a /status page that answers 200 "ok" or, once broken, 500."""

    def __init__(self) -> None:
        self.healthy = True
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = (200, b"ok\n") if app.healthy else (500, b"broken\n")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/status"


@pytest.fixture
def watched_app() -> Iterator[WatchedApp]:
    app = WatchedApp()
    app.thread.start()
    try:
        yield app
    finally:
        app.server.shutdown()
        app.server.server_close()


@dataclasses.dataclass
class RunningAdapter:
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 20) -> Any:
    """Poll `predicate` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except OSError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


@pytest.fixture
def start_adapter(tmp_path: Path) -> Iterator[Callable[[str], RunningAdapter]]:
    """Start `health-adapter serve` with a config; every one started is stopped afterwards."""
    started: list[RunningAdapter] = []

    def start(config: str) -> RunningAdapter:
        path = tmp_path / f"health-{len(started)}.yaml"
        path.write_text(config)
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adapter",
                "serve",
                "-c",
                str(path),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        adapter = RunningAdapter(process, port)
        started.append(adapter)
        wait_for(
            "the adapter answers",
            lambda: process.poll() is None and http_get(f"{adapter.url}/livez")[0] > 0,
        )
        return adapter

    yield start
    for adapter in started:
        if adapter.process.poll() is None:
            adapter.process.send_signal(signal.SIGTERM)
        try:
            adapter.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            adapter.process.kill()
            adapter.process.communicate()


def adapter_config(app: WatchedApp, tmp_path: Path, extra: str = "") -> str:
    """Two checks of the watched app: its status page, and a heartbeat file it keeps."""
    heartbeat = tmp_path / "heartbeat"
    heartbeat.touch()
    return f"""
service: shop
defaults: {{interval: 200ms, timeout: 1s}}
checks:
  - name: api
    http: {{url: "{app.url}", body_contains: ok}}
  - name: heartbeat
    groups: [live, ready]
    file: {{path: "{heartbeat}", max_age: 1h}}
{extra}"""
