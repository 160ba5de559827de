"""The `process` probe: are the expected processes running, and how many?

Processes are selected by kernel name, command line, pidfile and user (all
given must hold) in a process-table snapshot shared by every process check.
Zombies are not running; the adapter never matches itself nor what its exec
checks run; a process the adapter may not read is an error, never silently "down".
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import re
from collections.abc import Sequence
from typing import Annotated, ClassVar

import msgspec

from probes.base import Probe, Reason, Result, Status
from probes.file import NotARegularFile, read_head
from probes.process_table import (
    KERNEL_NAME_MAX,
    ProcessRecord,
    ProcessTable,
    Snapshot,
    kernel_name,
)
from probes.types import option_error

__all__ = ["PIDFILE_START_TOLERANCE", "Pidfile", "PidfileProblem", "ProcessProbe", "read_pidfile"]

# Only the first line is used; a pidfile is a few bytes.
_PIDFILE_LIMIT = 4096
# Linux's PID_MAX_LIMIT: no pid is larger.
_PID_LIMIT = 4_194_304
# Pass output names the pids, up to this many.
_PIDS_SHOWN = 5
#: Seconds a process may seem to have started after its pidfile was last written
#: and still be its writer. The writer starts before it writes, but the two
#: clocks differ: the start is boot time (whole seconds, cut down) plus clock
#: ticks, the mtime comes from the kernel's coarse clock and is cut to the file
#: system's granularity (2 s on FAT, 1 s on ext3 and some NFS servers).
PIDFILE_START_TOLERANCE = 2.0
_ONLY_ADAPTER_VISIBLE = (
    "only the adapter's own processes are visible; in a pod set shareProcessNamespace: true"
)


class PidfileProblem(Exception):
    """The pidfile is missing, unreadable or holds no pid; the message says which."""

    def __init__(self, reason: Reason, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclasses.dataclass(frozen=True, slots=True)
class Pidfile:
    """What a pidfile says: the pid, and when the file was last written (epoch seconds)."""

    pid: int
    written: float


def read_pidfile(path: str) -> Pidfile:
    """The pid written in `path` and the file's mtime, or PidfileProblem.
    Blocking: call it in a thread."""
    try:
        head = read_head(path, _PIDFILE_LIMIT)
        written = os.stat(path).st_mtime
    except FileNotFoundError:
        raise PidfileProblem(Reason.FILE_MISSING, f"pidfile {path} does not exist") from None
    except PermissionError:
        raise PidfileProblem(
            Reason.PERMISSION_DENIED, f"permission denied reading pidfile {path}"
        ) from None
    except NotARegularFile as exc:
        raise PidfileProblem(Reason.FILE_INVALID, f"pidfile {exc}") from None
    except OSError as exc:
        raise PidfileProblem(
            Reason.FAILED, f"cannot read pidfile {path}: {exc.strerror or exc}"
        ) from None
    first_line = head.split(b"\n", 1)[0].strip()
    if not first_line:
        raise PidfileProblem(Reason.FILE_INVALID, f"pidfile {path} is empty")
    if not first_line.isdigit() or not 0 < int(first_line) <= _PID_LIMIT:
        # Its content is not quoted: it is not a pid, so it may be anything.
        raise PidfileProblem(
            Reason.FILE_INVALID, f"pidfile {path} does not hold a process id on its first line"
        )
    return Pidfile(int(first_line), written)


@dataclasses.dataclass(frozen=True, slots=True)
class _Selector:
    """Which processes a check counts: every criterion given must hold."""

    name: str | None = None
    cmdline: re.Pattern[str] | None = None
    user: str | int | None = None
    pid: int | None = None
    pidfile: str | None = None
    #: When the pidfile was last written: a process that started later is not its writer.
    written: float | None = None

    def written_before(self, record: ProcessRecord) -> bool:
        """False when `record` started after the pidfile was written (a reused pid)."""
        if self.written is None or record.started is None:
            return True
        return record.started <= self.written + PIDFILE_START_TOLERANCE

    def matches(self, record: ProcessRecord) -> bool | None:
        """True or False; None when a field it needs could not be read and
        every readable one matched."""
        if self.pid is not None and (record.pid != self.pid or not self.written_before(record)):
            return False
        verdicts = (
            self._name_matches(record),
            self._cmdline_matches(record),
            self._user_matches(record),
        )
        if False in verdicts:
            return False
        return None if None in verdicts else True

    def _name_matches(self, record: ProcessRecord) -> bool | None:
        if self.name is None:
            return True
        # Exact, as the kernel keeps it: names longer than it keeps are refused
        # by the options, so no prefix rule is needed (and none is guessed).
        return None if record.name is None else record.name == self.name

    def _cmdline_matches(self, record: ProcessRecord) -> bool | None:
        if self.cmdline is None:
            return True
        if record.command is None:
            return None
        return self.cmdline.search(record.command) is not None

    def _user_matches(self, record: ProcessRecord) -> bool | None:
        if self.user is None:
            return True
        if record.uid is None:
            return None
        user = str(self.user)
        return record.username == user or (user.isdigit() and record.uid == int(user))

    def candidates(self, snapshot: Snapshot) -> list[ProcessRecord]:
        """The records `matches` may say True or None for, found in one quick pass
        per criterion: with thousands of processes and a hundred checks on the
        event loop, a method call per process and check is what would cost."""
        records: Sequence[ProcessRecord] = snapshot.processes
        if self.pid is not None:
            records = [r for r in records if r.pid == self.pid and self.written_before(r)]
        if self.name is not None:
            name = self.name
            records = [r for r in records if r.name is None or r.name == name]
        if self.cmdline is not None:
            search = self.cmdline.search
            records = [r for r in records if r.command is None or search(r.command)]
        if not snapshot.own_sessions:
            own_pid = snapshot.own_pid
            return [record for record in records if record.pid != own_pid]
        return [record for record in records if not snapshot.is_adapters(record)]

    def describe(self) -> str:
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid} from pidfile {self.pidfile}")
        if self.name is not None:
            parts.append(f"name {self.name!r}")
        if self.cmdline is not None:
            parts.append(f"cmdline /{self.cmdline.pattern}/")
        if self.user is not None:
            parts.append(f"user {str(self.user)!r}")
        return " and ".join(parts)


@dataclasses.dataclass(frozen=True, slots=True)
class _Tally:
    running: tuple[int, ...]  # pids of the matching processes, zombies left out
    zombies: int
    unreadable: int  # processes that might match, had the adapter been allowed to read them
    reused: ProcessRecord | None = None  # holds the pidfile's pid, started after it was written
    #: Holds the pidfile's pid, but is not the process the other criteria name.
    other: ProcessRecord | None = None


def _tally(snapshot: Snapshot, selector: _Selector) -> _Tally:
    reused = other = None
    if selector.pid is not None:
        holder = next((r for r in snapshot.processes if r.pid == selector.pid), None)
        if holder is not None and not holder.zombie and not selector.written_before(holder):
            reused = holder
        elif holder is not None and (holder.zombie or selector.matches(holder) is False):
            other = holder
    running: list[int] = []
    zombies = unreadable = 0
    # The adapter is never a candidate: a `cmdline: python` check must not find
    # itself, nor the commands its exec checks run.
    for record in selector.candidates(snapshot):
        verdict = selector.matches(record)
        if verdict is None and not record.zombie:
            unreadable += 1
        elif verdict and record.zombie:
            zombies += 1
        elif verdict:
            running.append(record.pid)
    return _Tally(tuple(running), zombies, unreadable, reused, other)


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


def _matched(count: int, selection: str) -> str:
    if count == 0:
        return f"no process matches {selection}"
    return f"{_count(count, 'process matches', 'processes match')} {selection}"


def _check_name(name: str) -> None:
    """Refuse a name that can never match: longer than the bytes Linux keeps."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size <= KERNEL_NAME_MAX:
        return
    shown = kernel_name(name)
    if "\udc80" <= shown[-1:] <= "\udcff":
        shows = f"it keeps {shown[:-1]!r} and half of {name[len(shown) - 1]!r}"
    else:
        shows = f"it shows {shown!r}"
    raise option_error(
        "name",
        f"name {name!r} is {size} bytes long, but Linux cuts process names to "
        f"{KERNEL_NAME_MAX} bytes ({shows}): match it with cmdline instead",
    )


