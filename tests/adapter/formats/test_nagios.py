"""Nagios plugin output, held against the monitoring-plugins guidelines' grammar."""

from __future__ import annotations

import pytest

from adapter.formats.nagios import exit_code, nagios_text, number, perfdata, relay
from adapter.health import judge, shutting_down
from probes import Result, Status
from tests import nagios_grammar
from tests.adapter.formats.samples import (
    CERT_NOT_AFTER,
    NOW,
    check,
    sample_verdict,
    state,
    tls_verdict,
)


def test_the_sample_verdict_follows_the_guidelines() -> None:
    text = nagios_text(sample_verdict(), "orders-api")
    parsed = nagios_grammar.parse(text)
    assert parsed.state == "CRITICAL"
    assert parsed.summary == "orders-api: 3 of 5 checks failing: worker, cache, fresh"
    assert parsed.perfdata == {"api": (12.5, "ms"), "heartbeat": (4.25, "s"), "worker": (0.0, "")}
    # Failing, then warning, then passing; config order within each.
    assert parsed.long_output == [
        "[FAIL] worker: no <b>process</b> matches a¦b (process_missing)",
        "[FAIL] cache (non-critical): down (connection_refused)",
        "[FAIL] fresh: no result yet (no_result)",
        "[WARN] heartbeat: modified 4.25s ago",
        "[PASS] api: HTTP 200 in 12.5 ms",
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
        ("disk", 5, "GB", "'disk'=5000000000B;;;;"),
        ("disk", 4838, "MiB", "'disk'=5073010688B;;;;"),
        ("disk", 3, "KB", "'disk'=3KB;;;;"),
        ("requests", 7, "c", "'requests'=7c;;;;"),
        ("wait", 2, "min", "'wait'=120s;;;;"),
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
        "gb-in-bytes",
        "mib-in-bytes",
        "kb-as-written",
        "counter",
        "minutes-in-seconds",
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
    # Every line is a failing one: the performance data gives way to them.
    assert parsed.perfdata == {}
    assert len(parsed.long_output) > 20


def test_perfdata_fills_the_first_line_while_nothing_fails() -> None:
    checks = [check(f"check-{i:03d}") for i in range(200)]
    states = {c.name: state(Result("pass", "x" * 500, 1.5, "s")) for c in checks}
    parsed = nagios_grammar.parse(nagios_text(judge(checks, states, NOW)))
    assert len(parsed.perfdata) > 100


def many_checks(failing: set[int], total: int = 200, why: str = "") -> str:
    """field-cases/20: 200 sentinel checks, a few late ones missing their file."""
    checks = [check(f"svc{i:03d}", probe_type="file") for i in range(total)]
    states = {
        c.name: state(
            Result("fail", f"/srv/{c.name} does not exist{why}", reason="file_missing")
            if i in failing
            else Result("pass", "modified 0.3s ago", 0.3, "s")
        )
        for i, c in enumerate(checks)
    }
    return nagios_text(judge(checks, states, NOW))


def test_failing_lines_come_first_and_are_never_cut() -> None:
    parsed = nagios_grammar.parse(many_checks({150, 180, 199}))
    assert parsed.summary == "3 of 200 checks failing: svc150, svc180, svc199"
    assert parsed.long_output[:4] == [
        "[FAIL] svc150: /srv/svc150 does not exist (file_missing)",
        "[FAIL] svc180: /srv/svc180 does not exist (file_missing)",
        "[FAIL] svc199: /srv/svc199 does not exist (file_missing)",
        "[PASS] svc000: modified 0.3s ago",
    ]
    assert parsed.long_output[-1].endswith("more lines cut (8 KiB limit)")
    assert len(parsed.perfdata) > 50  # room was left for them


def test_performance_data_gives_way_before_a_failing_line_does() -> None:
    # 40 failing lines of about 150 bytes (6 KiB), and 160 values that would take 3.5 KiB.
    failing = set(range(0, 200, 5))
    parsed = nagios_grammar.parse(many_checks(failing, why=": " + "x" * 100))
    fail_lines = [line for line in parsed.long_output if line.startswith("[FAIL]")]
    assert len(fail_lines) == len(failing)
    assert 0 < len(parsed.perfdata) < 160


def test_warning_lines_come_between() -> None:
    checks = [check("a"), check("b"), check("c"), check("d")]
    states = {
        "a": state(Result("pass", "fine")),
        "b": state(Result("warn", "slow")),
        "c": state(Result("fail", "down")),
        "d": state(Result("warn", "slower")),
    }
    parsed = nagios_grammar.parse(nagios_text(judge(checks, states, NOW)))
    assert [line.split(":")[0] for line in parsed.long_output] == [
        "[FAIL] c",
        "[WARN] b",
        "[WARN] d",
        "[PASS] a",
    ]


def test_an_answer_relayed_by_check_url_is_printable_and_failures_first() -> None:
    # As an older adapter (or anything at that URL) may answer: config order, raw bytes.
    remote = (
        "HEALTH CRITICAL - 1 of 3 checks failing: c | 'a'=1;;;;\n"
        "[PASS] a: fine\n[PASS] b: \x1b]8;;http://x/\x1b\\link\n"
        "[FAIL] c: down\x00 (failed)\n"
    )
    relayed = relay(remote)
    assert relayed is not None
    text, state_ = relayed
    assert state_ == "CRITICAL"
    assert text.splitlines()[1:] == [
        "[FAIL] c: down\\x00 (failed)",
        "[PASS] a: fine",
        "[PASS] b: \\x1b]8;;http://x/\\x1b\\link",
    ]
    assert relay("<html>nope</html>") is None


def test_a_relayed_answer_is_cut_to_8_kib_keeping_the_failures() -> None:
    lines = [f"[PASS] svc{i:03d}: " + "x" * 100 for i in range(150)] + ["[FAIL] late: down"]
    relayed = relay("HEALTH CRITICAL - 1 of 151 checks failing: late\n" + "\n".join(lines))
    assert relayed is not None
    parsed = nagios_grammar.parse(relayed[0])
    assert parsed.long_output[0] == "[FAIL] late: down"
    assert parsed.long_output[-1].endswith("more lines cut (8 KiB limit)")


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


def test_a_certificate_expiry_is_perfdata_without_a_unit() -> None:
    parsed = nagios_grammar.parse(nagios_text(tls_verdict()))

    # A Unix time, not a duration: no `s`, so graphers do not add it up as one.
    assert parsed.perfdata == {"site": (12.5, "ms"), "site:certNotAfter": (CERT_NOT_AFTER, "")}
    assert parsed.long_output[0].startswith(
        "[WARN] site: certificate 'site.test' expires 2026-01-01 00:00 UTC"
    )
