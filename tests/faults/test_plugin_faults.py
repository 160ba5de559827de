"""Plugins that misbehave: raise, block their thread forever, return garbage."""

from __future__ import annotations

import pytest

from tests import sample_probes
from tests.faults.conftest import (
    MAX_LATENCY,
    Footprint,
    assert_nothing_left,
    check_entry,
    running_adapter,
)


def plugin_config(cls: str, timeout: str = "300ms") -> str:
    return (
        "checks:\n"
        f"  - {{name: plugin, interval: 100ms, timeout: {timeout}, "
        f"plugin: {{class: 'tests.sample_probes:{cls}'}}}}\n"
        "  - {name: other, interval: 100ms, plugin: {class: 'tests.sample_probes:Ok'}}\n"
    )


@pytest.mark.parametrize(
    ("cls", "reason", "output"),
    [
        pytest.param("Raises", "error", "RuntimeError: database unreachable", id="raises"),
        pytest.param(
            "RaisesSync",
            "error",
            "OSError: [Errno 5] Input/output error",
            id="raises-in-its-thread",
        ),
        pytest.param(
            "ReturnsGarbage", "error", "probe returned dict, not a Result", id="returns-garbage"
        ),
        pytest.param(
            "BadResult",
            "error",
            "ValueError: Result observed_value must be finite, not nan",
            id="returns-nan",
        ),
        pytest.param("SleepAsync", "timeout", "timed out after 300ms", id="never-returns"),
        pytest.param(
            "SwallowCancel",
            "stuck",
            "previous run still running (timed out after 300ms)",
            id="swallows-its-cancellation",
        ),
    ],
)
async def test_a_plugin_that_misbehaves_fails_its_own_check_only(
    cls: str, reason: str, output: str
) -> None:
    before = Footprint.take()
    async with running_adapter(plugin_config(cls)) as adapter:
        # First runs are spread over a moment: wait for both checks to have run.
        body = await adapter.until(
            lambda status, b: (
                check_entry(b, "plugin").get("reason") == reason
                and check_entry(b, "other").get("status") == "pass"
            )
        )
        polls = await adapter.poll(10)
    assert check_entry(body, "plugin")["output"] == output
    assert polls.statuses == [503] * 10 and polls.slowest < MAX_LATENCY
    assert all(check_entry(b, "other")["status"] == "pass" for b in polls.bodies)
    await assert_nothing_left(before)


async def test_huge_garbage_output_is_capped() -> None:
    before = Footprint.take()
    async with running_adapter(plugin_config("HugeOutput")) as adapter:
        body = await adapter.until(
            lambda status, b: status == 503 and check_entry(b, "plugin").get("reason") == "failed"
        )
    output = check_entry(body, "plugin")["output"]
    assert output.endswith(" of 100001 bytes)") and "(captured 40" in output
    assert len(output.encode()) <= 4096
    await assert_nothing_left(before)


async def test_a_plugin_that_blocks_its_thread_forever() -> None:
    before = Footprint.take()
    async with running_adapter(plugin_config("BlockForever")) as adapter:
        body = await adapter.until(
            lambda status, b: check_entry(b, "plugin").get("reason") == "stuck"
        )
        assert check_entry(body, "plugin")["output"] == (
            "previous run still running (timed out after 300ms)"
        )
        polls = await adapter.poll(20)
        assert polls.slowest < MAX_LATENCY
        assert all(check_entry(b, "other")["status"] == "pass" for b in polls.bodies)
    # The adapter stopped; only the one blocked thread remains, and it is a daemon
    # thread, so it cannot hold the process at exit.
    await assert_nothing_left(before, stuck_threads=1)
    sample_probes.RELEASE.set()
    await assert_nothing_left(before)
