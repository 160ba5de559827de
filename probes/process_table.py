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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

__all__ = [
    "ADAPTER_SESSIONS",
    "DEFAULT_MAX_AGE",
    "command_line",
    "kernel_name",
    "KERNEL_NAME_MAX",
    "ProcessRecord",
    "ProcessTable",
    "SessionRegistry",
    "Snapshot",
    "scan_proc",
    "scan_processes",
    "scan_psutil",
]

#: Linux keeps at most this many bytes of a process name (TASK_COMM_LEN - 1);
#: a name cut there may end in half a UTF-8 character, which the kernel shows as is.
KERNEL_NAME_MAX = 15

#: How long a finished snapshot is reused: long enough to cover one scheduling
#: round, short enough that a process that just died is not reported running.
DEFAULT_MAX_AGE = 0.25

# psutil fetches these in one pass over /proc/PID/{stat,status,cmdline}. The
# user is read as a uid and resolved once per scan: psutil's `username` would
# query the user database again for every process.
_SCAN_ATTRS = ("pid", "ppid", "name", "cmdline", "uids", "status", "num_threads", "create_time")
_REQUIRED_ATTRS = ("pid", "ppid", "name", "cmdline", "uids", "status")
_NOT_RUNNING = frozenset({"zombie", "dead"})  # psutil.STATUS_ZOMBIE, STATUS_DEAD
# The same states as /proc/PID/stat writes them (zombie, dead, and dead's old letter).
_NOT_RUNNING_STATES = frozenset({b"Z", b"X", b"x"})
_PROC_SELF_STAT = "/proc/self/stat"
_READ_SIZE = 64 * 1024
# /proc/PID/stat's flags bit for a kernel thread (PF_KTHREAD): no arguments, ever.
_PF_KTHREAD = 0x00200000
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One process as the scan saw it; None marks a field it was denied.

    `name` is the kernel's name (`comm`: at most 15 bytes, undecodable bytes
    kept as surrogates); `started` is when the process started, in seconds
    since the epoch, as /proc gives it (boot time + start ticks).
    """

    pid: int
    ppid: int | None
    name: str | None
    cmdline: tuple[str, ...] | None
    username: str | None
    uid: int | None
    zombie: bool = False
    started: float | None = dataclasses.field(default=None, compare=False)
    #: The command line as `cmdline` patterns see it, which is what `pgrep -f`
    #: matches: see `command_line`. Derived from `cmdline` unless given.
    command: str | None = dataclasses.field(default=None, repr=False, compare=False)
    #: The id of the session the process belongs to (None where unknown).
    session: int | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.command is None and self.cmdline is not None:
            object.__setattr__(self, "command", _joined(self.cmdline, self.name, self.zombie))


def command_line(raw: bytes, name: str | None, zombie: bool = False) -> str:
    """The text `cmdline` patterns are searched in, from /proc/PID/cmdline's bytes.

    procps' rule (`read_unvectored`, what `ps -o args` and `pgrep -f` show):
    trailing NULs are dropped (a rewritten title pads the old argument area
    with them), every other NUL and newline becomes a space, and without a
    trailing NUL one trailing space is dropped. An empty command line (a
    kernel thread, a zombie) is the name in brackets, `[kthreadd]`, and a
    zombie's is followed by ` <defunct>`, as ps shows them.
    """
    body = raw.rstrip(b"\0")
    if not body:
        return _bracketed(name, zombie)
    text = body.replace(b"\0", b" ").replace(b"\n", b" ")
    if len(body) == len(raw) and text.endswith(b" "):
        text = text[:-1]
    return text.decode("utf-8", "surrogateescape")


def _bracketed(name: str | None, zombie: bool) -> str:
    if name is None:
        return ""
    return f"[{name}] <defunct>" if zombie else f"[{name}]"


def _joined(arguments: Sequence[str], name: str | None, zombie: bool) -> str:
    """`command_line` for an argument list that was split already (psutil's)."""
    arguments = list(arguments)
    while arguments and not arguments[-1]:
        arguments.pop()  # the NUL padding of a rewritten title
    if not arguments:
        return _bracketed(name, zombie)
    return " ".join(arguments).replace("\n", " ")


def kernel_name(name: str) -> str:
    """`name` as Linux keeps it: its first 15 bytes (UTF-8), maybe half a character."""
    return name.encode("utf-8", "surrogateescape")[:KERNEL_NAME_MAX].decode(
        "utf-8", "surrogateescape"
    )


class SessionRegistry:
    """The sessions of the commands the adapter is running (exec checks).

    Each command runs in a session of its own, whose id is the command's pid.
    Whatever runs in such a session is the adapter's doing (the command, its
    shell, the children it left in its group), never the application: a
    `cmdline: workerd` check must not count an `exec` check's `sh -c '…
    workerd'`, which is what check_procs did under NRPE (monitoring-plugins
    #999, #723). Sets of ints are changed and copied under the GIL only, so
    the scan thread may read while the event loop writes.
    """

    def __init__(self) -> None:
        self._sessions: set[int] = set()

    def add(self, session: int) -> None:
        self._sessions.add(session)

    def discard(self, session: int) -> None:
        self._sessions.discard(session)

    def current(self) -> frozenset[int]:
        return frozenset(self._sessions)


#: The one registry of the running adapter: the exec probe adds each command's
#: session when it starts it and drops it once the run is over.
ADAPTER_SESSIONS = SessionRegistry()


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Every process visible at one moment, and which of them is the adapter."""

    processes: tuple[ProcessRecord, ...]
    own_pid: int = dataclasses.field(default_factory=os.getpid)
    #: /proc's `hidepid` mount option when it hides processes ("1", "2",
    #: "invisible"…): other users' processes may be missing or unreadable.
    hidepid: str | None = None
    #: Sessions of the commands the adapter ran while the table was read.
    own_sessions: frozenset[int] = frozenset()

    def hides_others(self, own_uid: int) -> bool:
        """Whether /proc's `hidepid` may hide processes from this scan: it is set,
        and no other user's process could be read (a privileged adapter reads them)."""
        if self.hidepid is None:
            return False
        return not any(r.uid is not None and r.uid != own_uid for r in self.processes)

    def is_adapters(self, record: ProcessRecord) -> bool:
        """Whether `record` is the adapter itself or runs in a session of one of
        its commands: never a process a check is about."""
        return record.pid == self.own_pid or (
            record.session is not None and record.session in self.own_sessions
        )

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


def scan_proc(pids: Callable[[], Iterable[int]] | None = None, proc: str = "/proc") -> Snapshot:
    """Read the process table from Linux's /proc; `pids` lists the processes to
    read (default: every one)."""
    username_of = functools.cache(_username)
    records = []
    sessions = ADAPTER_SESSIONS.current()
    for pid in (pids or functools.partial(_proc_pids, proc))():
        try:
            record = _read_proc(pid, username_of, proc=proc)
        except (FileNotFoundError, ProcessLookupError):
            continue  # it exited before or while it was read
        records.append(record)
    # A command started while the table was read is the adapter's too.
    sessions |= ADAPTER_SESSIONS.current()
    return Snapshot(
        processes=tuple(records),
        own_pid=os.getpid(),
        hidepid=_hidepid(proc),
        own_sessions=sessions,
    )


def _proc_pids(proc: str = "/proc") -> list[int]:
    return [int(entry) for entry in os.listdir(proc) if entry.isdigit()]


def _hidepid(proc: str) -> str | None:
    """The `hidepid` option /proc is mounted with, unless it hides nothing."""
    try:
        with open(os.path.join(proc, "self", "mounts"), "rb") as stream:
            mounts = stream.read().decode("utf-8", "replace")
    except OSError:
        return None
    hidepid = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == proc and fields[2] == "proc":
            options = dict(option.partition("=")[::2] for option in fields[3].split(","))
            hidepid = options.get("hidepid")  # the last mount over /proc wins
    return None if hidepid in (None, "0", "off") else hidepid


@dataclasses.dataclass(frozen=True, slots=True)
class _Stat:
    """What the scan uses of /proc/PID/stat."""

    name: str
    state: bytes
    ppid: int
    session: int | None
    flags: int
    threads: int
    start_ticks: int


def _read_proc(
    pid: int,
    username_of: Callable[[int], str],
    read: Callable[[str], bytes] | None = None,
    proc: str = "/proc",
) -> ProcessRecord:
    read = read or _read
    base = f"{proc}/{pid}"
    try:
        stat = _parse_stat(read(f"{base}/stat"))
    except PermissionError:
        # /proc mounted with hidepid=1: the process is there, nothing of it is readable.
        return ProcessRecord(pid=pid, ppid=None, name=None, cmdline=None, username=None, uid=None)
    zombie = _not_running(stat, base, read)
    kernel_thread = bool(stat.flags & _PF_KTHREAD)
    try:
        raw: bytes | None = b"" if kernel_thread else read(f"{base}/cmdline")
    except PermissionError:
        raw = None
    if raw == b"" and stat.state in _NOT_RUNNING_STATES and not zombie:
        # The main thread exited and freed the arguments; a live thread has them.
        raw = _live_thread_cmdline(pid, base, read)
    try:
        uid: int | None = _real_uid(read(f"{base}/status"))
    except PermissionError:
        uid = None
    if not zombie and not kernel_thread and (not raw or uid is None):
        # A process that dies between two reads leaves no arguments (or refuses
        # its files): dying is not running, and never "access denied". Its
        # state is read once more; a vanished one raises and is left out.
        zombie = _not_running(_parse_stat(read(f"{base}/stat")), base, read)
    if zombie and raw is None:
        raw = b""  # the kernel freed a zombie's arguments: gone, not hidden
    return ProcessRecord(
        pid=pid,
        ppid=stat.ppid,
        name=stat.name,
        cmdline=None if raw is None else _split_cmdline(raw),
        username=None if uid is None else username_of(uid),
        uid=uid,
        zombie=zombie,
        started=_boot_time(proc) + stat.start_ticks / _CLOCK_TICKS,
        command=None if raw is None else command_line(raw, stat.name, zombie),
        session=stat.session,
    )


def _not_running(stat: _Stat, base: str, read: Callable[[str], bytes]) -> bool:
    """A zombie has nothing left running. A process whose main thread exited while
    other threads run shows its leader as a zombie too, yet it runs (as ps and
    pgrep count it)."""
    if stat.state not in _NOT_RUNNING_STATES:
        return False
    return stat.threads <= 1 or _live_thread(base, read) is None


def _live_thread(base: str, read: Callable[[str], bytes]) -> str | None:
    """The /proc path of a thread of the process that has not exited, if any."""
    try:
        tids = os.listdir(f"{base}/task")
    except OSError:
        return None
    for tid in tids:
        task = f"{base}/task/{tid}"
        try:
            if _parse_stat(read(f"{task}/stat")).state not in _NOT_RUNNING_STATES:
                return task
        except (OSError, ValueError):
            continue
    return None


def _live_thread_cmdline(pid: int, base: str, read: Callable[[str], bytes]) -> bytes:
    task = _live_thread(base, read)
    if task is None:
        return b""
    try:
        return read(f"{task}/cmdline")
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _parse_stat(stat: bytes) -> _Stat:
    """The fields the scan uses from /proc/PID/stat."""
    # "pid (comm) state ppid ...": the name may hold spaces and parentheses.
    open_paren, close_paren = stat.index(b"("), stat.rindex(b")")
    fields = stat[close_paren + 2 :].split()
    name = stat[open_paren + 1 : close_paren].decode("utf-8", "surrogateescape")
    # Fields 3 (state), 4 (ppid), 6 (session), 9 (flags), 20 (num_threads),
    # 22 (starttime), man 5 proc.
    state, ppid = fields[0], int(fields[1])
    session = int(fields[3]) if len(fields) > 3 else None
    if len(fields) < 20:  # a stat without the later fields: nothing known of them
        return _Stat(name, state, ppid, session, 0, 1, 0)
    return _Stat(name, state, ppid, session, int(fields[6]), int(fields[17]), int(fields[19]))


@functools.lru_cache(maxsize=1)
def _boot_time_cached(proc: str, now: int) -> float:
    try:
        with open(os.path.join(proc, "stat"), "rb") as stream:
            for line in stream:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def _boot_time(proc: str) -> float:
    """When the system booted (seconds since the epoch, whole seconds), read at most
    once a minute: a step of the wall clock moves it, so it is not read only once."""
    return _boot_time_cached(proc, int(time.monotonic() // 60))


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
    sessions = ADAPTER_SESSIONS.current()
    for process in psutil.process_iter(_SCAN_ATTRS, ad_value=None):
        # A process that exits before or while it is read (NoSuchProcess) is
        # left out by process_iter itself.
        info = _settle_unread(process, process.info)
        if info is not None:
            records.append(_record(info, username_of))
    sessions |= ADAPTER_SESSIONS.current()
    return Snapshot(processes=tuple(records), own_pid=os.getpid(), own_sessions=sessions)


def _settle_unread(process: psutil.Process, info: dict[str, Any]) -> dict[str, Any] | None:
    """Tell a field that was denied from one that vanished while it was read.

    psutil reports a field as unreadable both when access is denied and when
    the process turned into a zombie between two reads of one scan. A dying
    process must count as not running, never as "access denied": its status
    is read once more. None when it is gone altogether.
    """
    import psutil

    if info["status"] in _NOT_RUNNING or all(info[key] is not None for key in _REQUIRED_ATTRS):
        return info
    try:
        status = process.status()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return info
    return {**info, "status": status} if status in _NOT_RUNNING else info


def _record(info: dict[str, Any], username_of: Callable[[int], str]) -> ProcessRecord:
    # A leader that exited while other threads run reads as a zombie, yet runs.
    zombie = info["status"] in _NOT_RUNNING and (info["num_threads"] or 1) <= 1
    cmdline = info["cmdline"]
    if cmdline is None and zombie:
        cmdline = []  # the kernel freed a zombie's arguments: gone, not hidden
    uids = info["uids"]
    uid = None if uids is None else uids.real
    name = info["name"]
    return ProcessRecord(
        pid=info["pid"],
        ppid=info["ppid"],
        # psutil lengthens a 15-byte name from the command line; the
        # kernel's own name is its first 15 bytes.
        name=None if name is None else kernel_name(name),
        cmdline=None if cmdline is None else tuple(cmdline),
        username=None if uid is None else username_of(uid),
        uid=uid,
        zombie=zombie,
        started=info["create_time"],
        session=_session_of(info["pid"]),
    )


def _session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


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
        """A snapshot at most `max_age` seconds old (counted from when its scan
        finished); callers that come while a scan runs share it. A failed scan
        raises to every caller that waited for it and is not kept."""
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
