"""The shared process-table snapshot: what one scan records, and how scans are shared."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from probes.process_table import (
    ADAPTER_SESSIONS,
    KERNEL_NAME_MAX,
    ProcessRecord,
    ProcessTable,
    Snapshot,
    command_line,
    kernel_name,
    scan_proc,
    scan_processes,
    scan_psutil,
)
from tests.conftest import ROOT
from tests.probes.conftest import Spawn, proc_bytes, proc_state, wait_for

SLEEP = shutil.which("sleep") or "/bin/sleep"

# --- real processes -------------------------------------------------------------------


def named_sleep(directory: Path, name: str) -> str:
    """A copy of /bin/sleep whose kernel process name is `name` (cut to 15)."""
    program = directory / name
    shutil.copy(SLEEP, program)
    return str(program)


def wait_until_zombie(pid: int) -> None:
    deadline = time.monotonic() + 10
    while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"pid {pid} did not become a zombie"
        time.sleep(0.01)


def record_of(snapshot: Snapshot, pid: int) -> ProcessRecord:
    (record,) = [record for record in snapshot.processes if record.pid == pid]
    return record


Scan = Callable[[], Snapshot]
# Linux is read from /proc directly; psutil is the reader elsewhere. Both must
# see the same, so every test of what a scan records runs with both.
SCANNERS = [pytest.param(scan_proc, id="proc"), pytest.param(scan_psutil, id="psutil")]


def test_scan_processes_reads_proc_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[str] = []
    monkeypatch.setattr("probes.process_table.scan_psutil", lambda: used.append("psutil"))

    scan_processes()

    assert used == []


@pytest.mark.parametrize("scan", SCANNERS)
def test_scan_records_a_child_process(spawn: Spawn, scan: Scan) -> None:
    marker = f"table-test-{uuid.uuid4().hex}"
    child = spawn(sys.executable, "-c", "import time; time.sleep(60)", marker)

    snapshot = scan()

    record = record_of(snapshot, child.pid)
    assert record.ppid == os.getpid()
    assert record.name == psutil.Process(child.pid).name()[:KERNEL_NAME_MAX]
    assert record.cmdline == (sys.executable, "-c", "import time; time.sleep(60)", marker)
    assert record.uid == os.getuid()
    assert record.username == pwd.getpwuid(os.getuid()).pw_name
    assert record.zombie is False
    assert record.command == f"{sys.executable} -c import time; time.sleep(60) {marker}"


@pytest.mark.parametrize("scan", SCANNERS)
def test_scan_knows_which_process_is_the_adapter(scan: Scan) -> None:
    snapshot = scan()

    assert snapshot.own_pid == os.getpid()
    assert record_of(snapshot, os.getpid()).cmdline == tuple(psutil.Process().cmdline())


@pytest.mark.parametrize("scan", SCANNERS)
def test_scan_knows_the_sessions_of_the_adapters_commands(scan: Scan) -> None:
    marker = f"table-test-{uuid.uuid4().hex}"
    command = subprocess.Popen(
        [SLEEP, "60"], start_new_session=True, env={"MARKER": marker}, stdin=subprocess.DEVNULL
    )
    ADAPTER_SESSIONS.add(command.pid)
    try:
        snapshot = scan()
    finally:
        ADAPTER_SESSIONS.discard(command.pid)
        command.kill()
        command.wait()

    record = record_of(snapshot, command.pid)
    assert record.session == command.pid
    assert snapshot.is_adapters(record)
    assert snapshot.is_adapters(record_of(snapshot, os.getpid()))
    assert record_of(snapshot, os.getpid()).session == os.getsid(0)
    assert not scan().own_sessions


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param([], id="none"),
        pytest.param(["", "two  spaces", "tab\there"], id="empty-and-spaced"),
        pytest.param(["ünïcödé", "(paren) )", "not-utf-8-\udcff"], id="odd-text"),
    ],
)
def test_proc_and_psutil_record_the_same(
    spawn: Spawn, tmp_path: Path, arguments: list[str]
) -> None:
    oddly_named = spawn(named_sleep(tmp_path, "odd (name) x)"), "60")
    with_arguments = spawn(sys.executable, "-c", "import time; time.sleep(60)", *arguments)
    zombie = spawn(SLEEP, "60")
    zombie.kill()
    wait_until_zombie(zombie.pid)
    pids = {os.getpid(), oddly_named.pid, with_arguments.pid, zombie.pid}

    from_proc = scan_proc(lambda: sorted(pids)).processes
    from_psutil = tuple(record for record in scan_psutil().processes if record.pid in pids)

    assert len(from_proc) == len(pids)
    assert from_proc == from_psutil


@pytest.mark.parametrize("scan", SCANNERS)
def test_scan_keeps_the_kernel_name_not_psutils_longer_one(
    spawn: Spawn, tmp_path: Path, scan: Scan
) -> None:
    long_name = f"sleeper-{uuid.uuid4().hex[:14]}"  # 22 characters
    child = spawn(named_sleep(tmp_path, long_name), "60")

    record = record_of(scan(), child.pid)

    assert psutil.Process(child.pid).name() == long_name  # psutil lengthens it
    assert record.name == long_name[:KERNEL_NAME_MAX]


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        pytest.param("überwachungsjob", "überwachungsjo", id="cut-after-a-whole-character"),
        pytest.param("ääääääää", "äääääää\udcc3", id="cut-in-half-a-character"),
        pytest.param("監視ジョブ名前", "監視ジョブ", id="three-byte-characters"),
        pytest.param("short", "short", id="short"),
    ],
)
def test_scan_keeps_the_name_as_the_kernel_stores_it_in_bytes(
    spawn: Spawn, tmp_path: Path, name: str, kept: str
) -> None:
    child = spawn(named_sleep(tmp_path, name), "60")
    wait_for(lambda: proc_bytes(child.pid, "comm") != b"", "the copy of sleep to start")

    record = record_of(scan_proc(lambda: [child.pid]), child.pid)

    assert proc_bytes(child.pid, "comm").rstrip(b"\n") == kept.encode("utf-8", "surrogateescape")
    assert record.name == kept == kernel_name(name)


@pytest.mark.parametrize(
    ("raw", "command"),
    [
        pytest.param(b"sleep\x0060\x00", "sleep 60", id="arguments"),
        pytest.param(
            b"nginx: worker process\x00\x00\x00\x00", "nginx: worker process", id="nul-padded-title"
        ),
        pytest.param(
            b"postgres: checkpointer   \x00",
            "postgres: checkpointer   ",
            id="spaces-before-the-nul-stay",
        ),
        pytest.param(b"svc: idle ", "svc: idle", id="no-nul-one-trailing-space-goes"),
        pytest.param(b"a\x00\x00b\x00", "a  b", id="an-empty-argument-in-between"),
        pytest.param(b"sh\x00-c\x00one\ntwo\x00", "sh -c one two", id="newline-is-a-space"),
        pytest.param(b"", "[kworker]", id="none-is-the-name-in-brackets"),
        pytest.param(b"\x00\x00", "[kworker]", id="only-padding-is-the-name-in-brackets"),
        pytest.param(b"caf\xe9\x00", "caf\udce9", id="not-utf-8"),
    ],
)
def test_command_line_is_what_pgrep_f_matches(raw: bytes, command: str) -> None:
    assert command_line(raw, "kworker") == command


def test_a_zombies_command_line_is_its_name_defunct() -> None:
    assert command_line(b"", "sleep", zombie=True) == "[sleep] <defunct>"


@pytest.mark.parametrize(
    ("mode", "title", "shown"),
    [
        # The padding is what a `$` anchor must not see.
        pytest.param("title", "svc: worker process", "svc: worker process", id="nul-padded"),
        # Spaces before the area's last NUL are part of the title for ps and pgrep too.
        pytest.param("spaced", "svc: idle", "svc: idle ", id="space-padded"),
    ],
)
def test_scan_sees_a_rewritten_title_as_ps_shows_it(
    spawn: Spawn, shapes: Path, mode: str, title: str, shown: str
) -> None:
    child = spawn(shapes, mode, title, "x" * 180)
    wait_for(lambda: proc_bytes(child.pid, "cmdline").startswith(title.encode()), "the new title")

    record = record_of(scan_proc(lambda: [child.pid]), child.pid)

    assert len(proc_bytes(child.pid, "cmdline")) > len(title) + 100  # the old area, padded
    assert record.command is not None and record.command.startswith(shown)
    assert record.command.strip() == title
    if mode == "title":
        assert record.command == title


LEADER_EXITS_PY = (
    "import ctypes, threading, time\n"
    "threading.Thread(target=time.sleep, args=(60,)).start()\n"
    "ctypes.CDLL(None).pthread_exit(None)\n"
)


@pytest.fixture(params=["c", "python"])
def leader_exited(request: pytest.FixtureRequest, spawn: Spawn, tmp_path: Path) -> tuple[int, str]:
    """A process whose main thread exited while another runs on; its pid and a
    word of its arguments."""
    word = f"leader-{uuid.uuid4().hex[:8]}"
    if request.param == "c":
        child = spawn(request.getfixturevalue("shapes"), "leader", word)
    else:
        child = spawn(sys.executable, "-c", LEADER_EXITS_PY, word)
    wait_for(lambda: proc_state(child.pid) == "Z", "the main thread to exit")
    return child.pid, word


def test_a_process_whose_main_thread_exited_runs(leader_exited: tuple[int, str]) -> None:
    pid, word = leader_exited

    record = record_of(scan_proc(lambda: [pid]), pid)

    assert proc_state(pid) == "Z"  # what ps shows for its leader
    assert psutil.Process(pid).num_threads() > 1
    assert record.zombie is False
    # Its own arguments are gone with its main thread; a live thread still has them.
    assert proc_bytes(pid, "cmdline") == b""
    assert record.command is not None and record.command.endswith(f" {word}")


def test_a_process_whose_last_thread_exited_is_a_zombie(spawn: Spawn, shapes: Path) -> None:
    child = spawn(shapes, "leader")
    wait_for(lambda: proc_state(child.pid) == "Z", "the main thread to exit")
    child.kill()  # ends the live thread too, and nobody waits yet: nothing is left running
    wait_for(lambda: psutil.Process(child.pid).num_threads() == 1, "the last thread to exit")

    record = record_of(scan_proc(lambda: [child.pid]), child.pid)

    assert record.zombie is True


def kernel_thread_visible() -> bool:
    return proc_bytes(2, "comm") == b"kthreadd\n"


@pytest.mark.skipif(
    not kernel_thread_visible(), reason="no kernel thread visible (own PID namespace)"
)
def test_a_kernel_thread_is_running_under_its_name() -> None:
    record = record_of(scan_proc(lambda: [2]), 2)

    assert (record.name, record.zombie, record.cmdline, record.command) == (
        "kthreadd",
        False,
        (),
        "[kthreadd]",
    )


@pytest.mark.parametrize("scan", SCANNERS)
def test_scan_marks_a_zombie(spawn: Spawn, scan: Scan) -> None:
    child = spawn(SLEEP, "60")
    child.kill()  # not waited for: a zombie until the fixture reaps it
    wait_until_zombie(child.pid)

    record = record_of(scan(), child.pid)

    assert record.zombie is True
    assert record.name == "sleep"
    assert record.cmdline == ()  # freed by the kernel, which is not "access denied"


def test_scan_skips_processes_that_vanish_during_the_scan(
    monkeypatch: pytest.MonkeyPatch, spawn: Spawn
) -> None:
    gone = spawn(SLEEP, "60")
    gone.kill()
    gone.wait()
    # The pid list is read first, the processes one by one after it: list a
    # process that has exited by the time its turn comes.
    monkeypatch.setattr(psutil, "pids", lambda: [os.getpid(), gone.pid])

    from_proc = scan_proc(lambda: [os.getpid(), gone.pid])
    from_psutil = scan_psutil()

    assert [record.pid for record in from_proc.processes] == [os.getpid()]
    assert [record.pid for record in from_psutil.processes] == [os.getpid()]


@pytest.mark.parametrize(
    ("cmdline", "command", "expected"),
    [
        pytest.param(("sh", "-c", "sleep 1"), None, "sh -c sleep 1", id="derived"),
        pytest.param(("sh",), "given as read", "given as read", id="given"),
        pytest.param(None, None, None, id="denied"),
    ],
)
def test_a_records_command_comes_from_its_cmdline_unless_given(
    cmdline: tuple[str, ...] | None, command: str | None, expected: str | None
) -> None:
    record = ProcessRecord(
        pid=5, ppid=1, name="sh", cmdline=cmdline, username="app", uid=1000, command=command
    )

    assert record.command == expected


# --- who is visible ---------------------------------------------------------------------


def proc(pid: int, ppid: int | None, name: str = "app") -> ProcessRecord:
    return ProcessRecord(pid=pid, ppid=ppid, name=name, cmdline=(name,), username="app", uid=1000)


@pytest.mark.parametrize(
    ("processes", "own_pid", "only_adapter"),
    [
        pytest.param([proc(1, 0, "health-adapter")], 1, True, id="adapter-is-pid-1"),
        pytest.param(
            [proc(1, 0, "health-adapter"), proc(9, 1, "sh")], 1, True, id="pid-1-with-a-child"
        ),
        pytest.param(
            [proc(1, 0, "tini"), proc(7, 1, "health-adapter"), proc(30, 7, "curl")],
            7,
            True,
            id="under-an-init-wrapper-with-a-child",
        ),
        pytest.param(
            [proc(1, 0, "pause"), proc(7, 0, "health-adapter"), proc(12, 0, "nginx")],
            7,
            False,
            id="shared-pod-namespace",
        ),
        pytest.param(
            [proc(1, 0, "tini"), proc(7, 1, "health-adapter"), proc(8, 1, "worker")],
            7,
            False,
            id="a-sibling-is-visible",
        ),
        pytest.param(
            [proc(7, 0, "health-adapter"), proc(40, None, "?")],
            7,
            False,
            id="an-unreadable-process-is-not-the-adapters",
        ),
    ],
)
def test_only_adapter_visible(
    processes: list[ProcessRecord], own_pid: int, only_adapter: bool
) -> None:
    snapshot = Snapshot(processes=tuple(processes), own_pid=own_pid)

    assert snapshot.only_adapter_visible() is only_adapter


def test_a_real_table_with_a_process_outside_the_family_shows_more_than_the_adapter() -> None:
    # sh starts a sleep and exits: the sleep is reparented away from this
    # process, so it is neither its ancestor nor its descendant.
    starter = subprocess.run(
        ["sh", "-c", f"{SLEEP} 60 >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    orphan = int(starter.stdout)
    try:
        snapshot = scan_processes()
        assert orphan in {record.pid for record in snapshot.processes}
        assert orphan not in snapshot.adapter_family()
        assert snapshot.only_adapter_visible() is False
    finally:
        os.kill(orphan, 9)


OWN_NAMESPACE_SCAN = (
    "from probes.process_table import scan_processes; "
    "snapshot = scan_processes(); "
    "print(snapshot.own_pid, snapshot.only_adapter_visible())"
)


def can_unshare_pid() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None


@pytest.mark.skipif(not can_unshare_pid(), reason="needs root and unshare --pid")
@pytest.mark.parametrize(
    ("wrapper", "own_pid"),
    [
        pytest.param([], "1", id="as-pid-1"),
        pytest.param(["sh", "-c", '"$0" "$@"; exit $?'], "2", id="under-an-init-wrapper"),
    ],
)
def test_a_real_table_in_a_pid_namespace_of_its_own_shows_only_the_adapter(
    wrapper: list[str], own_pid: str
) -> None:
    done = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            *wrapper,
            sys.executable,
            "-c",
            OWN_NAMESPACE_SCAN,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [own_pid, "True"]


# --- sharing scans ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class GatedScan:
    """A scan that blocks until released, so tests can arrive while it runs."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[int] = []
        self.snapshot = snapshot or Snapshot(processes=())

    def __call__(self) -> Snapshot:
        self.threads.append(threading.get_ident())
        self.entered.set()
        if not self.release.wait(timeout=10):
            raise TimeoutError("the test never released the scan")
        return self.snapshot


