"""The verdicts other protocols ask for by name: gRPC health's `service`, HAProxy's readiness.

    ""          every check, as /health
    "live"      the checks in group live, as /livez
    "ready"     the checks in group ready, as /readyz: drained while draining
    "startup"   whether every check has started, as /startupz
    NAME        that check on its own, as /health/NAME

A group name wins over a check of the same name. An unknown name is None
(gRPC answers NOT_FOUND, as its health protocol says).
"""

from __future__ import annotations

from collections.abc import Mapping

from adapter.config import Config
from adapter.health import (
    Verdict,
    in_group,
    judge,
    one_check_verdict,
    shutting_down,
    startup_verdict,
)
from adapter.state import CheckState

GROUP_SERVICES = ("live", "ready", "startup")


def service_verdict(
    config: Config,
    states: Mapping[str, CheckState],
    now: float,
    service: str,
    drain: str | None = None,
) -> Verdict | None:
    """The verdict for `service`, or None for a name that is neither a group nor a check.

    `now` is monotonic; `drain` is the reason readiness drains (adapter.drain), if it does.
    """
    if service == "":
        return judge(config.checks, states, now)
    if service == "startup":
        return judge(config.checks, states, now, per_check=startup_verdict)
    if service in ("live", "ready"):
        verdict = judge(in_group(config.checks, service), states, now)
        if service == "ready" and drain is not None:
            verdict = shutting_down(verdict, drain)
        return verdict
    check = config.check(service)
    if check is None:
        return None
    return one_check_verdict(check, states.get(service) or CheckState(), now)
