"""application/health+json, and the document of one check with its runs."""

from __future__ import annotations

import json

from adapter.formats.health_json import health_json
from adapter.health import judge, one_check_verdict
from probes import Result
from tests.adapter.formats.samples import (
    CERT_NOT_AFTER,
    CHECKS,
    NOW,
    STATES,
    check,
    sample_verdict,
    state,
    tls_verdict,
)


def test_the_document_has_one_entry_per_check() -> None:
    document = json.loads(health_json(sample_verdict(), "orders-api"))
    assert (document["status"], document["serviceId"]) == ("fail", "orders-api")
    assert document["checks"]["worker"] == [
        {
            "status": "fail",
            "componentType": "process",
            "observedValue": 0,
            "observedUnit": "processes",
            "time": "2023-11-14T22:13:30.000Z",
            "output": "no <b>process</b> matches a|b",
            "reason": "process_missing",
            "since": "2023-11-14T22:13:30.000Z",  # the time of the run that set it
        }
    ]
    assert "history" not in document["checks"]["api"][0]
    assert "notes" not in document


def test_one_check_in_detail_has_counts_and_recent_runs_newest_first() -> None:
    verdict = one_check_verdict(CHECKS[1], STATES["heartbeat"], NOW)
    (entry,) = json.loads(health_json(verdict, None, with_runs=True))["checks"]["heartbeat"]
    assert entry["runs"] == {"pass": 1, "warn": 1, "fail": 0}
    assert "failures" not in entry
    assert [run["status"] for run in entry["history"]] == ["warn", "pass"]
    assert entry["history"][0] == {
        "status": "warn",
        "time": "2023-11-14T22:13:30.000Z",
        "duration": 0.0125,
        "observedValue": 4.25,
        "observedUnit": "s",
        "output": "modified 4.25s ago",
    }
    assert entry["since"] == entry["history"][0]["time"]


def test_failure_counts_by_reason() -> None:
    verdict = one_check_verdict(CHECKS[2], STATES["worker"], NOW)
    (entry,) = json.loads(health_json(verdict, None, with_runs=True))["checks"]["worker"]
    assert entry["failures"] == {"process_missing": 1}
    assert entry["history"][0]["reason"] == "process_missing"


def test_notes_name_what_could_not_be_excluded() -> None:
    verdict = judge([check("a")], {"a": state(Result("pass"))}, NOW, exclude=["zz"])
    document = json.loads(health_json(verdict, None))
    assert document["notes"] == ["no check to exclude named zz"]


def test_a_certificate_expiry_is_a_measurement_of_its_own() -> None:
    document = json.loads(health_json(tls_verdict(), None))

    site, expiry = document["checks"]["site"][0], document["checks"]["site:certNotAfter"]
    # The check keeps its latency; the expiry is a Unix time, with the check's status.
    assert (site["observedValue"], site["observedUnit"], site["reason"]) == (
        12.5,
        "ms",
        "cert_expiry",
    )
    assert "2026-01-01 00:00 UTC" in site["output"]
    assert expiry == [
        {
            "status": "warn",
            "componentType": "http",
            "observedValue": CERT_NOT_AFTER,
            "observedUnit": "s",
            "time": site["time"],
        }
    ]
    assert not any(
        ":" in name for name in json.loads(health_json(sample_verdict(), None))["checks"]
    )