async def wait_for_scan(scan: GatedScan) -> None:
    assert await asyncio.to_thread(scan.entered.wait, 10)


async def test_concurrent_callers_share_one_running_scan() -> None:
    scan = GatedScan()
    table = ProcessTable(scan)

    callers = [asyncio.create_task(table.snapshot()) for _ in range(5)]
    await wait_for_scan(scan)
    late_caller = asyncio.create_task(table.snapshot())
    await asyncio.sleep(0)
    scan.release.set()
    snapshots = await asyncio.gather(*callers, late_caller)

    assert table.scans == 1
    assert all(snapshot is scan.snapshot for snapshot in snapshots)


async def test_scan_runs_in_a_worker_thread() -> None:
    scan = GatedScan()
    scan.release.set()

    await ProcessTable(scan).snapshot()

    assert scan.threads and scan.threads[0] != threading.get_ident()


async def test_finished_snapshot_is_reused_within_max_age() -> None:
    clock = FakeClock()
    scans: list[Snapshot] = []

    def counting_scan() -> Snapshot:
        scans.append(Snapshot(processes=()))
        return scans[-1]

    table = ProcessTable(counting_scan, max_age=0.25, clock=clock)

    first = await table.snapshot()
    clock.now += 0.2
    reused = await table.snapshot()
    clock.now += 0.1  # 0.3 s after the scan finished
    fresh = await table.snapshot()

    assert reused is first
    assert fresh is not first
    assert table.scans == len(scans) == 2


