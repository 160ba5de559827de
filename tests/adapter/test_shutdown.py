"""Graceful shutdown: SIGTERM flips /readyz at once, cancels the running probes (and
their children), finishes the requests in flight, and exits within a few seconds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from aiohttp import web

from adapter.config import parse_config
from adapter.server import LIFECYCLE, SCHEDULER, serve
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
        time.sleep(0.5)  # the big checks have run
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
    assert events[-2:] == ["stopping", "stopped"]


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
    assert not app[LIFECYCLE].draining
    os.kill(os.getpid(), signal.SIGTERM)  # handled by serve(), inside this test's loop
    await asyncio.sleep(0)  # the signal handler runs
    for _ in range(100):
        if app[LIFECYCLE].draining:
            break
        await asyncio.sleep(0.001)
    assert app[LIFECYCLE].draining
    await asyncio.wait_for(serving, 10)
    assert not app[SCHEDULER].running


@pytest.mark.slow
def test_a_probe_that_ignores_its_cancellation_does_not_hold_the_exit(tmp_path: Path) -> None:
    config = tmp_path / "health.yaml"
    config.write_text(
        "checks:\n"
        "  - {name: deaf, interval: 100ms, timeout: 200ms,\n"
        "     plugin: {class: 'tests.sample_probes:SwallowCancel', hold: 3600}}\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adapter",
            "serve",
            "-c",
            str(config),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--shutdown-delay",
            "0",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)  # its first run timed out and its task is stuck
        begin = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        took = time.monotonic() - begin
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert took < 10
    assert "event=abandoned_tasks count=1" in stderr
    assert "Task was destroyed" not in stderr
