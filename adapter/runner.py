"""Runs one probe under its deadline and turns every outcome into a Result.

The runner, not the probe, owns the timing, the deadline and the errors: an
exception becomes `fail` "ExcType: message", an overrun becomes `fail`
"timed out after 2s" (the deadline counts from the probe's start, not from
the wait for a thread), anything that is not a Result becomes `fail` too. A
plain-`def` probe whose thread outlives its deadline cannot be stopped; until
that thread returns, the check reports "previous run still running" instead
of piling up more threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable
from typing import Any, cast

from adapter.state import Run
from adapter.threads import DaemonThreadPool
from probes import Probe, Reason, Result, Status
from probes.base import OUTPUT_LIMIT
from probes.types import format_duration

#: How long a cancelled async probe gets to wind down before it counts as stuck.
CANCEL_GRACE = 1.0


class ProbeRunner:
    """Runs one check's probe, one run at a time.

    `timeout` (seconds) bounds the probe's own work, from the moment it
    starts: an async probe starts at once, a plain-`def` one when a pool
    thread takes it. Waiting for that thread is bounded apart, by `max_wait`
    (seconds, default `timeout`); a run that waited that long without
    starting is withdrawn and reported `fail` "not started: …" (reason
    `queued`), never "timed out", since the target was never asked.
    """

    def __init__(
        self,
        probe: Probe,
        timeout: float,
        executor: DaemonThreadPool,
        *,
        max_wait: float | None = None,
    ) -> None:
        self.probe = probe
        self.timeout = timeout
        self.max_wait = timeout if max_wait is None else max_wait
        self.executor = executor
        self.blocking = probe.is_blocking()
        self._stuck: asyncio.Future[Any] | None = None

    @property
    def stuck(self) -> bool:
        """Whether a plain-`def` run that overran its deadline still holds its thread."""
        return self._stuck is not None and not self._stuck.done()

    async def run(self) -> Run:
        """One run of the probe under its deadline, whatever happens: never raises.

        The Result is the probe's own, or `fail` for an exception (reason `error`),
        an overrun (`timeout`), a wait for a thread past `max_wait` (`queued`), a
        previous run still holding its thread (`stuck`) or a return that is not a
        Result; its output is capped at MAX_OUTPUT_BYTES and made valid text.
        """
        # The run's one wall-clock reading, for people; every span is measured
        # on perf_counter (monotonic, and finer than uvloop's loop.time()).
        wall = time.time()
        submitted = time.perf_counter()
        if self.stuck:
            result = Result(
                Status.FAIL,
                f"previous run still running (timed out after {format_duration(self.timeout)})",
                reason=Reason.STUCK,
            )
            span = _Span(submitted, time.perf_counter())
        else:
            result, span = await self._attempt(submitted)
        return Run(
            sanitize(result),
            started=wall + (span.began - submitted),
            duration=span.ended - span.began,
            finished=time.monotonic(),
            waited=span.began - submitted,
        )

    async def _attempt(self, submitted: float) -> tuple[Result, _Span]:
        if self.blocking:
            return await self._attempt_in_thread(submitted)
        task = asyncio.ensure_future(cast(Awaitable[Result], self.probe.check()))
        try:
            await asyncio.wait({task}, timeout=self.timeout)
        except asyncio.CancelledError:
            # The run itself is cancelled (shutdown, reload): the probe gets its
            # cancellation and a moment to act on it (an exec probe kills its
            # process group) before this returns.
            await self._abandon_task(task)
            raise
        ended = time.perf_counter()
        if not task.done():
            await self._abandon_task(task)
            return self._timed_out(), _Span(submitted, ended)
        return result_of(task), _Span(submitted, ended)

    async def _attempt_in_thread(self, submitted: float) -> tuple[Result, _Span]:
        loop = asyncio.get_running_loop()
        began: asyncio.Future[float] = loop.create_future()
        span = _Span(submitted, submitted)
        check = self.probe.check

        def call() -> Any:
            span.began = time.perf_counter()
            _tell(loop, began, span.began)
            try:
                return check()
            finally:
                span.ended = time.perf_counter()

        thread_future = self.executor.submit(call)
        future: asyncio.Future[Any] = asyncio.wrap_future(thread_future)
        try:
            wait = self.max_wait - (time.perf_counter() - submitted)
            await asyncio.wait({began, future}, timeout=max(0.0, wait))
            if not began.done() and not future.done():
                running, queued = self.executor.ahead_of(thread_future)
                if self.executor.withdraw(thread_future):
                    future.cancel()
                    now = time.perf_counter()
                    return self._queued(running + queued), _Span(now, now)
                # A thread took it in the meantime: its start is a moment away.
                await asyncio.wait({began, future})
            if began.done():
                deadline = span.began + self.timeout
                await asyncio.wait({future}, timeout=max(0.0, deadline - time.perf_counter()))
        except asyncio.CancelledError:
            # A thread cannot be stopped; a call still waiting for one is dropped.
            self.executor.withdraw(thread_future)
            future.cancel()
            raise
        if not future.done():
            self._stuck = future
            future.add_done_callback(_consume)
            self.executor.set_aside(thread_future)
            return self._timed_out(), _Span(span.began, time.perf_counter())
        return result_of(future), span

    def _timed_out(self) -> Result:
        return Result(
            Status.FAIL,
            f"timed out after {format_duration(self.timeout)}",
            reason=Reason.TIMEOUT,
        )

    def _queued(self, ahead: int) -> Result:
        checks = "check" if ahead == 1 else "checks"
        return Result(
            Status.FAIL,
            f"not started: {ahead} blocking {checks} ahead of it, "
            f"no thread free within {format_duration(self.max_wait)}",
            reason=Reason.QUEUED,
        )

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


@dataclasses.dataclass(slots=True)
class _Span:
    """When the probe itself began and ended, on the perf_counter clock."""

    began: float
    ended: float


def _tell(loop: asyncio.AbstractEventLoop, future: asyncio.Future[float], value: float) -> None:
    def settle() -> None:
        if not future.done():
            future.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def result_of(future: asyncio.Future[Any]) -> Result:
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
    """`ExcType: message`, or `ExcType` alone when the message is empty."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def sanitize(result: Result) -> Result:
    """Cap the output and make it valid text, whatever bytes the probe put in it."""
    output = result.output
    encoded = output.encode("utf-8", "replace")
    if len(encoded) <= OUTPUT_LIMIT and encoded.decode("utf-8") == output:
        return result
    if len(encoded) > OUTPUT_LIMIT:
        # The whole output, note included, stays within the cap; the note
        # counts the bytes kept, which a cut inside a character makes fewer.
        note = f" … (captured {OUTPUT_LIMIT} of {len(encoded)} bytes)"
        room = OUTPUT_LIMIT - len(note.encode())
        kept = encoded[:room].decode("utf-8", "ignore")
        size = len(kept.encode())
        output = f"{kept} … (captured {size} of {len(encoded)} bytes)"
    else:
        output = encoded.decode("utf-8")
    return dataclasses.replace(result, output=output)


def _consume(future: asyncio.Future[Any]) -> None:
    # Retrieve the late outcome of an abandoned run so asyncio does not warn
    # "exception was never retrieved"; the result is no longer wanted.
    if not future.cancelled():
        future.exception()
