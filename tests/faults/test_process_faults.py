"""Watched processes that misbehave: one turns into a zombie, thousands come and go."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from adapter.server import SCHEDULER
from probes.process_table import ProcessTable
from tests.faults.conftest import (
    MAX_LATENCY,
    Footprint,
    assert_nothing_left,
    check_entry,
    running_adapter,
)

#: How many short-lived processes the churn case starts, and over about how long.
CHURN_PROCESSES = 2000
CHURN_SECONDS = 4.0


@pytest.fixture
def marker() -> str:
    return f"fault-marker-{uuid.uuid4().hex[:10]}"


Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a child process; whatever is still running at the end is killed and reaped."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, **kwargs)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.parametrize("selector", ["cmdline", "name", "pidfile"])
async def test_a_watched_process_that_becomes_a_zombie(
    selector: str, marker: str, tmp_path: Path, spawn: Spawn
) -> None:
    # A kernel name of our own: sleep run through a symlink named after the marker.
    name = marker[-15:]
    (tmp_path / name).symlink_to(shutil.which("sleep") or "/bin/sleep")
    pidfile = tmp_path / "worker.pid"
    option = {
        "cmdline": f"{{cmdline: '{name} 3'}}",
        "name": f"{{name: {name}}}",
        "pidfile": f"{{pidfile: '{pidfile}'}}",
    }[selector]
    before = Footprint.take()
    config = f"checks:\n  - {{name: worker, interval: 100ms, process: {option}}}\n"
    async with running_adapter(config) as adapter:
        # It lives a few seconds, then exits; nobody reaps it, so it stays a zombie.
        worker = spawn(str(tmp_path / name), "3")
        pidfile.write_text(f"{worker.pid}\n")
        await adapter.until(
            lambda status, b: check_entry(b, "worker")["status"] == "pass", timeout=20
        )
        body = await adapter.until(lambda status, b: status == 503, timeout=20)
        entry = check_entry(body, "worker")
        assert psutil.Process(worker.pid).status() == psutil.STATUS_ZOMBIE
        assert worker.poll() == 0  # reaps it
    # The kernel frees a zombie's command line: only name and pid still match it.
    note = {
        "cmdline": "",
        "name": "; 1 zombie matched",
        # The pidfile's pid is named, with the parent that did not reap it (this test).
        "pidfile": f"; pid {worker.pid} is a zombie: it exited and was not reaped by its "
        f"parent {psutil.Process().name()[:15]!r} (pid {os.getpid()})",
    }[selector]
    assert entry["reason"] == "process_missing"
    assert entry["output"].startswith("no process matches ")
    assert entry["output"].endswith(f", expected at least 1{note}")
    await assert_nothing_left(before)


CHURN = f"""
import subprocess, sys, time
deadline = time.monotonic() + {CHURN_SECONDS} * 3
running = []
for i in range({CHURN_PROCESSES}):
    running.append(subprocess.Popen(["sleep", "0.05"]))
    if len(running) >= 20:
        running.pop(0).wait()
    if time.monotonic() > deadline:
        break
    time.sleep({CHURN_SECONDS} / {CHURN_PROCESSES})
for process in running:
    process.wait()
print(i + 1)
"""


@pytest.mark.slow
async def test_thousands_of_processes_come_and_go_during_scans(marker: str, spawn: Spawn) -> None:
    before = Footprint.take()
    config = (
        "checks:\n"
        f"  - {{name: worker, interval: 100ms, process: {{cmdline: {marker!r}}}}}\n"
        "  - {name: sleepers, interval: 100ms, process: {cmdline: '^sleep 0.05$', "
        "min_count: 0}}\n"
    )
    worker = spawn(sys.executable, "-c", "import time; time.sleep(60)", marker)
    async with running_adapter(config) as adapter:
        await adapter.until(lambda status, b: status == 200)
        churn = spawn(sys.executable, "-c", CHURN, stdout=subprocess.PIPE)
        table = adapter.app[SCHEDULER].resources.get(ProcessTable)
        scans_before = table.scans
        latencies = []
        begin = time.monotonic()
        while churn.poll() is None and time.monotonic() - begin < CHURN_SECONDS * 4:
            status, body, elapsed = await adapter.get()
            latencies.append(elapsed)
            assert status == 200, body
            assert check_entry(body, "worker")["observedValue"] == 1
            assert check_entry(body, "sleepers")["status"] == "pass"
            await asyncio.sleep(0.02)
        started = int(churn.communicate(timeout=30)[0])
        scans = table.scans - scans_before
    worker.kill()
    worker.wait()
    assert started == CHURN_PROCESSES
    assert max(latencies) < MAX_LATENCY
    assert len(latencies) > 20
    # The process table was scanned again and again while the churn went on
    # (how many of the short-lived sleepers a scan catches depends on the load).
    assert scans >= 3
    await assert_nothing_left(before)


LEADER_EXITS = """
import ctypes, sys, threading, time
threading.Thread(target=time.sleep, args=(3,)).start()
ctypes.CDLL(None).pthread_exit(None)
"""


@pytest.mark.parametrize("selector", ["cmdline", "name"])
async def test_a_watched_process_whose_main_thread_exits_runs_until_its_last_thread_ends(
    selector: str, marker: str, tmp_path: Path, spawn: Spawn
) -> None:
    # Its main thread exits at once (ps shows it "Z", with two threads); its
    # worker thread runs 3 s more. Running until then, a zombie after.
    name = marker[-15:]
    (tmp_path / name).symlink_to(sys.executable)
    option = {
        "cmdline": f"{{cmdline: '{marker}'}}",
        "name": f"{{name: {name}}}",
    }[selector]
    config = f"checks:\n  - {{name: worker, interval: 100ms, process: {option}}}\n"
    async with running_adapter(config) as adapter:
        worker = spawn(str(tmp_path / name), "-c", LEADER_EXITS, marker)
        await adapter.until(lambda status, b: status == 200, timeout=20)
        for _ in range(500):
            if psutil.Process(worker.pid).status() == psutil.STATUS_ZOMBIE:  # its leader
                break
            await asyncio.sleep(0.01)
        # Some ten runs of the check while the leader shows "Z": every one passes.
        polls = await adapter.poll(10, pause=0.1)
        assert psutil.Process(worker.pid).num_threads() == 2
        assert set(polls.statuses) == {200}, polls.statuses
        body = await adapter.until(lambda status, b: status == 503, timeout=20)
        assert psutil.Process(worker.pid).num_threads() == 1
    assert check_entry(body, "worker")["reason"] == "process_missing"
