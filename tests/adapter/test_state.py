"""Thresholds: how runs become a reported status."""

from __future__ import annotations

import pytest

from adapter.state import (
    HISTORY_FAILED,
    HISTORY_OK,
    CheckState,
    Run,
    StateStore,
    advance,
)
from probes import Reason, Result, Status


def run(status: str, at: float = 0.0, reason: str | None = None) -> Run:
    return Run(Result(status, output=status, reason=reason), started=at, duration=0.1, finished=at)


def statuses(outcomes: str, failure_threshold: int = 1, success_threshold: int = 1) -> str:
    """Feed runs ("p", "w", "f") and return the reported status after each."""
    state = CheckState()
    reported = []
    for i, letter in enumerate(outcomes):
        status = {"p": "pass", "w": "warn", "f": "fail"}[letter]
        state = advance(state, run(status, at=i), failure_threshold, success_threshold)
        assert state.status is not None
        reported.append(state.status.value[0])
    return "".join(reported)


@pytest.mark.parametrize(
    ("runs", "failure_threshold", "success_threshold", "reported"),
    [
        ("pfp", 1, 1, "pfp"),
        ("fff", 3, 1, "fff"),  # the first run is reported as it is
        ("pffpff", 3, 1, "pppppp"),  # two failures in a row are absorbed
        ("pfffp", 3, 1, "pppfp"),
        ("pfffpp", 3, 2, "pppffp"),
        ("pfpfpp", 1, 2, "pffffp"),
        ("pfpp", 1, 2, "pffp"),
        ("pwp", 3, 3, "pwp"),  # warn is not a failure: reported when seen
        ("pfww", 1, 2, "pffw"),  # a warn counts as a good run towards recovery
        ("wff", 2, 1, "wwf"),
        ("p" * 5 + "f" * 4, 5, 1, "p" * 9),
    ],
    ids=[
        "plain",
        "first-run-as-is",
        "absorbed",
        "turns-after-three",
        "recovers-after-two",
        "recovery-reset",
        "recovery",
        "warn-immediate",
        "warn-recovers",
        "warn-then-fail",
        "below-threshold",
    ],
)
def test_thresholds(
    runs: str, failure_threshold: int, success_threshold: int, reported: str
) -> None:
    assert statuses(runs, failure_threshold, success_threshold) == reported


def test_since_moves_only_on_a_change_of_status() -> None:
    state = advance(CheckState(), run("pass", at=10))
    assert state.since == 10
    state = advance(state, run("pass", at=20))
    assert state.since == 10
    state = advance(state, run("fail", at=30))
    assert state.since == 30


@pytest.mark.parametrize(
    "outcomes",
    ["p", "pf", "pwp", "fffp"],
    ids=["first-run", "to-fail", "to-warn-and-back", "recovery"],
)
def test_since_is_the_time_of_the_run_that_changed_the_status(outcomes: str) -> None:
    """Never later than that run's `time`: one timestamp per run (issue 12)."""
    state = CheckState()
    for i, letter in enumerate(outcomes):
        changing = run({"p": "pass", "w": "warn", "f": "fail"}[letter], at=1000.0 + i)
        before = state.status
        state = advance(state, changing)
        if state.status is not before:
            assert state.since == changing.started
        assert state.last is changing


def test_counters_and_failure_reason() -> None:
    state = CheckState()
    for outcome in ["pass", "fail", "fail"]:
        state = advance(
            state,
            run(outcome, reason="timeout" if outcome == "fail" else None),
            failure_threshold=5,
        )
    assert (state.consecutive_failures, state.consecutive_successes, state.runs) == (2, 0, 3)
    assert state.failure_reason is Reason.TIMEOUT
    assert state.status is Status.PASS


def test_store_tells_listeners_and_bumps_its_version() -> None:
    store = StateStore(["a"])
    seen: list[tuple[str, Status | None, Status | None]] = []
    store.subscribe(lambda name, old, new: seen.append((name, old.status, new.status)))
    version = store.version
    store.record("a", run("fail"))
    assert seen == [("a", None, Status.FAIL)]
    assert store.version == version + 1
    assert store.get("a").status is Status.FAIL
    assert store.get("unknown") == CheckState()


