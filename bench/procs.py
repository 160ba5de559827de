"""Child processes of the harness, and what /proc says about them.

Every process is started through a `Supervisor`, in a session of its own (so a
Ctrl-C in the terminal reaches only the harness, which then stops them in
order), and stopped by its pid: SIGTERM, then SIGKILL when it does not exit.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
STOP_TIMEOUT = 5.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Supervisor:
    """Starts child processes and stops every one of them when it is closed."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: list[subprocess.Popen[Any]] = []
        self._logs: dict[int, Path] = {}

    def start(
        self,
        argv: Sequence[str],
        *,
        log: str | None = None,
        cpus: set[int] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[Any]:
        """Start `argv`; its stderr (and stdout unless given) goes to `log_dir/<log>.log`."""
        log_file = open(self.log_dir / f"{log}.log", "ab") if log else subprocess.DEVNULL
        try:
            # A Ctrl-C between the fork and the append would leave a child no one stops.
            with _stop_signals_deferred():
                child = subprocess.Popen(
                    list(argv),
                    stdin=stdin,
                    stdout=log_file if stdout is None else stdout,
                    stderr=log_file,
                    start_new_session=True,
                    env=env,
                    preexec_fn=_pin(cpus) if cpus else None,
                )
                self._children.append(child)
        finally:
            if not isinstance(log_file, int):
                log_file.close()
        if log:
            self._logs[child.pid] = self.log_dir / f"{log}.log"
        return child

    def wait_listening(
        self, port: int, child: subprocess.Popen[Any], timeout: float = 30.0
    ) -> None:
        """Return once something accepts connections on `port`; fail if `child` exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise RuntimeError(
                    f"pid {child.pid} exited with {child.returncode} "
                    f"before listening on port {port}{self._log_tail(child)}"
                )
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"nothing listens on port {port} after {timeout:g}s")

    def _log_tail(self, child: subprocess.Popen[Any], lines: int = 8) -> str:
        path = self._logs.get(child.pid)
        if path is None or not path.exists():
            return ""
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        return f"; the end of {path}:\n  " + "\n  ".join(tail)

    def stop(self, child: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop one child by its pid and reap it; its exit code."""
        self.stop_many([child], timeout)
        return child.returncode

    def stop_many(
        self, children: Sequence[subprocess.Popen[Any]], timeout: float = STOP_TIMEOUT
    ) -> None:
        """SIGTERM every one, wait for them together, SIGKILL what is left."""
        for child in children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in children:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                child.wait()
            for stream in (child.stdin, child.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        stopped = {id(child) for child in children}
        self._children = [c for c in self._children if id(c) not in stopped]

    def close(self) -> None:
        # A second Ctrl-C (or SIGTERM) must not cut the clean-up short.
        previous = [signal.signal(signum, signal.SIG_IGN) for signum in _STOP_SIGNALS]
        try:
            self.stop_many(list(reversed(self._children)))
        finally:
            for signum, handler in zip(_STOP_SIGNALS, previous, strict=True):
                signal.signal(signum, handler)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _pin(cpus: set[int]) -> Callable[[], None]:
    # Set before exec, so that a Go runtime sizes GOMAXPROCS by it.
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process, all its threads (from /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """Resident set size in MiB (from /proc/PID/statm)."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * PAGE_SIZE / 2**20


class CpuWindow:
    """CPU cores used by a process between `start()` and `stop()`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = 0.0
        self._wall = 0.0
        self.cores = 0.0
        self.seconds = 0.0

    def start(self) -> None:
        self._cpu, self._wall = cpu_seconds(self.pid), time.monotonic()

    def stop(self) -> None:
        self.seconds = cpu_seconds(self.pid) - self._cpu
        self.cores = self.seconds / (time.monotonic() - self._wall)


def machine_busy_seconds() -> float:
    """CPU seconds every CPU of the machine has spent busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    values = [int(value) for value in fields[:8]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of every child it has reaped."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class OtherLoad:
    """How busy the machine was with processes other than the harness and its
    children: on a shared machine, the noise behind every figure."""

    def __init__(self) -> None:
        self._busy = machine_busy_seconds()
        self._own = own_cpu_seconds()
        self._wall = time.monotonic()

    def cores(self) -> float:
        others = (machine_busy_seconds() - self._busy) - (own_cpu_seconds() - self._own)
        return max(0.0, others) / (time.monotonic() - self._wall)


@contextlib.contextmanager
def _stop_signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block, then deliver one that came meanwhile."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, _frame: caught.append(signum))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])
