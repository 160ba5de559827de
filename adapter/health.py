"""The verdict: check states + policy + now -> the status of each check and of a group.

This is the only place that decides health. Every renderer, status code and
metric reads a `Verdict`; none of them judges for itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from adapter.config import CheckConfig
from adapter.state import CheckState
from probes import Reason, Status
from probes.types import format_duration


@dataclasses.dataclass(frozen=True, slots=True)
class CheckVerdict:
    name: str
    status: Status  # what it contributes to a group: a non-critical failure only warns
    own_status: Status  # the check's own status, for /health/{name}
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


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    checks: tuple[CheckVerdict, ...]


def judge_check(check: CheckConfig, state: CheckState, now: float) -> CheckVerdict:
    """One check's verdict; `now` is on the monotonic clock the runs were timed with."""
    last = state.last
    reason: Reason | None
    if state.status is None or last is None:
        own, output, reason = Status.FAIL, "no result yet", Reason.NO_RESULT
    elif now - last.finished > check.stale_after:
        age = format_duration(round(now - last.finished, 1))
        own = Status.FAIL
        output = f"stale: the last result is {age} old (more than 3 intervals + timeout)"
        reason = Reason.STALE
    else:
        own = state.status
        output = _output(check, state)
        reason = _reason(state)
    contributes = Status.WARN if own is Status.FAIL and not check.critical else own
    result = last.result if last is not None else None
    return CheckVerdict(
        name=check.name,
        status=contributes,
        own_status=own,
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
    )


def judge(
    checks: Iterable[CheckConfig], states: Mapping[str, CheckState], now: float
) -> Verdict:
    """The verdict of a set of checks: the worst of what each contributes."""
    verdicts = tuple(
        judge_check(check, states.get(check.name) or CheckState(), now) for check in checks
    )
    return Verdict(Status.worst(v.status for v in verdicts), verdicts)


def in_group(checks: Iterable[CheckConfig], group: str) -> list[CheckConfig]:
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
