"""The command line, run as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from adapter import __version__
from adapter.config import Config, parse_config
from adapter.loop import event_loop_factory
from adapter.server import make_app
from tests import nagios_grammar, sample_probes
from tests.conftest import ROOT, free_port

OK = "checks: [{name: ok, plugin: {class: 'tests.sample_probes:Ok'}}]\n"


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "adapter", *args],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        cwd=ROOT,
    )


def test_validate_ok(config_file: Callable[..., Path]) -> None:
    path = config_file(OK)
    done = cli("validate", "--config", str(path))
    assert (done.returncode, done.stdout) == (0, f"ok: {path}: 1 check\n")


def test_validate_prints_every_error_without_traceback() -> None:
    path = ROOT / "tests/adapter/testdata/invalid/many_errors.yaml"
    done = cli("validate", "-c", str(path))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"{path}: 4 errors"
    assert (
        "  checks[1] (b).success_threshold: expected an integer, got 'two'"
        in done.stderr.splitlines()
    )
    assert "Traceback" not in done.stderr


def test_config_path_from_the_environment(config_file: Callable[..., Path]) -> None:
    path = config_file(OK)
    done = cli("validate", env={"HEALTH_ADAPTER_CONFIG": str(path)})
    assert done.returncode == 0
    missing = cli("validate", env={"HEALTH_ADAPTER_CONFIG": ""})
    assert missing.returncode == 2
    assert "no config file: pass --config FILE or set HEALTH_ADAPTER_CONFIG" in missing.stderr


@pytest.mark.parametrize(
    ("checks", "args", "code", "first_line"),
    [
        (
            "[{name: ok, plugin: {class: 'tests.sample_probes:Ok'}}]",
            [],
            0,
            "HEALTH OK - 1 check passing | 'ok'=1;;;;",
        ),
        (
            (
                "[{name: ok, plugin: {class: 'tests.sample_probes:Ok'}},"
                " {name: w, critical: false, plugin: {class: 'tests.sample_probes:Raises'}}]"
            ),
            [],
            1,
            "HEALTH WARNING - 1 of 2 checks failing: w | 'ok'=1;;;;",
        ),
        (
            (
                "[{name: ok, plugin: {class: 'tests.sample_probes:Ok'}},"
                " {name: bad, plugin: {class: 'tests.sample_probes:Raises'}}]"
            ),
            [],
            2,
            "HEALTH CRITICAL - 1 of 2 checks failing: bad | 'ok'=1;;;;",
        ),
        (
            (
                "[{name: ok, groups: [live], plugin: {class: 'tests.sample_probes:Ok'}},"
                " {name: bad, plugin: {class: 'tests.sample_probes:Raises'}}]"
            ),
            ["--group", "live"],
            0,
            "HEALTH OK - 1 check passing | 'ok'=1;;;;",
        ),
        (
            "[{name: ok, plugin: {class: 'tests.sample_probes:Ok'}}]",
            ["--group", "live"],
            3,
            "HEALTH UNKNOWN - no check belongs to group 'live' (groups: ready)",
        ),
        (
            "[{name: ok, groups: [ready, nightly], plugin: {class: 'tests.sample_probes:Ok'}}]",
            ["--group", "nigthly"],
            3,
            (
                "HEALTH UNKNOWN - no check belongs to group 'nigthly'; did you mean 'nightly'? "
                "(groups: nightly, ready)"
            ),
        ),
        (
            "[{name: ok, interval: 1 sec, plugin: {class: 'tests.sample_probes:Ok'}}]",
            [],
            3,
            (
                "HEALTH UNKNOWN - invalid config: checks[0] (ok).interval: invalid duration '1 sec' "
                "(write it like 250ms, 10s, 2m, 1h or a number of seconds)"
            ),
        ),
        (
            "[{name: slow, timeout: 200ms, plugin: {class: 'tests.sample_probes:BlockForever'}}]",
            [],
            2,
            "HEALTH CRITICAL - 1 of 1 checks failing: slow",
        ),
    ],
    ids=[
        "ok",
        "warning",
        "critical",
        "group",
        "unknown-group",
        "mistyped-group",
        "bad-config",
        "stuck-probe",
    ],
)
def test_check_exits_like_a_nagios_plugin(
    config_file: Callable[..., Path], checks: str, args: list[str], code: int, first_line: str
) -> None:
    path = config_file(f"checks: {checks}\n")
    begin = time.monotonic()
    done = cli("check", "--config", str(path), *args)
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == first_line
    assert nagios_grammar.parse(done.stdout).exit_code == code
    assert time.monotonic() - begin < 20  # a stuck thread does not hold the process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_check_stopped_by_a_signal_leaves_no_command_behind(
    config_file: Callable[..., Path], tmp_path: Path, signum: signal.Signals
) -> None:
    pidfile = tmp_path / "command.pid"
    path = config_file(
        "checks:\n"
        "  - name: slow\n"
        "    timeout: 60s\n"
        f"    exec: {{command: 'echo $$$$ > {pidfile}; exec sleep 60', shell: true}}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "adapter", "check", "-c", str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        command = int(pidfile.read_text())
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 3, (stdout, stderr)
    assert stdout.startswith(f"HEALTH UNKNOWN - stopped by {signum.name}"), stdout
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while Path(f"/proc/{command}").exists():
        assert time.monotonic() < deadline, "the command outlived check"
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("checks", "error"),
    [
        ("[{name: a, htpp: {}}]", "checks[0] (a).htpp: unknown key 'htpp'"),
        (
            "[{name: a, groups: [redy], plugin: {class: 'tests.sample_probes:Ok'}}]",
            "checks[0] (a).groups[0]: group 'redy' is read by no endpoint; did you mean 'ready'?",
        ),
    ],
    ids=["unknown-probe-type", "group-typo"],
)
def test_serve_refuses_an_invalid_config_before_listening(
    config_file: Callable[..., Path], checks: str, error: str
) -> None:
    port = free_port()
    path = config_file(f"checks: {checks}\n")
    done = cli("serve", "-c", str(path), "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 2
    assert error in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "-m", "adapter"], [str(Path(sys.executable).parent / "health-adapter")]],
    ids=["python-m-adapter", "console-script"],
)
def test_version(command: list[str]) -> None:
    done = subprocess.run(
        [*command, "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"health-adapter {__version__}\n"


def test_serve_reports_a_port_in_use(config_file: Callable[..., Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", "-c", str(config_file(OK)), "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_serve_runs_on_uvloop_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert event_loop_factory() is uvloop.new_event_loop
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert event_loop_factory() is None


@pytest.fixture(params=["uvloop", "asyncio"])
def event_loop_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """PYTHONPATH for `serve` on either loop: a package that fails to import hides uvloop."""
    if request.param == "asyncio":
        hidden = tmp_path / "without-uvloop" / "uvloop"
        hidden.mkdir(parents=True)
        (hidden / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
        return f"{hidden.parent}{os.pathsep}{ROOT}"
    pytest.importorskip("uvloop")
    return str(ROOT)


@pytest.mark.slow
def test_serve_answers_then_stops_cleanly_on_sigterm(
    config_file: Callable[..., Path], event_loop_path: str
) -> None:
    port = free_port()
    path = config_file(
        "checks:\n"
        "  - {name: ok, interval: 100ms, plugin: {class: 'tests.sample_probes:Ok'}}\n"
        "  - {name: flappy, interval: 100ms, plugin: {class: 'tests.sample_probes:Raises'}}\n"
        "  - {name: stuck, interval: 100ms, timeout: 100ms, critical: false,\n"
        "     plugin: {class: 'tests.sample_probes:BlockForever'}}\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adapter",
            "serve",
            "-c",
            str(path),
            "--listen",
            f"127.0.0.1:{port}",
            "--log-format",
            "json",
        ],
        env={**os.environ, "PYTHONPATH": event_loop_path},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(100):
            try:
                status, body = get(f"http://127.0.0.1:{port}/health")
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("the adapter never answered")
        time.sleep(1)  # let every check run several times
        status, body = get(f"http://127.0.0.1:{port}/health")
        assert status == 503 and b'"flappy"' in body
        begin = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
        assert time.monotonic() - begin < 6
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert process.returncode == 0, stderr
    assert names[-2:] == ["stopping", "stopped"] and "started" in names
    started = next(e for e in events if e["event"] == "started")
    assert started["loop"] == ("asyncio" if "without-uvloop" in event_loop_path else "uvloop")
    # One line per transition, not one per run: each check changed state once.
    transitions = [e for e in events if e["event"] == "check_transition"]
    assert sorted(t["check"] for t in transitions) == ["flappy", "ok", "stuck"]


async def cli_async(*args: str) -> tuple[int, str]:
    """The CLI in a real process, while this event loop goes on serving test servers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapter",
        *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stdout.decode()


