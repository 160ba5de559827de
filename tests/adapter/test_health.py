"""The verdict: one pure function decides, for a check and for a group."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.config import CheckConfig
from adapter.health import (
    STALE_INTERVALS,
    check_verdict,
    in_group,
    judge,
    one_check_verdict,
    shutting_down,
    stale_after,
    startup_verdict,
)
from adapter.state import CheckState, Run, advance
from probes import Reason, Result, Status
from tests.sample_probes import Ok


def check(
    name: str = "c",
    *,
    critical: bool = True,
    groups: tuple[str, ...] = ("ready",),
    interval: float = 10.0,
    timeout: float = 2.0,
    failure_threshold: int = 1,
    success_threshold: int = 1,
) -> CheckConfig:
    return CheckConfig(
        name=name,
        probe_type="plugin",
        probe_class=Ok,
        options={},
        probe_config={},
        groups=groups,
        critical=critical,
        interval=interval,
        timeout=timeout,
        failure_threshold=failure_threshold,
        success_threshold=success_threshold,
    )


def state_after(
    *statuses: str, finished: float = 100.0, failure_threshold: int = 1, success_threshold: int = 1
) -> CheckState:
    state = CheckState()
    for status in statuses:
        result = Result(
            status,
            output=f"it is {status}",
            observed_value=12.5,
            observed_unit="ms",
            reason="status" if status == "fail" else None,
        )
        state = advance(
            state,
            Run(result, started=1_700_000_000.0, duration=0.01, finished=finished),
            failure_threshold,
            success_threshold,
        )
    return state


def test_no_result_yet_is_fail() -> None:
    verdict = check_verdict(check(), CheckState(), now=5.0)
    assert (verdict.status, verdict.output, verdict.reason) == (
        Status.FAIL,
        "no result yet",
        Reason.NO_RESULT,
    )


@pytest.mark.parametrize(
    ("age", "expected"),
    [(0.0, Status.PASS), (31.9, Status.PASS), (32.1, Status.FAIL)],
    ids=["fresh", "just-inside", "stale"],
)
def test_results_older_than_three_intervals_plus_timeout_are_stale(
    age: float, expected: Status
) -> None:
    verdict = check_verdict(check(interval=10, timeout=2), state_after("pass"), now=100.0 + age)
    assert verdict.status is expected
    if expected is Status.FAIL:
        assert verdict.reason is Reason.STALE
        assert verdict.output.startswith("stale: the last result is 32.1s old")


@pytest.mark.parametrize(
    ("interval", "timeout", "seconds"),
    [(10.0, 2.0, 32.0), (10.0, 0.25, 30.25), (0.1, 0.01, 0.31)],
    ids=["defaults", "short-timeout", "minimums"],
)
def test_a_result_turns_stale_after_three_intervals_plus_the_timeout(
    interval: float, timeout: float, seconds: float
) -> None:
    assert stale_after(check(interval=interval, timeout=timeout)) == pytest.approx(seconds)


def test_the_configuration_reference_states_the_staleness_rule_of_the_code() -> None:
    reference = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    assert f"{STALE_INTERVALS} × interval + timeout (`health.stale_after`)" in reference


def test_non_critical_failure_only_warns_the_group_but_fails_itself() -> None:
    verdict = check_verdict(check(critical=False), state_after("fail"), now=100.0)
    assert verdict.status is Status.FAIL and verdict.contributes is Status.WARN
    assert judge([check(critical=False)], {"c": state_after("fail")}, 100.0).status is Status.WARN


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((), Status.PASS),
        (("pass", "pass"), Status.PASS),
        (("pass", "warn"), Status.WARN),
        (("warn", "fail"), Status.FAIL),
        (("fail", "pass"), Status.FAIL),
    ],
    ids=["empty-group-passes", "all-pass", "warn", "fail-wins", "any-fail"],
)
def test_group_verdict_is_the_worst(statuses: tuple[str, ...], expected: Status) -> None:
    checks = [check(f"c{i}") for i in range(len(statuses))]
    states = {f"c{i}": state_after(s) for i, s in enumerate(statuses)}
    assert judge(checks, states, now=100.0).status is expected


def test_a_held_status_says_why_the_last_run_does_not_show() -> None:
    held = state_after("pass", "fail", failure_threshold=3)
    verdict = check_verdict(check(failure_threshold=3), held, now=100.0)
    assert verdict.status is Status.PASS
    assert verdict.output == "last run failed (1 of 3 failed runs before fail): it is fail"
    recovering = state_after("fail", "pass", success_threshold=2)
    verdict = check_verdict(check(success_threshold=2), recovering, now=100.0)
    assert verdict.status is Status.FAIL and verdict.reason is Reason.STATUS
    assert verdict.output == "last run pass (1 of 2 good runs before recovery): it is pass"


def test_verdict_carries_the_observation() -> None:
    verdict = check_verdict(check(), state_after("pass"), now=100.0)
    assert (verdict.observed_value, verdict.observed_unit) == (12.5, "ms")
    assert verdict.time == 1_700_000_000.0 and verdict.since is not None
    assert verdict.output == "it is pass" and verdict.reason is None


def test_groups() -> None:
    checks = [check("a", groups=("live", "ready")), check("b"), check("c", groups=("batch",))]
    assert [c.name for c in in_group(checks, "live")] == ["a"]
    assert [c.name for c in in_group(checks, "ready")] == ["a", "b"]
    assert in_group(checks, "none") == []


def test_verdict_carries_history_and_counts() -> None:
    verdict = check_verdict(check(), state_after("pass", "fail", "pass"), now=100.0)
    assert [run.result.status for run in verdict.history] == [Status.PASS, Status.FAIL, Status.PASS]
    assert verdict.run_counts == {Status.PASS: 2, Status.FAIL: 1}
    assert verdict.failure_counts == {Reason.STATUS: 1}
    assert verdict.started_at is not None


@pytest.mark.parametrize(
    ("exclude", "included", "excluded", "unmatched", "status"),
    [
        ((), ["a", "b", "c"], [], [], Status.FAIL),
        (("b",), ["a", "c"], ["b"], [], Status.PASS),
        (("b", "nope", "b"), ["a", "c"], ["b"], ["nope"], Status.PASS),
        (("nope",), ["a", "b", "c"], [], ["nope"], Status.FAIL),
    ],
    ids=["none", "one", "unknown-and-repeated", "only-unknown"],
)
def test_exclude_leaves_checks_out_and_names_the_unknown(
    exclude: tuple[str, ...],
    included: list[str],
    excluded: list[str],
    unmatched: list[str],
    status: Status,
) -> None:
    checks = [check("a"), check("b"), check("c")]
    states = {"a": state_after("pass"), "b": state_after("fail"), "c": state_after("pass")}
    verdict = judge(checks, states, now=100.0, exclude=exclude)
    assert [c.name for c in verdict.checks] == included
    assert (list(verdict.excluded), list(verdict.unmatched)) == (excluded, unmatched)
    assert verdict.status is status


@pytest.mark.parametrize(
    ("runs", "critical", "own", "contributes", "output"),
    [
        ((), True, Status.FAIL, Status.FAIL, "not started yet: no result yet"),
        (("fail",), True, Status.FAIL, Status.FAIL, "not started yet: it is fail"),
        (("fail",), False, Status.FAIL, Status.WARN, "not started yet: it is fail"),
        (("warn",), True, Status.PASS, Status.PASS, "started"),
        (("pass", "fail", "fail"), True, Status.PASS, Status.PASS, "started"),
    ],
    ids=["no-result", "failing", "non-critical", "warn-starts", "stays-started"],
)
def test_startup_passes_once_a_check_has_passed(
    runs: tuple[str, ...], critical: bool, own: Status, contributes: Status, output: str
) -> None:
    verdict = startup_verdict(check(critical=critical), state_after(*runs), now=100.0)
    assert (verdict.status, verdict.contributes, verdict.output) == (own, contributes, output)


def test_startup_of_a_group_waits_for_every_check() -> None:
    checks = [check("a"), check("b")]
    states = {"a": state_after("pass")}
    assert judge(checks, states, 100.0, per_check=startup_verdict).status is Status.FAIL
    states["b"] = state_after("pass", "fail")
    assert judge(checks, states, 100.0, per_check=startup_verdict).status is Status.PASS
    # Stale results do not undo a start either.
    assert judge(checks, states, 10_000.0, per_check=startup_verdict).status is Status.PASS


def test_one_check_alone_reports_its_own_status() -> None:
    verdict = one_check_verdict(check(critical=False), state_after("fail"), now=100.0)
    assert verdict.status is Status.FAIL
    assert [c.name for c in verdict.checks] == ["c"]


def test_shutting_down_fails_whatever_the_checks_say() -> None:
    verdict = shutting_down(judge([check()], {"c": state_after("pass")}, 100.0))
    assert verdict.status is Status.FAIL and verdict.draining
    assert verdict.checks[0].status is Status.PASS
