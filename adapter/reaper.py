"""Reaping what the adapter's commands leave behind, whatever PID 1 is.

An exec probe's command may leave processes behind; the probe kills its whole
process group, but the dead members whose parent was the command are handed
to the nearest "child subreaper" once the command is reaped, or to PID 1. When
the adapter shares a PID namespace whose PID 1 never reaps (docker
`--pid=container:app`, compose `pid: service:app`), or when it is PID 1 itself
without an init, nobody else would ever collect them: zombies pile up with
every overrun.

So the adapter marks itself a child subreaper (Linux's
`PR_SET_CHILD_SUBREAPER`): the leftovers of its commands, including those
that left the command's group with `setsid`, come back to it; and it sweeps
its own orphaned zombies, always, not only as PID 1.

No exit status is ever taken from code that waits for it. The sweep leaves
alone every child in the adapter's own session (what a plugin starts without
a session of its own). Of the rest, a zombie that does not lead its session
is a member of a command's session, which the adapter never starts itself:
it is an orphan and is reaped at once. A zombie that leads its session may be
a command the exec probe (or a plugin) is about to collect, or a `setsid`
leftover; it is reaped only after it has been a zombie for `LINGER` seconds,
so its owner has had time to wait for it (the exec probe reaps its command
within one turn of the event loop). A pid is never reaped by number
alone: it is waited for through a pidfd opened and checked against the start
time the sweep read, so a pid reused in between is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping

from adapter.logs import event

__all__ = [
    "LINGER",
    "SWEEP_INTERVAL",
    "OrphanReaper",
    "Zombie",
    "reap_orphans",
    "set_child_subreaper",
    "zombie_children",
]

log = logging.getLogger("health_adapter")

#: How often orphans are looked for (a look is a few small reads). A timer, not
#: SIGCHLD: the event loop (uvloop's libuv in particular) may rely on that
#: signal for its own children.
SWEEP_INTERVAL = 0.25
#: Seconds a zombie that leads its session is left to whoever may wait for it.
LINGER = 1.0

# <linux/prctl.h>
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def _prctl(option: int, value: int) -> int | None:
    """prctl(option, value), or None where there is none or it failed."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if option == _PR_GET_CHILD_SUBREAPER:
        flag = ctypes.c_int(0)
        done = libc.prctl(option, ctypes.byref(flag), 0, 0, 0)
        return None if done != 0 else flag.value
    done = libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0)
    return None if done != 0 else done


def is_child_subreaper() -> bool:
    """Whether orphaned descendants come back to this process (PR_GET_CHILD_SUBREAPER)."""
    return bool(_prctl(_PR_GET_CHILD_SUBREAPER, 0))


