"""The orphan reaper: what the adapter's commands leave behind comes back to it and
is reaped, and nothing another part of the adapter waits for is ever taken."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from adapter.reaper import LINGER, OrphanReaper, is_child_subreaper, reap_orphans, zombie_children
from probes import Status
from probes.exec import ExecProbe

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="child subreapers are Linux's"
)


def zombie_pids() -> set[int]:
    return {zombie.pid for zombie in zombie_children(os.getpid())}


def ppid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            return int(stream.read().rpartition(b")")[2].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


@pytest.fixture
async def reaper() -> AsyncIterator[OrphanReaper]:
    assert not is_child_subreaper()
    reaper = OrphanReaper(sweep_interval=0.05)
    reaper.start()
    try:
        yield reaper
    finally:
        await reaper.stop()
    assert not is_child_subreaper()  # given back: the test process is as it was


async def until(condition: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        await asyncio.sleep(0.02)


def command_leaving(leftover: str) -> int:
    """Run a command in a session of its own, as the exec probe does, that leaves
    `leftover` running in the background; the command is reaped. The leftover's pid."""
    command = subprocess.Popen(
        ["sh", "-c", f"{leftover} & echo $!"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    output, _ = command.communicate(timeout=10)
    return int(output)


@pytest.mark.parametrize(
    "leftover",
    [
        pytest.param("sleep 0.3", id="in-the-commands-session"),
        pytest.param("setsid sleep 0.3", id="in-a-session-of-its-own"),
        pytest.param("setsid sh -c 'sleep 0.3 & wait'", id="setsid-with-a-child"),
    ],
)
async def test_a_commands_leftover_comes_back_and_is_reaped(
    reaper: OrphanReaper, leftover: str
) -> None:
    assert reaper.subreaper
    pid = command_leaving(leftover)

    # Its parent is gone: it is the adapter's now, not PID 1's.
    await until(lambda: ppid_of(pid) in (os.getpid(), None), "the leftover to be adopted")
    assert ppid_of(pid) in (os.getpid(), None)
    await until(lambda: ppid_of(pid) is None, f"pid {pid} to be reaped", timeout=LINGER + 10)
    assert reaper.reaped >= 1


async def test_a_child_in_the_adapters_own_session_is_left_to_its_owner(
    reaper: OrphanReaper,
) -> None:
    child = subprocess.Popen(["sh", "-c", "exit 3"])
    await until(lambda: child.pid in zombie_pids(), "the child to exit")
    sweeps, exited = reaper.reaped, time.monotonic()
    # Sweeps that ran after the longest linger: any that could reap it, would have.
    await until(lambda: time.monotonic() - exited > LINGER, "the linger to pass", LINGER + 5)
    later = reaper.sweeps
    await until(lambda: reaper.sweeps >= later + 2, "two sweeps after the linger", 20)

    assert child.pid in zombie_pids()
    assert child.wait(timeout=10) == 3  # its own status, not one taken from it
    assert reaper.reaped == sweeps


async def test_a_session_leader_child_is_left_to_its_owner_for_the_linger() -> None:
    # What a plugin starts with start_new_session and waits for a little late.
    child = subprocess.Popen(["sh", "-c", "exit 5"], start_new_session=True)
    for _ in range(500):
        if child.pid in zombie_pids():
            break
        await asyncio.sleep(0.01)
    now = time.monotonic()

    reaped, since = reap_orphans(now=now)
    reaped_later, since = reap_orphans(since, now=now + LINGER * 0.9)

    assert (reaped, reaped_later) == (0, 0)
    assert child.wait(timeout=10) == 5


async def test_a_session_leader_nobody_waits_for_is_reaped_after_the_linger() -> None:
    child = subprocess.Popen(["sh", "-c", "exit 5"], start_new_session=True)
    for _ in range(500):
        if child.pid in zombie_pids():
            break
        await asyncio.sleep(0.01)
    now = time.monotonic()

    _, since = reap_orphans(now=now)
    reaped, _ = reap_orphans(since, now=now + LINGER)

    assert reaped == 1
    assert child.pid not in zombie_pids()
    child.returncode = 0  # reaped here: Popen must not look for it again


async def test_the_sweep_never_takes_an_exec_commands_status(reaper: OrphanReaper) -> None:
    # The command leads its own session, like a setsid leftover; the exec probe
    # must still get its exit status, run after run, with sweeps all the while.
    probe = ExecProbe("e", {"command": ["sh", "-c", "sleep 0.05; exit 2"]})

    results = [await probe.check() for _ in range(15)]

    assert {(result.status, result.output) for result in results} == {
        (Status.FAIL, "exit status 2")
    }