async def test_max_age_counts_from_when_the_scan_finished() -> None:
    clock = FakeClock()

    def slow_scan() -> Snapshot:
        clock.now += 1.0  # a scan longer than max_age still serves its round
        return Snapshot(processes=())

    table = ProcessTable(slow_scan, max_age=0.25, clock=clock)

    await table.snapshot()
    await table.snapshot()

    assert table.scans == 1


async def test_failed_scan_reaches_every_caller_and_is_not_cached() -> None:
    attempts = 0

    def failing_then_working_scan() -> Snapshot:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("/proc is not mounted")
        return Snapshot(processes=())

    table = ProcessTable(failing_then_working_scan)

    outcomes = await asyncio.gather(table.snapshot(), table.snapshot(), return_exceptions=True)
    recovered = await table.snapshot()

    assert [str(outcome) for outcome in outcomes] == ["/proc is not mounted"] * 2
    assert recovered.processes == ()
    assert table.scans == 2


async def test_a_cancelled_caller_leaves_the_scan_to_the_others() -> None:
    scan = GatedScan()
    table = ProcessTable(scan)

    impatient = asyncio.create_task(table.snapshot())
    patient = asyncio.create_task(table.snapshot())
    await wait_for_scan(scan)
    impatient.cancel()
    await asyncio.sleep(0)
    scan.release.set()

    assert await patient is scan.snapshot
    assert impatient.cancelled()
    assert table.scans == 1


