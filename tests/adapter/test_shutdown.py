"""Graceful shutdown: SIGTERM flips /readyz at once, cancels the running probes (and
their children), finishes the requests in flight, and exits within a few seconds."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from aiohttp import web

from adapter.config import parse_config
from adapter.lifecycle import serve
from adapter.server import DRAIN, SCHEDULER
from tests.conftest import ROOT, free_port

#: Checks whose outputs make /health about 5 MB: more than loopback buffers hold,
#: so a client that reads slowly keeps that request in flight.
BIG_CHECKS = 1200


def big_config(pidfile: Path) -> str:
    lines = [
        "checks:",
        (
            f"  - {{name: child, timeout: 60s, plugin: {{class: 'tests.sample_probes:SpawnsChild',"
            f" pidfile: '{pidfile}'}}}}"
        ),
    ]
    lines += [
        f"  - {{name: big{i}, interval: 1h, plugin: {{class: 'tests.sample_probes:HugeOutput'}}}}"
        for i in range(BIG_CHECKS)
    ]
    return "\n".join(lines) + "\n"


def read_head(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before the headers"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return length, rest


@pytest.mark.slow
def test_sigterm_finishes_a_slow_request_kills_probe_children_and_exits(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    path = tmp_path / "health.yaml"
    path.write_text(big_config(pidfile))
    port = free_port()
    log_path = tmp_path / "adapter.log"
    with log_path.open("w") as log:  # a file, not a pipe: 1,200 checks log a lot
        process = subprocess.Popen(
            # No shutdown delay: this is about what follows it (test_shutdown_delay.py).
            [
                sys.executable,
                "-m",
                "adapter",
                "serve",
                "-c",
                str(path),
                "--listen",
                f"127.0.0.1:{port}",
                "--log-format",
                "json",
                "--shutdown-delay",
                "0",
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        child = int(pidfile.read_text())
        # Wait for the big checks to have run (their first runs are spread over a moment).
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as seen:
                    size = len(seen.read())
            except urllib.error.HTTPError as failing:  # 503: big0 fails, as it should
                size = len(failing.read())
            if size > 4 * 1024 * 1024:
                break
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: adapter\r\n\r\n")
        length, body = read_head(sock)
        assert length > 4 * 1024 * 1024

        process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        time.sleep(0.5)
        # No new connections, while the request in flight goes on...
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=2),
        ):
            pass
        assert process.poll() is None
        # ...and gets its whole answer.
        while len(body) < length:
            chunk = sock.recv(256 * 1024)
            assert chunk, f"cut off after {len(body)} of {length} bytes"
            body += chunk
        sock.close()
        process.wait(timeout=10)
        took = time.monotonic() - stopped_at
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert json.loads(body)["checks"]["big0"][0]["status"] == "fail"
    assert process.returncode == 0
    assert took < 6
    # The probe that was running had its child killed when its run was cancelled.
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    events = [
        json.loads(line)["event"]
        for line in log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    # Runs that end while the scheduler stops still log their transition, nothing else.
    after = events[events.index("stopping") :]
    assert after[-1] == "stopped" and set(after[1:-1]) <= {"check_transition"}, after


async def test_sigterm_flips_readyz_before_anything_else_stops(tmp_path: Path) -> None:
    config = parse_config(
        "checks: [{name: a, interval: 100ms, plugin: {class: 'tests.sample_probes:Ok'}}]",
        environ={},
    )
    started: asyncio.Future[web.AppRunner] = asyncio.get_running_loop().create_future()
    serving = asyncio.create_task(
        serve(config, f"127.0.0.1:{free_port()}", ready=started.set_result)
    )
    runner = await asyncio.wait_for(started, 10)
    app = runner.app
    assert not app[DRAIN].draining
    os.kill(os.getpid(), signal.SIGTERM)  # handled by serve(), inside this test's loop
    await asyncio.sleep(0)  # the signal handler runs
    for _ in range(100):
        if app[DRAIN].draining:
            break
        await asyncio.sleep(0.001)
    assert app[DRAIN].draining
    await asyncio.wait_for(serving, 10)
    assert not app[SCHEDULER].running


class Adapter:
    """`health-adapter serve` in a real process, its log lines read as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "adapter", "serve", *args],
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_line(self, needle: str, timeout: float = 30) -> str:
        """The first log line (from now on) holding `needle`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {needle!r} in: {self.seen}") from None
            if line is None:
                raise AssertionError(f"exited before {needle!r}: {self.seen}")
            self.seen.append(line)
            if needle in line:
                return line

    def finish(self, timeout: float = 20) -> tuple[int, list[str]]:
        """Wait for the exit; its code and every log line."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return code, self.seen


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "the adapter exited"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


