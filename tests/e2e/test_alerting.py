"""Alerting end to end: a real Prometheus discovers a fleet of adapters through file-based
discovery, evaluates the shipped rules, and a real Alertmanager receives the alert for the
one check that broke, on the one adapter where it broke, and its resolution.

Only the timing differs from the shipped files: 1 s scrapes and evaluations, and `for:`
durations of seconds instead of minutes.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, free_port
from tests.e2e.conftest import http_get, wait_for

DEPLOY = ROOT / "deploy" / "prometheus"
PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
FLEET = 10

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed"),
    pytest.mark.skipif(ALERTMANAGER is None, reason="prometheus-alertmanager is not installed"),
]


class Processes:
    """Everything a test starts, stopped by pid at the end, whatever happened."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *command: str, **options: Any) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            list(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **options
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes() -> Iterator[Processes]:
    running = Processes()
    try:
        yield running
    finally:
        running.stop_all()


def shortened_rules() -> str:
    """The shipped rules with `for:` in seconds, so that the test takes seconds."""
    text = (DEPLOY / "health-adapter.rules.yml").read_text()
    shortened, count = re.subn(r"for: (\d+)m", r"for: \1s", text)
    assert count == 2, "the shipped rules changed: adjust the test"
    return shortened


def alerts(url: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{url}/api/v2/alerts")
    assert status == 200, body
    answer: list[dict[str, Any]] = json.loads(body)
    return answer


def evaluated(prom_url: str) -> float:
    """When Prometheus last evaluated the rules (seconds since the epoch)."""
    status, body = http_get(f"{prom_url}/api/v1/rules")
    assert status == 200, body
    (group,) = json.loads(body)["data"]["groups"]
    stamp = group["lastEvaluation"]  # RFC 3339 with nanoseconds
    return datetime.datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()


def test_one_broken_check_in_a_fleet_is_one_alert_naming_it_then_resolved(
    tmp_path: Path, processes: Processes
) -> None:
    assert PROMETHEUS is not None and ALERTMANAGER is not None
    # The Alertmanager, with a receiver that sends nowhere.
    am_port = free_port()
    (tmp_path / "am.yml").write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "none",
                    "group_wait": "0s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "none"}],
            }
        )
    )
    am = processes.start(
        ALERTMANAGER,
        f"--config.file={tmp_path / 'am.yml'}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    )
    am_url = f"http://127.0.0.1:{am_port}"

    # The fleet: each adapter with two checks on files of its own.
    fleet = []
    for index in range(FLEET):
        home = tmp_path / f"adapter-{index}"
        home.mkdir()
        (home / "db").touch()
        (home / "heartbeat").touch()
        (home / "health.yaml").write_text(
            f"""
service: app-{index}
checks:
  - {{name: db, interval: 250ms, file: {{path: {home / "db"}}}}}
  - {{name: heartbeat, groups: [live, ready], interval: 250ms,
     file: {{path: {home / "heartbeat"}}}}}
"""
        )
        port = free_port()
        processes.start(
            sys.executable,
            "-m",
            "adapter",
            "serve",
            "-c",
            str(home / "health.yaml"),
            "--listen",
            f"127.0.0.1:{port}",
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
        fleet.append((home, f"127.0.0.1:{port}"))

    # Prometheus: the shipped scrape config, its targets from a file, and the shipped rules.
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    (job,) = config["scrape_configs"]
    del job["static_configs"]
    job["file_sd_configs"] = [{"files": [str(tmp_path / "targets.json")], "refresh_interval": "1s"}]
    config["alerting"] = {
        "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
    }
    (tmp_path / "targets.json").write_text(
        json.dumps([{"targets": [address for _, address in fleet], "labels": {"team": "orders"}}])
    )
    (tmp_path / "health-adapter.rules.yml").write_text(shortened_rules())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_port = free_port()
    prometheus = processes.start(
        PROMETHEUS,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        "--log.level=warn",
    )
    prom_url = f"http://127.0.0.1:{prom_port}"

    def scraped_up() -> bool:
        status, body = http_get(f"{prom_url}/api/v1/query?query=count(health_check_success%3D%3D1)")
        result = json.loads(body)["data"]["result"] if status == 200 else []
        return bool(result) and int(result[0]["value"][1]) == 2 * FLEET

    wait_for(
        "Alertmanager is ready",
        lambda: am.poll() is None and http_get(f"{am_url}/-/ready")[0] == 200,
    )
    wait_for("Prometheus scrapes every check of the fleet passing", scraped_up, timeout=60)
    assert prometheus.poll() is None
    assert alerts(am_url) == []

    # Break one check on one adapter.
    broken_home, broken_instance = fleet[7]
    (broken_home / "db").unlink()
    firing = wait_for(
        "Alertmanager lists the alert",
        lambda: [a for a in alerts(am_url) if a["status"]["state"] == "active"],
        timeout=60,
    )
    # Three more evaluations of the rules: still that one alert, and no other.
    seen = evaluated(prom_url)
    counts: list[int] = []

    def three_more() -> bool:
        counts.append(len(alerts(am_url)))
        return evaluated(prom_url) >= seen + 3

    wait_for("three more rule evaluations", three_more, timeout=30)
    assert set(counts) == {1}, counts
    firing = alerts(am_url)
    assert len(firing) == 1, firing
    (alert,) = firing
    assert alert["status"]["state"] == "active"
    assert alert["labels"]["alertname"] == "HealthCheckFailing"
    assert alert["labels"]["instance"] == broken_instance
    assert alert["labels"]["check"] == "db"
    assert alert["labels"]["team"] == "orders"
    assert alert["annotations"]["reason"] == "file_missing"
    assert f"http://{broken_instance}/health/db" in alert["annotations"]["description"]

    # Repair it: the alert resolves.
    (broken_home / "db").touch()
    wait_for(
        "the alert resolved",
        lambda: not [a for a in alerts(am_url) if a["status"]["state"] == "active"],
        timeout=60,
    )
