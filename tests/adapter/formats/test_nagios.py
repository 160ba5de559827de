"""Nagios plugin output, held against the monitoring-plugins guidelines' grammar."""

from __future__ import annotations

import pytest

from adapter.formats.nagios import exit_code, nagios_text, number, perfdata
from adapter.health import judge, shutting_down
from probes import Result, Status
from tests import nagios_grammar
from tests.adapter.formats.samples import NOW, check, sample_verdict, state


def test_the_sample_verdict_follows_the_guidelines() -> None:
    text = nagios_text(sample_verdict(), "orders-api")
    parsed = nagios_grammar.parse(text)
    assert parsed.state == "CRITICAL"
    assert parsed.summary == "orders-api: 3 of 5 checks failing: worker, cache, fresh"
    assert parsed.perfdata == {"api": (12.5, "ms"), "heartbeat": (4.25, "s"), "worker": (0.0, "")}
    assert parsed.long_output == [
        "[PASS] api: HTTP 200 in 12.5 ms",
        "[WARN] heartbeat: modified 4.25s ago",
        "[FAIL] worker: no <b>process</b> matches a¦b (process_missing)",
        "[FAIL] cache (non-critical): down (connection_refused)",
        "[FAIL] fresh: no result yet (no_result)",
    ]


@pytest.mark.parametrize(
    ("label", "value", "unit", "expected"),
    [
        ("api", 12.5, "ms", "'api'=12.5ms;;;;"),
        ("age", 3, "s", "'age'=3s;;;;"),
        ("age", 3, "seconds", "'age'=3s;;;;"),
        ("n", 2, "processes", "'n'=2;;;;"),
        ("n", 2, None, "'n'=2;;;;"),
        ("tiny", 1e-7, "s", "'tiny'=0s;;;;"),
        ("negative", -0.0000001, None, "'negative'=0;;;;"),
        ("big", 1e20, "B", "'big'=100000000000000000000B;;;;"),
        ("ratio", 50, "percent", "'ratio'=50%;;;;"),
        ("disk", 5, "GB", "'disk'=5;;;;"),
        ("it's", 1.5, "us", "'it''s'=1.5us;;;;"),
    ],
    ids=[
        "ms",
        "s",
        "seconds",
        "count",
        "no-unit",
        "tiny",
        "negative-zero",
        "no-exponent",
        "percent",
        "unit-not-allowed",
        "quote-in-label",
    ],
)
def test_perfdata(label: str, value: float, unit: str | None, expected: str) -> None:
    entry = perfdata(label, value, unit)
    assert entry == expected
    parsed = nagios_grammar.parse(f"HEALTH OK - x | {entry}\n")
    assert list(parsed.perfdata) == [label]


def test_number_never_uses_an_exponent_or_a_locale() -> None:
    for value in [0.1 + 0.2, 1 / 3, 123456789.123, 5e-5, 7]:
        assert set(number(value)) <= set("-0123456789.")


def test_output_stays_within_8_kib_and_keeps_the_first_line() -> None:
    checks = [check(f"check-{i:03d}") for i in range(200)]
    states = {c.name: state(Result("fail", "x" * 500, 1.5, "s")) for c in checks}
    text = nagios_text(judge(checks, states, NOW))
    parsed = nagios_grammar.parse(text)
    assert len(text.encode()) <= 8192
    assert parsed.summary.startswith(
        "200 of 200 checks failing: check-000, check-001, "
        "check-002, check-003, check-004 and 195 more"
    )
    assert parsed.long_output[-1].endswith("more lines cut (8 KiB limit)")
    assert all(len(line) <= 300 for line in parsed.long_output)
    assert len(parsed.perfdata) > 10


def test_shutting_down_says_so() -> None:
    verdict = shutting_down(judge([check("a")], {"a": state(Result("pass"))}, NOW))
    parsed = nagios_grammar.parse(nagios_text(verdict))
    assert (parsed.state, parsed.summary) == ("CRITICAL", "shutting down; 1 check passing")


@pytest.mark.parametrize(
    ("status", "code"),
    [(Status.PASS, 0), (Status.WARN, 1), (Status.FAIL, 2)],
    ids=["ok", "warning", "critical"],
)
def test_exit_codes(status: Status, code: int) -> None:
    assert exit_code(status) == code
