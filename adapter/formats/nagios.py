"""A Nagios plugin's answer, after the monitoring-plugins development guidelines.

    HEALTH CRITICAL - 1 of 3 checks failing: api | 'api'=12.5ms;;;; 'worker'=2;;;;
    [FAIL] api: HTTP 500 (status)
    [PASS] heartbeat: modified 1.2s ago
    [PASS] worker: 2 processes

The first line is the state, a summary and the performance data of every check
that has a numeric observed value; one line per check follows (the "long
output"). The whole stays within 8 KiB, what Nagios reads of a plugin's output:
check lines that do not fit are cut, never the first line.
"""

from __future__ import annotations

import re

from adapter.formats.text import one_line
from adapter.health import CheckVerdict, Verdict
from probes import Status

STATES = {Status.PASS: "OK", Status.WARN: "WARNING", Status.FAIL: "CRITICAL"}
EXIT_CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
#: The first line of an answer, as `check --url` reads it back.
FIRST_LINE = re.compile(r"^HEALTH (OK|WARNING|CRITICAL|UNKNOWN) - ")

MAX_BYTES = 8192
#: The first line keeps at most this much of the 8 KiB, so check lines are never crowded out.
MAX_FIRST_LINE = 4096
MAX_CHECK_LINE = 300
#: How many failing names the summary spells out before "and N more".
MAX_NAMED = 5

#: The units of measurement the guidelines allow; any other unit is left off the value.
UOMS = frozenset({"s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"})
_UOM_ALIASES = {"seconds": "s", "second": "s", "sec": "s", "µs": "us", "bytes": "B", "percent": "%"}


def state_of(status: Status) -> str:
    return STATES[status]


def exit_code(status: Status) -> int:
    return EXIT_CODES[STATES[status]]


def nagios_text(verdict: Verdict, service: str | None = None) -> str:
    first = _first_line(verdict, service)
    lines = [_check_line(check) for check in verdict.checks]
    if verdict.unmatched:
        lines.append(f"no check to exclude named {', '.join(verdict.unmatched)}")
    return fit(first, lines)


def perfdata(label: str, value: float, unit: str | None) -> str:
    """`'label'=value[UOM];;;;`: no thresholds, since the verdict is already decided."""
    uom = _UOM_ALIASES.get(unit, unit) if unit else ""
    if uom not in UOMS:
        uom = ""
    quoted = "'" + label.replace("'", "''") + "'"
    return f"{quoted}={number(value)}{uom};;;;"


def number(value: float) -> str:
    """A value in the guidelines' character class [-0-9.]: no exponent, no locale."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _first_line(verdict: Verdict, service: str | None) -> str:
    total = len(verdict.checks)
    failing = [c.name for c in verdict.checks if c.own_status is Status.FAIL]
    warning = [c.name for c in verdict.checks if c.own_status is Status.WARN]
    if failing:
        summary = f"{len(failing)} of {total} checks failing: {_names(failing)}"
    elif warning:
        summary = f"{len(warning)} of {total} checks warning: {_names(warning)}"
    else:
        summary = f"{total} check{'s' if total != 1 else ''} passing"
    if verdict.draining:
        summary = f"shutting down; {summary}"
    if service:
        summary = f"{service}: {summary}"
    head = plain(f"HEALTH {STATES[verdict.status]} - {summary}")
    entries = [
        perfdata(check.name, check.observed_value, check.observed_unit)
        for check in verdict.checks
        if check.observed_value is not None
    ]
    line = head
    for number_, entry in enumerate(entries):
        extended = f"{line} {entry}" if number_ else f"{line} | {entry}"
        if len(extended.encode()) > MAX_FIRST_LINE:
            break
        line = extended
    return line


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    rest = len(names) - MAX_NAMED
    return f"{shown} and {rest} more" if rest > 0 else shown


def _check_line(check: CheckVerdict) -> str:
    note = "" if check.critical else " (non-critical)"
    detail = one_line(check.output)
    if check.reason is not None and check.own_status is not Status.PASS:
        detail = f"{detail} ({check.reason.value})"
    line = plain(f"[{check.own_status.value.upper()}] {check.name}{note}: {detail}")
    return line if len(line) <= MAX_CHECK_LINE else line[: MAX_CHECK_LINE - 1] + "…"


def plain(text: str) -> str:
    # A "|" starts performance data for Nagios; one inside a message would cut it.
    return text.replace("|", "¦")


def fit(first: str, lines: list[str]) -> str:
    """The first line and as many following lines as fit in 8 KiB, saying how many were cut."""
    budget = MAX_BYTES - len(first.encode()) - 1
    kept: list[str] = []
    for index, line in enumerate(lines):
        size = len(line.encode()) + 1
        left = len(lines) - index
        marker = f"… {left} more line{'s' if left != 1 else ''} cut (8 KiB limit)"
        # Keep room for the marker unless this is the last line.
        reserve = 0 if index == len(lines) - 1 else len(marker.encode()) + 1
        if size + reserve > budget:
            kept.append(marker)
            break
        kept.append(line)
        budget -= size
    return "\n".join([first, *kept]) + "\n"