SWITCHED = """
service: orders-api
checks:
  - {name: api, interval: 100ms, plugin: {class: "tests.sample_probes:Switch", key: api}}
  - {name: ok, interval: 100ms, plugin: {class: "tests.sample_probes:Ok"}}
"""


async def test_check_url_asks_a_running_adapter(
    aiohttp_server: Any, make_config: Callable[[str], Config]
) -> None:
    server = await aiohttp_server(make_app(make_config(SWITCHED)))
    url = f"http://127.0.0.1:{server.port}/readyz"
    for status, code, state in [("pass", 0, "OK"), ("warn", 1, "WARNING"), ("fail", 2, "CRITICAL")]:
        sample_probes.SWITCHES["api"] = status
        for _ in range(100):  # until the background runs have seen the switch
            code_, output = await cli_async("check", "--url", url)
            if code_ == code:
                break
            await asyncio.sleep(0.05)
        assert code_ == code, output
        parsed = nagios_grammar.parse(output)
        assert parsed.state == state
        assert parsed.perfdata == {"ok": (1.0, "")}
        assert parsed.long_output[0] == f"[{status.upper()}] api: switch says {status}" + (
            " (failed)" if status == "fail" else ""
        )
    # The query is kept: ?exclude reaches the adapter.
    code_, output = await cli_async("check", "--url", f"{url}?exclude=api")
    assert code_ == 0 and output.startswith("HEALTH OK - orders-api: 1 check passing")


