"""The benchmark harness in its quick mode: it runs, writes every figure, and
leaves no process behind. The figures themselves come from a full run (see
docs/performance.md); this only keeps the harness from rotting."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.__main__ import render
from bench.rig import Row
from tests.conftest import ROOT

FIGURES = ["1", "2", "3", "4", "5", "6"]


def processes_mentioning(text: str) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if text in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_run_writes_every_figure_and_stops_every_child(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    output = tmp_path / "table.md"

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--workdir",
            str(workdir),
            "--output",
            str(output),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    table = output.read_text()
    assert table == done.stdout
    assert "**missed**" not in table and "| met |" not in table  # quick mode judges nothing
    rows = json.loads(output.with_suffix(".json").read_text())["rows"]
    assert {row["figure"] for row in rows} == set(FIGURES)
    skipped = [row["value"] for row in rows if row["what"].endswith(": skipped")]
    not_measured = [row["value"] for row in rows if row["value"].startswith("not measured")]
    if shutil.which("wrk") and shutil.which("prometheus-blackbox-exporter"):
        assert skipped == not_measured == []
    assert all("is not installed" in reason for reason in skipped + not_measured)
    app_load = next(row for row in rows if row["figure"] == "2")
    assert app_load["met"] is True  # polling never reaches the app
    assert processes_mentioning(str(workdir)) == []
    assert processes_mentioning("sleep 900.") == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_interrupted_run_stops_every_child(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    harness = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--only", "process", "--workdir", str(workdir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupt it once the adapter is up among its extra processes.
        deadline = time.monotonic() + 60
        while not processes_mentioning(f"{workdir}/process-"):
            assert harness.poll() is None, harness.communicate()
            assert time.monotonic() < deadline, "the process figure never started"
            time.sleep(0.1)
        assert processes_mentioning("sleep 900.")
        harness.send_signal(signal.SIGINT)
        _, stderr = harness.communicate(timeout=60)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.communicate()

    assert harness.returncode == 130, stderr
    assert "every child process was stopped" in stderr
    assert processes_mentioning(str(workdir)) == []
    assert processes_mentioning("sleep 900.") == []


@pytest.mark.parametrize("judged", [True, False], ids=["full-run", "quick"])
def test_only_a_full_run_holds_figures_against_their_targets(judged: bool) -> None:
    rows = [
        Row("1", "throughput", "1,200 req/s", "20,000 req/s", met=False),
        Row("2", "app requests", "0", "0", met=True),
        Row("3", "rss", "40 MiB"),
    ]
    table = render(rows, {"cpu": "x"}, "python -m bench", judged=judged)
    assert ("**missed**" in table) is judged
    assert ("| met |" in table) is judged
    assert ("Quick mode" in table) is not judged
    assert "| 1 | throughput | 1,200 req/s | 20,000 req/s" in table