async def test_aclose_waits_for_a_running_scan() -> None:
    scan = GatedScan()
    table = ProcessTable(scan)
    caller = asyncio.create_task(table.snapshot())
    await wait_for_scan(scan)
    caller.cancel()

    closing = asyncio.create_task(table.aclose())
    await asyncio.sleep(0.01)
    assert not closing.done()
    scan.release.set()
    await asyncio.wait_for(closing, timeout=10)


async def test_default_table_scans_the_real_process_table() -> None:
    table = ProcessTable()

    snapshot = await table.snapshot()

    assert os.getpid() in {record.pid for record in snapshot.processes}
    assert table.scans == 1


class _DyingProcess:
    """A process caught mid-exit by a scan: what psutil returns when a process turns
    into a zombie, or vanishes, between two reads. Reality offers no way to time that."""

    def __init__(self, now: str | Exception) -> None:
        self.now = now
        self.info = {
            "pid": 4242,
            "ppid": 1,
            "name": "worker",
            "cmdline": None,
            "uids": None,
            "status": psutil.STATUS_SLEEPING,
        }

    def status(self) -> str:
        if isinstance(self.now, Exception):
            raise self.now
        return self.now


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(psutil.STATUS_ZOMBIE, "zombie", id="became-a-zombie"),
        pytest.param(psutil.NoSuchProcess(4242), "gone", id="vanished"),
        pytest.param(psutil.AccessDenied(4242), "denied", id="really-denied"),
        pytest.param(psutil.STATUS_SLEEPING, "denied", id="still-running"),
    ],
)
def test_a_process_dying_during_the_scan_is_not_access_denied(
    now: str | Exception, expected: str
) -> None:
    from probes.process_table import _settle_unread

    process = _DyingProcess(now)
    info = _settle_unread(process, dict(process.info))  # type: ignore[arg-type]
    outcome = (
        "gone" if info is None else "zombie" if info["status"] == psutil.STATUS_ZOMBIE else "denied"
    )
    assert outcome == expected


