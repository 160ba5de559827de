"""A real HAProxy, configured from deploy/haproxy/, follows the adapter's agent.

HAProxy's runtime API (`show stat` on its admin socket) is the witness: the
server is UP at full weight, at the warn weight while a non-critical check
fails, DOWN while a critical one fails, DRAIN while the drain file exists and
while the adapter shuts down, and back each time.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.e2e.conftest import WatchedApp, http_get, wait_for

HAPROXY = shutil.which("haproxy")
DEPLOY = ROOT / "deploy" / "haproxy" / "haproxy.cfg"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed"),
]


class Haproxy:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def ask(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server(self, backend: str = "bk_agent", name: str = "app1") -> dict[str, str]:
        """The server's row of `show stat`: status, weight, agent status, check description…"""
        text = self.ask("show stat").lstrip("# ")
        for row in csv.DictReader(io.StringIO(text)):
            if row["pxname"] == backend and row["svname"] == name:
                return row
        raise AssertionError(f"no server {backend}/{name} in show stat:\n{text}")

    def until(self, status: str, weight: str | None, timeout: float = 20) -> dict[str, str]:
        """Wait for `status` (as `UP`, or `DOWN (agent)` when the agent set it) at `weight`."""

        def there() -> dict[str, str] | None:
            row = self.server()
            state = row["status"].removesuffix(" (agent)")
            return row if state == status and weight in (None, row["weight"]) else None

        try:
            return wait_for(f"HAProxy shows {status} at weight {weight}", there, timeout)
        except AssertionError:
            row = self.server()
            raise AssertionError(
                f"HAProxy never showed {status}/{weight}; last: {row['status']}/{row['weight']} "
                f"agent {row.get('agent_status')} {row.get('agent_desc')}"
            ) from None


def shipped_config(app_port: int, adapter_port: int, agent_port: int, run: Path) -> str:
    """deploy/haproxy/haproxy.cfg with this test's ports and paths, and short intervals."""
    text = DEPLOY.read_text()
    replacements = {
        "127.0.0.1:8000": f"127.0.0.1:{app_port}",
        "127.0.0.1:8080": f"127.0.0.1:{free_port()}",
        "port 9180": f"port {adapter_port}",
        "agent-port 9181": f"agent-port {agent_port}",
        "/run/haproxy/admin.sock": str(run / "admin.sock"),
        "inter 2s": "inter 300ms",
        "fall 2": "fall 1",
    }
    for old, new in replacements.items():
        assert old in text, f"{DEPLOY} no longer holds {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def watched_app() -> Iterator[WatchedApp]:
    app = WatchedApp()
    app.thread.start()
    try:
        yield app
    finally:
        app.server.shutdown()
        app.server.server_close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_haproxy_follows_the_agent_through_every_state(
    tmp_path: Path, watched_app: WatchedApp
) -> None:
    assert HAPROXY is not None
    adapter_port, agent_port = free_port(), free_port()
    critical, optional, drain = tmp_path / "critical", tmp_path / "optional", tmp_path / "drain"
    critical.touch()
    optional.touch()
    config = tmp_path / "health.yaml"
    config.write_text(
        f"""
server:
  haproxy_agent: {{listen: "127.0.0.1:{agent_port}", warn_weight: 40%}}
  drain_file: {drain}
checks:
  - {{name: db, interval: 100ms, file: {{path: {critical}}}}}
  - {{name: cache, critical: false, interval: 100ms, file: {{path: {optional}}}}}
"""
    )
    adapter = subprocess.Popen(
        [sys.executable, "-m", "adapter", "serve", "-c", str(config)]
        + ["--listen", f"127.0.0.1:{adapter_port}", "--shutdown-delay", "30s"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (tmp_path / "haproxy.cfg").write_text(
        shipped_config(watched_app.port, adapter_port, agent_port, tmp_path)
    )
    haproxy = subprocess.Popen(
        [HAPROXY, "-f", str(tmp_path / "haproxy.cfg"), "-db"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lb = Haproxy(tmp_path / "admin.sock")
        wait_for("the admin socket", lambda: lb.socket_path.exists() and lb.ask("show info"))
        lb.until("UP", "100")
        optional.unlink()
        row = lb.until("UP", "40")
        assert row["last_agt"].endswith("up (degraded: cache)")
        critical.unlink()
        row = lb.until("DOWN", None)
        assert "down (db: file /" in row["last_agt"]
        critical.touch()
        optional.touch()
        lb.until("UP", "100")
        drain.touch()
        lb.until("DRAIN", "100")
        assert http_get(f"http://127.0.0.1:{adapter_port}/readyz")[0] == 503
        # Without the agent, /readyz alone can only take the server out.
        wait_for("bk_readyz down", lambda: lb.server("bk_readyz")["status"] == "DOWN")
        drain.unlink()
        lb.until("UP", "100")
        wait_for("bk_readyz up", lambda: lb.server("bk_readyz")["status"] == "UP")
        # A failure of the application's own wins over a drain: never up, never drain.
        drain.touch()
        critical.unlink()
        lb.until("DOWN", None)
        critical.touch()
        drain.unlink()
        lb.until("UP", "100")
        adapter.send_signal(signal.SIGTERM)  # the shutdown delay: still serving, draining
        lb.until("DRAIN", "100")
        assert adapter.poll() is None
        adapter.send_signal(signal.SIGTERM)  # a second signal ends the delay: the port closes
        assert adapter.wait(timeout=15) == 0
        # HAProxy ignores an agent it cannot reach; the HTTP check on /livez takes it out.
        lb.until("DOWN", None)
    finally:
        _stop(adapter)
        _stop(haproxy)
