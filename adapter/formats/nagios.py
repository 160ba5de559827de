"""A Nagios plugin's answer, after the monitoring-plugins development guidelines.

    HEALTH CRITICAL - 1 of 3 checks failing: api | 'api'=12.5ms;;;; 'worker'=2;;;;
    [FAIL] api: HTTP 500 (status)
    [PASS] heartbeat: modified 1.2s ago
    [PASS] worker: 2 processes

The first line is the state, a summary and the performance data of every check
that has a numeric observed value (adapter.formats.units converts its unit),
and `'NAME:certNotAfter'` for one that observed a certificate's expiry;
one line per check follows (the "long output"), failing, then warning, then
passing checks. The whole stays within 8 KiB, what Nagios reads of a plugin's
output: what does not fit is cut from the end, so passing lines go first and
the performance data gives way before a failing line would.
"""

from __future__ import annotations

import re

from adapter.formats.order import worst_first
from adapter.formats.printable import one_line, printable
from adapter.formats.units import nagios_unit
from adapter.formats.wording import counted
from adapter.health import CheckVerdict, Verdict
from probes import Status
from probes.certificates import MEASUREMENT
from probes.perfdata import format_item, number

__all__ = [
    "EXIT_CODES",
    "FIRST_LINE",
    "MAX_BYTES",
    "exit_code",
    "fit",
    "nagios_text",
    "number",
    "perfdata",
    "plain",
    "relay",
    "state_of",
]

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
#: Room kept for the "… N more lines cut" line when sizing the performance data.
_MARKER_ROOM = 64
#: Long-output lines by their tag: the order `relay` restores.
_TAG_RANK = {"[FAIL]": 0, "[WARN]": 1, "[PASS]": 3}


def state_of(status: Status) -> str:
    """The Nagios state word of a status: OK, WARNING or CRITICAL."""
    return STATES[status]


def exit_code(status: Status) -> int:
    """The Nagios plugin exit code of a status: 0, 1 or 2 (monitoring-plugins guidelines)."""
    return EXIT_CODES[STATES[status]]


def nagios_text(verdict: Verdict, service: str | None = None) -> str:
    """Plugin output for `verdict`: `HEALTH STATE - summary | perfdata`, then one
    line per check, failing ones first, within 8 KiB (the monitoring-plugins
    guidelines; Nagios reads at most that much).
    """
    checks = worst_first(verdict.checks)
    notes = []
    if verdict.unmatched:
        notes.append(plain(printable(f"no check to exclude named {', '.join(verdict.unmatched)}")))
    lines = [_check_line(check) for check in checks]
    # What must never be crowded out by performance data: the notes, and every
    # line of a check that does not pass.
    urgent = notes + [
        line for check, line in zip(checks, lines, strict=True) if check.status is not Status.PASS
    ]
    room = MAX_BYTES - sum(len(line.encode()) + 1 for line in urgent) - _MARKER_ROOM
    first = _first_line(verdict, service, checks, min(MAX_FIRST_LINE, room))
    return fit(first, notes + lines)


def perfdata(label: str, value: float, unit: str | None) -> str:
    """`'label'=value[UOM];;;;`, the unit converted to one of the guidelines' (or left off)."""
    value, uom = nagios_unit(value, unit)
    return format_item(label, value, uom)


def _first_line(
    verdict: Verdict, service: str | None, checks: list[CheckVerdict], limit: int
) -> str:
    total = len(verdict.checks)
    failing = [c.name for c in checks if c.status is Status.FAIL]
    warning = [c.name for c in checks if c.status is Status.WARN]
    # "1 of 1 checks": partitive, plural whatever the count.
    if failing:
        summary = f"{len(failing)} of {total} checks failing: {_names(failing)}"
    elif warning:
        summary = f"{len(warning)} of {total} checks warning: {_names(warning)}"
    else:
        summary = f"{counted(total, 'check')} passing"
    if verdict.draining:
        summary = f"{verdict.drain_reason or 'shutting down'}; {summary}"
    if service:
        summary = f"{service}: {summary}"
    head = plain(one_line(f"HEALTH {STATES[verdict.status]} - {summary}"))
    entries = []
    for check in checks:
        if check.observed_value is not None:
            entries.append(perfdata(check.name, check.observed_value, check.observed_unit))
        if check.cert_not_after is not None:
            # A Unix time has no unit of the guidelines: `s` would read as a duration.
            entries.append(perfdata(f"{check.name}:{MEASUREMENT}", check.cert_not_after, None))
    line = head
    for index, entry in enumerate(entries):
        extended = f"{line} {entry}" if index else f"{line} | {entry}"
        if len(extended.encode()) > limit:
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
    if check.reason is not None and check.status is not Status.PASS:
        detail = f"{detail} ({check.reason.value})"
    line = plain(f"[{check.status.value.upper()}] {check.name}{note}: {detail}")
    return line if len(line) <= MAX_CHECK_LINE else line[: MAX_CHECK_LINE - 1] + "…"


def plain(text: str) -> str:
    """`text` with every `|` made `¦`, since a `|` starts performance data for Nagios."""
    # A "|" starts performance data for Nagios; one inside a message would cut it.
    return text.replace("|", "¦")


def fit(first: str, lines: list[str]) -> str:
    """The first line and as many following lines as fit in 8 KiB, saying how many were cut."""
    budget = MAX_BYTES - len(first.encode()) - 1
    kept: list[str] = []
    for index, line in enumerate(lines):
        size = len(line.encode()) + 1
        left = len(lines) - index
        marker = f"… {counted(left, 'more line')} cut (8 KiB limit)"
        # Keep room for the marker unless this is the last line.
        reserve = 0 if index == len(lines) - 1 else len(marker.encode()) + 1
        if size + reserve > budget:
            kept.append(marker)
            break
        kept.append(line)
        budget -= size
    return "\n".join([first, *kept]) + "\n"


def relay(text: str) -> tuple[str, str] | None:
    """Another adapter's answer (`check --url`) as this one prints it, and its state.

    Every line made printable, the check lines in the order failing, warning,
    other notes, passing (an older adapter wrote them in config order), and the
    whole fitted to 8 KiB again. None when the first line is not an answer.
    """
    # Split at line feeds only: any other line break inside a line is escaped.
    lines = [printable(line) for line in text.rstrip("\n").split("\n")] if text else []
    match = FIRST_LINE.match(lines[0]) if lines else None
    if match is None:
        return None
    rest = sorted(lines[1:], key=_relay_rank)
    return fit(lines[0], rest), match[1]


def _relay_rank(line: str) -> int:
    if line.startswith("… ") and line.endswith("(8 KiB limit)"):
        return 4
    return _TAG_RANK.get(line[:6], 2)
