"""Runs every check in the background, each on its own interval.

One task per check: the first run at start-up, each later run due one
interval (with up to ±10 % jitter) after the previous one ended, so runs of one
check never overlap. Requests never run probes; they read the store.

First runs, at start-up and for the checks a reload starts again, are spread
at random over `STAGGER` of the interval, at most `MAX_STAGGER` seconds (after
Consul's stagger and Envoy's initial_jitter): checks that share an interval
would otherwise all come due at one instant, and the blocking ones would queue
for the thread pool together, every round after. The cap keeps "first run at
start-up" true: a check's first result is never more than a second away.

A plain-`def` run waits for a free pool thread at most the longer of its
check's interval and timeout before it is reported as not started (reason
`queued`): by then it has missed its turn, and the wait alone never turns
into "timed out".
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
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
#: First runs are spread over this fraction of the interval, at most MAX_STAGGER seconds.
STAGGER = 0.1
MAX_STAGGER = 1.0
MAX_BLOCKING_THREADS = 32
#: How long one probe's close() may take at shutdown before it is abandoned.
CLOSE_TIMEOUT = 2.0


class Scheduler:
    """Runs every check of `checks` on its interval and records each run in `store`.

    `start` spreads the first runs (see the module); `replace` swaps the checks
    for a reload, unchanged ones running on without a gap; `stop`
    cancels the runs in flight and closes every probe. Plain-`def` probes share
    a pool of at most `max_threads` threads, one per blocking check. `resources`
    is what the probes share (probes.Resources: a process-table snapshot, pools).
    """

    def __init__(
        self,
        checks: Sequence[CheckConfig],
        store: StateStore,
        *,
        resources: Resources | None = None,
        rng: random.Random | None = None,
        max_threads: int = MAX_BLOCKING_THREADS,
    ) -> None:
        self.checks = list(checks)
        self.store = store
        self.resources = resources or Resources()
        self.rng = rng or random.Random()
        self.max_threads = max_threads
        blocking = sum(1 for check in self.checks if check.probe_class.is_blocking())
        # One thread per blocking check at most (a stuck check holds only its own),
        # so up to the cap one stuck probe cannot starve another.
        self.pool = DaemonThreadPool(max(1, min(max_threads, blocking)))
        self.runners: dict[str, ProbeRunner] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False
        self._stopped = False
        #: Checks whose config changed in a reload: their next run starts afresh.
        self._restarted: set[str] = set()
        #: How late each run started against its due time (seconds), most recent last.
        self.lateness: collections.deque[float] = collections.deque(maxlen=10_000)

    def _runner(self, check: CheckConfig) -> ProbeRunner:
        runner = self.runners.get(check.name)
        if runner is None:
            probe = check.make_probe(self.resources)
            runner = self.runners[check.name] = ProbeRunner(
                probe, check.timeout, self.pool, max_wait=max(check.interval, check.timeout)
            )
        return runner

    async def start(self) -> None:
        """Start one background task per check; the first runs begin within
        `STAGGER` of their interval (at most `MAX_STAGGER` seconds)."""
        self._started = True
        for check in self.checks:
            self._start(check)

    def alive(self) -> bool:
        """Whether every check's task is still scheduling runs (systemd's watchdog asks)."""
        return (
            self._started
            and not self._stopped
            and all(not task.done() for task in self._tasks.values())
        )

    async def replace(self, checks: Sequence[CheckConfig]) -> Changes:
        """Run `checks` from now on (a reloaded config).

        A check whose config is unchanged keeps its task, its probe and its
        schedule, with no gap. A removed one is stopped (its run cancelled,
        its probe closed); a changed one is stopped and started again, and its
        first new run is reported as a first run; a new one starts at once.
        First runs of changed and new checks are staggered as at start-up.
        """
        old = {check.name: check for check in self.checks}
        new = {check.name: check for check in checks}
        changes = Changes(
            added=tuple(name for name in new if name not in old),
            removed=tuple(name for name in old if name not in new),
            changed=tuple(name for name in new if name in old and new[name] != old[name]),
            unchanged=tuple(name for name in new if name in old and new[name] == old[name]),
        )
        await self._stop_checks([*changes.removed, *changes.changed])
        self.checks = list(checks)
        blocking = sum(1 for check in self.checks if check.probe_class.is_blocking())
        # Threads still stuck in dropped probes were set aside by their runners
        # and do not take the new checks' places.
        self.pool.max_workers = max(self.pool.max_workers, min(self.max_threads, blocking))
        self._restarted.update(changes.changed)
        if self._started and not self._stopped:
            for name in (*changes.changed, *changes.added):
                self._start(new[name])
        return changes

    async def _stop_checks(self, names: Iterable[str]) -> None:
        """Stop these checks' tasks and close their probes."""
        tasks = [task for name in names if (task := self._tasks.pop(name, None)) is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        runners = [runner for name in names if (runner := self.runners.pop(name, None)) is not None]
        await asyncio.gather(*(self._close(runner.probe) for runner in runners))

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

    def first_delay(self, check: CheckConfig, probe: Probe) -> float:
        """Seconds from start-up (or reload) to the check's first run."""
        if not probe.jitter:  # runs together with its kind, e.g. one process-table scan
            return 0.0
        return self.rng.uniform(0.0, min(STAGGER * check.interval, MAX_STAGGER))

    async def _loop(self, check: CheckConfig, runner: ProbeRunner) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.first_delay(check, runner.probe)
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
        restart = check.name in self._restarted
        self._restarted.discard(check.name)
        try:
            self.store.record(
                check.name,
                run,
                check.failure_threshold,
                check.success_threshold,
                restart=restart,
            )
        except Exception:  # a failing listener must not lose the result or the schedule
            log.exception("recording a run failed", extra={"fields": {"check": check.name}})

    async def stop(self) -> None:
        """Cancel every run, close the probes and shared resources. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
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
        """Whether any check's task is still running."""
        return any(not task.done() for task in self._tasks.values())


@dataclasses.dataclass(frozen=True)
class Changes:
    """What a replacement of the checks did, by check name."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