async def test_check_url_sends_the_token_from_a_file(aiohttp_server: Any, tmp_path: Path) -> None:
    token = "a-token-of-24-characters"
    config = parse_config(
        "server: {details: token, token_env: T}\n" + SWITCHED, environ={"T": token}
    )
    server = await aiohttp_server(make_app(config))
    url = f"http://127.0.0.1:{server.port}/readyz"
    (tmp_path / "token").write_text(token + "\n")
    for _ in range(100):  # until the first runs are in
        code, output = await cli_async(
            "check", "--url", url, "--token-file", str(tmp_path / "token")
        )
        if code == 0:
            break
        await asyncio.sleep(0.05)
    assert code == 0 and "[PASS] api: switch says pass" in output
    anonymous_code, anonymous = await cli_async("check", "--url", url)
    assert anonymous_code == 0 and "[PASS]" not in anonymous  # the verdict only
    missing_code, missing = await cli_async(
        "check", "--url", url, "--token-file", str(tmp_path / "nope")
    )
    assert missing_code == 3
    assert missing.startswith("HEALTH UNKNOWN - --token-file: cannot read")


async def test_check_url_unknown_when_the_answer_is_not_the_adapter_s(
    aiohttp_server: Any, make_config: Callable[[str], Config]
) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello, world")

    other = web.Application()
    other.router.add_get("/readyz", hello)
    other_server = await aiohttp_server(other)
    adapter = await aiohttp_server(make_app(make_config(SWITCHED), run_checks=False))
    code, output = await cli_async("check", "--url", f"http://127.0.0.1:{other_server.port}/readyz")
    assert (code, output) == (
        3,
        (
            f"HEALTH UNKNOWN - http://127.0.0.1:{other_server.port}/readyz did not answer like "
            "health-adapter (HTTP 200, text/plain): hello, world\n"
        ),
    )
    code, output = await cli_async("check", "--url", f"http://127.0.0.1:{adapter.port}/health/nope")
    assert code == 3
    assert "(HTTP 404, text/plain): no check named 'nope'" in output


