"""The exec probe with real commands: Nagios plugins from monitoring-plugins, shell
scripts that misbehave on purpose, a missing binary, 80 KB of random bytes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest

from adapter.config import ConfigError, parse_config
from adapter.runner import CANCEL_GRACE, ProbeRunner
from adapter.threads import DaemonThreadPool
from probes import Reason, Result, Status
from probes.base import OUTPUT_LIMIT
from probes.exec import (
    CAPTURE_LIMIT,
    DEFAULT_PATH,
    KILL_GRACE,
    ExecProbe,
    command_environment,
    parse_perfdata,
)
from tests.leaks import no_leaks, zombie_children

PLUGINS = Path("/usr/lib/nagios/plugins")
needs_plugins = pytest.mark.skipif(
    not (PLUGINS / "check_dummy").exists(),
    reason="monitoring-plugins-basic is not installed (CI installs it)",
)
# Generous: these only tell a hung probe from a working one.
WAIT = 10.0


async def check(command: list[str] | str, **options: Any) -> Result:
    return await ExecProbe("e", {"command": command, **options}).check()


async def run(timeout: float, command: list[str] | str, **options: Any) -> Result:
    """One run through the adapter's runner, which cancels the probe at its timeout."""
    pool = DaemonThreadPool(1)
    probe = ExecProbe("e", {"command": command, **options})
    try:
        return (await ProbeRunner(probe, timeout, pool).run()).result
    finally:
        pool.shutdown(wait=False)


async def assert_group_gone(pgid: int) -> None:
    """Nothing of the command's process group is alive any more.

    Signals are delivered asynchronously, so this waits (briefly) for the
    killed to die. What the command had started were orphaned when it died:
    they stay zombies until init, their new parent, reaps them; that is not
    ours to do (run the adapter under an init, see docs/configuration.md).
    """
    alive: list[psutil.Process] = []
    for _ in range(100):
        alive = [p for p in processes_in_group(pgid) if _status(p) != psutil.STATUS_ZOMBIE]
        if not alive:
            return
        await asyncio.sleep(0.05)
    assert alive == []


def _status(process: psutil.Process) -> str:
    try:
        return str(process.status())
    except psutil.NoSuchProcess:
        return psutil.STATUS_DEAD


