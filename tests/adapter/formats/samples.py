"""A verdict with one check of every kind, built through the real state machine."""

from __future__ import annotations

from adapter.config import CheckConfig
from adapter.health import Verdict, judge
from adapter.state import CheckState, Run, advance
from probes import Result
from tests.sample_probes import Ok

STARTED = 1_700_000_000.0
NOW = 1_000.0  # monotonic: every run below finished just before


def check(
    name: str,
    *,
    critical: bool = True,
    groups: tuple[str, ...] = ("ready",),
    probe_type: str = "plugin",
) -> CheckConfig:
    return CheckConfig(
        name=name,
        probe_type=probe_type,
        probe_class=Ok,
        options={},
        probe_config={},
        groups=groups,
        critical=critical,
    )


def state(*results: Result) -> CheckState:
    current = CheckState()
    for i, result in enumerate(results):
        current = advance(
            current, Run(result, started=STARTED + i * 10, duration=0.0125, finished=NOW - 1)
        )
    return current


CHECKS = [
    check("api", probe_type="http"),
    check("heartbeat", groups=("live", "ready"), probe_type="file"),
    check("worker", probe_type="process"),
    check("cache", critical=False),
    check("fresh"),
]
STATES = {
    "api": state(Result("pass", "HTTP 200 in 12.5 ms", 12.5, "ms")),
    "heartbeat": state(
        Result("pass", "fine", 1, "s"), Result("warn", "modified 4.25s ago", 4.25, "s")
    ),
    "worker": state(
        Result("pass", "1 process", 1, "processes"),
        Result("fail", "no <b>process</b> matches a|b", 0, "processes", reason="process_missing"),
    ),
    "cache": state(Result("fail", "down", reason="connection_refused")),
}


def sample_verdict() -> Verdict:
    return judge(CHECKS, STATES, NOW)


#: 2026-01-01T00:00:00Z, the expiry the TLS sample's certificate was presented with.
CERT_NOT_AFTER = 1_767_225_600


def tls_verdict() -> Verdict:
    """One https check whose certificate expires soon enough to warn."""
    result = Result(
        "warn",
        "certificate 'site.test' expires 2026-01-01 00:00 UTC (in 9 days), within "
        "cert_expiry_warn 14d; HTTP 200 in 12.5 ms",
        12.5,
        "ms",
        reason="cert_expiry",
        cert_not_after=CERT_NOT_AFTER,
    )
    return judge([check("site", probe_type="http")], {"site": state(result)}, NOW)
