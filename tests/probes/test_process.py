"""The `process` probe against real child processes, and fakes where reality cannot deny."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

from probes import Reason, Resources, Result, Status
from probes.exec import ExecProbe
from probes.process import ProcessProbe
from probes.process_table import ProcessRecord, ProcessTable, Snapshot
from tests.probes.conftest import Spawn, proc_bytes, proc_state, wait_for

SLEEP = shutil.which("sleep") or "/bin/sleep"
ONLY_ADAPTER_HINT = (
    "only the adapter's own processes are visible; in a pod set shareProcessNamespace: true"
)


@pytest.fixture
def marker() -> str:
    """A word no other process on the machine has in its command line."""
    return f"process-probe-test-{uuid.uuid4().hex}"


@pytest.fixture
def spawn_marked(spawn: Spawn, marker: str) -> Callable[[], subprocess.Popen[bytes]]:
    return lambda: spawn(sys.executable, "-c", "import time; time.sleep(60)", marker)


@pytest.fixture
def unique_sleep(tmp_path: Path) -> str:
    """A copy of sleep whose kernel process name no other process has."""
    program = tmp_path / f"hs-{uuid.uuid4().hex[:12]}"  # 15 characters
    shutil.copy(SLEEP, program)
    return str(program)


async def check(options: dict[str, Any], resources: Resources | None = None) -> Result:
    return await ProcessProbe("worker", options, resources or Resources()).check()


def kill_into_zombie(child: subprocess.Popen[bytes]) -> None:
    child.kill()  # not waited for: a zombie until the fixture reaps it
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"pid {child.pid} did not become a zombie"
        time.sleep(0.01)


def own_username() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({}, "at least one of name, cmdline, pidfile or user", id="no-selector"),
        pytest.param(
            {"min_count": 2},
            "at least one of name, cmdline, pidfile or user",
            id="counts-only",
        ),
        pytest.param(
            {"name": "celery-worker-main"},
            "name 'celery-worker-main' is 18 bytes long, but Linux cuts process "
            "names to 15 bytes (it shows 'celery-worker-m'): match it with cmdline instead "
            "- at `$.name`",
            id="name-longer-than-the-kernel-keeps",
        ),
        pytest.param(
            {"name": "überwachungsjob"},
            "name 'überwachungsjob' is 16 bytes long, but Linux cuts process names to 15 "
            "bytes (it shows 'überwachungsjo'): match it with cmdline instead",
            id="15-characters-16-bytes",
        ),
        pytest.param(
            {"name": "ääääääää"},
            "name 'ääääääää' is 16 bytes long, but Linux cuts process names to 15 bytes "
            "(it keeps 'äääääää' and half of 'ä'): match it with cmdline instead",
            id="8-characters-cut-mid-character",
        ),
        pytest.param(
            {"name": "監視ジョブ名前"},
            "name '監視ジョブ名前' is 21 bytes long, but Linux cuts process names to 15 bytes "
            "(it shows '監視ジョブ'): match it with cmdline instead",
            id="7-cjk-characters-21-bytes",
        ),
        pytest.param({"name": ""}, "length >= 1 - at `$.name`", id="empty-name"),
        pytest.param(
            {"cmdline": "celery ("},
            "invalid regular expression 'celery ('",
            id="bad-regex",
        ),
        pytest.param(
            {"name": "nginx", "min_count": -1},
            "Expected `int` >= 0 - at `$.min_count`",
            id="negative-min-count",
        ),
        pytest.param(
            {"name": "nginx", "max_count": 0},
            "max_count 0 is below min_count 1 (set min_count as well) - at `$.max_count`",
            id="max-below-min",
        ),
        pytest.param(
            {"name": "nginx", "min_count": 3, "max_count": 2},
            "max_count 2 is below min_count 3",
            id="max-below-explicit-min",
        ),
        pytest.param(
            {"name": "nginx", "count": 1},
            "Object contains unknown field `count`",
            id="unknown-key",
        ),
        pytest.param(
            {"name": "nginx", "user": ["a"]}, "- at `$.user`", id="user-of-the-wrong-type"
        ),
    ],
)
def test_invalid_options_are_reported_at_their_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(message)):
        ProcessProbe.parse_options(options)


def test_options_defaults_and_types() -> None:
    options = ProcessProbe.parse_options({"cmdline": "celery .* worker", "user": 1000})

    assert options.cmdline.search("celery -A app worker")
    assert (options.min_count, options.max_count, options.user) == (1, None, 1000)


def test_process_checks_run_together_to_share_a_scan() -> None:
    assert ProcessProbe.jitter is False
    assert not ProcessProbe.is_blocking()


# --- counting real processes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("running", "counts", "status", "reason", "output"),
    [
        pytest.param(
            3,
            {},
            Status.PASS,
            None,
            r"^3 processes match cmdline /[\w-]+/ \(pid ",
            id="three-running",
        ),
        pytest.param(
            3, {"min_count": 3}, Status.PASS, None, "^3 processes match", id="exactly-min"
        ),
        pytest.param(
            3,
            {"min_count": 4},
            Status.FAIL,
            Reason.PROCESS_MISSING,
            r"^3 processes match cmdline /[\w-]+/, expected at least 4$",
            id="fewer-than-min",
        ),
        pytest.param(
            3,
            {"max_count": 2},
            Status.FAIL,
            Reason.PROCESS_COUNT,
            r"^3 processes match cmdline /[\w-]+/, expected at most 2$",
            id="more-than-max",
        ),
        pytest.param(
            3, {"max_count": 3}, Status.PASS, None, "^3 processes match", id="exactly-max"
        ),
        pytest.param(
            0,
            {},
            Status.FAIL,
            Reason.PROCESS_MISSING,
            r"^no process matches cmdline /[\w-]+/, expected at least 1$",
            id="none-running",
        ),
        pytest.param(
            0,
            {"min_count": 0},
            Status.PASS,
            None,
            "^no process matches",
            id="none-running-none-required",
        ),
        pytest.param(
            1,
            {"min_count": 0, "max_count": 0},
            Status.FAIL,
            Reason.PROCESS_COUNT,
            "^1 process matches .*, expected at most 0$",
            id="must-not-run",
        ),
    ],
)
async def test_counts_matching_processes(
    spawn_marked: Callable[[], subprocess.Popen[bytes]],
    marker: str,
    running: int,
    counts: dict[str, int],
    status: Status,
    reason: Reason | None,
    output: str,
) -> None:
    for _ in range(running):
        spawn_marked()

    result = await check({"cmdline": marker, **counts})

    assert (result.status, result.reason) == (status, reason)
    assert re.search(output, result.output), result.output
    assert (result.observed_value, result.observed_unit) == (running, "processes")


async def test_pass_output_names_the_pids(
    spawn_marked: Callable[[], subprocess.Popen[bytes]], marker: str
) -> None:
    children = [spawn_marked() for _ in range(2)]

    result = await check({"cmdline": marker})

    pids = ", ".join(str(child.pid) for child in sorted(children, key=lambda c: c.pid))
    assert result.output == f"2 processes match cmdline /{marker}/ (pid {pids})"


async def test_name_matches_the_kernel_process_name(spawn: Spawn, unique_sleep: str) -> None:
    spawn(unique_sleep, "60")
    spawn(SLEEP, "60")

    result = await check({"name": os.path.basename(unique_sleep)})

    assert result.status is Status.PASS
    assert result.observed_value == 1


async def test_name_is_matched_exactly_not_as_a_prefix(spawn: Spawn, unique_sleep: str) -> None:
    spawn(unique_sleep, "60")

    result = await check({"name": os.path.basename(unique_sleep)[:-1]})

    assert result.reason is Reason.PROCESS_MISSING


async def test_name_longer_than_15_is_matched_by_its_first_15(spawn: Spawn, tmp_path: Path) -> None:
    long_name = f"long-named-{uuid.uuid4().hex[:12]}"
    program = tmp_path / long_name
    shutil.copy(SLEEP, program)
    spawn(str(program), "60")

    result = await check({"name": long_name[:15]})

    assert (result.status, result.observed_value) == (Status.PASS, 1)


async def test_cmdline_is_searched_in_the_arguments_joined_with_spaces(
    spawn: Spawn, marker: str
) -> None:
    spawn(sys.executable, "-c", "import time; time.sleep(60)", marker, "--queue", "emails")

    result = await check({"cmdline": f"{marker} --queue emails$"})

    assert result.observed_value == 1


# --- zombies ------------------------------------------------------------------------------------


async def test_a_zombie_does_not_count_and_the_output_says_why(
    spawn: Spawn, unique_sleep: str
) -> None:
    kill_into_zombie(spawn(unique_sleep, "60"))
    name = os.path.basename(unique_sleep)

    result = await check({"name": name})

    assert (result.status, result.reason) == (Status.FAIL, Reason.PROCESS_MISSING)
    assert result.output == (
        f"no process matches name {name!r}, expected at least 1; 1 zombie matched"
    )
    assert result.observed_value == 0


async def test_a_zombie_beside_a_live_process_counts_once(spawn: Spawn, unique_sleep: str) -> None:
    kill_into_zombie(spawn(unique_sleep, "60"))
    spawn(unique_sleep, "60")

    result = await check({"name": os.path.basename(unique_sleep)})

    assert (result.status, result.observed_value) == (Status.PASS, 1)


# --- pidfile ------------------------------------------------------------------------------------


def reaped_pid(spawn: Spawn) -> int:
    child = spawn(SLEEP, "60")
    child.kill()
    child.wait()
    return child.pid


@pytest.mark.parametrize(
    ("content", "status", "reason", "output"),
    [
        pytest.param(
            "live", Status.PASS, None, r"^1 process matches pid \d+ from pidfile ", id="live-pid"
        ),
        pytest.param(
            "live-no-newline",
            Status.PASS,
            None,
            "^1 process matches",
            id="live-pid-without-newline",
        ),
        pytest.param(
            "dead",
            Status.FAIL,
            Reason.PROCESS_MISSING,
            r"^no process matches pid \d+ from pidfile .*, expected at least 1$",
            id="dead-pid",
        ),
        pytest.param(
            "adapter",
            Status.FAIL,
            Reason.PROCESS_MISSING,
            "^no process matches",
            id="the-adapters-own-pid",
        ),
        pytest.param(
            "zombie",
            Status.FAIL,
            Reason.PROCESS_MISSING,
            r"; pid \d+ is a zombie: it exited and was not reaped by its parent "
            rf"'[^']+' \(pid {os.getpid()}\)$",
            id="zombie-pid",
        ),
        pytest.param(
            "not a pid\n",
            Status.FAIL,
            Reason.FILE_INVALID,
            "^pidfile .* does not hold a process id on its first line$",
            id="garbage",
        ),
        pytest.param(
            "-5\n", Status.FAIL, Reason.FILE_INVALID, "does not hold a process id", id="negative"
        ),
        pytest.param(
            "99999999999\n",
            Status.FAIL,
            Reason.FILE_INVALID,
            "does not hold a process id",
            id="larger-than-any-pid",
        ),
        pytest.param(
            "0\n", Status.FAIL, Reason.FILE_INVALID, "does not hold a process id", id="zero"
        ),
        pytest.param("", Status.FAIL, Reason.FILE_INVALID, "^pidfile .* is empty$", id="empty"),
        pytest.param(
            None, Status.FAIL, Reason.FILE_MISSING, "^pidfile .* does not exist$", id="missing"
        ),
    ],
)
async def test_pidfile(
    spawn: Spawn,
    tmp_path: Path,
    content: str | None,
    status: Status,
    reason: Reason | None,
    output: str,
) -> None:
    pidfile = tmp_path / "app.pid"
    if content in {"live", "live-no-newline"}:
        pid = spawn(SLEEP, "60").pid
        content = f"{pid}\n" if content == "live" else str(pid)
    elif content == "dead":
        content = f"{reaped_pid(spawn)}\n"
    elif content == "adapter":
        content = f"{os.getpid()}\n"
    elif content == "zombie":
        child = spawn(SLEEP, "60")
        kill_into_zombie(child)
        content = f"{child.pid}\n"
    if content is not None:
        pidfile.write_text(content)

    result = await check({"pidfile": str(pidfile)})

    assert (result.status, result.reason) == (status, reason), result.output
    assert re.search(output, result.output), result.output
    assert "not a pid" not in result.output


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(os.mkdir, id="directory"),
        pytest.param(os.mkfifo, id="fifo"),
    ],
)
async def test_pidfile_that_is_not_a_regular_file(
    tmp_path: Path, make: Callable[[Path], None]
) -> None:
    pidfile = tmp_path / "app.pid"
    make(pidfile)

    result = await asyncio.wait_for(check({"pidfile": str(pidfile)}), timeout=10)

    assert result.reason is Reason.FILE_INVALID
    assert result.output.startswith(f"pidfile {pidfile} is a ")


async def test_pidfile_combines_with_the_other_criteria(
    spawn_marked: Callable[[], subprocess.Popen[bytes]], marker: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{spawn_marked().pid}\n")
    spawn_marked()

    matching = await check({"pidfile": str(pidfile), "cmdline": marker})
    other = await check({"pidfile": str(pidfile), "cmdline": f"{marker}-other"})

    assert (matching.status, matching.observed_value) == (Status.PASS, 1)
    assert (other.status, other.observed_value) == (Status.FAIL, 0)


async def test_a_pidfile_naming_another_program_says_whose_pid_it_is(
    spawn: Spawn, unique_sleep: str, tmp_path: Path
) -> None:
    # twisted #7555, nebula #6149: after a crash the pidfile's pid belonged to
    # an unrelated live program, started before the file was written again.
    stranger = spawn(unique_sleep, "60")
    await asyncio.to_thread(
        wait_for, lambda: proc_state(stranger.pid) not in ("", "Z"), "the stranger to run"
    )
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{stranger.pid}\n")
    name = Path(unique_sleep).name

    named = await check({"pidfile": str(pidfile), "name": "myapp"})
    alone = await check({"pidfile": str(pidfile)})

    assert (named.status, named.reason, named.observed_value) == (
        Status.FAIL,
        Reason.PROCESS_MISSING,
        0,
    )
    assert named.output.endswith(
        f"; pid {stranger.pid} is {name!r} (user {own_username()}), not the process the check names"
    )
    assert alone.status is Status.PASS
    assert alone.output.endswith(f"({name}, pid {stranger.pid})")


# --- user ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "matched"),
    [
        pytest.param(own_username(), 1, id="current-user-by-name"),
        pytest.param(os.getuid(), 1, id="current-user-by-uid"),
        pytest.param(str(os.getuid()), 1, id="current-user-by-uid-string"),
        pytest.param(f"no-such-user-{uuid.uuid4().hex[:6]}", 0, id="another-user"),
        pytest.param(os.getuid() + 1, 0, id="another-uid"),
    ],
)
async def test_user(
    spawn_marked: Callable[[], subprocess.Popen[bytes]],
    marker: str,
    user: str | int,
    matched: int,
) -> None:
    spawn_marked()

    result = await check({"user": user, "cmdline": marker, "min_count": 0})

    assert result.observed_value == matched


# --- the adapter itself -------------------------------------------------------------------


async def test_the_adapter_never_matches_itself() -> None:
    own_cmdline = " ".join(psutil.Process().cmdline())

    # min_count 0: another process on the machine may share this command line
    # (a second test run); only the adapter's own pid must never be counted.
    result = await check({"cmdline": f"^{re.escape(own_cmdline)}$", "min_count": 0})

    pids = re.findall(r"\d+", result.output.partition("(pid ")[2])
    assert str(os.getpid()) not in pids
    assert ONLY_ADAPTER_HINT not in result.output


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("sleep 30; : {marker}", id="shell-running-a-child"),
        pytest.param("exec sh -c 'sleep 30' {marker}", id="command-replaced-by-exec"),
        pytest.param("sh -c 'sleep 30' {marker} & sleep 30", id="child-of-the-command"),
    ],
)
async def test_the_commands_of_exec_checks_are_never_counted(
    spawn_marked: Callable[[], subprocess.Popen[bytes]], marker: str, command: str
) -> None:
    # monitoring-plugins #999: check_procs run through `sh -c` counted its own
    # wrapper, so a dead daemon read as one running.
    running = asyncio.create_task(
        ExecProbe("wrapper", {"command": command.format(marker=marker), "shell": True}).check()
    )
    try:
        await asyncio.to_thread(
            wait_for,
            lambda: any(
                marker in " ".join(p.info["cmdline"] or ())
                for p in psutil.process_iter(["cmdline"], ad_value=None)
            ),
            "the exec check's command to start",
        )

        result = await check({"cmdline": marker})

        assert (result.status, result.observed_value) == (Status.FAIL, 0)
        assert result.output.startswith(f"no process matches cmdline /{marker}/")

        daemon = spawn_marked()
        result = await check({"cmdline": marker})

        assert (result.status, result.observed_value) == (Status.PASS, 1)
        assert f"(pid {daemon.pid})" in result.output
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


# --- what reality cannot be made to do: fake process tables -----------------------------


def record(
    pid: int,
    name: str | None = "python3",
    cmdline: tuple[str, ...] | None = ("python3", "app.py"),
    username: str | None = "app",
    *,
    ppid: int | None = 1,
    zombie: bool = False,
) -> ProcessRecord:
    uid = None if username is None else 1000
    return ProcessRecord(
        pid=pid,
        ppid=ppid,
        name=name,
        cmdline=cmdline,
        username=username,
        uid=uid,
        zombie=zombie,
    )


def resources_seeing(*processes: ProcessRecord, own_pid: int = 4242) -> Resources:
    resources = Resources()
    snapshot = Snapshot(processes=processes, own_pid=own_pid)
    resources.get(lambda: ProcessTable(lambda: snapshot), key=ProcessTable)
    return resources


UNREADABLE = record(10, name=None, cmdline=None, username=None)
UNREADABLE_CMDLINE = record(11, name="celery", cmdline=None, username=None)


@pytest.mark.parametrize(
    ("options", "processes", "status", "reason", "output"),
    [
        pytest.param(
            {"cmdline": "celery .* worker"},
            [UNREADABLE, UNREADABLE_CMDLINE, record(12)],
            Status.FAIL,
            Reason.ACCESS_DENIED,
            "no process matches cmdline /celery .* worker/, expected at least 1; "
            "2 processes could not be read (access denied)",
            id="cmdline-unreadable",
        ),
        pytest.param(
            {"name": "celery", "cmdline": "worker"},
            [UNREADABLE, UNREADABLE_CMDLINE, record(12)],
            Status.FAIL,
            Reason.ACCESS_DENIED,
            "no process matches name 'celery' and cmdline /worker/, expected at least 1; "
            "2 processes could not be read (access denied)",
            id="name-read-cmdline-not",
        ),
        pytest.param(
            {"name": "nginx", "cmdline": "worker"},
            [UNREADABLE_CMDLINE, record(12, name="python3", cmdline=None)],
            Status.FAIL,
            Reason.PROCESS_MISSING,
            "no process matches name 'nginx' and cmdline /worker/, expected at least 1",
            id="a-readable-field-already-rules-them-out",
        ),
        pytest.param(
            {"user": "app", "min_count": 2},
            [UNREADABLE, record(12)],
            Status.FAIL,
            Reason.ACCESS_DENIED,
            "1 process matches user 'app', expected at least 2; "
            "1 process could not be read (access denied)",
            id="user-unreadable",
        ),
        pytest.param(
            {"cmdline": "app.py"},
            [UNREADABLE, record(12)],
            Status.PASS,
            None,
            "1 process matches cmdline /app.py/ (pid 12)",
            id="enough-matched-despite-unreadable",
        ),
        pytest.param(
            {"cmdline": "app.py"},
            [record(12, cmdline=(), zombie=True, username="app")],
            Status.FAIL,
            Reason.PROCESS_MISSING,
            "no process matches cmdline /app.py/, expected at least 1",
            id="a-zombies-freed-cmdline-is-not-access-denied",
        ),
    ],
)
async def test_unreadable_processes_are_an_error_not_down(
    options: dict[str, Any],
    processes: list[ProcessRecord],
    status: Status,
    reason: Reason | None,
    output: str,
) -> None:
    result = await check(options, resources_seeing(*processes))

    assert (result.status, result.reason, result.output) == (status, reason, output)


@pytest.mark.parametrize(
    ("processes", "own_pid"),
    [
        pytest.param([record(1, ppid=0)], 1, id="adapter-is-pid-1"),
        pytest.param(
            [record(1, "tini", ppid=0), record(7), record(30, "sh", ppid=7)],
            7,
            id="adapter-under-tini-with-a-child",
        ),
    ],
)
async def test_says_when_only_the_adapter_is_visible(
    processes: list[ProcessRecord], own_pid: int
) -> None:
    result = await check({"cmdline": "celery"}, resources_seeing(*processes, own_pid=own_pid))

    assert result.reason is Reason.PROCESS_MISSING
    assert result.output == (
        f"no process matches cmdline /celery/, expected at least 1; {ONLY_ADAPTER_HINT}"
    )


async def test_no_visibility_hint_when_other_processes_are_visible() -> None:
    resources = resources_seeing(record(1, "pause", ppid=0), record(7, ppid=0), own_pid=7)

    result = await check({"cmdline": "celery"}, resources)

    assert ONLY_ADAPTER_HINT not in result.output


# --- one scan per round -----------------------------------------------------------------------


async def test_twenty_checks_in_one_round_share_one_scan(
    spawn_marked: Callable[[], subprocess.Popen[bytes]], marker: str
) -> None:
    spawn_marked()
    table = ProcessTable()
    resources = Resources()
    resources.get(lambda: table, key=ProcessTable)
    probes = [
        ProcessProbe(f"worker-{index}", {"cmdline": marker, "min_count": index % 2}, resources)
        for index in range(20)
    ]

    results = await asyncio.gather(*(probe.check() for probe in probes))

    assert table.scans == 1
    assert [result.observed_value for result in results] == [1] * 20
    assert {result.status for result in results} == {Status.PASS}


async def test_a_later_round_scans_again() -> None:
    now = [0.0]
    table = ProcessTable(lambda: Snapshot(processes=(record(12),)), clock=lambda: now[0])
    resources = Resources()
    resources.get(lambda: table, key=ProcessTable)
    probes = [ProcessProbe(f"w{index}", {"cmdline": "app"}, resources) for index in range(20)]

    await asyncio.gather(*(probe.check() for probe in probes))
    now[0] += 10.0  # the next interval
    await asyncio.gather(*(probe.check() for probe in probes))

    assert table.scans == 2


def test_probe_gets_its_table_from_the_shared_resources() -> None:
    resources = Resources()
    ProcessProbe("a", {"name": "nginx"}, resources)

    assert resources.get(ProcessTable) is resources.get(ProcessTable)


# --- parity with pgrep ------------------------------------------------------------------------


def pgrep(*args: str) -> set[int]:
    done = subprocess.run(["pgrep", *args], capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode in (0, 1), done.stderr
    return {int(pid) for pid in done.stdout.split()}


@pytest.mark.skipif(shutil.which("pgrep") is None, reason="needs pgrep (procps)")
async def test_counts_agree_with_pgrep_for_every_shape_a_daemon_takes(
    spawn: Spawn, shapes: Path, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]

    def renamed(name: str) -> str:
        program = tmp_path / name
        shutil.copy(shapes, program)
        return str(program)

    zombie = spawn(renamed(f"zb-{tag}"), "sleep")
    started = [
        spawn(renamed(f"überwach-{tag}"), "sleep"),  # 16 bytes: cut after a whole character
        spawn(renamed(f"x{tag}-ääää"), "sleep"),  # 16 bytes: cut in half a character
        spawn(renamed(f"long-named-{tag}-daemon"), "sleep"),
        spawn(shapes, "name", f"名前{tag}ジョブ"),  # renamed by prctl: 18 bytes, cut to 15
        spawn(shapes, "title", f"svc-{tag}: worker process", "x" * 200),
        spawn(shapes, "spaced", f"spc-{tag}: idle", "x" * 200),
        spawn(renamed(f"le-{tag}"), "leader", f"argone-{tag}"),
        spawn(sys.executable, "-c", "import time; time.sleep(60)", f"line1\nline2-{tag}"),
        zombie,
    ]
    zombie.kill()  # not waited for: a zombie until the fixture reaps it
    wait_for(lambda: proc_state(zombie.pid) == "Z", "the zombie")
    wait_for(lambda: proc_state(started[6].pid) == "Z", "the leader to exit")
    wait_for(lambda: proc_bytes(started[3].pid, "comm").startswith("名前".encode()), "prctl")
    for child in started[4:6]:
        wait_for(lambda c=child: b"-" + tag.encode() in proc_bytes(c.pid, "cmdline")[:12], "title")

    cases = [
        ("name", f"überwach-{tag[:5]}"),
        ("name", f"x{tag}-äää"),  # what can be written of a name cut in half a character
        ("name", f"long-named-{tag}"[:15]),
        ("name", f"名前{tag}ジ"),
        ("name", f"le-{tag}"),
        ("name", f"zb-{tag}"),
        ("cmdline", f"^svc-{tag}: worker process$"),
        ("cmdline", f"{tag}: worker process +$"),
        ("cmdline", f"^spc-{tag}: idle$"),
        ("cmdline", f"^spc-{tag}: idle +$"),
        ("cmdline", f"le-{tag}"),
        ("cmdline", f"^zb-{tag}$"),
        ("cmdline", rf"^\[zb-{tag}\] <defunct>$"),
        ("cmdline", f"line1 line2-{tag}$"),
        ("cmdline", f"x{tag}-ää"),
    ]
    if proc_bytes(2, "comm") == b"kthreadd\n":  # kernel threads are visible
        cases += [("name", "kthreadd"), ("cmdline", r"^\[kthreadd\]$"), ("cmdline", "^kthreadd$")]
    results = {}
    for selector, value in cases:
        flags = ["-x", value] if selector == "name" else ["-f", value]
        expected = pgrep(*flags) - {zombie.pid}  # pgrep counts zombies; nothing runs in one
        result = await check({selector: value, "min_count": 0})
        results[f"{selector} {value!r}"] = (result.observed_value, len(expected))

    assert {k: v for k, v in results.items() if v[0] != v[1]} == {}, results
    # Every shape was found by someone: the table is not trivially all zeros.
    assert sum(theirs for _, theirs in results.values()) >= 9, results


async def test_a_process_whose_main_thread_exited_matches_its_arguments(
    spawn: Spawn, shapes: Path
) -> None:
    # ps shows "[shapes] <defunct>" and pgrep -f finds only its name; its threads
    # still run with these arguments, and the check says so.
    word = f"argone-{uuid.uuid4().hex[:8]}"
    child = spawn(shapes, "leader", word)
    wait_for(lambda: proc_state(child.pid) == "Z", "the main thread to exit")

    result = await check({"cmdline": f"leader {word}$"})

    assert (result.status, result.observed_value) == (Status.PASS, 1)
    assert result.output.endswith(f"(pid {child.pid})")


# --- pidfile and a reused pid ----------------------------------------------------------------


def started_at(pid: int) -> float:
    return psutil.Process(pid).create_time()


@pytest.mark.parametrize(
    ("written", "status", "reason"),
    [
        pytest.param(+5.0, Status.PASS, None, id="written-after-start"),
        pytest.param(+0.0, Status.PASS, None, id="written-at-start"),
        pytest.param(-1.5, Status.PASS, None, id="within-clock-granularity"),
        pytest.param(-5.0, Status.FAIL, Reason.PROCESS_MISSING, id="seconds-before-start"),
        pytest.param(-3600.0, Status.FAIL, Reason.PROCESS_MISSING, id="an-hour-before-start"),
    ],
)
async def test_a_process_that_started_after_the_pidfile_was_written_is_not_its_writer(
    spawn: Spawn,
    unique_sleep: str,
    tmp_path: Path,
    written: float,
    status: Status,
    reason: Reason | None,
) -> None:
    pid = spawn(unique_sleep, "60").pid
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{pid}\n")
    mtime = started_at(pid) + written
    os.utime(pidfile, (mtime, mtime))
    name = os.path.basename(unique_sleep)

    result = await check({"pidfile": str(pidfile)})

    assert (result.status, result.reason) == (status, reason), result.output
    if status is Status.PASS:
        assert result.output == (
            f"1 process matches pid {pid} from pidfile {pidfile} ({name}, pid {pid})"
        )
    else:
        assert result.output.startswith(
            f"no process matches pid {pid} from pidfile {pidfile}, expected at least 1; "
            f"pid {pid} now belongs to {name!r}, which started "
        )
        assert result.output.endswith(
            "after the pidfile was last written "
            f"({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(mtime))}): "
            "it cannot be the process that wrote it"
        )


REWRITES_PIDFILE = """
import os, sys, time
while True:
    with open(sys.argv[1] + ".new", "w") as stream:
        stream.write(f"{os.getpid()}\\n")
    os.replace(sys.argv[1] + ".new", sys.argv[1])
    time.sleep(0.1)