def processes_in_group(pgid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                found.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


# --- Nagios exit codes ---------------------------------------------------------------------


@needs_plugins
@pytest.mark.parametrize(
    ("state", "status", "reason", "output"),
    [
        ("0", Status.PASS, None, "OK: all good"),
        ("1", Status.WARN, None, "WARNING: all good"),
        ("2", Status.FAIL, Reason.FAILED, "CRITICAL: all good"),
        ("3", Status.FAIL, Reason.UNKNOWN, "UNKNOWN: all good\nexit status 3"),
    ],
    ids=["ok", "warning", "critical", "unknown"],
)
async def test_nagios_exit_codes(
    state: str, status: Status, reason: Reason | None, output: str
) -> None:
    result = await check([str(PLUGINS / "check_dummy"), state, "all good"])

    assert (result.status, result.reason, result.output) == (status, reason, output)


@pytest.mark.parametrize(
    ("script", "status", "reason", "output"),
    [
        ("exit 0", Status.PASS, None, "exit status 0"),
        ("echo fine", Status.PASS, None, "fine"),
        ("echo degraded; exit 1", Status.WARN, None, "degraded"),
        ("echo down; exit 2", Status.FAIL, Reason.FAILED, "down"),
        ("echo huh; exit 42", Status.FAIL, Reason.UNKNOWN, "huh\nexit status 42"),
        ("kill -SEGV $$", Status.FAIL, Reason.UNKNOWN, "killed by SIGSEGV"),
        (
            "no-such-command-here",
            Status.FAIL,
            Reason.UNKNOWN,
            "exit status 127: command not found\nstderr: ",
        ),
        (
            "f=$(mktemp); echo 'echo OK' > $f; $f; s=$?; rm $f; exit $s",
            Status.FAIL,
            Reason.UNKNOWN,
            "exit status 126: a program could not be run (not executable?)\nstderr: ",
        ),
    ],
    ids=[
        "silent-ok",
        "ok",
        "warning",
        "critical",
        "exit-42",
        "signal",
        "sh-not-found",
        "sh-not-executable",
    ],
)
async def test_exit_status_of_any_script(
    script: str, status: Status, reason: Reason | None, output: str
) -> None:
    result = await check(script, shell=True)

    assert (result.status, result.reason) == (status, reason)
    assert result.output.startswith(output)


@pytest.mark.parametrize(
    ("script", "status", "reason", "output"),
    [
        pytest.param(
            'echo "UNKNOWN - no data"; exit $STATUS_UNKNOWN',
            Status.WARN,
            None,
            "UNKNOWN - no data\nthe output says UNKNOWN but the exit status is 0",
            id="unset-exit-variable",
        ),
        pytest.param(
            'echo "DISK CRITICAL - /data is 99% full"',
            Status.WARN,
            None,
            "DISK CRITICAL - /data is 99% full\nthe output says CRITICAL but the exit status is 0",
            id="service-prefixed-critical-exit-0",
        ),
        pytest.param(
            'echo "OK - all fine"; exit 2',
            Status.FAIL,
            Reason.FAILED,
            "OK - all fine\nthe output says OK but the exit status is 2",
            id="ok-with-exit-2",
        ),
        pytest.param(
            'echo "WARNING: disk 85%"; exit 1',
            Status.WARN,
            None,
            "WARNING: disk 85%",
            id="agreeing-warning",
        ),
        pytest.param(
            'echo "HTTP/1.1 200 OK"', Status.PASS, None, "HTTP/1.1 200 OK", id="ok-not-first"
        ),
        pytest.param('echo "OKAY then"', Status.PASS, None, "OKAY then", id="not-a-state-word"),
    ],
)
async def test_a_status_word_that_contradicts_the_exit_status_is_named(
    script: str, status: Status, reason: Reason | None, output: str
) -> None:
    # JasonRivers/nagios-plugins #5: `exit $STATUS_UNKNOWN` with the variable
    # unset exits 0, and Nagios stayed green on an UNKNOWN.
    result = await check(script, shell=True)

    assert (result.status, result.reason, result.output) == (status, reason, output)


@pytest.mark.parametrize(
    ("program", "status", "reason", "first_line"),
    [
        pytest.param(
            "import nosuchmodule_for_this_test",
            Status.FAIL,
            Reason.UNKNOWN,
            "the command crashed with ModuleNotFoundError: No module named "
            "'nosuchmodule_for_this_test' (exit status 1)",
            id="import-error",
        ),
        pytest.param(
            "print('WARNING - 3 retries'); raise SystemExit(1)",
            Status.WARN,
            None,
            "WARNING - 3 retries",
            id="chosen-warning",
        ),
        pytest.param(
            "import sys, traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n"
            "    traceback.print_exc()\nprint('WARNING - handled', file=sys.stderr)\n"
            "raise SystemExit(1)",
            Status.WARN,
            None,
            "exit status 1",
            id="handled-traceback-then-warning",
        ),
    ],
)
async def test_an_uncaught_python_exception_is_a_crash_not_a_warning(
    program: str, status: Status, reason: Reason | None, first_line: str
) -> None:
    # Josef-Friedrich/check_systemd #25: a plugin whose import failed exited 1,
    # which Nagios shows as a WARNING that is mostly ignored.
    result = await check([sys.executable, "-c", program])

    assert (result.status, result.reason) == (status, reason)
    assert result.output.splitlines()[0] == first_line


# Every plugin on the machine, asked only what needs neither a target nor a
# privilege: its version, and an option it does not know (a usage error). Both
# exit 3, UNKNOWN, in monitoring-plugins 2.3; the test follows the exit status.
INSTALLED_PLUGINS = sorted(
    path.name for path in PLUGINS.glob("check_*") if path.is_file() and os.access(path, os.X_OK)
)
_EXIT_STATUS = {0: (Status.PASS, None), 1: (Status.WARN, None), 2: (Status.FAIL, None)}


@needs_plugins
@pytest.mark.parametrize("name", INSTALLED_PLUGINS)
@pytest.mark.parametrize("argument", ["-V", "--no-such-option"])
async def test_every_installed_plugin_runs_as_an_exec_probe(name: str, argument: str) -> None:
    command = [str(PLUGINS / name), argument]
    direct = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False, timeout=WAIT
    )
    expected = _EXIT_STATUS.get(direct.returncode, (Status.FAIL, Reason.UNKNOWN))

    result = await check(command)

    assert (result.status, result.reason) == expected, result.output
    if argument == "-V":
        assert result.output.split()[:2] == direct.stdout.split()[:2]
        assert result.output.startswith(name)
    else:  # the plugin's own words, whether it wrote them to stdout or stderr
        first_line = (direct.stdout.strip() or direct.stderr.strip()).splitlines()[0]
        # A "|" starts perfdata in the plugin API, even inside a usage line.
        assert first_line.partition("|")[0].strip() in result.output


