"""The status page for people: one self-contained HTML page, no external assets.

A banner with the verdict, a row per check (status colour, output, observed
value, since when, and a strip of its recent runs), failing checks first, then
warning, then passing (adapter.formats.order), and for a single check a table
of its recent runs. It refreshes itself with a meta refresh, so it needs no
script. Every text from a check is made printable (adapter.formats.printable:
no bidi override can reorder the page) and HTML-escaped.

With more than `COMPACT_ABOVE` checks the page is compact: rows only for the
checks that fail or warn (their outputs cut to `COMPACT_OUTPUT` characters,
their strips without per-run outputs), and the passing checks as a list of
names, each linking to its own page; 2,000 checks make a page of about 200 KB
instead of several MB, reloaded every few seconds.

On a narrow screen (a phone, a split window) each row becomes a card: name
and status on top, the output below, without sideways scrolling.
"""

from __future__ import annotations

import html
import string
import time
from importlib import resources

from adapter.formats.health_json import rfc3339
from adapter.formats.order import worst_first
from adapter.formats.printable import printable
from adapter.formats.wording import unit_for
from adapter.health import CheckVerdict, Verdict
from adapter.state import Run
from probes import Status

TEMPLATE = string.Template(
    resources.files("adapter.formats").joinpath("status_page.html").read_text("utf-8")
)
REFRESH_SECONDS = 5
#: Runs shown in each check's strip, oldest on the left.
STRIP_LENGTH = 20
#: Above this many checks, the page is compact (see the module's docstring).
COMPACT_ABOVE = 50
#: Characters of a check's output shown in a compact page's row.
COMPACT_OUTPUT = 300
#: Characters of a passing check's output shown when pointing at its name.
CHIP_TITLE = 120
#: Characters of a run's output in its mark's tooltip.
RUN_TITLE = 200

_VERDICT_WORDS = {Status.PASS: "Healthy", Status.WARN: "Degraded", Status.FAIL: "Failing"}
_COLOURS = {Status.PASS: "1a7f37", Status.WARN: "b35900", Status.FAIL: "cf222e"}


def status_page(
    verdict: Verdict,
    *,
    service: str | None,
    now: float,
    version: str,
    with_runs: bool = False,
) -> str:
    """The page for `verdict`; `now` (wall-clock seconds) dates it and the "since" column."""
    word = _VERDICT_WORDS[verdict.status]
    if verdict.draining:
        shutdown = verdict.drain_reason in ("", "shutting down")
        word = "Shutting down" if shutdown else "Draining"
    title = f"{word} · {service}" if service else f"{word} · health-adapter"
    checks = worst_first(verdict.checks)
    compact = len(checks) > COMPACT_ABOVE
    shown = [c for c in checks if c.status is not Status.PASS] if compact else checks
    rows = "\n".join(_row(check, now, compact=compact) for check in shown)
    if not verdict.checks:
        rows = '<tr><td colspan="6" class="muted">No checks here.</td></tr>'
    elif not rows:
        rows = '<tr><td colspan="6" class="muted">Every check passes.</td></tr>'
    passing = _passing(checks) if compact else ""
    runs = "".join(_runs_table(check) for check in verdict.checks) if with_runs else ""
    return TEMPLATE.substitute(
        title=_e(title),
        icon_colour=_COLOURS[verdict.status],
        status=verdict.status.value,
        verdict=_e(word),
        service=_e(service or ""),
        counts=_counts(verdict),
        notes=_notes(verdict),
        rows=rows,
        passing=passing,
        detail=runs,
        updated=_clock(now),
        refresh=REFRESH_SECONDS,
        version=_e(version),
    )


def _e(text: str) -> str:
    """Text from anywhere, printable and HTML-escaped; line breaks and tabs are kept
    (outputs are shown with `white-space: pre-wrap`)."""
    return html.escape(printable(text, keep="\n\r\t"), quote=True)


def _counts(verdict: Verdict) -> str:
    tally = {status: 0 for status in Status}
    for check in verdict.checks:
        tally[check.status] += 1
    words = {Status.PASS: "passing", Status.WARN: "warning", Status.FAIL: "failing"}
    parts = [f"<span>{count:,} {words[status]}</span>" for status, count in tally.items() if count]
    return "".join(parts) or "<span>no checks</span>"


