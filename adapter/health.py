"""The verdict: check states + policy + now -> the status of each check and of a group.

This is the only place that decides health. Every renderer, status code and
metric reads a `Verdict`; none of them judges for itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping

from adapter.config import CheckConfig
from adapter.state import CheckState, Run
from probes import Reason, Status
from probes.types import format_duration


@dataclasses.dataclass(frozen=True, slots=True)
class CheckVerdict:
    """One check's verdict, as every format shows it.

    `status` is the check's own (what /health/NAME answers); `contributes` is
    what it gives its group, where a failing non-critical check only warns.
    Times: `time`, `since` and `started_at` are wall-clock seconds since the
    epoch, `duration` seconds; `observed_value` is in `observed_unit` as the
    probe reported it.
    """

    name: str
    status: Status  # the check's own status, as /health/{name} reports it
    contributes: Status  # to its group's verdict: a non-critical failure only warns
    output: str
    reason: Reason | None
    observed_value: int | float | None
    observed_unit: str | None
    time: float | None  # wall-clock time of the last run's start
    duration: float | None  # seconds the last run took
    since: float | None  # wall-clock time the check's status last changed
    critical: bool
    probe_type: str
    groups: tuple[str, ...]
    history: tuple[Run, ...] = ()  # recent runs, oldest first
    run_counts: Mapping[Status, int] = dataclasses.field(default_factory=dict)
    failure_counts: Mapping[Reason, int] = dataclasses.field(default_factory=dict)
    started_at: float | None = None  # when it first reported pass or warn
    cert_not_after: float | None = None  # Unix time the peer's earliest certificate expires


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """The verdict of a set of checks: the worst of what each contributes.

    Made only by `judge` (and `one_check_verdict`, `shutting_down`); renderers,
    status codes and metrics read it and never judge for themselves.
    """

    status: Status
    checks: tuple[CheckVerdict, ...]
    excluded: tuple[str, ...] = ()  # checks left out on request (`?exclude=`)
    unmatched: tuple[str, ...] = ()  # names asked to be excluded that match no check
    draining: bool = False  # the adapter is shutting down or drained: no longer ready
    drain_reason: str = ""  # why it drains, e.g. SHUTTING_DOWN
    notes: tuple[str, ...] = ()  # what a reader should know beside the checks


PerCheck = Callable[[CheckConfig, CheckState, float], CheckVerdict]

#: A result older than this many intervals, plus the check's timeout, is stale:
#: one late or slow run is not enough, runs missed in a row are.
STALE_INTERVALS = 3


def stale_after(check: CheckConfig) -> float:
    """Seconds after its run finished at which a result of `check` is too old to
    trust: `STALE_INTERVALS` intervals plus the timeout (10s and 2s: 32s)."""
    return STALE_INTERVALS * check.interval + check.timeout


def check_verdict(check: CheckConfig, state: CheckState, now: float) -> CheckVerdict:
    """One check's verdict; `now` is on the monotonic clock the runs were timed with."""
    last = state.last
    reason: Reason | None
    if state.status is None or last is None:
        own, output, reason = Status.FAIL, "no result yet", Reason.NO_RESULT
    elif now - last.finished > stale_after(check):
        age = format_duration(round(now - last.finished, 1))
        own = Status.FAIL
        output = (
            f"stale: the last result is {age} old (more than {STALE_INTERVALS} intervals + timeout)"
        )
        reason = Reason.STALE
    else:
        own = state.status
        output = _output(check, state)
        reason = _reason(state)
    contributes = Status.WARN if own is Status.FAIL and not check.critical else own
    result = last.result if last is not None else None
    return CheckVerdict(
        name=check.name,
        status=own,
        contributes=contributes,
        output=output,
        reason=reason,
        observed_value=result.observed_value if result else None,
        observed_unit=result.observed_unit if result else None,
        time=last.started if last else None,
        duration=last.duration if last else None,
        since=state.since,
        critical=check.critical,
        probe_type=check.probe_type,
        groups=check.groups,
        history=state.history,
        run_counts=state.run_counts,
        failure_counts=state.failure_counts,
        started_at=state.started_at,
        cert_not_after=result.cert_not_after if result else None,
    )


