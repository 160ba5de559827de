"""Runs every check in the background, each on its own interval.

One task per check: the first run at start-up, each later run due one
interval (with up to ±10 % jitter) after the previous one ended, so runs of one
check never overlap. Requests never run probes; they read the store.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Iterable, Sequence

from adapter.config import CheckConfig
from adapter.runner import ProbeRunner
from adapter.state import Run, StateStore
from adapter.threads import DaemonThreadPool
from probes import Probe, Resources

log = logging.getLogger("health_adapter.scheduler")

JITTER = 0.1
MAX_BLOCKING_THREADS = 32
#: How long one probe's close() may take at shutdown before it is abandoned.
CLOSE_TIMEOUT = 2.0


class Scheduler:
    def __init__(
        self,
        checks: Sequence[CheckConfig],
        store: StateStore,
        *,
        resources: Resources | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.checks = list(checks)
        self.store = store
        self.resources = resources or Resources()
        self.rng = rng or random.Random()
        blocking = sum(1 for check in self.checks if check.probe_class.is_blocking())
        # One thread per blocking check at most (a stuck check holds only its own),
        # so up to the cap one stuck probe cannot starve another.
        self.pool = DaemonThreadPool(max(1, min(MAX_BLOCKING_THREADS, blocking)))
        self.runners: dict[str, ProbeRunner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: How late each run started against its due time (seconds), most recent last.
        self.lateness: collections.deque[float] = collections.deque(maxlen=10_000)

    def _runner(self, check: CheckConfig) -> ProbeRunner:
        runner = self.runners.get(check.name)
        if runner is None:
            probe = check.make_probe(self.resources)
            runner = self.runners[check.name] = ProbeRunner(probe, check.timeout, self.pool)
        return runner

    async def start(self) -> None:
        """Start one background task per check; the first runs begin at once."""
        for check in self.checks:
            self._start(check)

    def _start(self, check: CheckConfig) -> None:
        runner = self._runner(check)
        task = asyncio.create_task(self._loop(check, runner), name=f"check:{check.name}")
        self._tasks[check.name] = task

    async def run_once(self, checks: Iterable[CheckConfig] | None = None) -> dict[str, Run]:
        """Run the given checks (all by default) once, concurrently, and record the runs."""
        selected = list(self.checks if checks is None else checks)
        runs = await asyncio.gather(*(self._runner(check).run() for check in selected))
        for check, run in zip(selected, runs, strict=True):
            self._record(check, run)
        return {check.name: run for check, run in zip(selected, runs, strict=True)}

    async def _loop(self, check: CheckConfig, runner: ProbeRunner) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lateness.append(max(0.0, loop.time() - due))
            try:
                run = await runner.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in the runner must not end this check's schedule
                log.exception("run failed", extra={"fields": {"check": check.name}})
            else:
                self._record(check, run)
            due = loop.time() + self._next_interval(check, runner.probe)

    def _next_interval(self, check: CheckConfig, probe: Probe) -> float:
        if not probe.jitter:
            return check.interval
        return check.interval * (1 + self.rng.uniform(-JITTER, JITTER))

    def _record(self, check: CheckConfig, run: Run) -> None:
        try:
            self.store.record(
                check.name, run, check.failure_threshold, check.success_threshold
            )
        except Exception:  # a failing listener must not lose the result or the schedule
            log.exception("recording a run failed", extra={"fields": {"check": check.name}})

    async def stop(self) -> None:
        """Cancel every run, close the probes and shared resources."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(self._close(runner.probe) for runner in self.runners.values()),
        )
        self.runners.clear()
        try:
            await asyncio.wait_for(self.resources.aclose(), CLOSE_TIMEOUT)
        except Exception:
            log.exception("closing shared resources failed")
        self.pool.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    async def _close(probe: Probe) -> None:
        try:
            await asyncio.wait_for(probe.close(), CLOSE_TIMEOUT)
        except Exception:
            log.exception("closing a probe failed", extra={"fields": {"check": probe.name}})

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks.values())
