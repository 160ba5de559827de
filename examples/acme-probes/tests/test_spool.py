"""spool_depth against real directories and files with real modification times."""

from __future__ import annotations

import os
import time
from pathlib import Path

from acme_probes.spool import SpoolDepth

from adapter.testing import run_probe_sync


def spool(directory: Path, ages: list[float]) -> Path:
    now = time.time()
    for index, age in enumerate(ages):
        path = directory / f"message-{index}"
        path.write_text("x")
        os.utime(path, (now - age, now - age))
    return directory


def test_few_files_pass(tmp_path: Path) -> None:
    result = run_probe_sync(SpoolDepth, {"directory": str(spool(tmp_path, [1, 2])), "max_files": 2})
    assert (result.status, result.observed_value, result.observed_unit) == ("pass", 2, "files")


def test_too_many_files_fail(tmp_path: Path) -> None:
    result = run_probe_sync(
        SpoolDepth, {"directory": str(spool(tmp_path, [1, 2, 3])), "max_files": 2}
    )
    assert result.status == "fail"
    assert result.output == f"3 files in {tmp_path}, more than 2"


def test_older_than_counts_only_stuck_files(tmp_path: Path) -> None:
    directory = spool(tmp_path, [1, 5, 600, 7200])
    result = run_probe_sync(
        SpoolDepth, {"directory": str(directory), "max_files": 1, "older_than": "5m"}
    )
    assert (result.status, result.observed_value) == ("fail", 2)
    assert result.output.startswith("2 files older than 5m in ")


def test_a_missing_directory_fails(tmp_path: Path) -> None:
    result = run_probe_sync(SpoolDepth, {"directory": str(tmp_path / "gone"), "max_files": 1})
    assert (result.status, result.reason) == ("fail", "file_missing")
