"""Nagios, Icinga and Sensu: monitoring-plugins' check_http, and `check --url`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import nagios_grammar
from tests.conftest import ROOT
from tests.e2e.conftest import (
    RunningAdapter,
    WatchedApp,
    adapter_config,
    http_get,
    wait_for,
)

pytestmark = pytest.mark.slow

CHECK_HTTP = Path("/usr/lib/nagios/plugins/check_http")
needs_check_http = pytest.mark.skipif(
    not CHECK_HTTP.exists(), reason="monitoring-plugins-basic is not installed"
)


def check_http(adapter: RunningAdapter, path: str) -> tuple[int, str]:
    done = subprocess.run(
        [str(CHECK_HTTP), "-H", "127.0.0.1", "-p", str(adapter.port), "-u", path, "-t", "5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode, done.stdout


def check_url(url: str) -> nagios_grammar.PluginOutput:
    done = subprocess.run(
        [sys.executable, "-m", "adapter", "check", "--url", url, "--timeout", "5s"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    parsed = nagios_grammar.parse(done.stdout)
    assert done.returncode == parsed.exit_code, done.stdout + done.stderr
    return parsed


def settled(adapter: RunningAdapter, path: str, status: int) -> None:
    wait_for(f"{path} answers {status}", lambda: http_get(adapter.url + path)[0] == status)


@needs_check_http
def test_check_http_ok_then_critical(
    watched_app: WatchedApp, start_adapter: Callable[[str], RunningAdapter], tmp_path: Path
) -> None:
    adapter = start_adapter(adapter_config(watched_app, tmp_path))
    settled(adapter, "/health", 200)
    for path in ["/health", "/readyz"]:
        code, output = check_http(adapter, path)
        assert code == 0 and output.startswith("HTTP OK: HTTP/1.1 200 OK"), output
    watched_app.healthy = False
    settled(adapter, "/health", 503)
    for path in ["/health", "/readyz"]:
        code, output = check_http(adapter, path)
        assert code == 2, output
        assert output.startswith("HTTP CRITICAL: HTTP/1.1 503 Service Unavailable"), output
    # The heartbeat alone is in /livez: still fine.
    assert check_http(adapter, "/livez")[0] == 0


@needs_check_http
def test_check_http_warns_on_429_as_consul_does(
    watched_app: WatchedApp, start_adapter: Callable[[str], RunningAdapter], tmp_path: Path
) -> None:
    config = "server: {status_codes: {warn: 429}}\n" + adapter_config(
        watched_app,
        tmp_path,
        extra=f"  - {{name: cache, critical: false, file: {{path: '{tmp_path / 'nope'}'}}}}\n",
    )
    adapter = start_adapter(config)
    settled(adapter, "/health", 429)
    code, output = check_http(adapter, "/health")
    assert code == 1 and output.startswith("HTTP WARNING: HTTP/1.1 429"), output


def test_check_url_ok_then_critical(
    watched_app: WatchedApp, start_adapter: Callable[[str], RunningAdapter], tmp_path: Path
) -> None:
    adapter = start_adapter(adapter_config(watched_app, tmp_path))
    settled(adapter, "/readyz", 200)
    parsed = check_url(f"{adapter.url}/readyz")
    assert (parsed.state, parsed.summary) == ("OK", "shop: 2 checks passing")
    assert set(parsed.perfdata) == {"api", "heartbeat"}
    assert parsed.perfdata["api"][1] == "ms" and parsed.perfdata["heartbeat"][1] == "s"
    watched_app.healthy = False
    settled(adapter, "/readyz", 503)
    parsed = check_url(f"{adapter.url}/readyz")
    assert (parsed.state, parsed.summary) == ("CRITICAL", "shop: 1 of 2 checks failing: api")
    assert parsed.long_output[0].startswith("[FAIL] api: HTTP 500")
    assert parsed.long_output[0].endswith("(status)")
    assert check_url(f"{adapter.url}/livez").state == "OK"
