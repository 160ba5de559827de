"""The scheduler: first run at start-up, one run at a time, on its interval."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest

from adapter.config import Config
from adapter.scheduler import MAX_STAGGER, Scheduler
from adapter.state import CheckState, StateStore
from probes import Reason, Status
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
        # Staggered by at most MAX_STAGGER (1 s), not by a share of the hour.
        await wait_for(lambda: store.get("slow").status is Status.PASS, timeout=5)
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


# A deadline measures the run, not the queue (issue 17, kind 2).


def many(count: int, probe: str, defaults: str = "{interval: 10s, timeout: 1s}") -> str:
    lines = [f"defaults: {defaults}", "checks:"]
    lines += [f"  - {{name: c{i:03}, plugin: {probe}}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def ran_since(state: CheckState, at: float) -> bool:
    return state.last is not None and state.last.started >= at


@pytest.mark.parametrize("mode", ["check-once", "serve"])
async def test_blocking_checks_queued_for_the_pool_are_not_timed_out(
    mode: str, make_config: Callable[[str], Config]
) -> None:
    """Field case 16 in small: 40 plain-def checks of 0.2 s, 1 s timeout, 4 threads.

    The pool needs about 2 s for one round, twice the timeout: the last checks
    wait longer than their timeout for a thread, but none runs longer than 0.2 s.
    """
    config = make_config(many(40, '{class: "tests.sample_probes:SleepSync", sleep: 0.2}'))
    store = StateStore(c.name for c in config.checks)
    scheduler = Scheduler(config.checks, store, max_threads=4)
    try:
        if mode == "check-once":
            await scheduler.run_once()
        else:
            await scheduler.start()
            await wait_for(lambda: all(s.runs for s in store.states().values()), timeout=30)
    finally:
        await scheduler.stop()
    states = store.states()
    reported = {name: s.last.result.output for name, s in states.items() if s.last}
    assert {s.status for s in states.values()} == {Status.PASS}, reported
    # It did queue: without a stagger longer than the timeout; with one, still long.
    assert max(s.last.waited for s in states.values() if s.last) > (
        1.0 if mode == "check-once" else 0.4
    )


async def test_a_stuck_probe_in_the_only_thread_does_not_starve_the_others(
    make_config: Callable[[str], Config],
) -> None:
    """Until it is given up on, others may queue; never are they reported timed out."""
    config = make_config("""
checks:
  - {name: stuck, interval: 100ms, timeout: 200ms, plugin: {class: "tests.sample_probes:BlockForever"}}
  - {name: other, interval: 100ms, timeout: 1s,
     plugin: {class: "tests.sample_probes:SleepSync", sleep: 0}}
