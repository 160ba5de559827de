"""The runner owns deadlines, timing and errors; probes only probe."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from adapter.runner import MAX_OUTPUT_BYTES, ProbeRunner, sanitize
from adapter.threads import DaemonThreadPool
from probes import Probe, Reason, Result, Status
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
    assert len(output.encode()) <= MAX_OUTPUT_BYTES
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
    assert len(output.encode()) <= MAX_OUTPUT_BYTES
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
