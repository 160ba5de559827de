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


README_DEMO_DIR = "/tmp/health-adapter-demo"


def readme_commands() -> dict[str, str]:
    """The README's shell commands that break and mend the demo, by what they do."""
    text = (ROOT / "README.md").read_text().replace("\\\n", "")
    found = {}
    for line in text.splitlines():
        command = line.strip().split("  #")[0].strip()
        if README_DEMO_DIR not in command or command.startswith("curl"):
            continue
        if command.startswith("rm "):
            found["mend"] = command
        elif "worker.pid" in command:
            found["worker"] = command
        else:
            found[command.rsplit("/", 1)[1]] = command
    assert set(found) == {"break-http", "stop-heartbeat", "worker", "mend"}, found
    return found


def run(command: str, demo_dir: Path) -> None:
    subprocess.run(
        ["sh", "-c", command.replace(README_DEMO_DIR, str(demo_dir))], check=True, timeout=10
    )


def test_demo_turns_red_three_ways_and_green_again_with_the_readme_s_commands(
    demo: dict[str, Any],
) -> None:
    url, flags = demo["url"], demo["dir"]
    commands = readme_commands()
    _, body = wait_until(f"{url}/health", lambda code, b: code == 200, timeout=60)
    assert body["status"] == "pass"
    assert statuses(body) == {"api": "pass", "heartbeat": "pass", "worker": "pass"}

    run(commands["break-http"], flags)
    _, body = wait_until(f"{url}/health", lambda code, b: statuses(b)["api"] == "fail")
    assert body["status"] == "fail"
    assert body["checks"]["api"][0]["reason"] == "status"

    run(commands["stop-heartbeat"], flags)
    _, body = wait_until(f"{url}/health", lambda code, b: statuses(b)["heartbeat"] == "fail")
    assert body["checks"]["heartbeat"][0]["reason"] == "file_stale"
    assert get_json(f"{url}/livez")[0] == 503

    # By the pid the demo wrote, never by a pattern that may match other processes.
    pidfile = flags / "worker.pid"
    wait_for(pidfile.exists)
    pid = int(pidfile.read_text())
    assert [p for p, cmdline in _children(demo["app"].pid) if "demo-worker" in cmdline] == [pid]
    run(commands["worker"], flags)
    _, body = wait_until(f"{url}/health", lambda code, b: statuses(b)["worker"] == "fail")
    assert body["checks"]["worker"][0]["reason"] == "process_missing"
    # Reaped, not left a zombie under the app.
    wait_for((flags / "worker-stopped").exists)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).ppid() != demo["app"].pid

    run(commands["mend"], flags)
    _, body = wait_until(f"{url}/health", lambda code, b: code == 200)
    assert statuses(body) == {"api": "pass", "heartbeat": "pass", "worker": "pass"}
    wait_for(pidfile.exists)
    assert int(pidfile.read_text()) != pid


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{condition} never held"
        time.sleep(0.05)


def _children(pid: int) -> list[tuple[int, str]]:
    return [(child.pid, " ".join(child.cmdline())) for child in psutil.Process(pid).children()]
