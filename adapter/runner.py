"""Runs one probe under its deadline and turns every outcome into a Result.

The runner, not the probe, owns the timing, the deadline and the errors: an
exception becomes `fail` "ExcType: message", an overrun becomes `fail`
"timed out after 2s", anything that is not a Result becomes `fail` too. A
plain-`def` probe whose thread outlives its deadline cannot be stopped; until
that thread returns, the check reports "previous run still running" instead
of piling up more threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable
from typing import Any, cast

from adapter.state import Run
from probes import Probe, Reason, Result, Status
from probes.types import format_duration

MAX_OUTPUT_BYTES = 4096
#: How long a cancelled async probe gets to wind down before it counts as stuck.
CANCEL_GRACE = 1.0


class ProbeRunner:
    def __init__(self, probe: Probe, timeout: float, executor: concurrent.futures.Executor) -> None:
        self.probe = probe
        self.timeout = timeout
        self.executor = executor
        self.blocking = probe.is_blocking()
        self._stuck: asyncio.Future[Any] | None = None

    @property
    def stuck(self) -> bool:
        return self._stuck is not None and not self._stuck.done()

    async def run(self) -> Run:
        started = time.time()
        # Not loop.time(): uvloop's clock moves in whole milliseconds.
        begin = time.perf_counter()
        if self.stuck:
            result = Result(
                Status.FAIL,
                f"previous run still running (timed out after {format_duration(self.timeout)})",
                reason=Reason.STUCK,
            )
        else:
            result = await self._attempt()
        duration = time.perf_counter() - begin
        return Run(sanitize(result), started=started, duration=duration, finished=time.monotonic())

    async def _attempt(self) -> Result:
        thread_future: concurrent.futures.Future[Any] | None = None
        if self.blocking:
            thread_future = self.executor.submit(self.probe.check)
            future: asyncio.Future[Any] = asyncio.wrap_future(thread_future)
        else:
            future = asyncio.ensure_future(cast(Awaitable[Result], self.probe.check()))
        try:
            done, _ = await asyncio.wait({future}, timeout=self.timeout)
        except asyncio.CancelledError:
            # The run itself is cancelled (shutdown, reload): an async probe gets
            # its cancellation and a moment to act on it (an exec probe kills its
            # process group) before this returns; a thread cannot be stopped.
            if thread_future is not None:
                thread_future.cancel()
                future.cancel()
            else:
                await self._abandon_task(future)
            raise
        if not done:
            if thread_future is not None:
                self._abandon_thread(thread_future, future)
            else:
                await self._abandon_task(future)
            return Result(
                Status.FAIL,
                f"timed out after {format_duration(self.timeout)}",
                reason=Reason.TIMEOUT,
            )
        return judge_outcome(future)

    def _abandon_thread(
        self, thread_future: concurrent.futures.Future[Any], future: asyncio.Future[Any]
    ) -> None:
        if thread_future.cancel():  # still queued: it never started, nothing is stuck
            future.cancel()
            return
        self._stuck = future
        future.add_done_callback(_consume)

    async def _abandon_task(self, task: asyncio.Future[Any]) -> None:
        task.cancel()
        # An async probe normally stops at its next await; one that swallows
        # the cancellation is treated like a stuck thread.
        await asyncio.wait({task}, timeout=CANCEL_GRACE)
        if task.done():
            _consume(task)
        else:
            self._stuck = task
            task.add_done_callback(_consume)


def judge_outcome(future: asyncio.Future[Any]) -> Result:
    """The Result of a finished probe call, whatever it did."""
    if future.cancelled():
        return Result(Status.FAIL, "cancelled", reason=Reason.ERROR)
    exc = future.exception()
    if exc is not None:
        return Result(Status.FAIL, describe_exception(exc), reason=Reason.ERROR)
    value = future.result()
    if not isinstance(value, Result):
        return Result(
            Status.FAIL,
            f"probe returned {type(value).__name__}, not a Result",
            reason=Reason.ERROR,
        )
    return value


def describe_exception(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def sanitize(result: Result) -> Result:
    """Cap the output and make it valid text, whatever bytes the probe put in it."""
    output = result.output
    encoded = output.encode("utf-8", "replace")
    if len(encoded) <= MAX_OUTPUT_BYTES and encoded.decode("utf-8") == output:
        return result
    if len(encoded) > MAX_OUTPUT_BYTES:
        # The whole output, note included, stays within the cap; the note
        # counts the bytes kept, which a cut inside a character makes fewer.
        note = f" … (captured {MAX_OUTPUT_BYTES} of {len(encoded)} bytes)"
        room = MAX_OUTPUT_BYTES - len(note.encode())
        kept = encoded[:room].decode("utf-8", "ignore")
        size = len(kept.encode())
        output = f"{kept} … (captured {size} of {len(encoded)} bytes)"
    else:
        output = encoded.decode("utf-8")
    return Result(result.status, output, result.observed_value, result.observed_unit, result.reason)


def _consume(future: asyncio.Future[Any]) -> None:
    # Retrieve the late outcome of an abandoned run so asyncio does not warn
    # "exception was never retrieved"; the result is no longer wanted.
    if not future.cancelled():
        future.exception()
