"""kube-apiserver style text: `[-]name failed: why` / `[+]name ok`, then the summary line.

Checks that fail come first, then those that warn, then those that pass (each
in config order), so that a person reading `curl …/readyz?verbose | head` sees
what is wrong. Every output is one line, made printable (adapter.formats.printable).
"""

from __future__ import annotations

from adapter.formats.order import worst_first
from adapter.formats.printable import one_line, printable
from adapter.health import SHUTTING_DOWN, Verdict
from probes import Status

__all__ = ["one_line", "verbose_text"]


def verbose_text(verdict: Verdict, label: str) -> str:
    """kube-apiserver's `?verbose` answer: one `[+]`/`[-]` line per check, failing
    first, then `notes` and the last line `LABEL check passed` (or `failed`).
    """
    lines = [f"[-]{_drain_line(verdict.drain_reason)}"] if verdict.draining else []
    for check in worst_first(verdict.checks):
        if check.status is Status.PASS:
            lines.append(f"[+]{check.name} ok")
        elif check.status is Status.WARN:
            lines.append(f"[+]{check.name} warn: {one_line(check.output)}")
        else:
            note = "" if check.critical else " (non-critical)"
            lines.append(f"[-]{check.name} failed{note}: {one_line(check.output)}")
    lines.extend(f"[+]{name} excluded: ok" for name in verdict.excluded)
    if verdict.unmatched:
        names = ", ".join(f'"{printable(name)}"' for name in verdict.unmatched)
        lines.append(f"warn: some health checks cannot be excluded: no matches for {names}")
    lines.extend(f"note: {note}" for note in verdict.notes)
    passed = verdict.status is not Status.FAIL
    lines.append(f"{label} check {'passed' if passed else 'failed'}")
    return "\n".join(lines) + "\n"


def _drain_line(reason: str) -> str:
    # kube-apiserver's own words for its shutdown; any other drain says why.
    return "shutdown in progress" if reason in ("", SHUTTING_DOWN) else one_line(reason)
