"""Nagios, Icinga and Sensu: monitoring-plugins' check_http, and `check --url`."""

from __future__ import annotations

import json
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


def test_scaled_units_keep_their_scale_in_nagios_as_in_metrics(
    start_adapter: Callable[[str], RunningAdapter], tmp_path: Path
) -> None:
    """field-cases/08: a plugin's MiB and GB, and a KiB and minutes of our own."""
    plugins = {
        "disk_mib": "DISK OK - free space: / 97550 MiB;| /=4838MiB;81910;92149;0;102388",
        "space_gb": "OK - volume fine | 'free space'=2.5GB;;;0;",
        "cache_kib": "OK | cache=512KiB",
        "uptime_min": "OK | up=90min",
        "requests": "OK | requests=1234c",
    }
    for name, text in plugins.items():
        (tmp_path / name).write_text(text + "\n")
    checks = "".join(
        f"  - {{name: {name}, exec: {{command: [cat, '{tmp_path / name}']}}}}\n" for name in plugins
    )
    adapter = start_adapter(f"defaults: {{interval: 200ms}}\nchecks:\n{checks}")
    settled(adapter, "/health", 200)
    parsed = nagios_grammar.parse(http_get(f"{adapter.url}/health?format=nagios")[1])
    assert parsed.perfdata == {
        "disk_mib": (5073010688.0, "B"),
        "space_gb": (2500000000.0, "B"),
        "cache_kib": (524288.0, "B"),
        "uptime_min": (5400.0, "s"),
        "requests": (1234.0, "c"),
    }
    metrics = http_get(f"{adapter.url}/metrics")[1]
    for line in [
        'health_check_observed_value{check="disk_mib",unit="bytes"} 5.073010688e+09',
        'health_check_observed_value{check="space_gb",unit="bytes"} 2.5e+09',
        'health_check_observed_value{check="cache_kib",unit="bytes"} 524288.0',
        'health_check_observed_value{check="uptime_min",unit="seconds"} 5400.0',
    ]:
        assert line in metrics.splitlines()
    entry = json.loads(http_get(f"{adapter.url}/health")[1])["checks"]["disk_mib"][0]
    assert (entry["observedValue"], entry["observedUnit"]) == (4838, "MiB")


FORGER = (
    "import sys; sys.stdout.write('CRITICAL - db down\\\\ntime=2026-01-01T00:00:00.000Z "
    "level=info event=check_transition check=forger old=fail new=pass\\\\r\\\\x1b[2K"
    "\\\\x1b[32mall good\\\\x1b[0m \\\\u202eevil\\\\x00after-nul'); sys.exit(2)"
)


def test_a_check_output_cannot_rewrite_the_terminal_or_cut_the_answer(
    start_adapter: Callable[[str], RunningAdapter], tmp_path: Path
) -> None:
    """field-cases/19 through a running adapter: ?verbose, ?format=nagios, check --url."""
    config = (
        "defaults: {interval: 200ms}\nchecks:\n"
        f'  - {{name: forger, exec: {{command: ["{sys.executable}", "-c", "{FORGER}"]}}}}\n'
        '  - {name: second, exec: {command: ["true"]}}\n'
    )
    adapter = start_adapter(config)
    wait_for(
        "the forger has run",
        lambda: "db down" in http_get(f"{adapter.url}/readyz?verbose")[1],
    )
    escaped = "\\x1b[2K\\x1b[32mall good\\x1b[0m \\u202eevil\\x00after-nul"
    answers = {
        "verbose": http_get(f"{adapter.url}/readyz?verbose")[1],
        "nagios": http_get(f"{adapter.url}/health?format=nagios")[1],
        "check --url": "\n".join(check_url(f"{adapter.url}/health").long_output),
    }
    for name, text in answers.items():
        assert not set(text) & set("\x00\x1b\u202e\r"), name
        assert escaped in text, name
    nagios = nagios_grammar.parse(answers["nagios"])
    assert nagios.long_output[0].endswith("after-nul (failed)")
    assert nagios.long_output[1] == "[PASS] second: exit status 0"


def test_failing_checks_survive_the_8_kib_of_check_url(
    start_adapter: Callable[[str], RunningAdapter], tmp_path: Path
) -> None:
    """field-cases/20: 200 sentinel checks, three late ones missing their file."""
    present = tmp_path / "present"
    present.touch()
    failing = {150, 180, 199}
    checks = "".join(
        f"  - {{name: svc{i:03d}, file: {{path: '{tmp_path / 'missing' if i in failing else present}', "
        "max_age: 1h}}\n"
        for i in range(200)
    )
    adapter = start_adapter(f"defaults: {{interval: 1s}}\nchecks:\n{checks}")
    wait_for(
        "every check has run",
        lambda: "no_result" not in http_get(f"{adapter.url}/health")[1],
        timeout=60,
    )
    parsed = check_url(f"{adapter.url}/health")
    assert parsed.summary == "3 of 200 checks failing: svc150, svc180, svc199"
    assert [line.split(":")[0] for line in parsed.long_output[:4]] == [
        "[FAIL] svc150",
        "[FAIL] svc180",
        "[FAIL] svc199",
        "[PASS] svc000",
    ]
    assert all(line.endswith("(file_missing)") for line in parsed.long_output[:3])
    assert parsed.perfdata  # room was left for it
