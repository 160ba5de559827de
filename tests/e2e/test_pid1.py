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


#: PID 1 of a fresh PID namespace that behaves like a typical app (node, java):
#: it starts the adapter and never reaps anything else. It prints the zombies in
#: the namespace (and whose children they are) every 0.2 s, then stops the adapter.
NON_REAPING_PID1 = """
import os, signal, subprocess, sys, time
adapter = subprocess.Popen(sys.argv[2:])
for _ in range(int(float(sys.argv[1]) / 0.2)):
    time.sleep(0.2)
    zombies = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if rest[0] == "Z":
            zombies.append(rest[1])
    print("zombies", len(zombies), "of-pid1", zombies.count("1"), flush=True)
adapter.send_signal(signal.SIGTERM)
adapter.wait(timeout=15)
print("adapter exit", adapter.returncode, flush=True)
"""


@pytest.mark.skipif(not can_unshare(), reason="needs unshare --pid (root or user namespaces)")
@pytest.mark.parametrize(
    "command",
    [
        pytest.param("sleep 0.6 & sleep 5; echo late", id="killed-group-members"),
        pytest.param("setsid sleep 0.3 & sleep 5; echo late", id="setsid-leftover"),
        pytest.param("setsid sh -c 'sleep 0.4 & sleep 0.2' & exit 0", id="setsid-after-exit"),
    ],
)
def test_no_zombie_is_left_to_a_pid_1_that_never_reaps(tmp_path: Path, command: str) -> None:
    config = tmp_path / "health.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\n"
        "checks:\n"
        "  - name: overrun\n"
        "    interval: 200ms\n"
        "    timeout: 300ms\n"
        f"    exec: {{command: {command!r}, shell: true}}\n"
    )
    done = subprocess.run(
        [
            UNSHARE or "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            sys.executable,
            "-c",
            NON_REAPING_PID1,
            "5",
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
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    samples = [line.split() for line in done.stdout.splitlines() if line.startswith("zombies")]
    counts = [int(sample[1]) for sample in samples]
    left_to_pid1 = [int(sample[3]) for sample in samples]

    assert "adapter exit 0" in done.stdout, done.stdout + done.stderr
    assert "reaping_orphans" in done.stderr and "child subreaper" in done.stderr
    assert len(samples) >= 20
    # Never one handed to PID 1; the adapter's own wait at most a sweep or a linger.
    assert max(left_to_pid1) == 0, samples
    # Some 10 runs in 5 s; a leftover that leads its session waits out the
    # reaper's linger (1 s), so a few may be there at once, never a pile.
    assert max(counts) <= 8, counts
