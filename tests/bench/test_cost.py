"""`python -m bench.cost` in its quick mode: every figure gets its row, and no
process is left behind. The figures themselves come from a full run
(docs/performance.md, "The cost of one sidecar")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_harness import processes_mentioning
from tests.conftest import ROOT


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_run_writes_every_row_and_stops_every_child(tmp_path: Path) -> None:
    output = tmp_path / "cost.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench.cost", "--quick", "--output", str(output)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split(" | ")[0].lstrip("| ") for line in output.read_text().splitlines()[2:]]
    assert [row.split(",")[0] for row in rows] == [
        "RSS idle",
        "CPU per HTTP check run",
        "CPU per HTTP check run",
        "CPU idle",
        "start to first answer",
        "start to first verdict",
        *(
            ["RSS around a flood of 500 connections"] * 2
            if shutil.which("wrk")
            else ["RSS after a flood"]
        ),
        "blackbox_exporter per probe"
        if shutil.which("prometheus-blackbox-exporter") is None
        else "blackbox_exporter per /probe of the app",
    ], rows
    assert processes_mentioning("bench-cost-") == []
