"""The new probe types inside the real adapter process: `check` runs them once, and
`serve` runs a misbehaving command again and again without piling anything up."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, free_port

PLUGINS = Path("/usr/lib/nagios/plugins")


@pytest.fixture
def banner_port() -> Iterator[int]:
    """A loopback server that greets every connection with an SMTP-like banner."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.sendall(b"220 loopback ESMTP\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


@pytest.mark.skipif(
    not (PLUGINS / "check_dummy").exists(),
    reason="monitoring-plugins-basic is not installed (CI installs it)",
)
def test_check_runs_tcp_and_exec_probes(config_file: Callable[..., Path], banner_port: int) -> None:
    closed = free_port()
    path = config_file(
        "checks:\n"
        f"  - {{name: smtp, tcp: {{port: {banner_port}, expect: '^220 '}}}}\n"
        f"  - {{name: gone, critical: false, tcp: {{port: {closed}}}}}\n"
        f"  - {{name: dummy, exec: {{command: [{PLUGINS / 'check_dummy'}, '1', 'so-so']}}}}\n"
        "  - {name: load, exec: {command: ["
        + str(PLUGINS / "check_load")
        + ", -w, '1000,1000,1000', -c, '2000,2000,2000']}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "adapter", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    # The probes' observed values become the answer's own performance data.
    assert re.fullmatch(
        r"HEALTH WARNING - 1 of 4 checks failing: gone \| "
        r"'smtp'=[\d.]+ms;;;; 'load'=[\d.]+;;;;",
        lines[0],
    ), lines[0]
    # Failing, then warning, then passing lines.
    assert lines[1] == (
        f"[FAIL] gone (non-critical): connection refused by 127.0.0.1:{closed} (connection_refused)"
    )
    assert lines[2] == "[WARN] dummy: WARNING: so-so"
    assert lines[3].startswith(f"[PASS] smtp: connected to 127.0.0.1:{banner_port} in ")
    assert lines[4].startswith("[PASS] load: LOAD OK - total load average: ")
    assert " perfdata: load1=" in lines[4]


@pytest.mark.slow
def test_serve_kills_and_reaps_a_command_that_overruns_every_time(
    config_file: Callable[..., Path], tmp_path: Path
) -> None:
    port = free_port()
    pids = tmp_path / "pids"
    path = config_file(
        "checks:\n"
        "  - name: hang\n"
        "    interval: 100ms\n"
        "    timeout: 200ms\n"
        "    exec:\n"
        # $$ is the config's literal $: the shell sees $$, its own pid.
        f"      command: 'echo $$$$ >> {pids}; sleep 60 & sleep 60'\n"
        "      shell: true\n"
    )
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
    adapter = psutil.Process(process.pid)
    most_alive = 0
    zombies: set[int] = set()
    lingering: list[int] = []
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            children = adapter.children(recursive=True)
            alive = [c for c in children if _status(c) not in (psutil.STATUS_ZOMBIE, "dead")]
            # One command and its two sleeps at most: never a second run beside it.
            most_alive = max(most_alive, len(alive))
            zombies |= {c.pid for c in adapter.children() if _status(c) == psutil.STATUS_ZOMBIE}
            time.sleep(0.02)
        # A command is a zombie of the adapter only from its exit to its reaping, in one
        # event-loop callback: none seen may still be there a moment later.
        time.sleep(0.3)
        lingering = _lingering(zombies, adapter)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/hang", timeout=5) as answer:
            raise AssertionError(f"expected 503, got {answer.status}")
    except urllib.error.HTTPError as error:
        body = error.read().decode()
        assert error.code == 503
        assert "timed out after 200ms" in body
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    runs = len(pids.read_text().split())
    assert runs >= 5, f"only {runs} runs in 4 s"
    assert most_alive <= 3
    assert lingering == []
    assert process.returncode == 0, stderr
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] == ["sleep", "60"] and _in_groups(p, pids)
    ]
    assert [p for p in leftovers if _status(p) != psutil.STATUS_ZOMBIE] == []


def _status(process: psutil.Process) -> str:
    try:
        return str(process.status())
    except psutil.NoSuchProcess:
        return "dead"


def _lingering(zombies: set[int], adapter: psutil.Process) -> list[int]:
    return sorted(
        zombies
        & {child.pid for child in adapter.children() if _status(child) == psutil.STATUS_ZOMBIE}
    )


def _in_groups(process: psutil.Process, pids: Path) -> bool:
    groups = {int(pid) for pid in pids.read_text().split()}
    try:
        return os.getpgid(process.pid) in groups
    except ProcessLookupError:
        return False
