"""Renderers: a Verdict in, bytes or text out. They only render; they never judge.

`health+json` follows draft-inadarei-api-health-check: the overall status,
the serviceId, and per check a one-element list of its latest observation.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from adapter.health import CheckVerdict, Verdict
from probes import Status

HEALTH_JSON = "application/health+json"

_json = msgspec.json.Encoder()


def rfc3339(timestamp: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))
    return f"{whole}.{int(timestamp % 1 * 1000):03d}Z"


def check_entry(check: CheckVerdict) -> dict[str, Any]:
    """One check's observation; its own status (the document's status applies `critical`)."""
    entry: dict[str, Any] = {"status": check.own_status.value, "componentType": check.probe_type}
    if check.observed_value is not None:
        entry["observedValue"] = check.observed_value
        if check.observed_unit:
            entry["observedUnit"] = check.observed_unit
    if check.time is not None:
        entry["time"] = rfc3339(check.time)
    if check.output:
        entry["output"] = check.output
    if check.reason is not None and check.own_status is not Status.PASS:
        entry["reason"] = check.reason.value
    if check.since is not None:
        entry["since"] = rfc3339(check.since)
    if not check.critical:
        entry["critical"] = False
    return entry


def health_document(verdict: Verdict, service: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {"status": verdict.status.value}
    if service:
        document["serviceId"] = service
    document["checks"] = {check.name: [check_entry(check)] for check in verdict.checks}
    return document


def health_json(verdict: Verdict, service: str | None) -> bytes:
    return _json.encode(health_document(verdict, service))


def check_json(check: CheckVerdict, service: str | None) -> bytes:
    """The document for one check: its own status at the top, as /health/{name} reports it."""
    document: dict[str, Any] = {"status": check.own_status.value}
    if service:
        document["serviceId"] = service
    document["checks"] = {check.name: [check_entry(check)]}
    return _json.encode(document)


def verbose_text(verdict: Verdict, label: str) -> str:
    """kube-apiserver style: `[+]name ok` / `[-]name failed: why`, then the summary line."""
    lines = []
    for check in verdict.checks:
        if check.own_status is Status.PASS:
            lines.append(f"[+]{check.name} ok")
        elif check.own_status is Status.WARN:
            lines.append(f"[+]{check.name} warn: {_one_line(check.output)}")
        else:
            note = "" if check.critical else " (non-critical)"
            lines.append(f"[-]{check.name} failed{note}: {_one_line(check.output)}")
    passed = verdict.status is not Status.FAIL
    lines.append(f"{label} check {'passed' if passed else 'failed'}")
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no details"


NAGIOS_STATE = {Status.PASS: "OK", Status.WARN: "WARNING", Status.FAIL: "CRITICAL"}
NAGIOS_EXIT = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def nagios_text(verdict: Verdict, service: str | None = None) -> str:
    """A Nagios plugin's answer: the summary line first, then one line per check."""
    label = f"HEALTH {NAGIOS_STATE[verdict.status]}"
    total = len(verdict.checks)
    failing = [c.name for c in verdict.checks if c.own_status is Status.FAIL]
    warning = [c.name for c in verdict.checks if c.own_status is Status.WARN]
    if failing:
        summary = f"{len(failing)} of {total} checks failing: {', '.join(failing)}"
    elif warning:
        summary = f"{len(warning)} of {total} checks warning: {', '.join(warning)}"
    else:
        summary = f"{total} check{'s' if total != 1 else ''} passing"
    if service:
        summary = f"{service}: {summary}"
    lines = [f"{label} - {summary}"]
    for check in verdict.checks:
        lines.append(f"[{check.own_status.value.upper()}] {check.name}: "
                     f"{_one_line(check.output)}")
    return "\n".join(lines) + "\n"