async def test_check_url_unknown_when_nothing_answers() -> None:
    port = free_port()
    code, output = await cli_async("check", "--url", f"http://127.0.0.1:{port}/readyz")
    assert (code, output) == (
        3,
        f"HEALTH UNKNOWN - cannot connect to 127.0.0.1:{port}: Connection refused\n",
    )
    with socket.socket() as silent:  # accepts connections (the backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        begin = time.monotonic()
        code, output = await cli_async(
            "check", "--url", f"http://127.0.0.1:{port}/readyz", "--timeout", "300ms"
        )
    assert (code, output) == (
        3,
        (f"HEALTH UNKNOWN - http://127.0.0.1:{port}/readyz gave no answer within 300ms\n"),
    )
    assert time.monotonic() - begin < 10


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (
            ["--url", "ftp://host/readyz"],
            "HEALTH UNKNOWN - invalid --url 'ftp://host/readyz': use http://HOST:PORT/PATH",
        ),
        (
            ["--url", "http://127.0.0.1:1/readyz", "--timeout", "soon"],
            (
                "HEALTH UNKNOWN - --timeout: invalid duration 'soon' (write it like 250ms, 10s, 2m, 1h "
                "or a number of seconds)"
            ),
        ),
        (
            ["--url", "http://127.0.0.1:1/readyz", "--config", "x.yaml"],
            (
                "HEALTH UNKNOWN - --url asks a running adapter; --config and --group apply only to "
                "running the checks here"
            ),
        ),
        (
            ["--no-such-option"],
            "HEALTH UNKNOWN - invalid arguments (see health-adapter check --help)",
        ),
    ],
    ids=["not-http", "bad-timeout", "url-and-config", "bad-argument"],
)
def test_check_usage_errors_are_unknown(args: list[str], first_line: str) -> None:
    done = cli("check", *args)
    assert done.returncode == 3
    assert done.stdout.splitlines()[0] == first_line


def test_serve_reports_an_invalid_listen_option_without_traceback(
    config_file: Callable[..., Path],
) -> None:
    done = cli("serve", "-c", str(config_file(OK)), "--listen", "nonsense")
    assert done.returncode == 1
    assert "invalid listen address 'nonsense'" in done.stderr
    assert "Traceback" not in done.stderr


FAILING = "checks: [{name: down, plugin: {class: 'tests.sample_probes:Raises'}}]\n"


@pytest.mark.parametrize(
    ("command", "code"),
    [(["check"], 2), (["probes"], 141), (["schema", "--builtin"], 141)],
    ids=["check-keeps-its-state", "probes", "schema"],
)
def test_a_reader_gone_before_the_output_ends_the_command_quietly(
    config_file: Callable[..., Path], command: list[str], code: int
) -> None:
    args = [*command, "--config", str(config_file(FAILING))] if command == ["check"] else command
    with subprocess.Popen(
        [sys.executable, "-m", "adapter", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # as `| head -1` does once it has its line; here before any
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=30) == code
    assert stderr == ""


def test_check_piped_into_head_prints_its_first_line_without_a_traceback(
    config_file: Callable[..., Path],
) -> None:
    checks = "".join(
        f"  - {{name: c{i:03d}, plugin: {{class: 'tests.sample_probes:Ok'}}}}\n" for i in range(150)
    )
    path = config_file("checks:\n" + checks)
    done = subprocess.run(
        [
            "bash",
            "-c",
            '"$0" -m adapter check -c "$1" | head -1; exit "${PIPESTATUS[0]}"',
            sys.executable,
            str(path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.stdout.startswith("HEALTH OK - 150 checks passing | ")
    assert done.stdout.count("\n") == 1
    assert (done.returncode, done.stderr) == (0, "")
