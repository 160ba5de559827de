"""Whatever a target puts in a check's output, every answer and log line stays whole.

One escaping rule (adapter.formats.printable), used by every text form, the
page, the JSON answers and both log formats.
"""

from __future__ import annotations

import json

import pytest

from adapter.formats.health_json import health_json
from adapter.formats.html import status_page
from adapter.formats.nagios import nagios_text
from adapter.formats.printable import json_escaped, one_line, printable
from adapter.formats.text import verbose_text
from adapter.health import Verdict, judge
from probes import Result
from tests import nagios_grammar
from tests.adapter.formats.samples import NOW, STARTED, check, state

#: field-cases/19: a forged log line, a carriage return, ANSI escapes, a bidi override, a NUL.
FORGER = (
    "CRITICAL - db down\ntime=2026-01-01T00:00:00.000Z level=info event=check_transition "
    "check=forger old=fail new=pass\r\x1b[2K\x1b[32mall good\x1b[0m \u202eevil\x00after-nul"
)
HOSTILE = {
    "field-case-19": FORGER,
    "osc8-hyperlink": "see \x1b]8;;http://evil.example/\x1b\\the docs\x1b]8;;\x1b\\ now",
    "lone-surrogate": "path /srv/caf\udce9 unreadable",
    "c1-csi": "red \x9b31m text",
    "del": "a\x7fb",
    "bidi-isolate": "file \u2066txt.exe\u2069 found",
    "line-separator": "one\u2028two\u2029three",
    "tag-character": "flag \U000e0041",
    "bell-and-backspace": "ok\x07\x08\x08FAIL",
}
#: What no text form may carry raw.
DANGEROUS = set("\x00\x1b\x7f\x9b\u202e\u2066\u2069\u2028\u2029\x07\x08\U000e0041") | {
    chr(c) for c in range(0xDC80, 0xDD00)
}


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("\x1b[2K", "\\x1b[2K"),
        ("a\x00b", "a\\x00b"),
        ("\x7f", "\\x7f"),
        ("\x9b", "\\x9b"),
        ("\u202eevil", "\\u202eevil"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("a\u2028b", "a\\u2028b"),
        ("caf\udce9", "caf\\udce9"),
        ("\U000e0041", "\\U000e0041"),
        ("a\nb\tc", "a\\nb\\tc"),
        ("café ✓ 日本", "café ✓ 日本"),
        ("C:\\temp", "C:\\temp"),
    ],
    ids=[
        "esc",
        "nul",
        "del",
        "c1",
        "bidi-override",
        "bidi-isolate",
        "line-separator",
        "lone-surrogate",
        "astral",
        "named",
        "unicode-kept",
        "backslash-kept",
    ],
)
def test_printable(text: str, escaped: str) -> None:
    assert printable(text) == escaped


def test_one_line_folds_white_space_and_escapes_the_rest() -> None:
    assert one_line("a\n\tb\r\n c\u2028d") == "a / b / c\\u2028d"
    assert one_line("a  \t b") == "a b"
    assert one_line(" \n ") == "no details"
    # A forged line stays on the line of the check it came from, marked where it began.
    assert one_line("OK\n[PASS] other: fine") == "OK / [PASS] other: fine"


def test_json_escapes_decode_to_the_same_text() -> None:
    for text in HOSTILE.values():
        written = json_escaped(json.dumps(text, ensure_ascii=False))
        assert written.isprintable()
        assert json.loads(written) == text


def verdict_of(output: str) -> Verdict:
    checks = [check("forger"), check("second")]
    states = {
        "forger": state(Result("fail", output, 1, "\x1b[31mitems", reason="failed")),
        "second": state(Result("pass", "fine")),
    }
    return judge(checks, states, NOW)


def raw_dangerous(text: str, allowed: str = "") -> set[str]:
    return {char for char in text if char in DANGEROUS and char not in allowed}


@pytest.mark.parametrize("output", list(HOSTILE.values()), ids=list(HOSTILE))
def test_verbose_text(output: str) -> None:
    text = verbose_text(verdict_of(output), "readyz")
    assert not raw_dangerous(text)
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].startswith("[-]forger failed: ")
    assert lines[-1] == "readyz check failed"


@pytest.mark.parametrize("output", list(HOSTILE.values()), ids=list(HOSTILE))
def test_nagios(output: str) -> None:
    text = nagios_text(verdict_of(output))
    assert not raw_dangerous(text)
    parsed = nagios_grammar.parse(text)
    assert parsed.long_output[0].startswith("[FAIL] forger: ")
    assert parsed.long_output[0].endswith("(failed)")  # the reason survives the output
    assert parsed.long_output[1] == "[PASS] second: fine"


def test_the_field_case_reads_as_escaped_text() -> None:
    line = nagios_text(verdict_of(FORGER)).splitlines()[1]
    assert line == (
        "[FAIL] forger: CRITICAL - db down / time=2026-01-01T00:00:00.000Z level=info "
        "event=check_transition check=forger old=fail new=pass / "
        "\\x1b[2K\\x1b[32mall good\\x1b[0m \\u202eevil\\x00after-nul (failed)"
    )


@pytest.mark.parametrize("output", list(HOSTILE.values()), ids=list(HOSTILE))
def test_status_page(output: str) -> None:
    page = status_page(verdict_of(output), service=None, now=STARTED, version="1")
    page.encode()  # a lone surrogate would not encode
    assert not raw_dangerous(page)


@pytest.mark.parametrize("output", list(HOSTILE.values()), ids=list(HOSTILE))
def test_health_json_keeps_the_output_and_writes_it_printable(output: str) -> None:
    body = health_json(verdict_of(output), None)
    assert body.decode().isprintable()
    entry = json.loads(body)["checks"]["forger"][0]
    assert entry["output"] == output
    assert entry["observedUnit"] == "\x1b[31mitems"
