"""The status page in a real headless Chromium: it renders, and names every check."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    RunningAdapter,
    WatchedApp,
    adapter_config,
    http_get,
    wait_for,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )


def test_chromium_renders_the_status_page(
    watched_app: WatchedApp, start_adapter: Callable[[str], RunningAdapter], tmp_path: Path
) -> None:
    # A non-critical check whose output holds markup: the page must show it, not run it.
    marker = tmp_path / "mode"
    marker.write_text("starting")
    adapter = start_adapter(
        adapter_config(
            watched_app,
            tmp_path,
            extra=f"  - {{name: mode, critical: false, file: {{path: '{marker}', "
            "contains: '<b>ready</b>'}}\n",
        )
    )

    def every_check_has_run() -> bool:
        body = json.loads(http_get(f"{adapter.url}/health")[1])
        return all(entry[0].get("reason") != "no_result" for entry in body["checks"].values())

    wait_for("every check has run", every_check_has_run)
    screenshot = tmp_path / "status.png"
    done = chromium(
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1200,800",
        f"{adapter.url}/",
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    png = screenshot.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == (1200, 800)
    assert len(png) > 10_000  # a rendered page, not a blank one

    done = chromium(tmp_path / "profile", "--dump-dom", f"{adapter.url}/")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    dom = done.stdout.decode()
    for name in ["api", "heartbeat", "mode"]:
        assert f">{name}</a>" in dom
    assert "Degraded" in dom and "shop" in dom
    # The output arrived as text: escaped in the serialised DOM, no <b> element made.
    assert "does not contain '&lt;b&gt;ready&lt;/b&gt;'" in dom
    assert "<b>" not in dom