def startup_verdict(check: CheckConfig, state: CheckState, now: float) -> CheckVerdict:
    """Whether a check has started: it has reported pass or warn at least once.

    A check that has started stays started, whatever it reports later; that is
    for liveness and readiness to say.
    """
    verdict = check_verdict(check, state, now)
    if state.started_at is not None:
        return dataclasses.replace(
            verdict, status=Status.PASS, contributes=Status.PASS, output="started", reason=None
        )
    contributes = Status.FAIL if check.critical else Status.WARN
    return dataclasses.replace(
        verdict,
        status=Status.FAIL,
        contributes=contributes,
        output=f"not started yet: {verdict.output}" if verdict.output else "not started yet",
    )


def judge(
    checks: Iterable[CheckConfig],
    states: Mapping[str, CheckState],
    now: float,
    *,
    exclude: Iterable[str] = (),
    per_check: PerCheck = check_verdict,
) -> Verdict:
    """The verdict of a set of checks: the worst of what each contributes.

    Checks named in `exclude` are left out, as kube-apiserver does; names that
    match none of `checks` are ignored, and listed in `unmatched`.
    """
    unwanted = dict.fromkeys(exclude)
    included: list[CheckConfig] = []
    excluded: list[CheckConfig] = []
    for check in checks:
        (excluded if check.name in unwanted else included).append(check)
    verdicts = tuple(
        per_check(check, states.get(check.name) or CheckState(), now) for check in included
    )
    matched = {check.name for check in excluded}
    return Verdict(
        Status.worst(v.contributes for v in verdicts),
        verdicts,
        excluded=tuple(check.name for check in excluded),
        unmatched=tuple(name for name in unwanted if name not in matched),
    )


def one_check_verdict(
    check: CheckConfig, state: CheckState, now: float, per_check: PerCheck = check_verdict
) -> Verdict:
    """One check on its own: its own status, as /health/{name} reports it."""
    verdict = per_check(check, state, now)
    return Verdict(verdict.status, (verdict,))


#: The drain reason during the shutdown delay.
SHUTTING_DOWN = "shutting down"


def shutting_down(verdict: Verdict, reason: str = SHUTTING_DOWN) -> Verdict:
    """A readiness verdict while the adapter drains (`reason`: shutting down, or an
    operator's drain file): fail, whatever the checks say."""
    return dataclasses.replace(verdict, status=Status.FAIL, draining=True, drain_reason=reason)


def in_group(checks: Iterable[CheckConfig], group: str) -> list[CheckConfig]:
    """The checks that belong to `group`, in config order."""
    return [check for check in checks if group in check.groups]


def _output(check: CheckConfig, state: CheckState) -> str:
    assert state.last is not None and state.status is not None
    result = state.last.result
    if result.status is state.status:
        return result.output
    # A threshold is holding the status: say so rather than hide the last run.
    if result.status is Status.FAIL:
        progress = f"{state.consecutive_failures} of {check.failure_threshold} failed runs"
        note = f"last run failed ({progress} before fail)"
    else:
        progress = f"{state.consecutive_successes} of {check.success_threshold} good runs"
        note = f"last run {result.status} ({progress} before recovery)"
    return f"{note}: {result.output}" if result.output else note


def _reason(state: CheckState) -> Reason | None:
    assert state.last is not None
    if state.status is Status.FAIL:
        return state.failure_reason or Reason.FAILED
    return state.last.result.reason


def stale_at(checks: Iterable[CheckConfig], states: Mapping[str, CheckState]) -> float:
    """The monotonic time at which the first of `checks` turns stale (inf: none can).

    Until then their verdicts change only when a run is recorded.
    """
    return min(
        (
            state.last.finished + stale_after(check)
            for check in checks
            if (state := states.get(check.name)) is not None and state.last is not None
        ),
        default=math.inf,
    )