def set_child_subreaper(on: bool) -> bool:
    """Make orphaned descendants come back to this process (Linux 3.4+); whether it worked."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, int(on)) is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Zombie:
    """A zombie child of the adapter, as one sweep found it."""

    pid: int
    session: int
    started: int  # clock ticks after boot: with the pid, names the process

    @property
    def leads_session(self) -> bool:
        """Whether it led its session: a command a probe started in a session of its
        own, which its probe may still be about to wait for (so it lingers first)."""
        return self.session == self.pid


def zombie_children(parent: int, proc: str = "/proc") -> list[Zombie]:
    """The zombie children of `parent`, from its threads' `children` lists (or a
    scan of /proc where the kernel has no such lists)."""
    zombies = []
    for pid in _children(parent, proc):
        fields = _stat_fields(os.path.join(proc, str(pid), "stat"))
        if fields is None or fields[0] != "Z" or int(fields[1]) != parent:
            continue
        zombies.append(Zombie(pid=pid, session=int(fields[3]), started=int(fields[19])))
    return zombies


def _children(parent: int, proc: str) -> Iterable[int]:
    tasks = os.path.join(proc, str(parent), "task")
    try:
        tids = os.listdir(tasks)
        found: set[int] = set()
        for tid in tids:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                with open(os.path.join(tasks, tid, "children"), "rb") as stream:
                    found.update(int(pid) for pid in stream.read().split())
        return found
    except FileNotFoundError:  # no CONFIG_PROC_CHILDREN: every process is looked at
        pass
    except OSError:
        return ()
    try:
        return [int(name) for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return ()


def _stat_fields(path: str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        with open(path, "rb") as stream:
            text = stream.read().decode("ascii", "replace")
    except OSError:
        return None
    _, _, rest = text.rpartition(")")
    fields = rest.split()
    return fields if len(fields) >= 20 else None


def _due(
    zombies: Iterable[Zombie], own_session: int, since: Mapping[Zombie, float], now: float
) -> Iterator[Zombie]:
    for zombie in zombies:
        if zombie.session == own_session:
            continue  # what a plugin started in the adapter's session is its own to wait for
        if not zombie.leads_session or now - since.get(zombie, now) >= LINGER:
            yield zombie


def _reap(zombie: Zombie, proc: str = "/proc") -> bool:
    """Wait for `zombie` if it is still that process; whether it was reaped."""
    try:
        pidfd = os.pidfd_open(zombie.pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):
        pidfd = None  # no pidfds (Linux < 5.3): the start time is checked just before
    try:
        fields = _stat_fields(os.path.join(proc, str(zombie.pid), "stat"))
        if fields is None or int(fields[19]) != zombie.started:
            return False  # reaped by its owner meanwhile, and the pid given to another
        with contextlib.suppress(ChildProcessError):
            if pidfd is not None:
                return os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG) is not None
            return os.waitpid(zombie.pid, os.WNOHANG)[0] == zombie.pid
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def reap_orphans(
    since: Mapping[Zombie, float] | None = None, now: float | None = None
) -> tuple[int, dict[Zombie, float]]:
    """One sweep: reap the orphaned zombie children that are due.

    `since` holds when earlier sweeps first found each zombie (monotonic
    seconds); returns how many were reaped and the `since` for the next sweep.
    """
    since = since or {}
    now = time.monotonic() if now is None else now
    zombies = zombie_children(os.getpid())
    reaped = {zombie for zombie in _due(zombies, os.getsid(0), since, now) if _reap(zombie)}
    return len(reaped), {z: since.get(z, now) for z in zombies if z not in reaped}


class OrphanReaper:
    """Adopts the adapter's orphaned descendants and reaps them every `sweep_interval` s.

    `start` marks the process a child subreaper (where Linux allows it) and
    starts the sweep; `stop` ends it, sweeps once more, and gives the
    subreaper mark back if `start` set it.
    """

    def __init__(self, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.sweep_interval = sweep_interval
        self.reaped = 0
        self.sweeps = 0
        self.subreaper = False
        self._set_subreaper = False
        self._since: dict[Zombie, float] = {}
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def needed() -> bool:
        """Orphans can come back to the adapter: on Linux (as a subreaper), or as PID 1."""
        return sys.platform.startswith("linux") or os.getpid() == 1

    def start(self) -> None:
        """Become a child subreaper if possible, sweep every `sweep_interval` seconds, log how."""
        if not is_child_subreaper():
            self._set_subreaper = set_child_subreaper(True)
        self.subreaper = is_child_subreaper()
        self._task = asyncio.create_task(self._run(), name="orphan reaper")
        reason = "running as pid 1" if os.getpid() == 1 else "child subreaper"
        if os.getpid() != 1 and not self.subreaper:
            reason = "own children only (no child subreaper here)"
        event(log, "reaping_orphans", reason=reason)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            self.sweep()

    def sweep(self) -> int:
        """Reap the orphaned zombies found now; how many were reaped."""
        reaped, self._since = reap_orphans(self._since)
        self.reaped += reaped
        self.sweeps += 1
        return reaped

    async def stop(self) -> None:
        """Stop sweeping, sweep once more, and give the subreaper flag back if it was set here."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.sweep()
        if self._set_subreaper:
            set_child_subreaper(False)
            self._set_subreaper = False