def test_retain_keeps_states_of_checks_that_stay() -> None:
    store = StateStore(["a", "b"])
    store.record("a", run("fail"))
    store.retain(["a", "c"])
    assert set(store.states()) == {"a", "c"}
    assert store.get("a").status is Status.FAIL
    assert store.get("c").status is None


def test_history_keeps_recent_passes_and_failures_longer() -> None:
    state = CheckState()
    for i in range(60):
        state = advance(state, run("fail", at=i))
    for i in range(60, 100):
        state = advance(state, run("pass", at=i))
    kinds = [past.result.status for past in state.history]
    assert kinds.count(Status.FAIL) == HISTORY_FAILED
    assert kinds.count(Status.PASS) == HISTORY_OK
    # Oldest first, and what is kept is the most recent of each kind.
    started = [past.started for past in state.history]
    assert started == sorted(started)
    assert started[0] == 60 - HISTORY_FAILED and started[-1] == 99


@pytest.mark.parametrize(
    ("outcomes", "failed", "ok"),
    [
        ("p" * 500, 0, HISTORY_OK),
        ("f" * 500, HISTORY_FAILED, 0),
        ("pf" * 500, HISTORY_FAILED, HISTORY_OK),
        ("wp" * 10, 0, HISTORY_OK),
    ],
    ids=["passes", "failures", "alternating", "warn-counts-as-ok"],
)
def test_history_is_bounded(outcomes: str, failed: int, ok: int) -> None:
    state = CheckState()
    for i, letter in enumerate(outcomes):
        state = advance(state, run({"p": "pass", "w": "warn", "f": "fail"}[letter], at=i))
    kinds = [past.result.status is Status.FAIL for past in state.history]
    assert (kinds.count(True), kinds.count(False)) == (failed, ok)


def test_advance_leaves_the_old_state_alone() -> None:
    before = advance(CheckState(), run("pass"))
    after = advance(before, run("fail", reason="timeout"))
    assert len(before.history) == 1 and before.run_counts == {Status.PASS: 1}
    assert before.failure_counts == {}
    assert len(after.history) == 2


def test_run_and_failure_counts() -> None:
    state = CheckState()
    for outcome, reason in [
        ("pass", None),
        ("fail", "timeout"),
        ("fail", "status"),
        ("fail", "timeout"),
        ("warn", None),
        ("fail", None),
    ]:
        state = advance(state, run(outcome, reason=reason), failure_threshold=10)
    assert state.run_counts == {Status.PASS: 1, Status.FAIL: 4, Status.WARN: 1}
    assert state.failure_counts == {Reason.TIMEOUT: 2, Reason.STATUS: 1, Reason.FAILED: 1}


@pytest.mark.parametrize(
    ("runs", "success_threshold", "started_by"),
    [
        ("ffp", 1, 3),
        ("fwf", 1, 2),
        ("pff", 1, 1),
        ("fff", 1, None),
        # With a success threshold of 2 a lone pass after failures does not start it.
        ("fpfpp", 2, 5),
    ],
    ids=["pass", "warn", "stays-started", "never", "after-recovery"],
)
def test_started_at_marks_the_first_pass_or_warn(
    runs: str, success_threshold: int, started_by: int | None
) -> None:
    """`started_by`: the run (1-based) after which the check counts as started."""
    state = CheckState()
    seen = []
    for i, letter in enumerate(runs):
        status = {"p": "pass", "w": "warn", "f": "fail"}[letter]
        state = advance(state, run(status, at=i * 10), success_threshold=success_threshold)
        seen.append(state.started_at)
    if started_by is None:
        assert seen == [None] * len(runs)
    else:
        first = (started_by - 1) * 10
        assert seen == [None] * (started_by - 1) + [first] * (len(runs) - started_by + 1)
