"""Every run resolves its host name afresh, in every probe that takes one.

The adapter runs in its own mount namespace with a private /etc/hosts that the
test rewrites (as a DNS change or a blue/green switch would move the name):
the http, tcp and grpc checks of `app.test` follow the name at their next
runs, well inside the 10 s that aiohttp's DNS cache would keep the old address,
while the old instance still answers.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port
from tests.e2e.conftest import http_get, wait_for

grpc = pytest.importorskip("grpc", reason="the grpc extra is not installed (CI installs it)")
health = pytest.importorskip("grpc_health.v1.health")
health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")

CHECKS = ("by_name_http", "by_name_tcp", "by_name_grpc")
#: Well inside aiohttp's default DNS cache (10 s): a cached address would still pass.
FOLLOWS_WITHIN = 5.0


def _namespaces_work() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a private /etc/hosts (unshare -m)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind /dev/null /etc/hosts"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot bind-mount over /etc/hosts: {probe.stderr.decode().strip()}"
    return None


pytestmark = pytest.mark.skipif(_namespaces_work() is not None, reason=str(_namespaces_work()))


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def old_instance() -> Iterator[tuple[int, int]]:
    """An HTTP app and a gRPC health server on 127.0.0.1 that keep answering: (http, grpc) ports."""
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield app.server_address[1], grpc_port
    finally:
        server.stop(None)
        app.shutdown()
        app.server_close()


@pytest.fixture
def adapter_in_namespace(
    tmp_path: Path, old_instance: tuple[int, int]
) -> Iterator[tuple[Path, str]]:
    """The adapter with a private /etc/hosts: (the hosts file to rewrite, its base URL)."""
    http_port, grpc_port = old_instance
    hosts = tmp_path / "hosts"
    # Both families, the app on IPv4 only: a name with an address that refuses
    # still reaches the one that answers.
    hosts.write_text("127.0.0.1 localhost\n::1 app.test\n127.0.0.1 app.test\n")
    config = tmp_path / "health.yaml"
    config.write_text(
        f"""
defaults: {{interval: 200ms, timeout: 1s}}
checks:
  - name: by_name_http
    http: {{url: "http://app.test:{http_port}/"}}
  - name: by_name_tcp
    tcp: {{host: app.test, port: {http_port}}}
  - name: by_name_grpc
    grpc: {{host: app.test, port: {grpc_port}}}
"""
    )
    port = free_port()
    process = subprocess.Popen(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"',
            str(hosts),
            sys.executable,
            "-m",
            "adapter",
            "serve",
            "-c",
            str(config),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield hosts, f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def statuses(base: str) -> dict[str, str]:
    _, body = http_get(f"{base}/health")
    checks = json.loads(body)["checks"]
    return {name: checks[name][0]["status"] for name in CHECKS if name in checks}


def move(hosts: Path, text: str) -> None:
    # Rewritten in place: the bind mount follows the inode, not the name.
    with open(hosts, "r+") as stream:
        stream.truncate(0)
        stream.write(text)


def test_every_probe_follows_a_name_that_moves(adapter_in_namespace: tuple[Path, str]) -> None:
    hosts, base = adapter_in_namespace
    every = dict.fromkeys(CHECKS, "pass")
    wait_for("every check of app.test passes", lambda: statuses(base) == every)

    # The name moves to an address where nothing listens; the old instance still answers.
    move(hosts, "127.0.0.1 localhost\n127.0.0.3 app.test\n")
    failing = dict.fromkeys(CHECKS, "fail")
    wait_for("every check follows the name", lambda: statuses(base) == failing, FOLLOWS_WITHIN)

    move(hosts, "127.0.0.1 localhost\n127.0.0.1 app.test\n")
    wait_for("every check follows it back", lambda: statuses(base) == every, FOLLOWS_WITHIN)
