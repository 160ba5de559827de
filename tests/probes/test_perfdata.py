"""Nagios performance data: one grammar, read (the exec probe) and written (`?format=nagios`)."""

from __future__ import annotations

import pytest

from probes.perfdata import (
    UOMS,
    PerfValue,
    format_item,
    number,
    parse_perfdata,
    parse_plugin_output,
)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        (
            "time=0.002s;1;2;0;",
            [PerfValue("time", 0.002, "s", "time=0.002s;1;2;0;", "1", "2", "0", "")],
        ),
        (
            "'free space'=80% used=12B",
            [
                PerfValue("free space", 80, "%", "'free space'=80%"),
                PerfValue("used", 12, "B", "used=12B"),
            ],
        ),
        ("'it''s'=1c", [PerfValue("it's", 1, "c", "'it''s'=1c")]),
        ("x=U;1;2", [PerfValue("x", None, "", "x=U;1;2", "1", "2")]),
        (
            "broken=abc ok=-1.5e3ms",
            [
                PerfValue("broken", None, "", "broken=abc"),
                PerfValue("ok", -1500.0, "ms", "ok=-1.5e3ms"),
            ],
        ),
        ("junk ok=1", [PerfValue("junk", None, "", "junk"), PerfValue("ok", 1, "", "ok=1")]),
        ("'disk'=4838MiB;;;;", [PerfValue("disk", 4838, "MiB", "'disk'=4838MiB;;;;")]),
        ("t=1.5µs", [PerfValue("t", 1.5, "µs", "t=1.5µs")]),
        ("temp=21.5°C", [PerfValue("temp", 21.5, "°C", "temp=21.5°C")]),
        ("n=1,5", [PerfValue("n", None, "", "n=1,5")]),
        ("n=1.2.3", [PerfValue("n", None, "", "n=1.2.3")]),
        ("n=inf n2=nan", [PerfValue("n", None, "", "n=inf"), PerfValue("n2", None, "", "n2=nan")]),
        ("", []),
    ],
    ids=[
        "thresholds",
        "quoted-label-and-units",
        "escaped-quote",
        "undetermined",
        "garbage-keeps-its-place",
        "no-equals-keeps-its-place",
        "mib",
        "micro-sign",
        "degrees",
        "comma-decimal",
        "two-points",
        "not-finite",
        "empty",
    ],
)
def test_parse_perfdata(text: str, values: list[PerfValue]) -> None:
    assert parse_perfdata(text) == values


@pytest.mark.parametrize(
    ("output", "observed"),
    [
        ("OK | a=3ms b=7KB\n", ("a", 3)),
        ("OK | a=U b=7KB\n", ("a", None)),
        ("OK | a=abc b=7KB\n", ("a", None)),
        ("OK | 'a b=3 c=4\n", ("'a", None)),
        ("OK\n", None),
    ],
    ids=["first", "undetermined-first", "unreadable-first", "unterminated-quote", "none"],
)
def test_the_first_item_is_the_observed_one_whatever_its_value(
    output: str, observed: tuple[str, float | None] | None
) -> None:
    plugin = parse_plugin_output(output)
    assert plugin.text == "OK"
    item = plugin.observed
    assert (None if item is None else (item.label, item.value)) == observed


@pytest.mark.parametrize(
    ("label", "value", "uom"),
    [("api", 12.5, "ms"), ("it's", 3, "c"), ("free space", 80, "%"), ("big", 5073010688.0, "B")],
    ids=["ms", "quote", "space", "big-float"],
)
def test_what_is_written_reads_back(label: str, value: float, uom: str) -> None:
    assert uom in UOMS
    (item,) = parse_perfdata(format_item(label, value, uom))
    assert (item.label, item.value, item.unit) == (label, value, uom)


def test_number_never_uses_an_exponent_or_a_locale() -> None:
    for value in [0.1 + 0.2, 1 / 3, 123456789.123, 5e-5, 7, 5.073010688e9]:
        assert set(number(value)) <= set("-0123456789.")
    assert number(5.073010688e9) == "5073010688"
