"""systemd's notify protocol, read from a real NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.notify import Notifier, first_round, notify_lifecycle
from adapter.state import Run, StateStore
from probes import Result
from tests.conftest import ROOT, free_port
from tests.e2e.conftest import http_get


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    try:
        yield sock
    finally:
        sock.close()


def receive(sock: socket.socket, timeout: float = 10) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


@pytest.mark.parametrize(
    ("environ", "pid", "address", "interval"),
    [
        ({}, 1, None, None),
        ({"NOTIFY_SOCKET": "/run/n"}, 1, "/run/n", None),
        ({"NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "4000000"}, 1, "@n", 2.0),
        ({"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "400000", "WATCHDOG_PID": "7"}, 7, "/n", 0.2),
        ({"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "400000", "WATCHDOG_PID": "8"}, 7, "/n", None),
        ({"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "0"}, 1, "/n", None),
        ({"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "soon"}, 1, "/n", None),
    ],
    ids=[
        "not-under-systemd",
        "notify-without-watchdog",
        "abstract-socket-with-watchdog",
        "watchdog-for-this-pid",
        "watchdog-for-another-pid",
        "watchdog-zero",
        "watchdog-not-a-number",
    ],
)
def test_the_environment_systemd_sets(
    environ: dict[str, str], pid: int, address: str | None, interval: float | None
) -> None:
    notifier = Notifier.from_environ(environ, pid)
    assert notifier.address == address
    assert notifier.watchdog_interval == interval


def test_an_abstract_socket_is_reached(tmp_path: Path) -> None:
    name = f"health-adapter-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert Notifier(f"@{name}").send("READY=1", "STATUS=up")
        assert receive(sock) == "READY=1\nSTATUS=up"


def test_a_socket_that_is_gone_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING):
        assert not notifier.send("WATCHDOG=1")
        assert not notifier.send("WATCHDOG=1")
    assert [r.getMessage().count("notify_failed") for r in caplog.records] == [1]


async def test_ready_waits_for_every_first_run_and_pings_only_while_alive(
    notify_socket: socket.socket,
) -> None:
    store = StateStore(["a", "b"])
    alive = {"now": True}
    notifier = Notifier(notify_socket.getsockname(), watchdog_usec=100_000)
    notify_socket.setblocking(False)
    task = asyncio.create_task(notify_lifecycle(notifier, store, lambda: alive["now"]))
    loop = asyncio.get_running_loop()

    async def next_message(timeout: float = 5) -> str:
        data = await asyncio.wait_for(loop.sock_recv(notify_socket, 4096), timeout)
        return data.decode()

    try:
        run = Run(Result("pass"), started=time.time(), duration=0.0, finished=time.monotonic())
        store.record("a", run)
        with pytest.raises(TimeoutError):
            await next_message(0.3)  # b has not run yet: not ready
        store.record("b", run)
        assert await next_message() == "READY=1"
        assert await next_message() == "WATCHDOG=1"
        alive["now"] = False
        # What was on its way may still arrive; then nothing while the scheduler is dead.
        with pytest.raises(TimeoutError):
            while True:
                await next_message(0.5)
        alive["now"] = True
        assert await next_message() == "WATCHDOG=1"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_first_round_of_no_checks_is_at_once() -> None:
    await asyncio.wait_for(first_round(StateStore()), 1)


@pytest.mark.slow
def test_serve_speaks_the_protocol(tmp_path: Path, notify_socket: socket.socket) -> None:
    config = tmp_path / "health.yaml"
    config.write_text(
        """
checks:
  - {name: quick, interval: 200ms, plugin: {class: "tests.sample_probes:Ok"}}
  - {name: slow, interval: 10s, timeout: 5s,
     plugin: {class: "tests.sample_probes:SleepAsync", sleep: 1.5}}
"""
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "adapter", "serve", "-c", str(config)]
        + ["--listen", f"127.0.0.1:{port}", "--shutdown-delay", "200ms"],
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "NOTIFY_SOCKET": notify_socket.getsockname(),
            "WATCHDOG_USEC": "400000",
        },
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert receive(notify_socket, 20).startswith("READY=1\nSTATUS=listening on 127.0.0.1:")
        # At READY the port answers, and every check has a result of its own.
        status, body = http_get(f"http://127.0.0.1:{port}/health")
        assert status == 200
        outputs = [entry[0].get("output", "") for entry in json.loads(body)["checks"].values()]
        assert "no result yet" not in outputs
        assert [receive(notify_socket) for _ in range(3)] == ["WATCHDOG=1"] * 3
        process.send_signal(signal.SIGTERM)
        # Pings sent before the signal may still be queued ahead of it.
        messages = [receive(notify_socket)]
        while messages[-1] == "WATCHDOG=1" and len(messages) < 10:
            messages.append(receive(notify_socket))
        assert messages[-1] == "STOPPING=1", messages
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