#: A plugin module whose import blocks until the test says so: a slow import
#: (a big dependency, a connection made at import time).
SLOW_IMPORT = """
import os, time
from probes import Probe, Result
open(os.environ["GATE_MARK"], "a").close()
_deadline = time.monotonic() + 60
while not os.path.exists(os.environ["GATE_RELEASE"]) and time.monotonic() < _deadline:
    time.sleep(0.01)

class Slow(Probe):
    async def check(self) -> Result:
        return Result("pass")
"""


def events(lines: list[str]) -> list[str]:
    return [part[6:] for line in lines for part in line.split() if part.startswith("event=")]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_while_a_plugin_is_imported_is_a_clean_stop(
    tmp_path: Path, signum: signal.Signals
) -> None:
    (tmp_path / "slow_plugin.py").write_text(SLOW_IMPORT)
    config = tmp_path / "health.yaml"
    config.write_text("checks:\n  - {name: a, plugin: {class: 'slow_plugin:Slow'}}\n")
    mark, release = tmp_path / "importing", tmp_path / "release"
    port = free_port()
    adapter = Adapter(
        "-c",
        str(config),
        "--listen",
        f"127.0.0.1:{port}",
        env={
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
            "GATE_MARK": str(mark),
            "GATE_RELEASE": str(release),
        },
    )
    wait_for_file(mark, adapter.process)
    adapter.process.send_signal(signum)
    code, lines = adapter.finish()
    assert code == 0, lines
    assert events(lines) == ["stopping", "stopped"]
    assert f"signal={signum.name}" in lines[0]
    assert "Traceback" not in "\n".join(lines)
    with pytest.raises(ConnectionRefusedError):  # it never listened
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


#: Stands in for aiohttp while the adapter's own modules are imported: it waits
#: for the test, then puts the real aiohttp in its place.
SLOW_AIOHTTP = """
import importlib, os, sys, time
open(os.environ["GATE_MARK"], "a").close()
_deadline = time.monotonic() + 60
while not os.path.exists(os.environ["GATE_RELEASE"]) and time.monotonic() < _deadline:
    time.sleep(0.01)
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
del sys.modules["aiohttp"]
sys.modules["aiohttp"] = importlib.import_module("aiohttp")
"""


@pytest.mark.slow
def test_a_stop_signal_while_the_adapter_imports_its_modules_is_a_clean_stop(
    tmp_path: Path,
) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "aiohttp.py").write_text(SLOW_AIOHTTP)
    config = tmp_path / "health.yaml"
    config.write_text("checks:\n  - {name: a, plugin: {class: 'tests.sample_probes:Ok'}}\n")
    mark, release = tmp_path / "importing", tmp_path / "release"
    port = free_port()
    adapter = Adapter(
        "-c",
        str(config),
        "--listen",
        f"127.0.0.1:{port}",
        env={
            "PYTHONPATH": os.pathsep.join([str(shadow), str(ROOT)]),
            "GATE_MARK": str(mark),
            "GATE_RELEASE": str(release),
        },
    )
    wait_for_file(mark, adapter.process)
    adapter.process.send_signal(signal.SIGTERM)
    release.touch()  # the imports go on; the signal was remembered
    code, lines = adapter.finish()
    assert code == 0, lines
    assert events(lines) == ["stopping", "stopped"]
    assert "signal=SIGTERM" in lines[0] and "during=start-up" in lines[0]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.slow