"""


async def test_a_pidfile_rewritten_by_its_live_writer_passes(spawn: Spawn, tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    writer = spawn(sys.executable, "-c", REWRITES_PIDFILE, str(pidfile))
    wait_for(pidfile.exists, "the pidfile")
    first = pidfile.stat().st_mtime
    wait_for(lambda: pidfile.stat().st_mtime != first, "the pidfile to be rewritten")

    result = await check({"pidfile": str(pidfile), "cmdline": "REWRITES|app.pid"})

    assert (result.status, result.observed_value) == (Status.PASS, 1), result.output
    name = psutil.Process(writer.pid).name()[:15]
    assert result.output.endswith(f"({name}, pid {writer.pid})"), result.output


def can_hand_out_pids() -> bool:
    return os.geteuid() == 0 and os.access("/proc/sys/kernel/ns_last_pid", os.W_OK)


@pytest.mark.skipif(
    not can_hand_out_pids(), reason="needs root to set /proc/sys/kernel/ns_last_pid"
)
async def test_a_pid_reused_by_another_process_fails(
    spawn: Spawn, unique_sleep: str, tmp_path: Path
) -> None:
    # The writer dies; its pid is handed to an unrelated process started later,
    # as the kernel does once pids wrap around.
    writer = spawn(unique_sleep, "60")
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{writer.pid}\n")
    os.utime(pidfile, (time.time() - 600, time.time() - 600))
    writer.kill()
    writer.wait()
    other = None
    for _ in range(20):  # another process may take the pid first: try again
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(writer.pid - 1))
        candidate = spawn(SLEEP, "60")
        if candidate.pid == writer.pid:
            other = candidate
            break
    if other is None:
        pytest.skip("the machine is too busy to hand a chosen pid to a new process")

    result = await check({"pidfile": str(pidfile)})

    assert (result.status, result.reason) == (Status.FAIL, Reason.PROCESS_MISSING)
    assert f"pid {writer.pid} now belongs to 'sleep', which started 10 min after" in result.output


def can_mount_hidepid() -> bool:
    return (
        os.geteuid() == 0
        and shutil.which("unshare") is not None
        and shutil.which("setpriv") is not None
        and subprocess.run(
            ["unshare", "-mpf", "--mount-proc", "mount", "-o", "remount,hidepid=2", "/proc"],
            capture_output=True,
        ).returncode
        == 0
    )


HIDDEN_PROBE = """
import asyncio
from probes import Resources
from probes.process import ProcessProbe
result = asyncio.run(ProcessProbe("w", {"name": "sleep"}, Resources()).check())
print(result.status, result.reason, result.output, sep="|")
"""


@pytest.mark.parametrize("hidepid", ["invisible", "noaccess"])
@pytest.mark.skipif(not can_mount_hidepid(), reason="needs root and unshare to remount /proc")
def test_processes_hidden_by_hidepid_are_access_denied_not_missing(hidepid: str) -> None:
    # psutil #2026: under hidepid a running root daemon read as "no process".
    # The adapter runs as nobody, in a PID namespace of its own whose /proc
    # hides root's `sleep` from it.
    script = (
        f"mount -o remount,hidepid={hidepid} /proc; sleep 60 & "
        "exec setpriv --reuid=nobody --regid=nogroup --clear-groups "
        f'{sys.executable} -c "$0"'
    )
    done = subprocess.run(
        ["unshare", "-mpf", "--mount-proc", "sh", "-c", script, HIDDEN_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )

    assert done.stderr == ""
    status, reason, output = done.stdout.strip().split("|")
    assert (status, reason) == ("fail", "access_denied")
    assert f"/proc is mounted with hidepid={hidepid}" in output
    assert ONLY_ADAPTER_HINT not in output


def own_record(pid: int) -> ProcessRecord:
    return ProcessRecord(
        pid=pid,
        ppid=0,
        name="health-adapter",
        cmdline=("health-adapter",),
        username="me",
        uid=os.getuid(),
    )


@pytest.mark.parametrize(
    ("processes", "hidepid", "reason", "output"),
    [
        pytest.param(
            (own_record(1),),
            "invisible",
            Reason.ACCESS_DENIED,
            "no process matches name 'nginx', expected at least 1; /proc is mounted with "
            "hidepid=invisible: processes the adapter may not inspect are hidden from it",
            id="invisible-only-the-adapter-seen",
        ),
        pytest.param(
            (own_record(1), record(2, name=None, cmdline=None, username=None)),
            "noaccess",
            Reason.ACCESS_DENIED,
            "no process matches name 'nginx', expected at least 1; 1 process could not be "
            "read (access denied); /proc is mounted with hidepid=noaccess: processes the "
            "adapter may not inspect are hidden from it",
            id="noaccess-one-unreadable",
        ),
        pytest.param(
            (own_record(1), record(2, "pause", username="app")),
            "invisible",
            Reason.PROCESS_MISSING,
            "no process matches name 'nginx', expected at least 1; /proc is mounted with "
            "hidepid=invisible: processes the adapter may not inspect are hidden from it",
            id="invisible-but-another-users-process-read",
        ),
        pytest.param(
            (own_record(1),),
            None,
            Reason.PROCESS_MISSING,
            f"no process matches name 'nginx', expected at least 1; {ONLY_ADAPTER_HINT}",
            id="no-hidepid-only-the-adapter-seen",
        ),
    ],
)
async def test_hidepid_makes_a_short_count_hidden_not_missing(
    processes: tuple[ProcessRecord, ...], hidepid: str | None, reason: Reason, output: str
) -> None:
    resources = Resources()
    snapshot = Snapshot(processes=processes, own_pid=1, hidepid=hidepid)
    resources.get(lambda: ProcessTable(lambda: snapshot), key=ProcessTable)

    result = await check({"name": "nginx"}, resources)

    assert (result.status, result.reason, result.output) == (Status.FAIL, reason, output)


async def test_hidepid_is_named_when_too_few_processes_are_seen() -> None:
    resources = Resources()
    snapshot = Snapshot(
        processes=(record(7, ppid=0), record(8, "pause", ppid=0)), own_pid=7, hidepid="invisible"
    )
    resources.get(lambda: ProcessTable(lambda: snapshot), key=ProcessTable)

    result = await check({"name": "nginx"}, resources)

    assert result.output == (
        "no process matches name 'nginx', expected at least 1; /proc is mounted with "
        "hidepid=invisible: processes the adapter may not inspect are hidden from it"
    )


async def test_a_pass_names_a_process_whose_name_the_kernel_cut_in_half_a_character(
    spawn: Spawn, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    program = tmp_path / f"x{tag}-ääää"  # 16 bytes: the kernel keeps half of the last ä
    shutil.copy(SLEEP, program)
    pid = spawn(str(program), "60").pid
    pidfile = tmp_path / "app.pid"
    pidfile.write_text(f"{pid}\n")

    result = await check({"pidfile": str(pidfile)})

    assert result.output.endswith(f"(x{tag}-äää\ufffd, pid {pid})")
    result.output.encode("utf-8")  # printable everywhere: no lone surrogate
