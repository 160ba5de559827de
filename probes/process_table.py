"""One process-table snapshot shared by every process check.

Reading the process table costs a few /proc reads per process. The scheduler
starts all process checks of one interval together, so one scan, reused for
`max_age`, serves the whole round instead of one scan per check.

On Linux the scan reads /proc itself: three files per process, parsed only as
far as needed, which is about three times cheaper than psutil's general
process objects (that matters with thousands of processes, every second).
Elsewhere it asks psutil. Both give the same records; a test holds them to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import pwd
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

__all__ = [
    "DEFAULT_MAX_AGE",
    "KERNEL_NAME_MAX",
    "ProcessRecord",
    "ProcessTable",
    "Snapshot",
    "scan_proc",
    "scan_processes",
    "scan_psutil",
]

#: Linux keeps at most this many characters of a process name (TASK_COMM_LEN - 1).
KERNEL_NAME_MAX = 15

#: How long a finished snapshot is reused: long enough to cover one scheduling
#: round, short enough that a process that just died is not reported running.
DEFAULT_MAX_AGE = 0.25

# psutil fetches these in one pass over /proc/PID/{stat,status,cmdline}. The
# user is read as a uid and resolved once per scan: psutil's `username` would
# query the user database again for every process.
_SCAN_ATTRS = ("pid", "ppid", "name", "cmdline", "uids", "status")
_NOT_RUNNING = frozenset({"zombie", "dead"})  # psutil.STATUS_ZOMBIE, STATUS_DEAD
# The same states as /proc/PID/stat writes them (zombie, dead, and dead's old letter).
_NOT_RUNNING_STATES = frozenset({b"Z", b"X", b"x"})
_PROC_SELF_STAT = "/proc/self/stat"
_READ_SIZE = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One process as the scan saw it; None marks a field it was denied."""

    pid: int
    ppid: int | None
    name: str | None
    cmdline: tuple[str, ...] | None
    username: str | None
    uid: int | None
    zombie: bool = False
    #: The command line as `cmdline` patterns see it: the arguments joined with
    #: spaces, once per scan rather than once per check.
    command: str | None = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        command = None if self.cmdline is None else " ".join(self.cmdline)
        object.__setattr__(self, "command", command)


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Every process visible at one moment, and which of them is the adapter."""

    processes: tuple[ProcessRecord, ...]
    own_pid: int = dataclasses.field(default_factory=os.getpid)

    def adapter_family(self) -> frozenset[int]:
        """The adapter, its ancestors and its descendants among the visible pids."""
        parent_of = {record.pid: record.ppid for record in self.processes}
        children_of: defaultdict[int, list[int]] = defaultdict(list)
        for pid, ppid in parent_of.items():
            if ppid is not None:
                children_of[ppid].append(pid)
        return frozenset(_ancestors(self.own_pid, parent_of)) | frozenset(
            _descendants(self.own_pid, children_of)
        )

    def only_adapter_visible(self) -> bool:
        """True when the adapter cannot see any process but its own.

        That is the case when it runs in its own PID namespace: as pid 1, or
        under an init wrapper (tini, dumb-init, `sh -c`) that is its ancestor.
        """
        if self.own_pid == 1:
            return True
        family = self.adapter_family()
        return all(record.pid in family for record in self.processes)


def _ancestors(pid: int, parent_of: Mapping[int, int | None]) -> Iterable[int]:
    seen: set[int] = set()
    current: int | None = pid
    while current is not None and current in parent_of and current not in seen:
        seen.add(current)
        yield current
        current = parent_of[current]


def _descendants(pid: int, children_of: Mapping[int, list[int]]) -> Iterable[int]:
    seen = {pid}
    pending = [pid]
    while pending:
        current = pending.pop()
        yield current
        for child in children_of.get(current, ()):
            if child not in seen:
                seen.add(child)
                pending.append(child)


def scan_processes() -> Snapshot:
    """Read the process table. Blocking: call it in a worker thread."""
    if os.path.exists(_PROC_SELF_STAT):
        return scan_proc()
    return scan_psutil()


def scan_proc(pids: Callable[[], Iterable[int]] | None = None) -> Snapshot:
    """Read the process table from Linux's /proc; `pids` lists the processes to
    read (default: every one)."""
    username_of = functools.cache(_username)
    records = []
    for pid in (pids or _proc_pids)():
        try:
            record = _read_proc(pid, username_of)
        except (FileNotFoundError, ProcessLookupError):
            continue  # it exited before or while it was read
        records.append(record)
    return Snapshot(processes=tuple(records), own_pid=os.getpid())


def _proc_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _read_proc(
    pid: int, username_of: Callable[[int], str], read: Callable[[str], bytes] | None = None
) -> ProcessRecord:
    read = read or _read
    base = f"/proc/{pid}"
    name, state, ppid = _parse_stat(read(f"{base}/stat"))
    zombie = state in _NOT_RUNNING_STATES
    try:
        cmdline: tuple[str, ...] | None = _split_cmdline(read(f"{base}/cmdline"))
    except PermissionError:
        cmdline = None
    try:
        uid: int | None = _real_uid(read(f"{base}/status"))
    except PermissionError:
        uid = None
    if not zombie and (not cmdline or uid is None):
        # A process that dies between two reads leaves no arguments (or refuses
        # its files): dying is not running, and never "access denied". Its
        # state is read once more; a vanished one raises and is left out.
        zombie = _parse_stat(read(f"{base}/stat"))[1] in _NOT_RUNNING_STATES
    if zombie and cmdline is None:
        cmdline = ()  # the kernel freed a zombie's arguments: gone, not hidden
    return ProcessRecord(
        pid=pid,
        ppid=ppid,
        name=name[:KERNEL_NAME_MAX],
        cmdline=cmdline,
        username=None if uid is None else username_of(uid),
        uid=uid,
        zombie=zombie,
    )


def _parse_stat(stat: bytes) -> tuple[str, bytes, int]:
    """The name, state letter and parent pid from /proc/PID/stat."""
    # "pid (comm) state ppid ...": the name may hold spaces and parentheses.
    open_paren, close_paren = stat.index(b"("), stat.rindex(b")")
    state, ppid = stat[close_paren + 2 :].split(b" ", 2)[:2]
    return os.fsdecode(stat[open_paren + 1 : close_paren]), state, int(ppid)


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, _READ_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _split_cmdline(raw: bytes) -> tuple[str, ...]:
    """The arguments, split as psutil splits them (a zombie's are gone: empty)."""
    text = os.fsdecode(raw)
    if not text:
        return ()
    # A process that rewrote its title may separate its words with spaces.
    separator = "\0" if text.endswith("\0") else " "
    text = text.removesuffix(separator)
    arguments = text.split(separator)
    if separator == "\0" and len(arguments) == 1 and " " in text:
        arguments = text.split(" ")
    return tuple(arguments)


def _real_uid(status: bytes) -> int:
    start = status.index(b"\nUid:") + len(b"\nUid:")
    return int(status[start:].split(None, 1)[0])


def scan_psutil() -> Snapshot:
    """Read the process table through psutil, where there is no /proc to read."""
    import psutil  # only here: on Linux the adapter never needs it

    username_of = functools.cache(_username)
    records = []
    for process in psutil.process_iter(_SCAN_ATTRS, ad_value=None):
        # A process that exits before or while it is read (NoSuchProcess) is
        # left out by process_iter itself.
        info = _settle_unread(process, process.info)
        if info is not None:
            records.append(_record(info, username_of))
    return Snapshot(processes=tuple(records), own_pid=os.getpid())


def _settle_unread(process: psutil.Process, info: dict[str, Any]) -> dict[str, Any] | None:
    """Tell a field that was denied from one that vanished while it was read.

    psutil reports a field as unreadable both when access is denied and when
    the process turned into a zombie between two reads of one scan. A dying
    process must count as not running, never as "access denied": its status
    is read once more. None when it is gone altogether.
    """
    import psutil

    if info["status"] in _NOT_RUNNING or all(info[key] is not None for key in _SCAN_ATTRS):
        return info
    try:
        status = process.status()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return info
    return {**info, "status": status} if status in _NOT_RUNNING else info


def _record(info: dict[str, Any], username_of: Callable[[int], str]) -> ProcessRecord:
    zombie = info["status"] in _NOT_RUNNING
    cmdline = info["cmdline"]
    if cmdline is None and zombie:
        cmdline = []  # the kernel freed a zombie's arguments: gone, not hidden
    uids = info["uids"]
    uid = None if uids is None else uids.real
    name = info["name"]
    return ProcessRecord(
        pid=info["pid"],
        ppid=info["ppid"],
        # psutil lengthens a 15-character name from the command line; the
        # kernel's own name is its first 15 characters.
        name=None if name is None else name[:KERNEL_NAME_MAX],
        cmdline=None if cmdline is None else tuple(cmdline),
        username=None if uid is None else username_of(uid),
        uid=uid,
        zombie=zombie,
    )


def _username(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        # A sidecar's image rarely lists the application's users.
        return str(uid)


class ProcessTable:
    """Hands out process-table snapshots: one scan at a time, reused for `max_age`.

    Callers arriving while a scan runs await that same scan. The scan runs in
    a worker thread; a caller that is cancelled (its check timed out) leaves
    the scan running for the others.
    """

    def __init__(
        self,
        scan: Callable[[], Snapshot] = scan_processes,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scans = 0
        self._scan = scan
        self._max_age = max_age
        self._clock = clock
        self._latest: Snapshot | None = None
        self._latest_expires = 0.0
        self._running: asyncio.Task[Snapshot] | None = None

    async def snapshot(self) -> Snapshot:
        if self._latest is not None and self._clock() < self._latest_expires:
            return self._latest
        if self._running is None:
            self._running = asyncio.create_task(self._run_scan(), name="process table scan")
        return await asyncio.shield(self._running)

    async def _run_scan(self) -> Snapshot:
        self.scans += 1
        try:
            snapshot = await asyncio.to_thread(self._scan)
        finally:
            self._running = None
        self._latest = snapshot
        self._latest_expires = self._clock() + self._max_age
        return snapshot

    async def aclose(self) -> None:
        """Wait for a scan still running, so that shutdown leaves no task behind."""
        running = self._running
        if running is not None:
            with contextlib.suppress(Exception):
                await running
        self._latest = None