""")
    store = StateStore(["stuck", "other"])
    scheduler = Scheduler(config.checks, store, max_threads=1)
    await scheduler.start()
    try:
        await wait_for(lambda: Reason.STUCK in store.get("stuck").failure_counts)
        given_up = time.time()
        await wait_for(lambda: ran_since(store.get("other"), given_up))
        await wait_for(lambda: store.get("other").runs >= 5)
    finally:
        sample_probes.RELEASE.set()
        await scheduler.stop()
    other = store.get("other")
    assert Reason.TIMEOUT not in other.failure_counts
    assert set(other.failure_counts) <= {Reason.QUEUED}
    assert other.status is Status.PASS


@pytest.mark.parametrize(
    ("interval", "probe", "most"),
    [
        ("100ms", '{class: "tests.sample_probes:Ok"}', 0.01),
        ("5s", '{class: "tests.sample_probes:Ok"}', 0.5),
        ("10s", '{class: "tests.sample_probes:Ok"}', MAX_STAGGER),
        ("1h", '{class: "tests.sample_probes:Ok"}', MAX_STAGGER),
        ("10s", "{class: probes.process:ProcessProbe, name: init}", 0.0),
    ],
    ids=["100ms", "5s", "10s", "1h-capped", "process-checks-run-together"],
)
def test_first_runs_are_spread_over_a_tenth_of_the_interval_at_most_a_second(
    interval: str, probe: str, most: float, make_config: Callable[[str], Config]
) -> None:
    config = make_config(f"checks:\n  - {{name: a, interval: {interval}, plugin: {probe}}}\n")
    (check,) = config.checks
    scheduler = Scheduler(config.checks, StateStore(["a"]), rng=random.Random(7))
    probe_ = check.make_probe(scheduler.resources)
    delays = [scheduler.first_delay(check, probe_) for _ in range(500)]
    assert 0.0 <= min(delays) and max(delays) <= most
    assert max(delays) >= most * 0.8  # spread, not all at once


async def test_first_runs_at_start_and_after_a_reload_are_staggered(
    make_config: Callable[[str], Config],
) -> None:
    config = make_config(many(50, '{class: "tests.sample_probes:Ok"}'))
    store = StateStore(c.name for c in config.checks)
    scheduler = Scheduler(config.checks, store)
    begin = time.time()
    await scheduler.start()
    try:
        await wait_for(lambda: all(s.runs for s in store.states().values()))
        first = [s.last.started for s in store.states().values() if s.last]
        changed = make_config(many(50, '{class: "tests.sample_probes:Ok"}', "{interval: 20s}"))
        reloaded = time.time()
        assert len((await scheduler.replace(changed.checks)).changed) == 50
        await wait_for(lambda: all(ran_since(s, reloaded) for s in store.states().values()))
        again = [s.last.started for s in store.states().values() if s.last]
    finally:
        await scheduler.stop()
    for at, starts in [(begin, first), (reloaded, again)]:
        # Uniform over [0, 1 s): 50 first runs span well over a third of it.
        assert max(starts) - min(starts) > 0.3
        assert min(starts) >= at and max(starts) - at < MAX_STAGGER + 5


async def test_a_reload_that_changes_200_blocking_checks_times_none_out(
    make_config: Callable[[str], Config],
) -> None:
    """200 plain-def checks of 20 ms on 2 threads: a round takes 2 s, five timeouts."""
    probe = '{class: "tests.sample_probes:SleepSync", sleep: 0.02}'
    config = make_config(many(200, probe, "{interval: 10s, timeout: 300ms}"))
    store = StateStore(c.name for c in config.checks)
    scheduler = Scheduler(config.checks, store, max_threads=2)
    await scheduler.start()
    try:
        await wait_for(lambda: all(s.runs for s in store.states().values()), timeout=30)
        changed = make_config(many(200, probe, "{interval: 10s, timeout: 400ms}"))
        reloaded = time.time()
        assert len((await scheduler.replace(changed.checks)).changed) == 200
        await wait_for(
            lambda: all(ran_since(s, reloaded) for s in store.states().values()), timeout=30
        )
    finally:
        await scheduler.stop()
    states = store.states().values()
    failed = {s.last.result.output for s in states if s.last and s.failure_counts}
    assert failed == set()
    assert max(s.last.waited for s in states if s.last) > 0.4  # queued past the timeout


@pytest.mark.parametrize(
    "probe",
    ['{class: "tests.sample_probes:Ok"}', '{class: "tests.sample_probes:SleepSync", sleep: 0.05}'],
    ids=["async", "plain-def"],
)
async def test_since_is_the_time_of_the_run_that_changed_the_status(
    probe: str, make_config: Callable[[str], Config]
) -> None:
    """One wall-clock reading per run: `since` never comes after that run's `time`."""
    config = make_config(f"checks:\n  - {{name: a, interval: 100ms, plugin: {probe}}}\n")
    store = StateStore(["a"])
    changes: list[tuple[float | None, float]] = []
    store.subscribe(
        lambda name, old, new: (
            changes.append((new.since, new.last.started))
            if new.last is not None and new.status is not old.status
            else None
        )
    )
    scheduler = Scheduler(config.checks, store)
    await scheduler.start()
    try:
        await wait_for(lambda: store.get("a").runs >= 3)
    finally:
        await scheduler.stop()
    assert changes and all(since == started for since, started in changes)
    assert store.get("a").since == changes[-1][1]
