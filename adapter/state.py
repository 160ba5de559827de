"""What each check has seen so far, and the thresholds that turn runs into a status.

`advance` is pure: the previous state and one finished run in, the next state
out. `StateStore` only keeps the states and tells its listeners about changes.

Each state carries a bounded history of recent runs (failures are kept longer
than passes, since they are what someone looks for afterwards) and running
counts per result and per failure reason, which the metrics expose as counters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from probes import Reason, Result, Status

#: Runs kept in a check's history: the last passes and warnings, and, kept
#: longer, the last failures. Never more than both together.
HISTORY_OK = 20
HISTORY_FAILED = 50


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One finished run of a probe.

    `started` is the run's only wall-clock time, for people: when the probe
    began (after any wait for a thread). Everything the adapter measures for
    itself is monotonic: `duration` (the probe's own work), `finished`
    (staleness) and `waited` (for a free probe thread, before `started`).
    """

    result: Result
    started: float  # wall-clock seconds since the epoch
    duration: float  # seconds
    finished: float  # monotonic seconds, for staleness
    waited: float = 0.0  # seconds


@dataclasses.dataclass(frozen=True, slots=True)
class CheckState:
    """A check's reported status after thresholds, and what led to it."""

    status: Status | None = None  # None until the first run finishes
    last: Run | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    since: float | None = None  # `started` of the run that last changed the status
    failure_reason: Reason | None = None  # of the latest failed run
    runs: int = 0
    history: tuple[Run, ...] = ()  # recent runs, oldest first (see HISTORY_*)
    run_counts: Mapping[Status, int] = dataclasses.field(default_factory=dict)
    failure_counts: Mapping[Reason, int] = dataclasses.field(default_factory=dict)
    started_at: float | None = None  # `started` of the run that first reported pass or warn


def advance(
    state: CheckState, run: Run, failure_threshold: int = 1, success_threshold: int = 1
) -> CheckState:
    """The state after `run`.

    The first run is reported as it is. After that a check turns fail only
    after `failure_threshold` consecutive failed runs, and back only after
    `success_threshold` consecutive runs that did not fail; warn is not a
    failure and is reported as soon as it is seen.
    """
    observed = run.result.status
    failed = observed is Status.FAIL
    failures = state.consecutive_failures + 1 if failed else 0
    successes = 0 if failed else state.consecutive_successes + 1
    if state.status is None:
        status = observed
    elif failed:
        status = Status.FAIL if failures >= failure_threshold else state.status
    elif state.status is Status.FAIL:
        status = observed if successes >= success_threshold else Status.FAIL
    else:
        status = observed
    reason = run.result.reason or Reason.FAILED
    return CheckState(
        status=status,
        last=run,
        consecutive_failures=failures,
        consecutive_successes=successes,
        # The run's own timestamp, not a later reading: a change is never
        # reported after the run that made it.
        since=run.started if status is not state.status else state.since,
        failure_reason=reason if failed else state.failure_reason,
        runs=state.runs + 1,
        history=remember(state.history, run),
        run_counts=_count(state.run_counts, observed),
        failure_counts=_count(state.failure_counts, reason) if failed else state.failure_counts,
        started_at=(
            state.started_at
            if state.started_at is not None or status is Status.FAIL
            else run.started
        ),
    )


def remember(history: tuple[Run, ...], run: Run) -> tuple[Run, ...]:
    """`history` with `run` appended, less the oldest run of its kind beyond the limit."""
    kept = (*history, run)
    failed = run.result.status is Status.FAIL
    same_kind = [i for i, past in enumerate(kept) if (past.result.status is Status.FAIL) == failed]
    if len(same_kind) > (HISTORY_FAILED if failed else HISTORY_OK):
        oldest = same_kind[0]
        kept = kept[:oldest] + kept[oldest + 1 :]
    return kept


K = TypeVar("K", Status, Reason)


def _count(counts: Mapping[K, int], key: K) -> dict[K, int]:
    return {**counts, key: counts.get(key, 0) + 1}


Listener = Callable[[str, CheckState, CheckState], None]


class StateStore:
    """The latest state of every check, with a version that changes when any does."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._states: dict[str, CheckState] = {name: CheckState() for name in names}
        self._listeners: list[Listener] = []
        self.version = 0

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(name, old, new)` after every recorded run."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling `listener` (no error if it was not subscribed)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def get(self, name: str) -> CheckState:
        """The state of `name`; a fresh CheckState for a name it does not hold."""
        return self._states.get(name) or CheckState()

    def states(self) -> dict[str, CheckState]:
        """Every state by check name; the store's own dict, to be read, not changed."""
        return self._states

    def record(
        self,
        name: str,
        run: Run,
        failure_threshold: int = 1,
        success_threshold: int = 1,
        *,
        restart: bool = False,
    ) -> CheckState:
        """Advance `name` by `run`. With `restart` (its config changed) the run is
        judged as a first run, though listeners still see the state it replaces."""
        old = self.get(name)
        new = advance(CheckState() if restart else old, run, failure_threshold, success_threshold)
        self._states[name] = new
        self.version += 1
        for listener in self._listeners:
            listener(name, old, new)
        return new

    def retain(self, names: Iterable[str]) -> None:
        """Keep only `names` (a new config's checks), adding fresh states for new ones."""
        wanted = list(names)
        self._states = {name: self._states.get(name) or CheckState() for name in wanted}
        self.version += 1
