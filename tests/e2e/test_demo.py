"""The README's first run: the demo app, the adapter watching it, and the app broken three ways."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow

DEMO = ROOT / "examples" / "demo"


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_until(url: str, predicate: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = get_json(url)
            if predicate(*last):
                return last
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never got there; last answer: {last}")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, Any]]:
    env = {
        **os.environ,
        "DEMO_DIR": str(tmp_path),
        "DEMO_PORT": str(free_port()),
        "ADAPTER_PORT": str(free_port()),
        "PYTHONPATH": str(ROOT),
    }
    app = subprocess.Popen(
        [sys.executable, str(DEMO / "app.py")], env=env, stdout=subprocess.DEVNULL
    )
    adapter = subprocess.Popen(
        [sys.executable, "-m", "adapter", "serve", "--config", str(DEMO / "health.yaml")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield {"dir": tmp_path, "app": app, "url": f"http://127.0.0.1:{env['ADAPTER_PORT']}"}
    finally:
        for process in (adapter, app):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        adapter.communicate(timeout=15)
        app.wait(timeout=15)


def statuses(body: Any) -> dict[str, str]:
    return {name: entries[0]["status"] for name, entries in body["checks"].items()}


def test_demo_turns_green_then_red_three_ways(demo: dict[str, Any]) -> None:
    url, flags = demo["url"], demo["dir"]
    _, body = wait_until(f"{url}/health", lambda code, b: code == 200, timeout=60)
    assert body["status"] == "pass"
    assert statuses(body) == {"api": "pass", "heartbeat": "pass", "worker": "pass"}

    (flags / "break-http").touch()
    _, body = wait_until(f"{url}/health", lambda code, b: statuses(b)["api"] == "fail")
    assert body["status"] == "fail"
    assert body["checks"]["api"][0]["reason"] == "status"
    (flags / "break-http").unlink()
    wait_until(f"{url}/health", lambda code, b: code == 200)

    (flags / "stop-heartbeat").touch()
    _, body = wait_until(f"{url}/health", lambda code, b: statuses(b)["heartbeat"] == "fail")
    assert body["checks"]["heartbeat"][0]["reason"] == "file_stale"
    assert get_json(f"{url}/livez")[0] == 503
    (flags / "stop-heartbeat").unlink()
    wait_until(f"{url}/health", lambda code, b: code == 200)

    # The README's way: by the pid the demo wrote, never by a pattern.
    pidfile = flags / "worker.pid"
    wait_for(pidfile.exists)
    pid = int(pidfile.read_text())
    assert [p for p, cmdline in _children(demo["app"].pid) if "demo-worker" in cmdline] == [pid]
    os.kill(pid, signal.SIGKILL)
    _, body = wait_until(f"{url}/health", lambda code, b: statuses(b)["worker"] == "fail")
    assert body["status"] == "fail"
    assert body["checks"]["worker"][0]["reason"] == "process_missing"
    # Reaped, not left a zombie under the app; back when the file is removed.
    stopped = flags / "worker-stopped"
    wait_for(stopped.exists)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).ppid() != demo["app"].pid
    stopped.unlink()
    wait_until(f"{url}/health", lambda code, b: code == 200)
    wait_for(pidfile.exists)
    assert int(pidfile.read_text()) != pid


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{condition} never held"
        time.sleep(0.05)


def _children(pid: int) -> list[tuple[int, str]]:
    return [(child.pid, " ".join(child.cmdline())) for child in psutil.Process(pid).children()]
