"""The command line, run as a user runs it: a real process, real exit codes."""

from __future__ import annotations

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

import pytest

from tests.conftest import ROOT, free_port

OK = "checks: [{name: ok, plugin: {class: 'tests.sample_probes:Ok'}}]\n"


def cli(*args: str, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "adapter", *args], check=False,
                          capture_output=True,
                          text=True, env=environment, timeout=timeout, cwd=ROOT)


def test_validate_ok(config_file: Callable[..., Path]) -> None:
    path = config_file(OK)
    done = cli("validate", "--config", str(path))
    assert (done.returncode, done.stdout) == (0, f"ok: {path}: 1 check\n")


def test_validate_prints_every_error_without_traceback() -> None:
    path = ROOT / "tests/adapter/testdata/invalid/many_errors.yaml"
    done = cli("validate", "-c", str(path))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"{path}: 4 errors"
    assert "  checks[1] (b).success_threshold: expected an integer, got 'two'" in \
        done.stderr.splitlines()
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
        ("[{name: ok, plugin: {class: 'tests.sample_probes:Ok'}}]", [], 0,
         "HEALTH OK - 1 check passing | 'ok'=1;;;;"),
        (("[{name: ok, plugin: {class: 'tests.sample_probes:Ok'}},"
         " {name: w, critical: false, plugin: {class: 'tests.sample_probes:Raises'}}]"), [], 1,
         "HEALTH WARNING - 1 of 2 checks failing: w | 'ok'=1;;;;"),
        (("[{name: ok, plugin: {class: 'tests.sample_probes:Ok'}},"
         " {name: bad, plugin: {class: 'tests.sample_probes:Raises'}}]"), [], 2,
         "HEALTH CRITICAL - 1 of 2 checks failing: bad | 'ok'=1;;;;"),
        (("[{name: ok, groups: [live], plugin: {class: 'tests.sample_probes:Ok'}},"
         " {name: bad, plugin: {class: 'tests.sample_probes:Raises'}}]"), ["--group", "live"], 0,
         "HEALTH OK - 1 check passing | 'ok'=1;;;;"),
        ("[{name: ok, plugin: {class: 'tests.sample_probes:Ok'}}]", ["--group", "live"], 3,
         "HEALTH UNKNOWN - no check belongs to group 'live' (groups: ready)"),
        ("[{name: ok, interval: 1 sec, plugin: {class: 'tests.sample_probes:Ok'}}]", [], 3,
         ("HEALTH UNKNOWN - invalid config: checks[0] (ok).interval: invalid duration '1 sec' "
         "(write it like 250ms, 10s, 2m, 1h or a number of seconds)")),
        ("[{name: slow, timeout: 200ms, plugin: {class: 'tests.sample_probes:BlockForever'}}]",
         [], 2, "HEALTH CRITICAL - 1 of 1 checks failing: slow"),
    ],
    ids=["ok", "warning", "critical", "group", "unknown-group", "bad-config", "stuck-probe"],
)
def test_check_exits_like_a_nagios_plugin(
    config_file: Callable[..., Path], checks: str, args: list[str], code: int, first_line: str
) -> None:
    path = config_file(f"checks: {checks}\n")
    begin = time.monotonic()
    done = cli("check", "--config", str(path), *args)
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == first_line
    assert time.monotonic() - begin < 20  # a stuck thread does not hold the process


def test_serve_refuses_an_invalid_config_before_listening(
    config_file: Callable[..., Path]
) -> None:
    port = free_port()
    path = config_file("checks: [{name: a, htpp: {}}]\n")
    done = cli("serve", "-c", str(path), "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 2
    assert "checks[0] (a).htpp: unknown key 'htpp'" in done.stderr
    assert "Traceback" not in done.stderr


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


@pytest.mark.slow
def test_serve_answers_then_stops_cleanly_on_sigterm(config_file: Callable[..., Path]) -> None:
    port = free_port()
    path = config_file(
        "checks:\n"
        "  - {name: ok, interval: 100ms, plugin: {class: 'tests.sample_probes:Ok'}}\n"
        "  - {name: flappy, interval: 100ms, plugin: {class: 'tests.sample_probes:Raises'}}\n"
        "  - {name: stuck, interval: 100ms, timeout: 100ms, critical: false,\n"
        "     plugin: {class: 'tests.sample_probes:BlockForever'}}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "adapter", "serve", "-c", str(path), "--listen",
         f"127.0.0.1:{port}", "--log-format", "json"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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
    # One line per transition, not one per run: each check changed state once.
    transitions = [e for e in events if e["event"] == "check_transition"]
    assert sorted(t["check"] for t in transitions) == ["flappy", "ok", "stuck"]
