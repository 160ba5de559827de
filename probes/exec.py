"""The `exec` probe: run a command and judge it by its exit status, as Nagios does.

Exit status 0 passes, 1 warns, 2 fails; 3 (UNKNOWN), anything higher, and a
death by signal fail with reason `unknown`. So every Nagios / monitoring-plugins
check, and any script in any language that follows the same convention, is a
probe.

How a command is run:

- It is an argument list, executed directly; `shell: true` runs one string
  through `/bin/sh -c` instead.
- Its environment is not the adapter's: it gets `PATH` (the adapter's, or a
  standard one), `HOME` (the adapter's, when set) and `LANG=C.UTF-8`, plus what
  the check's `env` sets. The adapter's variables may hold secrets; pass what
  a command needs explicitly, e.g. `env: {TOKEN: "${TOKEN}"}`.
- It runs in a process group (a session) of its own with stdin on /dev/null.
  When it exits, whatever it left running in its group is killed. When the run
  is cancelled (its timeout passed, or the adapter stops), the group gets
  SIGTERM, then SIGKILL after half a second, and the command is reaped before
  the run ends: no zombies, and never two runs of one check at once.
- stdout and stderr are read as they come (a command never blocks on a full
  pipe) and to the end; the first 4 KiB of each are kept and the rest only
  counted, which the output then notes as "captured x of y bytes".
- Output is decoded as UTF-8, invalid bytes replaced. Nagios performance data
  (after `|` on the first line, and in the long output) is taken out of the
  text (probes.perfdata): its first item's value becomes the observed value and
  unit (none when that value is `U` or unreadable: never the next one's), and
  all of it, as written, is shown on a last `perfdata:` line of the output.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import errno
import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Annotated

import msgspec

from probes.base import OUTPUT_LIMIT, Probe, Reason, Result, Status
from probes.perfdata import PerfValue, PluginOutput, parse_perfdata, parse_plugin_output
from probes.process_table import ADAPTER_SESSIONS
from probes.types import option_error

__all__ = [
    "CAPTURE_LIMIT",
    "DEFAULT_PATH",
    "KILL_GRACE",
    "ExecProbe",
    "PerfValue",
    "PluginOutput",
    "command_environment",
    "parse_perfdata",
    "parse_plugin_output",
]

#: Bytes kept of each of stdout and stderr (no more than an output can show);
#: the rest is read and counted only.
CAPTURE_LIMIT = OUTPUT_LIMIT
#: Seconds between SIGTERM and SIGKILL to a cancelled command's process group.
#: With the reap that follows it stays well inside the runner's 1 s cancel grace.
KILL_GRACE = 0.5
#: Seconds to wait, once the command and its group are gone, for its pipes to
#: close: only a process that left the group (setsid) can still hold them.
DRAIN_GRACE = 0.5
#: PATH for the command when the adapter has none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELL = "/bin/sh"

_NAGIOS_STATUS = {0: Status.PASS, 1: Status.WARN, 2: Status.FAIL}
_WORD_EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
_STATUS_WORD = re.compile(r"\s*(?:[A-Z][A-Z0-9_./-]*\s+)?(OK|WARNING|CRITICAL|UNKNOWN)\b")
_TRACEBACK = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?::\s.*)?$")
_READ_SIZE = 65536
_ENV_NAME = re.compile(r"^[^=\0]+$")


class ExecProbe(Probe):
    """Run a command; its exit status is the check's: 0 pass, 1 warn, 2 fail, else unknown."""

    # The keys of an `exec:` block (the docstring would become the schema's
    # description of the block; each key is described by its Meta).
    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        command: Annotated[
            list[str] | str,
            msgspec.Meta(
                description="the program and its arguments as a list, "
                "e.g. [/usr/lib/nagios/plugins/check_disk, -w, 10%]; "
                "one string only with shell: true"
            ),
        ]
        shell: Annotated[
            bool,
            msgspec.Meta(description="run command, one string, through /bin/sh -c"),
        ] = False
        env: Annotated[
            dict[str, str],
            msgspec.Meta(
                description="environment variables added to the command's minimal "
                "environment (PATH, HOME, LANG=C.UTF-8)"
            ),
        ] = {}
        cwd: Annotated[
            Annotated[str, msgspec.Meta(min_length=1)] | None,
            msgspec.Meta(description="working directory (default: the adapter's)"),
        ] = None

        def __post_init__(self) -> None:
            if self.shell:
                if not isinstance(self.command, str) or not self.command.strip():
                    raise option_error(
                        "command", "with shell: true, write the command as one string"
                    )
            elif isinstance(self.command, str):
                raise option_error(
                    "command",
                    "write the command as a list, like [check_disk, -w, 10%]; "
                    "a string is run through a shell only with shell: true",
                )
            elif not self.command or not self.command[0]:
                raise option_error("command", "the command needs at least a program")
            for name, value in self.env.items():
                if not _ENV_NAME.match(name):
                    raise option_error("env", f"invalid variable name {name!r}")
                if "\0" in value:
                    raise option_error("env", f"the value of {name} contains a NUL")

    config: Options

    @property
    def argv(self) -> list[str]:
        """The program and its arguments; a `shell: true` string is `/bin/sh -c STRING`."""
        command = self.config.command
        if isinstance(command, str):
            return [SHELL, "-c", command]
        return list(command)

    async def check(self) -> Result:
        """Run the command once: its exit status is the status (see the module's
        docstring), its output the output, the first performance datum the
        observed value. Cancelling the run kills the command's process group."""
        argv = self.argv
        environment = command_environment(self.config.env)
        try:
            command = _Command.start(argv, environment, self.config.cwd)
        except OSError as exc:
            return Result(
                Status.FAIL,
                _describe_start_error(exc, argv[0], self.config.cwd, environment["PATH"]),
                reason=Reason.UNKNOWN,
            )
        # What runs in the command's session is the adapter's: process checks
        # never count it (the command's pid is its session's id).
        ADAPTER_SESSIONS.add(command.pid)
        try:
            await command.finish()
        except BaseException:
            await command.stop()
            raise
        finally:
            command.close()
            ADAPTER_SESSIONS.discard(command.pid)
        return result_of_exit(command.returncode, command.stdout, command.stderr, command.notes)


