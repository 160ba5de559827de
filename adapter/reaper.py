"""Reaping orphans when the adapter is PID 1 of its container.

An exec probe's command may leave processes behind; the probe kills its whole
process group, but the dead members whose parent was the command are handed
to PID 1 once the command is reaped. In a container without an init (no
`--init`, no `shareProcessNamespace`), PID 1 is the adapter, and nobody else
would ever collect them: zombies would pile up with every overrun.

Only orphans are reaped: zombies in another session than the adapter's that
do not lead it, which is what the descendants of a command started in a
session of its own are. The command itself (a session leader) and any child a
plugin starts in the adapter's own session are left to the code that waits
for them, so no exit status is ever taken from its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator

from adapter.logs import event

log = logging.getLogger("health_adapter")

#: How often orphans are looked for. A timer, not SIGCHLD: the event loop
#: (uvloop's libuv in particular) may rely on that signal for its own children.
SWEEP_INTERVAL = 1.0


def orphaned_zombies(parent: int, own_session: int, proc: str = "/proc") -> Iterator[int]:
    """Pids of the zombie children of `parent` that are orphans from another session."""
    with contextlib.suppress(OSError):
        entries = os.listdir(proc)
        for name in entries:
            if not name.isdigit():
                continue
            fields = _stat_fields(os.path.join(proc, name, "stat"))
            if fields is None:
                continue
            state, ppid, session = fields[0], int(fields[1]), int(fields[3])
            pid = int(name)
            if state == "Z" and ppid == parent and session not in (own_session, pid):
                yield pid


def _stat_fields(path: str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        with open(path, "rb") as stream:
            text = stream.read().decode("ascii", "replace")
    except OSError:
        return None
    _, _, rest = text.rpartition(")")
    fields = rest.split()
    return fields if len(fields) >= 4 else None


def reap_orphans() -> int:
    """Collect every orphaned zombie child now; the number collected."""
    reaped = 0
    for pid in orphaned_zombies(os.getpid(), os.getsid(0)):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped += 1
    return reaped


class OrphanReaper:
    """While the adapter runs as PID 1, reap orphans every `sweep_interval` seconds."""

    def __init__(self, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.sweep_interval = sweep_interval
        self.reaped = 0
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def needed() -> bool:
        return os.getpid() == 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="orphan reaper")
        event(log, "reaping_orphans", reason="running as pid 1")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.reaped += reap_orphans()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.reaped += reap_orphans()
