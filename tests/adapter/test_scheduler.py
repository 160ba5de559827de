"""The scheduler: first run at start-up, one run at a time, on its interval."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from adapter.config import Config
from adapter.scheduler import Scheduler
from adapter.state import StateStore
from probes import Status
from tests import sample_probes


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def started(config: Config) -> tuple[Scheduler, StateStore]:
    store = StateStore(c.name for c in config.checks)
    scheduler = Scheduler(config.checks, store)
    await scheduler.start()
    return scheduler, store


async def test_first_run_is_at_start_up(make_config: Callable[[str], Config]) -> None:
    config = make_config("""
checks:
  - {name: slow, interval: 1h, plugin: {class: "tests.sample_probes:Counting", key: a}}
""")
    scheduler, store = await started(config)
    try:
        await wait_for(lambda: store.get("slow").status is Status.PASS, timeout=2)
        assert sample_probes.COUNTS["a"] == 1
    finally:
        await scheduler.stop()


async def test_runs_repeat_on_the_interval_and_never_overlap(
    make_config: Callable[[str], Config],
) -> None:
    config = make_config("""
checks:
  - {name: busy, interval: 100ms, timeout: 2s,
     plugin: {class: "tests.sample_probes:Counting", key: busy, sleep: 0.3}}
  - {name: quick, interval: 100ms, plugin: {class: "tests.sample_probes:Counting", key: q}}
""")
    scheduler, store = await started(config)
    try:
        await wait_for(lambda: sample_probes.COUNTS.get("busy", 0) >= 3)
        await wait_for(lambda: sample_probes.COUNTS.get("q", 0) >= 10)
    finally:
        await scheduler.stop()
    # The slow check took longer than its interval: later runs waited for it.
    assert sample_probes.Counting.overlaps.get("busy", 0) == 0
    assert store.get("busy").status is Status.PASS


async def test_timeout_longer_than_interval_is_honoured(
    make_config: Callable[[str], Config],
) -> None:
    config = make_config("""
checks:
  - {name: s, interval: 100ms, timeout: 2s,
     plugin: {class: "tests.sample_probes:SleepAsync", sleep: 0.4}}
""")
    scheduler, store = await started(config)
    try:
        await wait_for(lambda: store.get("s").runs >= 2)
        assert store.get("s").status is Status.PASS
    finally:
        await scheduler.stop()


async def test_failure_threshold_over_real_runs(make_config: Callable[[str], Config]) -> None:
    config = make_config("""
checks:
  - {name: flaky, interval: 100ms, failure_threshold: 3, success_threshold: 2,
     plugin: {class: "tests.sample_probes:Switch", key: flaky}}
""")
    transitions: list[tuple[Status | None, Status | None, int]] = []
    scheduler, store = await started(config)
    store.subscribe(
        lambda name, old, new: (
            transitions.append(
                (old.status, new.status, new.consecutive_failures or new.consecutive_successes)
            )
            if old.status is not new.status
            else None
        )
    )
    try:
        await wait_for(lambda: store.get("flaky").status is Status.PASS)
        sample_probes.SWITCHES["flaky"] = "fail"
        await wait_for(lambda: store.get("flaky").status is Status.FAIL)
        sample_probes.SWITCHES["flaky"] = "pass"
        await wait_for(lambda: store.get("flaky").status is Status.PASS)
    finally:
        await scheduler.stop()
    assert transitions[-2:] == [(Status.PASS, Status.FAIL, 3), (Status.FAIL, Status.PASS, 2)]


async def test_stop_cancels_every_run_and_leaves_no_task(
    make_config: Callable[[str], Config],
) -> None:
    config = make_config("""
checks:
  - {name: s, interval: 100ms, timeout: 30s,
     plugin: {class: "tests.sample_probes:SleepAsync", sleep: 30}}
  - {name: b, interval: 100ms, timeout: 200ms, plugin: {class: "tests.sample_probes:BlockForever"}}
""")
    scheduler, _ = await started(config)
    await asyncio.sleep(0.5)
    await asyncio.wait_for(scheduler.stop(), 5)
    assert not scheduler.running
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_run_once_records_every_check(make_config: Callable[[str], Config]) -> None:
    config = make_config("""
checks:
  - {name: a, plugin: {class: "tests.sample_probes:Ok"}}
  - {name: b, timeout: 100ms, plugin: {class: "tests.sample_probes:SleepAsync", sleep: 5}}
""")
    store = StateStore(["a", "b"])
    scheduler = Scheduler(config.checks, store)
    runs = await scheduler.run_once()
    await scheduler.stop()
    assert runs["a"].result.status is Status.PASS
    assert runs["b"].result.output == "timed out after 100ms"
    assert store.get("b").status is Status.FAIL


async def test_a_failing_listener_does_not_stop_the_schedule(
    make_config: Callable[[str], Config],
) -> None:
    config = make_config("""
checks:
  - {name: a, interval: 100ms, plugin: {class: "tests.sample_probes:Counting", key: l}}
""")
    store = StateStore(["a"])

    def broken(name: str, old: object, new: object) -> None:
        raise RuntimeError("listener bug")

    store.subscribe(broken)
    scheduler = Scheduler(config.checks, store)
    await scheduler.start()
    try:
        await wait_for(lambda: sample_probes.COUNTS.get("l", 0) >= 3)
    finally:
        await scheduler.stop()
