"""Log lines: one per event, fields escaped so that no value can forge a line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from adapter import logs
from tests.adapter.formats.test_printable import HOSTILE


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("/health\r\ntime=x event=forged", '"/health\\r\\ntime=x event=forged"'),
        ("\x1b[2J", '"\\x1b[2J"'),
        ("\u2028", '"\\u2028"'),
        ("café", "café"),
        ("", '""'),
        (42, "42"),
    ],
    ids=[
        "plain",
        "space",
        "quotes",
        "equals",
        "newline",
        "crlf-injection",
        "escape-sequence",
        "line-separator",
        "unicode",
        "empty",
        "number",
    ],
)
def test_logfmt_values(value: object, written: str) -> None:
    assert logs._logfmt_value(value) == written


def test_one_line_per_event_in_both_formats() -> None:
    for fmt in logs.FORMATS:
        stream = io.StringIO()
        logs.configure(fmt, "info", stream)
        logger = logging.getLogger("health_adapter.test")
        logs.event(logger, "check_transition", check="api", output="a\nb", reason=None)
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1
        if fmt == "json":
            fields = json.loads(lines[0])
            assert (fields["event"], fields["check"], fields["output"]) == (
                "check_transition",
                "api",
                "a\nb",
            )
            assert "reason" not in fields  # fields without a value are left out
        else:
            assert lines[0].endswith('event=check_transition check=api output="a\\nb"')
    logs.configure("text", "info")


@pytest.mark.parametrize("fmt", logs.FORMATS)
@pytest.mark.parametrize("output", list(HOSTILE.values()), ids=list(HOSTILE))
def test_no_output_can_forge_or_rewrite_a_log_line(fmt: str, output: str) -> None:
    stream = io.StringIO()
    logs.configure(fmt, "info", stream)
    try:
        logs.event(logging.getLogger("health_adapter.test"), "check_transition", output=output)
    finally:
        logs.configure("text", "info")
    (line,) = stream.getvalue().splitlines()
    assert line.isprintable()
    if fmt == "json":
        assert json.loads(line)["output"] == output
