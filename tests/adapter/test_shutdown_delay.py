"""serve --shutdown-delay, as Kubernetes and `podman stop` send SIGTERM: /readyz fails
at once while the port stays open for the delay, then the adapter exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow

CONFIG = (
    "checks: [{name: ok, interval: 100ms, groups: [live, ready], "
    "plugin: {class: 'tests.sample_probes:Ok'}}]\n"
)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def status_of(url: str) -> int:
    return get(url)[0]


def wait_for_status(url: str, expected: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = status_of(url)
            if last == expected:
                return
        except OSError as error:
            last = error
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered {expected}; last: {last}")


@pytest.fixture
def start_adapter(
    config_file: Callable[[str], Path],
) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*options: str) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adapter",
                "serve",
                "-c",
                str(config_file(CONFIG)),
                "--listen",
                f"127.0.0.1:{port}",
                "--log-format",
                "json",
                *options,
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for_status(f"{url}/readyz", 200)
        return process, url

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_readyz_fails_during_the_shutdown_delay_and_a_second_signal_ends_it(
    start_adapter: Callable[..., tuple[subprocess.Popen[str], str]],
) -> None:
    process, url = start_adapter("--shutdown-delay", "45s")
    process.send_signal(signal.SIGTERM)
    wait_for_status(f"{url}/readyz", 503)
    # Still serving: liveness and the full report answer as before.
    assert status_of(f"{url}/livez") == 200
    assert status_of(f"{url}/health") == 200
    assert get(f"{url}/readyz?verbose")[1].startswith("[-]shutdown in progress\n")
    begin = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert time.monotonic() - begin < 10  # not the 45 s delay
    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    stopping = [e for e in events if e["event"] == "stopping"]
    assert stopping == [{**stopping[0], "signal": "SIGTERM", "shutdown_delay": "45s"}]
    assert events[-1]["event"] == "stopped"


def test_the_port_closes_after_the_delay_and_the_adapter_exits_by_itself(
    start_adapter: Callable[..., tuple[subprocess.Popen[str], str]],
) -> None:
    process, url = start_adapter("--shutdown-delay", "500ms")
    begin = time.monotonic()
    process.send_signal(signal.SIGTERM)
    wait_for_status(f"{url}/readyz", 503)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert 0.4 < time.monotonic() - begin < 15
    with pytest.raises(OSError):
        get(f"{url}/readyz")


@pytest.mark.parametrize("value", ["soon", "-1s"], ids=["word", "negative"])
def test_a_bad_shutdown_delay_is_a_usage_error(value: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "adapter", "serve", f"--shutdown-delay={value}"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--shutdown-delay: invalid duration" in done.stderr
    assert "Traceback" not in done.stderr
