"""The adapter as PID 1 of its container: what its probes leave behind is reaped.

Run for real in a new PID namespace (`unshare --pid`), where the adapter is
PID 1 exactly as in a container without an init.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow

UNSHARE = shutil.which("unshare")


def can_unshare() -> bool:
    if UNSHARE is None:
        return False
    done = subprocess.run(
        [UNSHARE, "--pid", "--fork", "--mount-proc", "true"],
        capture_output=True,
        check=False,
        timeout=10,
    )
    return done.returncode == 0


@pytest.mark.skipif(not can_unshare(), reason="needs unshare --pid (root or user namespaces)")
def test_orphans_of_overrunning_commands_are_reaped_when_the_adapter_is_pid_1(
    tmp_path: Path,
) -> None:
    # Each run leaves a background `sleep` in the command's group: killed with
    # the group, it becomes a zombie handed to PID 1 once the shell is reaped.
    config = tmp_path / "health.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        "checks:\n"
        "  - name: overruns\n"
        "    interval: 100ms\n"
        "    timeout: 100ms\n"
        "    exec: {command: [sh, -c, 'sleep 60 & sleep 60']}\n"
    )
    wrapper = subprocess.Popen(
        [
            UNSHARE or "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            sys.executable,
            "-m",
            "adapter",
            "serve",
            "--config",
            str(config),
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
        adapter = _adapter_under(wrapper.pid)
        zombies = []
        for _ in range(15):  # about 3 s: some 15 overruns
            time.sleep(0.2)
            zombies.append(_zombie_children(adapter))
        os.kill(adapter.pid, signal.SIGTERM)
        _, stderr = wrapper.communicate(timeout=20)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.communicate()
    # Without the reaper the count only grows, by one per run; with it, a
    # zombie lives at most until the next sweep (1 s, some 10 runs).
    assert zombies[-1] > 0 or max(zombies) > 0, "no orphan was ever made: the test proves nothing"
    assert max(zombies) <= 12, zombies
    assert "event=reaping_orphans" in stderr
    assert "event=stopped" in stderr


def _adapter_under(wrapper_pid: int) -> psutil.Process:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for child in psutil.Process(wrapper_pid).children():
            if "adapter" in " ".join(child.cmdline()):
                return child
        time.sleep(0.05)
    raise AssertionError("the adapter did not start")


def _zombie_children(adapter: psutil.Process) -> int:
    count = 0
    for child in adapter.children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                count += 1
        except psutil.NoSuchProcess:
            pass
    return count