# Plugins that need no network and no privileges; thresholds wide enough to pass anywhere
# except for check_swap, whose answer depends on the machine (and is compared, not assumed).
REAL_PLUGINS = [
    pytest.param(["check_procs", "-w", "100000", "-c", "200000"], "procs", id="check_procs"),
    pytest.param(
        ["check_load", "-w", "1000,1000,1000", "-c", "2000,2000,2000"], "load1", id="check_load"
    ),
    pytest.param(["check_disk", "-w", "0%", "-c", "0%", "-p", "/"], "/", id="check_disk"),
    pytest.param(["check_users", "-w", "1000", "-c", "2000"], "users", id="check_users"),
    pytest.param(["check_swap", "-w", "10%", "-c", "5%"], "swap", id="check_swap"),
    pytest.param(["check_dummy", "0", "plain text, no perfdata"], None, id="check_dummy"),
]


@needs_plugins
@pytest.mark.parametrize(("argv", "first_label"), REAL_PLUGINS)
async def test_real_nagios_plugins(argv: list[str], first_label: str | None) -> None:
    command = [str(PLUGINS / argv[0]), *argv[1:]]
    direct = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False, timeout=WAIT
    )
    expected = {0: Status.PASS, 1: Status.WARN, 2: Status.FAIL}.get(direct.returncode, Status.FAIL)

    result = await check(command)

    assert result.status is expected, result.output
    text_line = direct.stdout.split("|")[0].strip()
    # The text's numbers may have moved between the two runs; its words did not.
    assert result.output.split()[:2] == text_line.split()[:2]
    perfdata = parse_perfdata(direct.stdout.partition("|")[2])
    if first_label is None:
        assert perfdata == [] and result.observed_value is None
    else:
        assert perfdata[0].label == first_label
        assert isinstance(result.observed_value, int | float)
        assert result.observed_unit == (perfdata[0].unit or None)
        assert f"perfdata: {perfdata[0].label}=" in result.output
        assert "|" not in result.output


@needs_plugins
async def test_check_procs_counts_what_we_start() -> None:
    marker = f"exec-probe-marker-{os.getpid()}"
    sleeper = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(30)", marker
    )
    try:
        result = await check([str(PLUGINS / "check_procs"), "-c", "1:", "-a", marker])
    finally:
        sleeper.kill()
        await sleeper.wait()
    assert result.status is Status.PASS, result.output
    assert (result.observed_value, result.observed_unit) == (1, None)

    result = await check([str(PLUGINS / "check_procs"), "-c", "1:", "-a", marker])
    assert (result.status, result.reason, result.observed_value) == (Status.FAIL, Reason.FAILED, 0)


# --- commands that cannot run -------------------------------------------------------------


async def test_a_missing_binary_is_unknown(tmp_path: Path) -> None:
    missing = tmp_path / "check_nothing"
    result = await check([str(missing), "-v"])
    assert (result.status, result.reason) == (Status.FAIL, Reason.UNKNOWN)
    assert result.output == f"command not found: {missing}"


async def test_a_program_not_on_path_names_the_path() -> None:
    result = await check(["check-nothing-anywhere"], env={"PATH": "/nonexistent/bin"})
    assert result.output == "command not found: check-nothing-anywhere (PATH=/nonexistent/bin)"