class ProcessProbe(Probe):
    """Counts the running processes that match, and checks the count."""

    # The keys of a `process:` block (the docstring would become the schema's
    # description of the block; each key is described by its Meta).
    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        name: Annotated[
            Annotated[str, msgspec.Meta(min_length=1)] | None,
            msgspec.Meta(
                description="the kernel's process name (comm), matched exactly "
                f"(Linux keeps {KERNEL_NAME_MAX} bytes of it, fewer characters for "
                "non-ASCII names; use cmdline for longer names)"
            ),
        ] = None
        cmdline: Annotated[
            re.Pattern | None,  # type: ignore[type-arg]  # msgspec decodes the bare class only
            msgspec.Meta(
                description="regular expression searched in the command line as "
                "`ps -o args` and `pgrep -f` show it: arguments joined with spaces, "
                "a rewritten title without its NUL padding"
            ),
        ] = None
        pidfile: Annotated[
            Annotated[str, msgspec.Meta(min_length=1)] | None,
            msgspec.Meta(
                description="file holding the pid of a process that must be running; "
                "a process that started after the file was last written is not its writer"
            ),
        ] = None
        user: Annotated[
            str | int | None,
            msgspec.Meta(
                description="user name or numeric uid the process runs as "
                "(the uid when the adapter's image does not list the user)"
            ),
        ] = None
        min_count: Annotated[
            int, msgspec.Meta(ge=0, description="fail when fewer processes match")
        ] = 1
        max_count: Annotated[
            Annotated[int, msgspec.Meta(ge=0)] | None,
            msgspec.Meta(description="fail when more processes match"),
        ] = None

        def __post_init__(self) -> None:
            if (self.name, self.cmdline, self.pidfile, self.user) == (None,) * 4:
                raise ValueError(
                    "process needs at least one of name, cmdline, pidfile or user "
                    "to select processes"
                )
            if self.name is not None:
                _check_name(self.name)
            if self.max_count is not None and self.max_count < self.min_count:
                raise option_error(
                    "max_count",
                    f"max_count {self.max_count} is below min_count {self.min_count} "
                    "(set min_count as well)",
                )

    #: Run together with the other process checks, so that they share one scan.
    jitter: ClassVar[bool] = False
    config: Options

    _pidfile_read: asyncio.Task[Pidfile] | None = None

    async def check(self) -> Result:
        """Count the matching processes in the shared snapshot (a pidfile read
        first, when one is configured) and judge the count.

        The observed value is the count, in `processes`; a failure has reason
        process_missing, process_count or access_denied (a process it was not
        allowed to look at might have matched), or a pidfile's own reason.
        """
        config = self.config
        pidfile = None
        if config.pidfile is not None:
            try:
                pidfile = await self._read_pidfile(config.pidfile)
            except PidfileProblem as problem:
                return Result(Status.FAIL, str(problem), reason=problem.reason)
        selector = _Selector(
            name=config.name,
            cmdline=config.cmdline,
            user=config.user,
            pid=None if pidfile is None else pidfile.pid,
            pidfile=config.pidfile,
            written=None if pidfile is None else pidfile.written,
        )
        snapshot = await self.resources.get(ProcessTable).snapshot()
        return self._tally_result(_tally(snapshot, selector), selector, snapshot)

    async def _read_pidfile(self, path: str) -> Pidfile:
        # A read blocked on a dead network mount is awaited again by the next
        # run instead of tying up one more thread each time.
        if self._pidfile_read is None or self._pidfile_read.done():
            self._pidfile_read = asyncio.create_task(asyncio.to_thread(read_pidfile, path))
        return await asyncio.shield(self._pidfile_read)

    def _tally_result(self, tally: _Tally, selector: _Selector, snapshot: Snapshot) -> Result:
        count = len(tally.running)
        matched = _matched(count, selector.describe())
        if count < self.config.min_count:
            return self._too_few(tally, matched, snapshot, selector)
        max_count = self.config.max_count
        if max_count is not None and count > max_count:
            return self._result(
                Status.FAIL,
                f"{matched}, expected at most {max_count}",
                count,
                Reason.PROCESS_COUNT,
            )
        if selector.pid is not None:
            # A reused pid shows: the pass names the process that holds it.
            names = {record.pid: record.name for record in snapshot.processes}
            shown = ", ".join(f"{_printable(names.get(pid))}, pid {pid}" for pid in tally.running)
            return self._result(Status.PASS, f"{matched} ({shown})", count)
        return self._result(Status.PASS, f"{matched}{_pid_list(tally.running)}", count)

    def _too_few(
        self, tally: _Tally, matched: str, snapshot: Snapshot, selector: _Selector
    ) -> Result:
        notes = [f"{matched}, expected at least {self.config.min_count}"]
        if tally.reused is not None and selector.written is not None:
            notes.append(_reused(tally.reused, selector))
        if tally.other is not None:
            # twisted #7555: a stale pidfile's pid, now another program's.
            notes.append(_other_holder(tally.other, snapshot))
        if tally.zombies and not (tally.other is not None and tally.other.zombie):
            notes.append(f"{_count(tally.zombies, 'zombie', 'zombies')} matched")
        reason = Reason.PROCESS_MISSING
        if tally.unreadable:
            reason = Reason.ACCESS_DENIED
            notes.append(
                f"{_count(tally.unreadable, 'process', 'processes')} could not be read "
                "(access denied)"
            )
        if snapshot.hidepid is not None:
            if snapshot.hides_others(os.getuid()):
                # Hidden, not missing: what the adapter may not see cannot be
                # counted as absent (psutil #2026: hidepid read as "no process").
                reason = Reason.ACCESS_DENIED
            notes.append(
                f"/proc is mounted with hidepid={snapshot.hidepid}: processes the adapter "
                "may not inspect are hidden from it"
            )
        elif snapshot.only_adapter_visible() and not tally.unreadable:
            notes.append(_ONLY_ADAPTER_VISIBLE)
        return self._result(Status.FAIL, "; ".join(notes), len(tally.running), reason)

    @staticmethod
    def _result(status: Status, output: str, count: int, reason: Reason | None = None) -> Result:
        return Result(
            status, output, observed_value=count, observed_unit="processes", reason=reason
        )


