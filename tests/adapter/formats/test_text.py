"""kube-apiserver style verbose text."""

from __future__ import annotations

from adapter.formats.text import verbose_text
from adapter.health import judge, shutting_down
from probes import Result
from tests.adapter.formats.samples import NOW, check, sample_verdict, state


def test_one_line_per_check_then_the_summary() -> None:
    # Failing first, then warning, then passing; config order within each.
    assert verbose_text(sample_verdict(), "readyz").splitlines() == [
        "[-]worker failed: no <b>process</b> matches a|b",
        "[-]cache failed (non-critical): down",
        "[-]fresh failed: no result yet",
        "[+]heartbeat warn: modified 4.25s ago",
        "[+]api ok",
        "readyz check failed",
    ]


def test_exclusions_are_listed_like_kube_apiserver_does() -> None:
    checks = [check("a"), check("b")]
    verdict = judge(checks, {"a": state(Result("pass"))}, NOW, exclude=["b", "x", "y"])
    assert verbose_text(verdict, "livez").splitlines() == [
        "[+]a ok",
        "[+]b excluded: ok",
        'warn: some health checks cannot be excluded: no matches for "x", "y"',
        "livez check passed",
    ]


def test_shutdown_comes_first() -> None:
    verdict = shutting_down(judge([check("a")], {"a": state(Result("pass"))}, NOW))
    assert verbose_text(verdict, "readyz").splitlines() == [
        "[-]shutdown in progress",
        "[+]a ok",
        "readyz check failed",
    ]


def test_names_asked_to_exclude_are_printed_escaped() -> None:
    # ?exclude= comes from the request: it must not reach a terminal raw either.
    verdict = judge([check("a")], {"a": state(Result("pass"))}, NOW, exclude=["\x1b[2Jx\u202e"])
    assert verbose_text(verdict, "livez").splitlines()[1] == (
        'warn: some health checks cannot be excluded: no matches for "\\x1b[2Jx\\u202e"'
    )
