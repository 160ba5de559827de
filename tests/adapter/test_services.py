"""The verdicts asked for by name (gRPC health's service, the HAProxy agent's readiness)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapter.config import Config
from adapter.services import service_verdict
from adapter.state import CheckState
from probes import Status
from tests.adapter.test_health import state_after

CONFIG = """
checks:
  - {name: api, plugin: {class: "tests.sample_probes:Ok"}}
  - {name: heartbeat, groups: [live], plugin: {class: "tests.sample_probes:Ok"}}
  - {name: cache, critical: false, plugin: {class: "tests.sample_probes:Ok"}}
"""

PASS, FAIL = state_after("pass"), state_after("fail")


@pytest.mark.parametrize(
    ("service", "states", "drain", "status"),
    [
        ("", {"api": PASS, "heartbeat": PASS, "cache": PASS}, None, Status.PASS),
        ("", {"api": PASS, "heartbeat": FAIL, "cache": PASS}, None, Status.FAIL),
        ("", {"api": PASS, "heartbeat": PASS, "cache": PASS}, "shutting down", Status.PASS),
        ("live", {"api": FAIL, "heartbeat": PASS, "cache": FAIL}, None, Status.PASS),
        ("live", {"api": PASS, "heartbeat": FAIL, "cache": PASS}, None, Status.FAIL),
        ("ready", {"api": PASS, "heartbeat": FAIL, "cache": FAIL}, None, Status.WARN),
        ("ready", {"api": PASS, "heartbeat": PASS, "cache": PASS}, "shutting down", Status.FAIL),
        ("startup", {"heartbeat": PASS, "cache": PASS}, None, Status.FAIL),
        ("startup", {"api": PASS, "heartbeat": PASS, "cache": PASS}, None, Status.PASS),
        ("cache", {"api": PASS, "heartbeat": PASS, "cache": FAIL}, None, Status.FAIL),
        ("api", {"api": PASS}, "shutting down", Status.PASS),
    ],
    ids=[
        "all-pass",
        "all-a-failing-live-check",
        "all-is-not-drained",
        "live-leaves-ready-checks-out",
        "live-fails",
        "ready-warns-on-a-non-critical-failure",
        "ready-drains",
        "startup-waits-for-every-check",
        "startup-passes",
        "a-check-reports-its-own-status",
        "a-check-is-not-drained",
    ],
)
def test_each_service_name(
    make_config: Callable[[str], Config],
    service: str,
    states: dict[str, CheckState],
    drain: str | None,
    status: Status,
) -> None:
    verdict = service_verdict(make_config(CONFIG), states, 100.0, service, drain)
    assert verdict is not None and verdict.status is status


def test_an_unknown_name_has_no_verdict(make_config: Callable[[str], Config]) -> None:
    assert service_verdict(make_config(CONFIG), {}, 100.0, "nope") is None
