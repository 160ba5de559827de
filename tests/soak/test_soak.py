"""Soak: checks flapping every 100 ms under steady polling, for a bounded time.

CI runs it for SOAK_SECONDS (20 s). For a longer run, set the duration:

    HEALTH_ADAPTER_SOAK_SECONDS=3600 .venv/bin/python -m pytest tests/soak -m slow --timeout 0

What "flat" means, measured between the end of the warm-up (the first quarter
of the run, when caches, pools and the allocator have settled) and the end:
- resident memory grows by less than RSS_TOLERANCE plus RSS_PER_HOUR pro rata;
- open file descriptors grow by at most FD_TOLERANCE (a monitor's pooled
  connection may be between close and reopen at either sample);
- each check's run history stays within its bound (state.HISTORY_*).
And every state transition of every check is logged exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapter.server import SCHEDULER, STORE
from adapter.state import HISTORY_FAILED, HISTORY_OK, CheckState
from tests.faults.conftest import (
    MAX_LATENCY,
    Footprint,
    assert_nothing_left,
    running_adapter,
)

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("HEALTH_ADAPTER_SOAK_SECONDS", "20"))
RSS_TOLERANCE = 16 * 1024 * 1024
RSS_PER_HOUR = 32 * 1024 * 1024
FD_TOLERANCE = 6
FLAPPING_PLUGINS = 8
MONITORS = 4


def soak_config(target: str, heartbeat: Path) -> str:
    checks = [
        f"  - {{name: flap{i}, interval: 100ms, plugin: {{class: 'tests.sample_probes:Flapping'}}}}"
        for i in range(FLAPPING_PLUGINS)
    ]
    checks.append(f"  - {{name: http, interval: 100ms, timeout: 1s, http: {{url: '{target}'}}}}")
    checks.append(
        f"  - {{name: beat, interval: 100ms, file: {{path: '{heartbeat}', max_age: 150ms}}}}"
    )
    checks.append("  - {name: procs, interval: 100ms, process: {name: no-such-proc}}")
    return "checks:\n" + "\n".join(checks) + "\n"


async def test_flapping_checks_under_steady_polling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "health_adapter.checks")
    hits = [0]

    async def flappy(request: web.Request) -> web.Response:
        hits[0] += 1
        return web.Response(status=200 if hits[0] % 2 else 500, text="x")

    target_app = web.Application()
    target_app.router.add_get("/", flappy)
    target = TestServer(target_app, host="127.0.0.1")
    await target.start_server()
    heartbeat = tmp_path / "heartbeat"
    heartbeat.touch()
    before = Footprint.take()
    process = psutil.Process()
    observed: dict[str, list[tuple[str | None, str | None]]] = defaultdict(list)

    def watch(name: str, old: CheckState, new: CheckState) -> None:
        if old.status is not new.status:
            observed[name].append(
                (old.status and old.status.value, new.status and new.status.value)
            )

    async def touch_now_and_then() -> None:
        while True:  # fresh for a while, then stale for a while
            heartbeat.touch()
            await asyncio.sleep(0.3)

    try:
        async with running_adapter(soak_config(str(target.make_url("/")), heartbeat)) as adapter:
            adapter.app[STORE].subscribe(watch)
            stop_at = time.monotonic() + SOAK_SECONDS
            slowest = [0.0]
            answered = [0]

            async def monitor(paths: list[str]) -> None:
                async with aiohttp.ClientSession() as session:
                    while time.monotonic() < stop_at:
                        for path in paths:
                            begin = time.monotonic()
                            async with session.get(adapter.url + path) as response:
                                await response.read()
                            slowest[0] = max(slowest[0], time.monotonic() - begin)
                            answered[0] += 1
                        await asyncio.sleep(0.05)

            toucher = asyncio.create_task(touch_now_and_then())
            monitors = [
                asyncio.create_task(
                    monitor(["/health", "/readyz?verbose", f"/health/flap{i}", "/livez"])
                )
                for i in range(MONITORS)
            ]
            await asyncio.sleep(SOAK_SECONDS / 4)
            warm_rss, warm_fds = process.memory_info().rss, process.num_fds()
            await asyncio.gather(*monitors)
            end_rss, end_fds = process.memory_info().rss, process.num_fds()
            toucher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await toucher
            scheduler = adapter.app[SCHEDULER]
            states = len(adapter.app[STORE].states())
            longest_history = max(
                len(state.history) for state in adapter.app[STORE].states().values()
            )
            runs = sum(state.runs for state in adapter.app[STORE].states().values())
            lateness = scheduler.lateness
    finally:
        await target.close()

    allowed = RSS_TOLERANCE + RSS_PER_HOUR * SOAK_SECONDS / 3600
    assert end_rss - warm_rss < allowed, f"RSS grew {(end_rss - warm_rss) / 2**20:.1f} MiB"
    assert end_fds - warm_fds <= FD_TOLERANCE, (warm_fds, end_fds)
    assert slowest[0] < MAX_LATENCY and answered[0] > SOAK_SECONDS * 10
    # Bounded state: one entry per check, a bounded window of scheduling lateness.
    assert states == FLAPPING_PLUGINS + 3
    # Each check's run history is bounded, however many runs went by.
    assert longest_history <= HISTORY_OK + HISTORY_FAILED < runs / states
    print(
        f"soak: {SOAK_SECONDS:.0f}s, {runs} runs, {answered[0]} requests, "
        f"RSS {(end_rss - warm_rss) / 2**20:+.1f} MiB, fds {end_fds - warm_fds:+d}, "
        f"slowest answer {slowest[0] * 1000:.0f} ms"
    )
    assert lateness.maxlen is not None and len(lateness) <= lateness.maxlen
    # Every transition logged exactly once, in the order it happened.
    logged: dict[str, list[tuple[str | None, str | None]]] = defaultdict(list)
    for record in caplog.records:
        if record.getMessage() == "check_transition":
            fields: dict[str, Any] = record.fields  # type: ignore[attr-defined]
            logged[fields["check"]].append(
                (None if fields["old"] == "none" else fields["old"], fields["new"])
            )
    flapped = sum(len(changes) for changes in observed.values())
    assert flapped > SOAK_SECONDS * FLAPPING_PLUGINS * 5  # it really flapped
    for name, changes in observed.items():
        # The first recorded change (none -> first status) happened before we subscribed.
        assert logged[name][-len(changes) :] == changes, name
        assert len(logged[name]) in (len(changes), len(changes) + 1), name
    await assert_nothing_left(before, settle=8)