async def test_a_file_that_is_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "check_me"
    script.write_text("#!/bin/sh\necho OK\n")
    script.chmod(0o644)
    result = await check([str(script)])
    assert (result.status, result.reason) == (Status.FAIL, Reason.UNKNOWN)
    assert result.output == f"cannot run {script}: not executable (no x permission)"


async def test_a_missing_working_directory(tmp_path: Path) -> None:
    result = await check(["true"], cwd=str(tmp_path / "gone"))
    assert (result.status, result.reason) == (Status.FAIL, Reason.UNKNOWN)
    assert result.output == f"cannot run true: working directory {tmp_path / 'gone'} does not exist"


async def test_cwd(tmp_path: Path) -> None:
    result = await check(["pwd"], cwd=str(tmp_path))
    assert result.output == str(tmp_path)


# --- environment ---------------------------------------------------------------------------


async def test_the_adapters_environment_is_not_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTER_SECRET", "s3cret")
    monkeypatch.setenv("HOME", "/home/adapter")
    result = await check(["env"], env={"APP_TOKEN": "t0ken", "LANG": "de_DE.UTF-8"})
    seen = dict(line.split("=", 1) for line in result.output.splitlines())
    assert seen == {
        "PATH": os.environ["PATH"],
        "HOME": "/home/adapter",
        "LANG": "de_DE.UTF-8",
        "APP_TOKEN": "t0ken",
    }