def test_a_stop_signal_before_the_first_check_has_run_is_a_clean_stop(tmp_path: Path) -> None:
    mark = tmp_path / "running"
    config = tmp_path / "health.yaml"
    config.write_text(
        "checks:\n"
        f"  - {{name: a, timeout: 60s, plugin: {{class: 'tests.sample_probes:Gate', mark: '{mark}'}}}}\n"
    )
    adapter = Adapter("-c", str(config), "--listen", f"127.0.0.1:{free_port()}")
    adapter.wait_for_line("event=started")
    wait_for_file(mark, adapter.process)
    begin = time.monotonic()
    adapter.process.send_signal(signal.SIGTERM)
    code, lines = adapter.finish()
    assert code == 0, lines
    assert time.monotonic() - begin < 10
    # The first run never ended: no transition, and the same stop as ever.
    assert events(lines)[-2:] == ["stopping", "stopped"]
    assert "check_transition" not in events(lines)


@pytest.mark.slow
def test_a_stop_signal_during_a_reload_that_imports_a_slow_plugin_is_a_clean_stop(
    tmp_path: Path,
) -> None:
    (tmp_path / "slow_plugin.py").write_text(SLOW_IMPORT)
    config = tmp_path / "health.yaml"
    config.write_text("checks:\n  - {name: a, plugin: {class: 'tests.sample_probes:Ok'}}\n")
    mark, release = tmp_path / "importing", tmp_path / "release"
    adapter = Adapter(
        "-c",
        str(config),
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--shutdown-delay",
        "0",
        env={
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
            "GATE_MARK": str(mark),
            "GATE_RELEASE": str(release),
        },
    )
    adapter.wait_for_line("event=started")
    config.write_text("checks:\n  - {name: a, plugin: {class: 'slow_plugin:Slow'}}\n")
    adapter.process.send_signal(signal.SIGHUP)
    wait_for_file(mark, adapter.process)
    begin = time.monotonic()
    adapter.process.send_signal(signal.SIGTERM)
    code, lines = adapter.finish()
    # The import stuck in its thread does not hold the exit.
    assert code == 0, lines
    assert time.monotonic() - begin < 10
    assert events(lines)[-2:] == ["stopping", "stopped"]


@pytest.mark.slow
def test_a_port_in_use_fails_before_any_check_runs(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    config = tmp_path / "health.yaml"
    config.write_text(
        "checks:\n"
        f"  - {{name: a, plugin: {{class: 'tests.sample_probes:Gate', mark: '{mark}', hold: 0}}}}\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        adapter = Adapter("-c", str(config), "--listen", f"127.0.0.1:{port}")
        code, lines = adapter.finish()
    assert code == 1
    assert lines[-1] == f"health-adapter: cannot listen on 127.0.0.1:{port}: Address already in use"
    # The reaper may say it is in charge first; nothing else happens before the bind.
    assert not [line for line in lines[:-1] if "event=reaping_orphans" not in line]
    assert not mark.exists()  # no probe ran


@pytest.mark.slow
def test_a_probe_that_ignores_its_cancellation_does_not_hold_the_exit(tmp_path: Path) -> None:
    config = tmp_path / "health.yaml"
    config.write_text(
        "checks:\n"
        "  - {name: deaf, interval: 100ms, timeout: 200ms,\n"
        "     plugin: {class: 'tests.sample_probes:SwallowCancel', hold: 3600}}\n"
    )
    adapter = Adapter(
        "-c", str(config), "--listen", f"127.0.0.1:{free_port()}", "--shutdown-delay", "0"
    )
    # Its first run timed out and its task is stuck.
    adapter.wait_for_line("event=check_transition check=deaf")
    begin = time.monotonic()
    adapter.process.send_signal(signal.SIGTERM)
    # A signal while the stuck task is being given up on is remembered, not a kill.
    adapter.wait_for_line("event=stopped")
    adapter.process.send_signal(signal.SIGTERM)
    code, lines = adapter.finish()
    took = time.monotonic() - begin
    assert code == 0, lines
    assert took < 10
    assert any("event=abandoned_tasks count=1" in line for line in lines)
    assert "Task was destroyed" not in "\n".join(lines)
