"""The status page in a real headless Chromium: it renders, and names every check."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
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


class DevTools:
    """One page of a headless Chromium, driven through the DevTools protocol on loopback."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive_json(), 60)
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        answer = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"].get("value")


@contextlib.asynccontextmanager
async def devtools(profile: Path, url: str) -> AsyncIterator[DevTools]:
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        await async_wait_for("chromium's DevTools port", port_file.exists)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:

            async def page_target() -> str | None:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                    targets = await response.json()
                pages = [t for t in targets if t["type"] == "page" and t["url"].startswith(url)]
                return pages[0]["webSocketDebuggerUrl"] if pages else None

            ws_url = await async_wait_for("the page's target", page_target)
            async with session.ws_connect(ws_url, max_msg_size=0) as ws:
                yield DevTools(ws)
    finally:
        process.terminate()
        await process.wait()


async def async_wait_for(what: str, predicate: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
        except (OSError, aiohttp.ClientError, ValueError):
            value = None
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


#: What must stay readable at every width: each row's name, status and output.
MEASURE = """(() => {
  const width = document.documentElement.clientWidth;
  const rows = [...document.querySelectorAll('tbody tr')].map(row => {
    const box = sel => { const e = row.querySelector(sel); if (!e) return null;
                         const r = e.getBoundingClientRect(); return [r.left, r.right, r.width]; };
    return {cls: row.className, name: box('.name a'), pill: box('.pill'), output: box('.output')};
  });
  const headers = [...document.querySelectorAll('th')].filter(th => th.offsetParent !== null).length;
  return {width, scrollWidth: document.documentElement.scrollWidth, rows, headers};
})()"""


@pytest.mark.parametrize(("width", "headers"), [(420, 0), (1200, 6)], ids=["narrow", "wide"])
def test_the_page_reads_without_sideways_scrolling(
    watched_app: WatchedApp,
    start_adapter: Callable[[str], RunningAdapter],
    tmp_path: Path,
    width: int,
    headers: int,
) -> None:
    missing = tmp_path / "a-rather-long-directory-name" / "and-a-long-heartbeat-file-name"
    adapter = start_adapter(
        adapter_config(
            watched_app,
            tmp_path,
            extra=f"  - {{name: worker-heartbeat-of-the-billing-queue, file: {{path: '{missing}'}}}}\n"
            f"  - {{name: cache, critical: false, file: {{path: '{tmp_path / 'nope'}'}}}}\n",
        )
    )

    def every_check_has_run() -> bool:
        body = json.loads(http_get(f"{adapter.url}/health")[1])
        return all(entry[0].get("reason") != "no_result" for entry in body["checks"].values())

    wait_for("every check has run", every_check_has_run)

    async def look() -> tuple[dict[str, Any], bytes]:
        async with devtools(tmp_path / "profile", f"{adapter.url}/") as page:
            await page.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            await page.call("Page.reload")
            await async_wait_for(
                "the page is loaded",
                lambda: page.evaluate(
                    "document.readyState === 'complete' && document.documentElement.clientWidth"
                ),
            )
            measured = await page.evaluate(MEASURE)
            shot = await page.call("Page.captureScreenshot", format="png")
            return measured, base64.b64decode(shot["data"])

    measured, png = asyncio.run(look())
    (tmp_path / f"status-{width}.png").write_bytes(png)
    assert png.startswith(PNG_SIGNATURE)
    assert struct.unpack(">II", png[16:24]) == (width, 900)

    assert measured["width"] == width
    assert measured["scrollWidth"] <= width, measured
    assert measured["headers"] == headers  # a narrow window shows cards, not a table head
    rows = measured["rows"]
    # Failing rows first: the missing heartbeat, then the non-critical cache.
    assert [row["cls"] for row in rows] == ["fail", "fail", "pass", "pass"]
    for row in rows:
        for part in ("name", "pill", "output"):
            left, right, size = row[part]
            assert 0 <= left and right <= width and size > 0, (part, row)
