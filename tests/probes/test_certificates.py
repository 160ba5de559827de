"""Certificate expiry: which certificate of a chain counts, how it is named, how limits judge it."""

from __future__ import annotations

from typing import Any

import pytest

from probes import Reason, Result, Status
from probes.certificates import CertExpiry, ExpiryLimits, earliest_expiry

NOW = 1_800_000_000.0
DAY = 86400.0


def info(not_after: str, subject: Any = (), san: Any = ()) -> dict[str, Any]:
    """A certificate as `getpeercert()` and `get_info()` decode it."""
    return {"notAfter": not_after, "subject": subject, "subjectAltName": san}


@pytest.mark.parametrize(
    ("chain", "name", "not_after"),
    [
        pytest.param(
            [
                info("Jan  1 00:00:00 2030 GMT", ((("commonName", "leaf.test"),),)),
                info("Jun  1 00:00:00 2029 GMT", ((("commonName", "Issuing CA"),),)),
            ],
            "Issuing CA",
            1874966400.0,
            id="an-intermediate-first",
        ),
        pytest.param(
            [info("Jan  1 00:00:00 2030 GMT", (), (("DNS", "a.test"), ("DNS", "b.test")))],
            "a.test",
            1893456000.0,
            id="no-cn-first-san",
        ),
        pytest.param(
            [info("Jan  1 00:00:00 2030 GMT", ((("organizationName", "Acme"),),))],
            "organizationName=Acme",
            1893456000.0,
            id="neither-the-subject",
        ),
        pytest.param(
            [{"subject": ()}, info("Jan  1 00:00:00 2030 GMT", ((("commonName", "x"),),))],
            "x",
            1893456000.0,
            id="undated-entries-skipped",
        ),
    ],
)
def test_the_earliest_certificate_counts_and_is_named(
    chain: list[dict[str, Any]], name: str, not_after: float
) -> None:
    assert earliest_expiry(chain) == CertExpiry(not_after, name)


def test_an_empty_chain_has_no_expiry() -> None:
    assert earliest_expiry([]) is None


@pytest.mark.parametrize(
    ("left", "words"),
    [
        pytest.param(10 * DAY + 5, "(in 10 days)", id="days"),
        pytest.param(DAY, "(in 1 day)", id="one-day"),
        pytest.param(3599, "(in 59 minutes)", id="minutes"),
        pytest.param(30, "(in 30 seconds)", id="seconds"),
        pytest.param(-2 * 3600, "(2 hours ago)", id="expired"),
    ],
)
def test_the_time_left_is_rounded_down_for_people(left: float, words: str) -> None:
    assert CertExpiry(NOW + left, "x").describe(NOW).endswith(words)


PASSED = Result(Status.PASS, "HTTP 200 in 3.0 ms", 3.0, "ms")
FAILED = Result(Status.FAIL, "HTTP 500, expected 200-399", 3.0, "ms", reason=Reason.STATUS)
LIMITS = ExpiryLimits(warn=14 * DAY, fail=3 * DAY)


@pytest.mark.parametrize(
    ("result", "limits", "left", "status", "reason", "starts"),
    [
        pytest.param(PASSED, LIMITS, 30 * DAY, Status.PASS, None, "HTTP 200", id="far"),
        pytest.param(
            PASSED, LIMITS, 10 * DAY, Status.WARN, Reason.CERT_EXPIRY, "certificate", id="warns"
        ),
        pytest.param(
            PASSED, LIMITS, DAY, Status.FAIL, Reason.CERT_EXPIRY, "certificate", id="fails"
        ),
        pytest.param(
            PASSED,
            ExpiryLimits(warn=14 * DAY),
            -DAY,
            Status.FAIL,
            Reason.CERT_EXPIRY,
            "certificate",
            id="expired-fails-with-a-warn-limit-only",
        ),
        pytest.param(
            FAILED, LIMITS, 10 * DAY, Status.FAIL, Reason.STATUS, "HTTP 500", id="worse-kept"
        ),
        pytest.param(PASSED, ExpiryLimits(), DAY, Status.PASS, None, "HTTP 200", id="no-limits"),
    ],
)
def test_limits_judge_the_expiry_beside_the_check(
    result: Result,
    limits: ExpiryLimits,
    left: float,
    status: Status,
    reason: Reason | None,
    starts: str,
) -> None:
    judged = limits.apply(result, CertExpiry(NOW + left, "site.test"), NOW)

    assert (judged.status, judged.reason, judged.cert_not_after) == (status, reason, NOW + left)
    assert judged.output.startswith(starts)
    assert ("certificate 'site.test'" in judged.output) is limits.active


def test_without_an_expiry_the_result_is_unchanged() -> None:
    assert LIMITS.apply(PASSED, None, NOW) is PASSED
