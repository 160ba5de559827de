"""A real Prometheus scrapes a running adapter, configured from deploy/prometheus/."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, free_port
from tests.e2e.conftest import (
    RunningAdapter,
    WatchedApp,
    adapter_config,
    http_get,
    wait_for,
)

DEPLOY = ROOT / "deploy" / "prometheus"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
@pytest.mark.parametrize(
    ("command", "path"),
    [
        (["check", "config"], "prometheus.yml"),
        (["check", "rules"], "health-adapter.rules.yml"),
        (["test", "rules"], "health-adapter.rules.test.yml"),
    ],
    ids=["scrape-config", "rules", "rule-tests"],
)
def test_promtool_accepts_the_shipped_files(command: list[str], path: str) -> None:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *command, path],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def query(self, expression: str) -> list[dict[str, object]]:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
        status, body = http_get(url)
        assert status == 200, body
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def value(self, expression: str) -> float | None:
        result = self.query(expression)
        return float(result[0]["value"][1]) if result else None  # type: ignore[index]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[RunningAdapter], Prometheus]]:
    """A real Prometheus, configured by the shipped files with the target and timing changed."""
    assert PROMETHEUS is not None
    processes: list[subprocess.Popen[bytes]] = []

    def start(adapter: RunningAdapter) -> Prometheus:
        config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        (job,) = config["scrape_configs"]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{adapter.port}"]}]
        shutil.copy(DEPLOY / "health-adapter.rules.yml", tmp_path)
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        server = Prometheus(port)
        wait_for(
            "Prometheus is ready",
            lambda: process.poll() is None and http_get(f"{server.url}/-/ready")[0] == 200,
        )
        return server

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed")
def test_prometheus_sees_a_check_pass_then_fail(
    watched_app: WatchedApp,
    start_adapter: Callable[[str], RunningAdapter],
    prometheus: Callable[[RunningAdapter], Prometheus],
    tmp_path: Path,
) -> None:
    adapter = start_adapter(adapter_config(watched_app, tmp_path))
    server = prometheus(adapter)
    success = 'health_check_success{job="health-adapter", check="api"}'
    wait_for("api scraped as passing", lambda: server.value(success) == 1)
    assert server.value('up{job="health-adapter"}') == 1
    assert server.value('health_adapter_build_info{job="health-adapter"}') == 1
    assert server.value('process_resident_memory_bytes{job="health-adapter"}')

    watched_app.healthy = False
    broken = time.monotonic()
    wait_for("api scraped as failing", lambda: server.value(success) == 0)
    # Within a scrape or two of the adapter's own run (1s scrapes, 200ms checks).
    assert time.monotonic() - broken < 10
    assert server.value('health_check_status{check="api"}') == 2
    failures = 'health_check_failures_total{check="api", reason="status"}'
    wait_for("the failure counted by reason", lambda: (server.value(failures) or 0) >= 1)
    assert server.value('health_check_success{check="heartbeat"}') == 1
