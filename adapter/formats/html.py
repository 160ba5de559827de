"""The status page for people: one self-contained HTML page, no external assets.

A banner with the verdict, a row per check (status colour, output, observed
value, since when, and a strip of its recent runs), and for a single check a
table of its recent runs. It refreshes itself with a meta refresh, so it
needs no script. Every text from a check is escaped.
"""

from __future__ import annotations

import html
import string
import time
from importlib import resources

from adapter.formats.health_json import rfc3339
from adapter.health import CheckVerdict, Verdict
from adapter.state import Run
from probes import Status

TEMPLATE = string.Template(
    resources.files("adapter.formats").joinpath("status_page.html").read_text("utf-8")
)
REFRESH_SECONDS = 5
#: Runs shown in each check's strip, oldest on the left.
STRIP_LENGTH = 20

_VERDICT_WORDS = {Status.PASS: "Healthy", Status.WARN: "Degraded", Status.FAIL: "Failing"}
_COLOURS = {Status.PASS: "1a7f37", Status.WARN: "b35900", Status.FAIL: "cf222e"}


def status_page(
    verdict: Verdict,
    *,
    service: str | None,
    now: float,
    version: str,
    detailed: bool = False,
) -> str:
    """The page for `verdict`; `now` (wall-clock seconds) dates it and the "since" column."""
    word = "Shutting down" if verdict.draining else _VERDICT_WORDS[verdict.status]
    title = f"{word} · {service}" if service else f"{word} · health-adapter"
    rows = "\n".join(_row(check, now) for check in verdict.checks)
    if not verdict.checks:
        rows = '<tr><td colspan="6" class="muted">No checks here.</td></tr>'
    detail = "".join(_runs_table(check) for check in verdict.checks) if detailed else ""
    return TEMPLATE.substitute(
        title=_e(title),
        icon_colour=_COLOURS[verdict.status],
        status=verdict.status.value,
        verdict=_e(word),
        service=_e(service or ""),
        counts=_counts(verdict),
        notes=_notes(verdict),
        rows=rows,
        detail=detail,
        updated=_clock(now),
        refresh=REFRESH_SECONDS,
        version=_e(version),
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _counts(verdict: Verdict) -> str:
    tally = {status: 0 for status in Status}
    for check in verdict.checks:
        tally[check.own_status] += 1
    words = {Status.PASS: "passing", Status.WARN: "warning", Status.FAIL: "failing"}
    parts = [f"<span>{count} {words[status]}</span>" for status, count in tally.items() if count]
    return "".join(parts) or "<span>no checks</span>"


def _notes(verdict: Verdict) -> str:
    notes = []
    if verdict.draining:
        notes.append("The adapter is shutting down: it no longer reports ready.")
    if verdict.excluded:
        notes.append(f"Excluded on request: {', '.join(verdict.excluded)}.")
    if verdict.unmatched:
        notes.append(f"No check to exclude named {', '.join(verdict.unmatched)}.")
    notes.extend(verdict.notes)
    return "".join(f'<div class="notes">{_e(note)}</div>' for note in notes)


def _row(check: CheckVerdict, now: float) -> str:
    status = check.own_status.value
    tags = [check.probe_type, ", ".join(check.groups)]
    if not check.critical:
        tags.append("non\u2011critical")  # a hyphen the line never breaks at
    reason = ""
    if check.reason is not None and check.own_status is not Status.PASS:
        reason = f'<div class="reason">reason: {_e(check.reason.value)}</div>'
    since = '<span class="muted">—</span>'
    if check.since is not None:
        since = (
            f'<span class="num" title="{rfc3339(check.since)}">{_e(ago(now - check.since))}</span>'
        )
    return (
        f'<tr class="{status}">'
        f'<td class="check"><div class="name">'
        f'<a href="/health/{_e(check.name)}?format=html">{_e(check.name)}</a></div>'
        f'<div class="tags">{_e(" · ".join(tags))}</div></td>'
        f'<td><span class="pill {status}">{status}</span></td>'
        f'<td><div class="output">{_e(check.output)}</div>{reason}</td>'
        f'<td class="num observed">{_e(observed(check.observed_value, check.observed_unit))}'
        "</td>"
        f"<td>{since}</td>"
        f"<td>{_strip(check.history)}</td>"
        "</tr>"
    )


def _strip(history: tuple[Run, ...]) -> str:
    recent = history[-STRIP_LENGTH:]
    empty = "<i></i>" * (STRIP_LENGTH - len(recent))
    marks = "".join(
        f'<i class="{run.result.status.value}" title="{_e(_run_title(run))}"></i>' for run in recent
    )
    return f'<div class="strip">{empty}{marks}</div>'


def _run_title(run: Run) -> str:
    text = f"{rfc3339(run.started)} {run.result.status.value}"
    if run.result.output:
        text += f": {run.result.output[:200]}"
    return text


def _runs_table(check: CheckVerdict) -> str:
    rows = "\n".join(
        f'<tr class="{run.result.status.value}">'
        f'<td class="num" title="{rfc3339(run.started)}">{_clock(run.started)}</td>'
        f'<td><span class="pill {run.result.status.value}">{run.result.status.value}</span></td>'
        f'<td class="num">{_e(observed(run.duration * 1000, "ms"))}</td>'
        f'<td class="num">{_e(observed(run.result.observed_value, run.result.observed_unit))}'
        "</td>"
        f'<td><div class="output">{_e(run.result.output)}</div>'
        f"{_reason_of(run)}</td></tr>"
        for run in reversed(check.history)
    )
    counts = ", ".join(f"{check.run_counts.get(s, 0)} {s.value}" for s in Status)
    return (
        f'<p><a href="/">&larr; every check</a></p>'
        f"<h2>Recent runs of {_e(check.name)} ({_e(counts)} since start)</h2>"
        "<table><thead><tr><th>Started (UTC)</th><th>Result</th><th>Took</th><th>Observed</th>"
        f"<th>Output</th></tr></thead><tbody>{rows or _NO_RUNS}</tbody></table>"
    )


_NO_RUNS = '<tr><td colspan="5" class="muted">No runs yet.</td></tr>'


def _clock(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def _reason_of(run: Run) -> str:
    reason = run.result.reason
    return f'<div class="reason">reason: {_e(reason.value)}</div>' if reason is not None else ""


def observed(value: float | None, unit: str | None) -> str:
    """A number for people: 12.3 ms, 2 processes, 1,024 items."""
    if value is None:
        return "—"
    if isinstance(value, int):
        text = f"{value:,}"
    else:
        magnitude = abs(value)
        decimals = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2
        text = f"{value:,.{decimals}f}"
    return f"{text} {unit}" if unit else text


def ago(seconds: float) -> str:
    """How long ago, to the two largest units: 45s ago, 3m 12s ago, 2h 5m ago, 3d 4h ago."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s ago"
    parts: list[str] = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if whole >= size or parts:
            parts.append(f"{whole // size}{unit}")
            whole %= size
        if len(parts) == 2:
            break
    return " ".join(parts) + " ago"