def _notes(verdict: Verdict) -> str:
    notes = []
    if verdict.draining:
        if verdict.drain_reason in ("", "shutting down"):
            notes.append("The adapter is shutting down: it no longer reports ready.")
        else:
            notes.append(f"The adapter no longer reports ready: {verdict.drain_reason}.")
    if verdict.excluded:
        notes.append(f"Excluded on request: {', '.join(verdict.excluded)}.")
    if verdict.unmatched:
        notes.append(f"No check to exclude named {', '.join(verdict.unmatched)}.")
    notes.extend(verdict.notes)
    return "".join(f'<div class="notes">{_e(note)}</div>' for note in notes)


def _row(check: CheckVerdict, now: float, *, compact: bool = False) -> str:
    status = check.status.value
    tags = [check.probe_type, ", ".join(check.groups)]
    if not check.critical:
        tags.append("non\u2011critical")  # a hyphen the line never breaks at
    reason = ""
    if check.reason is not None and check.status is not Status.PASS:
        reason = f'<div class="reason">reason: {_e(check.reason.value)}</div>'
    since = '<span class="muted">—</span>'
    if check.since is not None:
        since = (
            f'<span class="num" title="{rfc3339(check.since)}">{_e(ago(now - check.since))}</span>'
        )
    output = _cut(check.output, COMPACT_OUTPUT) if compact else check.output
    return (
        f'<tr class="{status}">'
        f'<td class="check"><div class="name">'
        f'<a href="/health/{_e(check.name)}?format=html">{_e(check.name)}</a></div>'
        f'<div class="tags">{_e(" · ".join(tags))}</div></td>'
        f'<td class="status"><span class="pill {status}">{status}</span></td>'
        f'<td class="out"><div class="output">{_e(output)}</div>{reason}</td>'
        f'<td class="num observed">{_e(observed(check.observed_value, check.observed_unit))}'
        "</td>"
        f'<td class="since">{since}</td>'
        f'<td class="runs">{_strip(check.history, titled=not compact)}</td>'
        "</tr>"
    )


def _passing(checks: list[CheckVerdict]) -> str:
    """The passing checks of a compact page: their names, their outputs on pointing."""
    names = [
        f'<a href="/health/{_e(c.name)}?format=html" title="{_e(_cut(c.output, CHIP_TITLE))}">'
        f"{_e(c.name)}</a>"
        for c in checks
        if c.status is Status.PASS
    ]
    if not names:
        return ""
    return (
        f"<h2>{len(names):,} passing check{'' if len(names) == 1 else 's'}</h2>"
        f'<div class="chips">{" ".join(names)}</div>'
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strip(history: tuple[Run, ...], *, titled: bool = True) -> str:
    recent = history[-STRIP_LENGTH:]
    empty = "<i></i>" * (STRIP_LENGTH - len(recent))
    if titled:
        marks = "".join(
            f'<i class="{run.result.status.value}" title="{_e(_run_title(run))}"></i>'
            for run in recent
        )
    else:
        marks = "".join(f'<i class="{run.result.status.value}"></i>' for run in recent)
    return f'<div class="strip">{empty}{marks}</div>'


def _run_title(run: Run) -> str:
    text = f"{rfc3339(run.started)} {run.result.status.value}"
    if run.result.output:
        text += f": {_cut(run.result.output, RUN_TITLE)}"
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
    counts = ", ".join(f"{check.run_counts.get(s, 0):,} {s.value}" for s in Status)
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
    """A number for people: 12.3 ms, 2 processes, 1 process, 1,024 items.

    The unit as observed (its scale kept: 4,838 MiB), in the singular for one.
    """
    if value is None:
        return "—"
    if isinstance(value, int):
        text = f"{value:,}"
    else:
        magnitude = abs(value)
        decimals = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2
        text = f"{value:,.{decimals}f}"
    return f"{text} {unit_for(value, unit)}" if unit else text


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