class _DyingProcFiles:
    """The /proc files of a process caught mid-exit by the /proc reader: its stat
    says running, its arguments read as nothing (or are refused), and its stat
    read again says what it is now. Reality offers no way to time that either."""

    def __init__(self, cmdline: bytes | Exception, stat_now: bytes | Exception) -> None:
        self.files: dict[str, list[bytes | Exception]] = {
            "stat": [b"4242 (worker) S 1 4242", stat_now],
            "cmdline": [cmdline],
            "status": [b"Name:\tworker\nUid:\t1000\t1000\t1000\t1000\n"],
        }

    def __call__(self, path: str) -> bytes:
        content = self.files[path.rsplit("/", 1)[1]].pop(0)
        if isinstance(content, Exception):
            raise content
        return content


@pytest.mark.parametrize(
    ("cmdline", "stat_now", "zombie", "arguments"),
    [
        pytest.param(b"", b"4242 (worker) Z 1 4242", True, (), id="became-a-zombie"),
        pytest.param(
            PermissionError(13, "denied"),
            b"4242 (worker) Z 1 4242",
            True,
            (),
            id="refused-then-a-zombie",
        ),
        pytest.param(
            PermissionError(13, "denied"),
            b"4242 (worker) S 1 4242",
            False,
            None,
            id="really-denied",
        ),
        pytest.param(b"", b"4242 (worker) S 1 4242", False, (), id="no-arguments-kernel-thread"),
    ],
)
def test_proc_reader_tells_a_dying_process_from_a_denied_one(
    cmdline: bytes | Exception, stat_now: bytes, zombie: bool, arguments: tuple[str, ...] | None
) -> None:
    from probes.process_table import _read_proc

    record = _read_proc(4242, str, read=_DyingProcFiles(cmdline, stat_now))

    assert (record.zombie, record.cmdline) == (zombie, arguments)