def command_environment(
    extra: Mapping[str, str], parent: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The command's environment: a minimal one, plus `extra` (which wins)."""
    parent = os.environ if parent is None else parent
    environment = {"PATH": parent.get("PATH") or DEFAULT_PATH, "LANG": "C.UTF-8"}
    if parent.get("HOME"):
        environment["HOME"] = parent["HOME"]
    environment.update(extra)
    return environment


# --- judging what the command did ------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Capture:
    """The first `limit` bytes of a stream, and how many it carried in all."""

    limit: int = CAPTURE_LIMIT
    kept: bytearray = dataclasses.field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]

    @property
    def cut(self) -> bool:
        return self.total > len(self.kept)

    def text(self) -> str:
        """The kept bytes as text; invalid UTF-8 replaced, a character cut at the
        limit dropped."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return decoder.decode(bytes(self.kept), final=not self.cut)


def result_of_exit(
    returncode: int, stdout: _Capture, stderr: _Capture, notes: Sequence[str] = ()
) -> Result:
    """The Result of a finished command: Nagios exit status, text, perfdata, notes.

    The exit status decides, with two exceptions where it contradicts what the
    command says, both of which kept monitors green on broken plugins:

    - exit 0 while the text starts with WARNING, CRITICAL or UNKNOWN (a plugin
      that exits with an unset variable, `exit $STATUS_UNKNOWN`) is `warn`,
      naming the contradiction; any other contradiction is named only;
    - exit 1 after an uncaught Python exception (the interpreter's own exit
      status, not a WARNING the plugin chose) fails with reason `unknown`.
    """
    plugin = parse_plugin_output(stdout.text())
    error_text = stderr.text().strip()
    status = _NAGIOS_STATUS.get(returncode, Status.FAIL)
    reason = None
    if status is Status.FAIL:
        reason = Reason.FAILED if returncode == 2 else Reason.UNKNOWN
    lines = [line for line in plugin.text.splitlines() if line.strip()]
    said = _status_word(lines[0]) if lines else None
    crash = _uncaught_exception(error_text) if returncode == 1 else None
    if crash is not None:
        status, reason = Status.FAIL, Reason.UNKNOWN
        lines.append(f"the command crashed with {crash} (exit status 1)")
    elif said is not None and _WORD_EXIT[said] != returncode and 0 <= returncode <= 3:
        if returncode == 0:
            status = Status.WARN
        lines.append(f"the output says {said} but the exit status is {returncode}")
    elif returncode not in _NAGIOS_STATUS or not lines:
        lines.append(_describe_exit(returncode))
    if plugin.perfdata:
        lines.append("perfdata: " + " ".join(item.raw for item in plugin.perfdata))
    if error_text:
        lines.append(f"stderr: {error_text}")
    notes = [
        *notes,
        *(
            f"captured {capture.limit} of {capture.total} bytes of {name}"
            for name, capture in (("stdout", stdout), ("stderr", stderr))
            if capture.cut
        ),
    ]
    observed = plugin.observed
    value = observed.value if observed else None
    return Result(
        status,
        _fit("\n".join(lines), f" ({'; '.join(notes)})" if notes else ""),
        observed_value=value,
        observed_unit=(observed.unit or None) if observed and value is not None else None,
        reason=reason,
    )


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    # The shell's (and env's, xargs', timeout's) words for these two: the
    # program was never run, which is not the target's failure.
    if returncode == 126:
        return "exit status 126: a program could not be run (not executable?)"
    if returncode == 127:
        return "exit status 127: command not found"
    return f"exit status {returncode}"


def _status_word(first_line: str) -> str | None:
    """The Nagios state a plugin's first line starts with (after an optional
    service name: `DISK CRITICAL - …`, `HTTP OK: …`), if any."""
    match = _STATUS_WORD.match(first_line)
    return match.group(1) if match else None


def _uncaught_exception(stderr: str) -> str | None:
    """`Type: message` when stderr ends with a Python traceback, else None."""
    lines = stderr.splitlines()
    if not lines or _TRACEBACK not in lines:
        return None
    last = lines[-1].strip()
    return last if _EXCEPTION_LINE.match(last) else None


def _fit(text: str, note: str) -> str:
    """`text` cut so that it and `note` fit the output limit together, at a character."""
    room = OUTPUT_LIMIT - len(note.encode()) - len(" …".encode())
    encoded = text.encode()
    if len(encoded) + len(note.encode()) <= OUTPUT_LIMIT:
        return text + note
    return encoded[:room].decode("utf-8", "ignore") + " …" + note


# --- running the command ---------------------------------------------------------------


class _Command:
    """A started command: its output as it comes, its exit, and its process group.

    The exit is watched through a pidfd (polled where there is none) and handled
    on the event loop whatever the probe's task is doing: the leftovers of the
    group are killed while the command is still a zombie (so its pid, which is
    the group's id, cannot have been reused), then the command is reaped.
    """

    def __init__(self, process: subprocess.Popen[bytes], stdout_fd: int, stderr_fd: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.process = process
        self.pid = process.pid
        self.exited: asyncio.Future[int] = self.loop.create_future()
        self.drained: asyncio.Future[None] = self.loop.create_future()
        self.stdout = _Capture()
        self.stderr = _Capture()
        #: What the output should say about how the command ended, beyond its status.
        self.notes: list[str] = []
        self._streams: dict[int, _Capture] = {stdout_fd: self.stdout, stderr_fd: self.stderr}
        for fd in self._streams:
            os.set_blocking(fd, False)
            self.loop.add_reader(fd, self._read, fd)
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.loop.call_soon(self._poll_exit)
        else:
            self.loop.add_reader(self._pidfd, self._on_exit)

    @classmethod
    def start(cls, argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> _Command:
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        try:
            # The command is the operator's, from the config file.
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout_write,
                stderr=stderr_write,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            os.close(stdout_read)
            os.close(stderr_read)
            raise
        finally:
            os.close(stdout_write)
            os.close(stderr_write)
        return cls(process, stdout_read, stderr_read)

    @property
    def returncode(self) -> int:
        return self.exited.result()

    async def finish(self) -> None:
        """Wait for the command to exit and its output to end.

        Once the command has exited, its output is awaited only `DRAIN_GRACE`
        more: only a process that left its group (setsid) can still hold the
        pipes, and the verdict is the command's, not its escapee's. Which
        process held them is noted (`notes`), as it may be a leftover that
        piles up run after run.
        """
        await asyncio.shield(self.exited)
        if self._streams:
            await asyncio.wait({self.drained}, timeout=DRAIN_GRACE)
        if self._streams:
            held = {
                name: os.fstat(fd).st_ino
                for fd, name in ((fd, self._name_of(fd)) for fd in self._streams)
            }
            holders = await asyncio.to_thread(_pipe_holders, set(held.values()))
            by_holders: dict[tuple[tuple[int, str], ...], list[str]] = {}
            for name, inode in held.items():
                by_holders.setdefault(tuple(sorted(holders.get(inode, []))), []).append(name)
            for who, names in by_holders.items():
                self.notes.append(_describe_holders(" and ".join(names), who))

    def _name_of(self, fd: int) -> str:
        return "stdout" if self._streams[fd] is self.stdout else "stderr"

    async def stop(self) -> None:
        """Make the command's group go away: SIGTERM, SIGKILL after a grace, reap.

        Returns once the command is reaped. Cancelled again meanwhile (the
        adapter is stopping), it returns early; the exit watch still reaps.
        """
        try:
            if not self.exited.done():
                self._signal_group(signal.SIGTERM)
                await asyncio.wait({self.exited}, timeout=KILL_GRACE)
            if not self.exited.done():
                self._signal_group(signal.SIGKILL)
                # Unbounded: a process in uninterruptible sleep outlives SIGKILL
                # for a while, and until it is reaped the runner reports the
                # check as still running rather than start another.
                await asyncio.wait({self.exited})
        except asyncio.CancelledError:
            if not self.exited.done():
                self._signal_group(signal.SIGKILL)

    def close(self) -> None:
        """Stop reading the command's output."""
        for fd in list(self._streams):
            self._close_stream(fd)

    def _read(self, fd: int) -> None:
        try:
            chunk = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            self._streams[fd].add(chunk)
        else:
            self._close_stream(fd)

    def _close_stream(self, fd: int) -> None:
        if self._streams.pop(fd, None) is None:
            return
        self.loop.remove_reader(fd)
        os.close(fd)
        if not self._streams and not self.drained.done():
            self.drained.set_result(None)

    def _poll_exit(self) -> None:
        if not _has_exited(self.pid):
            self.loop.call_later(0.02, self._poll_exit)
        else:
            self._on_exit()

    def _on_exit(self) -> None:
        if self.exited.done():
            return
        if not _has_exited(self.pid):
            return  # a spurious wake-up: the watch stays on
        # The command is a zombie now: its group id is still reserved, so this
        # reaches only what it left running.
        self._signal_group(signal.SIGKILL)
        try:
            pid, wait_status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: its status is lost
            pid, wait_status = self.pid, 0xFF00
        if pid == 0:
            return  # not yet exited after all; the watch stays on
        if self._pidfd is not None:
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        returncode = os.waitstatus_to_exitcode(wait_status)
        self.process.returncode = returncode  # the Popen object knows it was reaped
        if not self.exited.done():
            self.exited.set_result(returncode)

    def _signal_group(self, signum: int) -> None:
        # Only called before the command is reaped: until then its pid, the
        # group's id, cannot have been given to another process.
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone, or what is left is not ours to signal


def _pipe_holders(inodes: set[int], proc: str = "/proc") -> dict[int, list[tuple[int, str]]]:
    """Which processes (pid, name) hold a pipe end of each of `inodes` open.
    Blocking: reads every process's descriptors; call it in a thread."""
    wanted = {f"pipe:[{inode}]": inode for inode in inodes}
    found: dict[int, list[tuple[int, str]]] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            links = {
                os.readlink(f"{proc}/{entry}/fd/{fd}") for fd in os.listdir(f"{proc}/{entry}/fd")
            }
            holding = [wanted[link] for link in links if link in wanted]
            if holding:
                with open(f"{proc}/{entry}/comm", "rb") as stream:
                    name = stream.read().rstrip(b"\n").decode("utf-8", "replace")
                for inode in holding:
                    found.setdefault(inode, []).append((int(entry), name))
        except OSError:
            continue  # gone, or not ours to read
    return found


def _describe_holders(streams: str, holders: Sequence[tuple[int, str]]) -> str:
    """E.g. `stdout and stderr held open by sleep (pid 4242), which the command
    started, 0.5s after it exited: not read further`."""
    if not holders:
        return f"{streams} still open {DRAIN_GRACE:g}s after the command exited: not read further"
    shown = ", ".join(f"{name} (pid {pid})" for pid, name in holders[:3])
    more = f" and {len(holders) - 3} more" if len(holders) > 3 else ""
    return (
        f"{streams} held open by {shown}{more}, which the command started, "
        f"{DRAIN_GRACE:g}s after it exited: not read further"
    )


def _has_exited(pid: int) -> bool:
    """Whether the child `pid` has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _describe_start_error(exc: OSError, program: str, cwd: str | None, path: str) -> str:
    if cwd is not None and exc.filename == cwd:
        if exc.errno == errno.ENOENT:
            return f"cannot run {program}: working directory {cwd} does not exist"
        return f"cannot run {program}: working directory {cwd}: {exc.strerror}"
    if exc.errno == errno.ENOENT:
        if "/" in program:
            return f"command not found: {program}"
        return f"command not found: {program} (PATH={path})"
    if exc.errno == errno.EACCES:
        if os.path.isdir(program):
            return f"cannot run {program}: it is a directory"
        if os.path.isfile(program) and not os.access(program, os.X_OK):
            return f"cannot run {program}: not executable (no x permission)"
        return f"cannot run {program}: permission denied"
    return f"cannot run {program}: {exc.strerror or exc}"
