"""The runner owns deadlines, timing and errors; probes only probe."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator

import pytest

from adapter.runner import ProbeRunner, sanitize
from adapter.state import Run
from adapter.threads import DaemonThreadPool
from probes import Probe, Reason, Result, Status
from probes.base import OUTPUT_LIMIT
from tests import sample_probes


@pytest.fixture
def pool() -> Iterator[DaemonThreadPool]:
    pool = DaemonThreadPool(4)
    yield pool
    sample_probes.RELEASE.set()  # let blocked threads return
    pool.shutdown(wait=True)


def runner_for(
    cls: type[Probe], pool: DaemonThreadPool, timeout: float = 0.3, **options: object
) -> ProbeRunner:
    return ProbeRunner(cls("c", options), timeout, pool)


async def test_a_passing_probe_is_timed(pool: DaemonThreadPool) -> None:
    before = time.time()
    run = await runner_for(sample_probes.Ok, pool).run()
    assert run.result.status is Status.PASS and run.result.output == "fine"
    assert before <= run.started <= time.time()
    assert 0 <= run.duration < 1


@pytest.mark.parametrize(
    ("cls", "output"),
    [
        (sample_probes.Raises, "RuntimeError: database unreachable"),
        (sample_probes.RaisesSync, "OSError: [Errno 5] Input/output error"),
        (sample_probes.ReturnsGarbage, "probe returned dict, not a Result"),
        (sample_probes.BadResult, "ValueError: Result observed_value must be finite, not nan"),
    ],
    ids=["async-raises", "sync-raises", "returns-dict", "invalid-result"],
)
async def test_errors_become_failures(
    cls: type[Probe], output: str, pool: DaemonThreadPool
) -> None:
    run = await runner_for(cls, pool).run()
    assert run.result.status is Status.FAIL
    assert run.result.output == output
    assert run.result.reason is Reason.ERROR


async def test_async_probe_past_its_timeout_fails_and_is_cancelled(pool: DaemonThreadPool) -> None:
    begin = time.monotonic()
    run = await runner_for(sample_probes.SleepAsync, pool, timeout=0.2, sleep=30).run()
    assert run.result.status is Status.FAIL
    assert (run.result.output, run.result.reason) == ("timed out after 200ms", Reason.TIMEOUT)
    assert time.monotonic() - begin < 5
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_stuck_thread_is_reported_and_not_started_again(pool: DaemonThreadPool) -> None:
    runner = runner_for(sample_probes.BlockForever, pool, timeout=0.2)
    first = await runner.run()
    assert first.result.output == "timed out after 200ms"
    assert runner.stuck
    threads = pool.threads
    for _ in range(3):
        later = await runner.run()
        assert later.result.status is Status.FAIL
        assert later.result.output == "previous run still running (timed out after 200ms)"
        assert later.result.reason is Reason.STUCK
        assert later.duration < 0.1
    assert pool.threads == threads  # no new thread per due run
    sample_probes.RELEASE.set()
    for _ in range(100):
        if not runner.stuck:
            break
        await asyncio.sleep(0.05)
    assert not runner.stuck
    assert (await runner.run()).result.status is Status.PASS


async def test_stuck_probe_does_not_starve_other_blocking_probes(pool: DaemonThreadPool) -> None:
    stuck = runner_for(sample_probes.BlockForever, pool, timeout=0.1)
    await stuck.run()
    quick = runner_for(sample_probes.SleepSync, pool, timeout=2, sleep=0.01)
    for _ in range(5):
        assert (await quick.run()).result.status is Status.PASS


async def test_probe_that_swallows_cancellation_counts_as_stuck(pool: DaemonThreadPool) -> None:
    runner = runner_for(sample_probes.SwallowCancel, pool, timeout=0.1, hold=2)
    first = await runner.run()
    assert first.result.output == "timed out after 100ms"
    assert runner.stuck
    assert (await runner.run()).result.reason is Reason.STUCK
    for _ in range(100):
        if not runner.stuck:
            break
        await asyncio.sleep(0.05)
    assert not runner.stuck


async def test_output_is_capped_and_made_valid_text(pool: DaemonThreadPool) -> None:
    run = await runner_for(sample_probes.HugeOutput, pool).run()
    output = run.result.output
    kept, _, note = output.rpartition(" … ")
    assert note == f"(captured {len(kept.encode())} of 100001 bytes)"
    assert len(output.encode()) <= OUTPUT_LIMIT
    output.encode("utf-8")  # no lone surrogates left


@pytest.mark.parametrize(
    "text",
    ["é" * 10_000, "😀" * 5_000, "a" + "é" * 9_999],
    ids=["two-byte", "four-byte", "shifted"],
)
def test_a_cut_inside_a_character_is_counted_as_it_is(text: str) -> None:
    output = sanitize(Result("fail", text)).output
    kept, _, note = output.rpartition(" … ")
    assert note == f"(captured {len(kept.encode())} of {len(text.encode())} bytes)"
    assert len(output.encode()) <= OUTPUT_LIMIT
    assert text.startswith(kept)


async def test_cancelling_a_run_cancels_the_probe(pool: DaemonThreadPool) -> None:
    runner = runner_for(sample_probes.SleepAsync, pool, timeout=30, sleep=30)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


def test_daemon_pool_never_holds_more_threads_than_its_cap() -> None:
    pool = DaemonThreadPool(2)
    gate = threading.Event()
    futures = [pool.submit(gate.wait, 5) for _ in range(6)]
    assert pool.threads == 2
    gate.set()
    assert all(f.result(timeout=5) for f in futures)
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(print)


# A deadline measures the run, not the queue (issue 17, kind 2): a plain-def
# probe's deadline starts when a pool thread takes it; the wait for that
# thread is bounded apart and reported as what it is.


async def hold_threads(pool: DaemonThreadPool, count: int, timeout: float = 0.1) -> list[Run]:
    """Occupy `count` threads with probes that block until the test releases them.

    With a short `timeout` the probes are given up on (stuck) before this
    returns their runs; with a long one they are still running, and this
    returns once every thread is taken, leaving their runs unfinished ([]).
    """
    runners = [runner_for(sample_probes.BlockForever, pool, timeout=timeout) for _ in range(count)]
    runs = asyncio.gather(*(runner.run() for runner in runners))
    if timeout < 1:
        return list(await runs)
    for _ in range(200):
        if pool.ahead_of(concurrent.futures.Future())[0] == count:
            break
        await asyncio.sleep(0.01)
    HELD.append(runs)
    return []


#: Runs left holding threads, gathered by the tests that release them.
HELD: list[asyncio.Future[list[Run]]] = []


async def release(pool: DaemonThreadPool) -> None:
    sample_probes.RELEASE.set()
    held = asyncio.gather(*HELD)
    HELD.clear()
    await asyncio.wait_for(held, 10)
    pool.shutdown(wait=True)


async def test_a_slow_probe_within_its_timeout_passes_however_long_it_waited() -> None:
    pool = DaemonThreadPool(1)
    try:
        first, second = (
            runner_for(sample_probes.SleepSync, pool, timeout=1.0, sleep=0.6) for _ in range(2)
        )
        before = time.time()
        runs = await asyncio.gather(first.run(), second.run())
        # The second waited about 0.6 s for the only thread, then ran 0.6 s:
        # 1.2 s after it was due, but well within its own 1 s.
        assert [run.result.status for run in runs] == [Status.PASS, Status.PASS]
        waited = max(runs, key=lambda run: run.waited)
        assert waited.waited >= 0.55
        assert 0.55 <= waited.duration < 1.0
        assert waited.started >= before + waited.waited - 0.01
    finally:
        pool.shutdown(wait=True)


@pytest.mark.parametrize(
    ("threads", "patient", "output"),
    [
        (1, 0, "not started: 1 blocking check ahead of it, no thread free within 200ms"),
        (2, 2, "not started: 4 blocking checks ahead of it, no thread free within 200ms"),
    ],
    ids=["one-busy", "two-busy-two-waiting-ahead"],
)
async def test_a_run_that_gets_no_thread_is_reported_queued_not_timed_out(
    threads: int, patient: int, output: str
) -> None:
    """Every thread busy with probes well within their (30 s) timeout."""
    pool = DaemonThreadPool(threads)
    try:
        await hold_threads(pool, threads, timeout=30)
        waiting = [
            ProbeRunner(sample_probes.SleepSync("w", {"sleep": 0}), 0.1, pool, max_wait=30)
            for _ in range(patient)
        ]
        patient_runs = [asyncio.create_task(runner.run()) for runner in waiting]
        for _ in range(100):
            if pool.waiting == patient:
                break
            await asyncio.sleep(0.01)
        impatient = ProbeRunner(sample_probes.SleepSync("i", {"sleep": 0}), 0.1, pool, max_wait=0.2)
        run = await impatient.run()
        assert (run.result.status, run.result.reason) == (Status.FAIL, Reason.QUEUED)
        assert run.result.output == output
        assert run.waited >= 0.2 and run.duration == 0
        assert not impatient.stuck
        assert pool.waiting == patient  # it withdrew: nothing of it is left to run later
        assert not any(task.done() for task in patient_runs)
        sample_probes.RELEASE.set()
        for held in await asyncio.gather(*HELD):
            assert [r.result.status for r in held] == [Status.PASS] * threads
        HELD.clear()
        for later in await asyncio.gather(*patient_runs):
            assert later.result.status is Status.PASS  # waited long, ran well within 0.1 s
        assert (await impatient.run()).result.status is Status.PASS
    finally:
        await release(pool)


@pytest.mark.parametrize("stuck", [1, 3], ids=["one-stuck", "three-stuck"])
async def test_stuck_threads_do_not_take_the_places_of_others(stuck: int) -> None:
    """A one-thread pool: each probe given up on is set aside, another thread runs the rest."""
    pool = DaemonThreadPool(1)
    try:
        await hold_threads(pool, 1)
        for _ in range(stuck - 1):
            await hold_threads(pool, 1)
        quick = runner_for(sample_probes.SleepSync, pool, timeout=2, sleep=0.01)
        for _ in range(3):
            run = await quick.run()
            assert run.result.status is Status.PASS and run.waited < 1
        assert pool.threads == stuck + 1
        sample_probes.RELEASE.set()
        for _ in range(200):  # the extra threads end once their probes return
            if pool.threads == 1:
                break
            await asyncio.sleep(0.01)
        assert pool.threads == 1
    finally:
        sample_probes.RELEASE.set()
        pool.shutdown(wait=True)


async def test_async_probes_do_not_wait_for_the_pool() -> None:
    pool = DaemonThreadPool(1)
    try:
        await hold_threads(pool, 1, timeout=30)
        run = await runner_for(sample_probes.SleepAsync, pool, timeout=0.5, sleep=0.05).run()
        assert run.result.status is Status.PASS
        assert run.waited == 0
    finally:
        await release(pool)


async def test_a_queued_run_is_withdrawn_when_its_run_is_cancelled() -> None:
    pool = DaemonThreadPool(1)
    try:
        await hold_threads(pool, 1, timeout=30)
        runner = ProbeRunner(sample_probes.SleepSync("c", {"sleep": 0}), 5, pool, max_wait=30)
        task = asyncio.create_task(runner.run())
        for _ in range(100):
            if pool.waiting:
                break
            await asyncio.sleep(0.01)
        assert pool.waiting == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.waiting == 0
    finally:
        await release(pool)
