"""What a probe must not leave behind: file descriptors, threads, child processes, zombies."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import threading
from collections.abc import AsyncIterator

import psutil

# Generous: closing is asynchronous (a transport closes on the next loop turn,
# a waiter thread ends after its child is reaped); leaking is forever.
SETTLE_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Snapshot:
    fds: frozenset[int]
    threads: int
    children: frozenset[int]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            fds=frozenset(int(fd) for fd in os.listdir("/proc/self/fd")),
            threads=threading.active_count(),
            children=frozenset(child.pid for child in psutil.Process().children(recursive=True)),
        )

    def leaks_since(self, before: Snapshot) -> list[str]:
        leaks = []
        if self.fds - before.fds:
            leaks.append(
                f"file descriptors {sorted(self.fds - before.fds)}: "
                f"{[_fd_target(fd) for fd in sorted(self.fds - before.fds)]}"
            )
        if self.threads > before.threads:
            leaks.append(
                f"threads: {before.threads} before, {self.threads} after "
                f"({[t.name for t in threading.enumerate()]})"
            )
        if self.children - before.children:
            leaks.append(f"child processes {sorted(self.children - before.children)}")
        return leaks


def _fd_target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def zombie_children() -> list[int]:
    zombies = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies.append(child.pid)
    return zombies


@contextlib.asynccontextmanager
async def no_leaks() -> AsyncIterator[None]:
    """Fail unless every fd, thread and child process made inside is gone soon after."""
    gc.collect()
    before = Snapshot.take()
    yield
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        gc.collect()
        leaks = Snapshot.take().leaks_since(before)
        if not leaks or loop.time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert not leaks, "left behind: " + "; ".join(leaks)
