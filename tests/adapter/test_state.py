"""Thresholds: how runs become a reported status."""

from __future__ import annotations

import pytest

from adapter.state import CheckState, Run, StateStore, advance
from probes import Reason, Result, Status


def run(status: str, at: float = 0.0, reason: str | None = None) -> Run:
    return Run(Result(status, output=status, reason=reason), started=at, duration=0.1,
               finished=at)


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
    ids=["plain", "first-run-as-is", "absorbed", "turns-after-three", "recovers-after-two",
         "recovery-reset", "recovery", "warn-immediate", "warn-recovers", "warn-then-fail",
         "below-threshold"],
)
def test_thresholds(runs: str, failure_threshold: int, success_threshold: int,
                    reported: str) -> None:
    assert statuses(runs, failure_threshold, success_threshold) == reported


def test_since_moves_only_on_a_change_of_status() -> None:
    state = advance(CheckState(), run("pass", at=10))
    assert state.since == pytest.approx(10.1)
    state = advance(state, run("pass", at=20))
    assert state.since == pytest.approx(10.1)
    state = advance(state, run("fail", at=30))
    assert state.since == pytest.approx(30.1)


def test_counters_and_failure_reason() -> None:
    state = CheckState()
    for outcome in ["pass", "fail", "fail"]:
        state = advance(state, run(outcome, reason="timeout" if outcome == "fail" else None),
                        failure_threshold=5)
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