def test_proc_reader_leaves_out_a_process_gone_between_reads() -> None:
    from probes.process_table import _read_proc

    with pytest.raises(FileNotFoundError):
        _read_proc(4242, str, read=_DyingProcFiles(b"", FileNotFoundError(2, "gone")))


HIDEPID_SCAN = """
import json, sys
from probes.process_table import scan_proc
snapshot = scan_proc()
records = [r for r in snapshot.processes if r.pid == int(sys.argv[1])]
print(json.dumps([snapshot.hidepid, [(r.name, r.cmdline, r.uid) for r in records]]))
"""


def can_remount_proc() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and can_run_as_nobody()


def can_run_as_nobody() -> bool:
    # The scan runs as another user: it must be able to read this checkout.
    return all(os.stat(part).st_mode & 0o005 == 0o005 for part in (ROOT, ROOT.parent))


@pytest.mark.skipif(not can_remount_proc(), reason="needs root and unshare --mount --pid")
@pytest.mark.parametrize(
    ("hidepid", "seen"),
    [
        pytest.param("noaccess", [[None, None, None]], id="noaccess-unreadable"),
        pytest.param("invisible", [], id="invisible-hidden"),
    ],
)
def test_scan_under_hidepid_reports_other_users_processes_as_unreadable_or_hidden(
    hidepid: str, seen: list[list[None]]
) -> None:
    # In a PID and mount namespace of its own: /proc remounted with hidepid, a
    # root `sleep`, and the scan run as nobody, who may not look at it.
    script = (
        f"mount -o remount,hidepid={hidepid} /proc && sleep 30 & "
        "sleep 0.3; exec setpriv --reuid=65534 --regid=65534 --clear-groups "
        f'"$0" -c "$1" "$(pgrep -x sleep | head -n 1)"'
    )
    done = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
            script,
            sys.executable,
            HIDEPID_SCAN,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [hidepid, seen]
