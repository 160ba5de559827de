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

from probes.base import Probe, Reason, Result, Status
from probes.perfdata import PerfValue, PluginOutput, parse_perfdata, parse_plugin_output
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

#: Bytes kept of each of stdout and stderr; the rest is read and counted only.
CAPTURE_LIMIT = 4096
#: Bytes of output a Result carries, notes included (the runner's cap too).
OUTPUT_LIMIT = 4096
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
_READ_SIZE = 65536
_ENV_NAME = re.compile(r"^[^=\0]+$")


class ExecProbe(Probe):
    """Run a command; its exit status is the check's: 0 pass, 1 warn, 2 fail, else unknown."""

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
        command = self.config.command
        if isinstance(command, str):
            return [SHELL, "-c", command]
        return list(command)

    async def check(self) -> Result:
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
        try:
            await command.finish()
        except BaseException:
            await command.stop()
            raise
        finally:
            command.close()
        return result_of_exit(command.returncode, command.stdout, command.stderr)


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


def result_of_exit(returncode: int, stdout: _Capture, stderr: _Capture) -> Result:
    """The Result of a finished command: Nagios exit status, text, perfdata, notes."""
    plugin = parse_plugin_output(stdout.text())
    status = _NAGIOS_STATUS.get(returncode, Status.FAIL)
    reason = None
    if status is Status.FAIL:
        reason = Reason.FAILED if returncode == 2 else Reason.UNKNOWN
    lines = [line for line in plugin.text.splitlines() if line.strip()]
    if returncode not in _NAGIOS_STATUS or not lines:
        lines.append(_describe_exit(returncode))
    if plugin.perfdata:
        lines.append("perfdata: " + " ".join(item.raw for item in plugin.perfdata))
    error_text = stderr.text().strip()
    if error_text:
        lines.append(f"stderr: {error_text}")
    notes = [
        f"captured {capture.limit} of {capture.total} bytes of {name}"
        for name, capture in (("stdout", stdout), ("stderr", stderr))
        if capture.cut
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
    return f"exit status {returncode}"


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
        """Wait for the command to exit and its output to end."""
        await asyncio.shield(self.exited)
        if self._streams:
            await asyncio.wait({self.drained}, timeout=DRAIN_GRACE)

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
        return f"cannot run {program}: permission denied"
    return f"cannot run {program}: {exc.strerror or exc}"