def _reused(holder: ProcessRecord, selector: _Selector) -> str:
    assert holder.started is not None and selector.written is not None
    late = holder.started - selector.written
    return (
        f"pid {holder.pid} now belongs to {_printable(holder.name)!r}, which started "
        f"{_duration(late)} after the pidfile was last written "
        f"({_timestamp(selector.written)}): it cannot be the process that wrote it"
    )


def _other_holder(holder: ProcessRecord, snapshot: Snapshot) -> str:
    """Why the process holding a pidfile's pid does not count."""
    if holder.zombie:
        # psutil #1008, lionagi #1744: kill(pid, 0) succeeds on a zombie.
        parent = next((r for r in snapshot.processes if r.pid == holder.ppid), None)
        by = (
            ""
            if parent is None
            else f" by its parent {_printable(parent.name)!r} (pid {parent.pid})"
        )
        return f"pid {holder.pid} is a zombie: it exited and was not reaped{by}"
    owner = holder.username if holder.username is not None else "?"
    return (
        f"pid {holder.pid} is {_printable(holder.name)!r} (user {owner}), "
        "not the process the check names"
    )


def _printable(name: str | None) -> str:
    """A kernel name for output: half a character cut off by the kernel shows as �."""
    if name is None:
        return "?"
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _timestamp(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _pid_list(pids: tuple[int, ...]) -> str:
    if not pids:
        return ""
    shown = ", ".join(map(str, pids[:_PIDS_SHOWN]))
    more = f" and {len(pids) - _PIDS_SHOWN} more" if len(pids) > _PIDS_SHOWN else ""
    return f" (pid {shown}{more})"
