"""`application/health+json`, after draft-inadarei-api-health-check.

The overall status, the serviceId, and per check a one-element list of its
latest observation; a check that spoke TLS adds `"<name>:certNotAfter"`, the
expiry of the certificate it was presented. A single check's document (/health/{name}) adds its recent
runs and its run counts.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec

from adapter.formats.printable import json_escaped
from adapter.health import CheckVerdict, Verdict
from adapter.state import Run
from probes import Status
from probes.certificates import MEASUREMENT

HEALTH_JSON = "application/health+json"

_json = msgspec.json.Encoder()


def rfc3339(timestamp: float) -> str:
    """Wall-clock seconds as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.250Z`)."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))
    return f"{whole}.{int(timestamp % 1 * 1000):03d}Z"


def check_entry(check: CheckVerdict) -> dict[str, Any]:
    """One check's observation; its own status (the document's status applies `critical`)."""
    entry: dict[str, Any] = {"status": check.status.value, "componentType": check.probe_type}
    if check.observed_value is not None:
        entry["observedValue"] = check.observed_value
        if check.observed_unit:
            entry["observedUnit"] = check.observed_unit
    if check.time is not None:
        entry["time"] = rfc3339(check.time)
    if check.output:
        entry["output"] = check.output
    if check.reason is not None and check.status is not Status.PASS:
        entry["reason"] = check.reason.value
    if check.since is not None:
        entry["since"] = rfc3339(check.since)
    if not check.critical:
        entry["critical"] = False
    return entry


def cert_entry(check: CheckVerdict, not_after: float) -> dict[str, Any]:
    """The certificate expiry a TLS check observed, as a measurement of its own
    (the draft's `"<component>:<measurement>"` key): a Unix time in seconds.
    Its status is the check's: the expiry is one of the things the check judged."""
    entry: dict[str, Any] = {
        "status": check.status.value,
        "componentType": check.probe_type,
        "observedValue": int(not_after) if float(not_after).is_integer() else not_after,
        "observedUnit": "s",
    }
    if check.time is not None:
        entry["time"] = rfc3339(check.time)
    return entry


def run_entry(run: Run) -> dict[str, Any]:
    """One past run, as it was observed (before thresholds)."""
    result = run.result
    entry: dict[str, Any] = {
        "status": result.status.value,
        "time": rfc3339(run.started),
        "duration": round(run.duration, 6),
    }
    if result.observed_value is not None:
        entry["observedValue"] = result.observed_value
        if result.observed_unit:
            entry["observedUnit"] = result.observed_unit
    if result.output:
        entry["output"] = result.output
    if result.reason is not None:
        entry["reason"] = result.reason.value
    return entry


def entry_with_runs(check: CheckVerdict) -> dict[str, Any]:
    """A check's observation with its run counts and recent runs, newest first."""
    entry = check_entry(check)
    entry["runs"] = {status.value: check.run_counts.get(status, 0) for status in Status}
    if check.failure_counts:
        entry["failures"] = {
            reason.value: count for reason, count in sorted(check.failure_counts.items())
        }
    entry["history"] = [run_entry(run) for run in reversed(check.history)]
    return entry


def health_document(
    verdict: Verdict, service: str | None, *, with_runs: bool = False
) -> dict[str, Any]:
    """The health+json document of `verdict` (draft-inadarei-api-health-check):
    `status`, `serviceId`, one observation per check under `checks`, and
    `notes`. With `with_runs`, each check also carries its run counts and recent runs.
    """
    document: dict[str, Any] = {"status": verdict.status.value}
    if service:
        document["serviceId"] = service
    describe = entry_with_runs if with_runs else check_entry
    checks: dict[str, list[dict[str, Any]]] = {}
    for check in verdict.checks:
        checks[check.name] = [describe(check)]
        if check.cert_not_after is not None:
            checks[f"{check.name}:{MEASUREMENT}"] = [cert_entry(check, check.cert_not_after)]
    document["checks"] = checks
    if verdict.draining:
        document["notes"] = [verdict.drain_reason or "shutting down"]
    if verdict.unmatched:
        document["notes"] = [
            *document.get("notes", ()),
            f"no check to exclude named {', '.join(verdict.unmatched)}",
        ]
    if verdict.notes:
        document["notes"] = [*document.get("notes", ()), *verdict.notes]
    return document


def health_json(verdict: Verdict, service: str | None, *, with_runs: bool = False) -> bytes:
    """`health_document` as JSON bytes, with what is not printable escaped."""
    return json_bytes(health_document(verdict, service, with_runs=with_runs))


def json_bytes(document: dict[str, Any]) -> bytes:
    """`document` as JSON, with what is not printable escaped (adapter.formats.printable).

    The decoded values are exactly the outputs as observed; only their
    spelling changes: U+202E is written `\\u202e`, and a byte that was not
    UTF-8 (a lone surrogate, which no UTF-8 encoder takes) `\\udcff`.
    """
    try:
        body = _json.encode(document)
    except UnicodeEncodeError:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        return json_escaped(text).encode()
    if body.isascii() and b"\x7f" not in body:
        return body
    return json_escaped(body.decode()).encode()