def test_command_environment() -> None:
    assert command_environment({}, {}) == {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
    assert command_environment(
        {"PATH": "/opt/bin"}, {"PATH": "/usr/bin", "HOME": "/root", "SECRET": "x"}
    ) == {"PATH": "/opt/bin", "HOME": "/root", "LANG": "C.UTF-8"}


async def test_env_from_the_config_with_variable_expansion() -> None:
    config = parse_config(
        "checks: [{name: e, exec: {command: [printenv, TOKEN], env: {TOKEN: '${TOKEN}'}}}]",
        environ={"TOKEN": "from-the-adapter"},
    )
    check_config = config.checks[0]
    probe = check_config.make_probe(__import__("probes").Resources())
    assert (await probe.check()).output == "from-the-adapter"


async def test_stdin_is_empty() -> None:
    result = await check(["cat"])
    assert (result.status, result.output) == (Status.PASS, "exit status 0")


# --- output --------------------------------------------------------------------------------


async def test_80_kb_of_random_bytes_are_capped_and_safe() -> None:
    result = await check(
        [sys.executable, "-c", "import os, sys; sys.stdout.buffer.write(os.urandom(80 * 1024))"]
    )

    assert result.status is Status.PASS
    encoded = result.output.encode("utf-8")  # strict: it is valid text
    assert len(encoded) <= OUTPUT_LIMIT
    assert result.output.endswith(f"(captured {CAPTURE_LIMIT} of {80 * 1024} bytes of stdout)")
    assert json.loads(msgspec.json.encode({"output": result.output}))["output"] == result.output


async def test_output_on_both_streams_is_read_to_the_end_and_counted() -> None:
    # 1 MB on each pipe: a command never blocks on a full pipe, and its exit
    # status still counts after it wrote more than is kept.
    script = (
        "import sys; sys.stdout.write('x' * 1000000); sys.stdout.flush(); "
        "sys.stderr.write('e' * 1000000); sys.exit(1)"
    )
    result = await run(WAIT, [sys.executable, "-c", script])
    assert (result.status, result.reason) == (Status.WARN, None)
    assert result.output.endswith(
        f"(captured {CAPTURE_LIMIT} of 1000000 bytes of stdout; "
        f"captured {CAPTURE_LIMIT} of 1000000 bytes of stderr)"
    )
    assert len(result.output.encode()) <= OUTPUT_LIMIT


async def test_stderr_is_shown_after_the_text() -> None:
    result = await check(
        "echo 'CRITICAL - db down'; echo 'traceback: boom' >&2; exit 2", shell=True
    )
    assert result.output == "CRITICAL - db down\nstderr: traceback: boom"


async def test_invalid_utf8_is_replaced() -> None:
    result = await check(["printf", "caf\\351 \\377ok\\n"])
    assert result.output == "caf\ufffd \ufffdok"


async def test_perfdata_in_the_long_output() -> None:
    script = (
        "printf 'DB OK - 3 connections | conns=3;50;90;0;100\\nreplica lag fine\\n"
        "second line | lag=0.25s;1;5 \\n'\"'\"'queue depth'\"'\"'=7\\n'"
    )
    result = await check(script, shell=True)

    assert result.output == (
        "DB OK - 3 connections\nreplica lag fine\nsecond line\n"
        "perfdata: conns=3;50;90;0;100 lag=0.25s;1;5 'queue depth'=7"
    )
    assert (result.observed_value, result.observed_unit) == (3, None)


@pytest.mark.parametrize(
    ("perfdata", "observed"),
    [
        ("'disk'=4838MiB;;;; used=7", (4838, "MiB")),
        ("time=1.5µs other=2s", (1.5, "µs")),
        ("'load'=abc;1;2 next=5s", (None, None)),
        ("first=U next=5s", (None, None)),
        ("first=1,5s next=5s", (None, None)),
    ],
    ids=["mib", "micro-sign", "unreadable-first", "undetermined-first", "comma-decimal"],
)
async def test_the_first_item_is_the_observed_one_and_all_are_shown_as_written(
    perfdata: str, observed: tuple[float | None, str | None]
) -> None:
    result = await check(["printf", "%s\\n", f"OK - fine | {perfdata}"])
    assert (result.observed_value, result.observed_unit) == observed
    assert result.output == f"OK - fine\nperfdata: {perfdata}"


# --- timeouts, process groups and zombies ---------------------------------------------


FORKS_AND_SLEEPS = "echo $$ > {pidfile}; sleep 60 & sleep 60"
IGNORES_TERM = "trap '' TERM; echo $$ > {pidfile}; sleep 60 & sleep 60; sleep 60"


@pytest.mark.parametrize(
    "script", [FORKS_AND_SLEEPS, IGNORES_TERM], ids=["forks-and-sleeps", "ignores-sigterm"]
)
async def test_a_command_past_its_timeout_is_killed_with_its_group(
    tmp_path: Path, script: str
) -> None:
    pidfile = tmp_path / "pid"
    runs = 6
    async with no_leaks():
        for _ in range(runs):
            begin = time.monotonic()
            result = await run(0.3, script.format(pidfile=pidfile), shell=True)
            took = time.monotonic() - begin

            assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
            # Killed and reaped within the runner's grace: never reported as stuck.
            assert took < 0.3 + CANCEL_GRACE + 1.0
            await assert_group_gone(int(pidfile.read_text()))
            assert zombie_children() == []


async def test_sigterm_comes_first_then_sigkill_after_the_grace(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = f"trap 'echo TERM >> {log}; exit 0' TERM; while :; do sleep 0.05; done"
    result = await run(0.3, script, shell=True)
    assert result.reason is Reason.TIMEOUT
    assert log.read_text() == "TERM\n"

    log.unlink()
    begin = time.monotonic()
    result = await run(
        0.3, f"trap 'echo TERM >> {log}' TERM; while :; do sleep 0.05; done", shell=True
    )
    assert result.reason is Reason.TIMEOUT
    assert log.read_text().startswith("TERM\n")
    assert time.monotonic() - begin >= 0.3 + KILL_GRACE * 0.9


async def test_what_a_command_leaves_running_is_killed_when_it_exits(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    async with no_leaks():
        result = await run(WAIT, f"echo $$ > {pidfile}; sleep 60 & echo started", shell=True)
        assert (result.status, result.output) == (Status.PASS, "started")
        await assert_group_gone(int(pidfile.read_text()))
        assert zombie_children() == []


async def test_a_process_that_escaped_with_the_output_open_is_named_not_waited_for() -> None:
    # ricoberger/script_exporter #191: a background child kept stdout open, and
    # a command that was done in 10 ms ran into its timeout.
    started = time.monotonic()
    # The pause lets setsid take the sleep out of the group before the command
    # exits (the group's leftovers are killed then).
    result = await run(2.0, "setsid sleep 30 & sleep 0.3; echo OK; exit 0", shell=True)
    took = time.monotonic() - started

    holder = [int(pid) for pid in re.findall(r"sleep \(pid (\d+)\)", result.output)]
    for pid in holder:
        os.kill(pid, signal.SIGKILL)
    assert (result.status, took < 1.8) == (Status.PASS, True)
    assert result.output.startswith("OK (stdout and stderr held open by sleep (pid ")
    assert result.output.endswith(
        "which the command started, 0.5s after it exited: not read further)"
    )
    assert len(holder) == 1


async def test_an_endless_writer_runs_into_its_timeout_without_blocking() -> None:
    async with no_leaks():
        result = await run(0.5, ["yes"])
    assert result.reason is Reason.TIMEOUT


async def test_a_double_cancellation_still_kills_and_reaps(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    async with no_leaks():
        probe = ExecProbe("e", {"command": IGNORES_TERM.format(pidfile=pidfile), "shell": True})
        task = asyncio.ensure_future(probe.check())
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.sleep(0.1)  # it is now in its SIGTERM grace...
        task.cancel()  # ...and the adapter stops
        with pytest.raises(asyncio.CancelledError):
            await task
        # SIGKILL was sent; the exit watch reaps the command on its own.
        await assert_group_gone(int(pidfile.read_text()))


async def test_many_runs_leave_no_process_thread_or_descriptor(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    async with no_leaks():
        for index in range(30):
            if index % 3 == 0:
                await run(0.2, FORKS_AND_SLEEPS.format(pidfile=pidfile), shell=True)
            else:
                await run(WAIT, ["sh", "-c", "echo ok | cat; exit 1"])
        assert zombie_children() == []


async def test_without_pidfd_the_exit_is_polled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    pidfile = tmp_path / "pid"
    async with no_leaks():
        result = await check("echo polled; exit 1", shell=True)
        assert (result.status, result.output) == (Status.WARN, "polled")
        result = await run(0.3, FORKS_AND_SLEEPS.format(pidfile=pidfile), shell=True)
        assert result.reason is Reason.TIMEOUT
        await assert_group_gone(int(pidfile.read_text()))
        assert zombie_children() == []


# --- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "error"),
    [
        ("{}", "checks[0] (e).exec.command: required"),
        (
            "{command: 'check_disk -w 10%'}",
            (
                "checks[0] (e).exec.command: write the command as a list, like [check_disk, -w, 10%]; "
                "a string is run through a shell only with shell: true"
            ),
        ),
        (
            "{command: [check_disk], shell: true}",
            "checks[0] (e).exec.command: with shell: true, write the command as one string",
        ),
        ("{command: []}", "checks[0] (e).exec.command: the command needs at least a program"),
        ("{command: ['']}", "checks[0] (e).exec.command: the command needs at least a program"),
        (
            "{command: [/bin/true], env: {'A=B': x}}",
            "checks[0] (e).exec.env: invalid variable name 'A=B'",
        ),
        (
            "{command: [/bin/true], timeout: 5s}",
            (
                "checks[0] (e).exec.timeout: unknown key; did you mean the check setting 'timeout'? "
                "It goes beside the probe block, not in it"
            ),
        ),
    ],
)
def test_invalid_options_are_located(block: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"checks: [{{name: e, exec: {block}}}]", environ={})
    assert caught.value.errors == [error]


def test_the_check_timeout_applies() -> None:
    config = parse_config(
        "checks: [{name: e, timeout: 30s, exec: {command: [check_x]}}]", environ={}
    )
    assert config.checks[0].timeout == 30


def test_the_shell_is_explicit() -> None:
    probe = ExecProbe("e", {"command": "df -h | tail -1", "shell": True})
    assert probe.argv == ["/bin/sh", "-c", "df -h | tail -1"]
    assert ExecProbe("e", {"command": ["df", "-h"]}).argv == ["df", "-h"]


def test_sigterm_grace_fits_the_runners_cancel_grace() -> None:
    assert KILL_GRACE <= CANCEL_GRACE / 2


def test_signal_names() -> None:
    assert signal.Signals(11).name == "SIGSEGV"  # what "killed by" names
    assert shutil.which("sh") is not None
