"""One conversion of units for every renderer: /metrics and Nagios say the same quantity."""

from __future__ import annotations

import pytest

from adapter.formats.units import SCALES, base_unit, nagios_unit
from probes.perfdata import UOMS


@pytest.mark.parametrize(
    ("value_", "unit", "expected"),
    [
        (12.5, "ms", (0.0125, "seconds")),
        (3, "s", (3, "seconds")),
        (2, "m", (120, "seconds")),
        (1, "KiB", (1024, "bytes")),
        (4838, "MiB", (5073010688, "bytes")),
        (2.5, "GB", (2.5e9, "bytes")),
        (3, "TB", (3e12, "bytes")),
        (50, "%", (0.5, "ratio")),
        (2, "processes", (2, "processes")),
        (7, "c", (7, "c")),
        (7, "\x1b[31m", (7, "\\x1b[31m")),
        (7, "caf\udce9", (7, "caf\\udce9")),
        (7, None, (7, "")),
    ],
    ids=[
        "ms",
        "s",
        "minutes",
        "kib",
        "mib",
        "gb",
        "tb",
        "percent",
        "other-unit-kept",
        "counter",
        "escape-sequence-made-printable",
        "lone-surrogate-made-printable",
        "no-unit",
    ],
)
def test_base_units(value_: float, unit: str | None, expected: tuple[float, str]) -> None:
    converted, name = base_unit(value_, unit)
    assert (pytest.approx(converted), name) == expected


@pytest.mark.parametrize(
    ("value_", "unit", "expected"),
    [
        (4838, "MiB", (5073010688, "B")),
        (2.5, "GB", (2500000000, "B")),
        (3, "KiB", (3072, "B")),
        (12.5, "ms", (12.5, "ms")),
        (3, "KB", (3, "KB")),
        (1, "TB", (1, "TB")),
        (7, "c", (7, "c")),
        (2, "min", (120, "s")),
        (1.5, "h", (5400, "s")),
        (500, "ns", (0.5, "us")),
        (3, "µs", (3, "us")),
        (3, "seconds", (3, "s")),
        (10, "bytes", (10, "B")),
        (5, "kB", (5, "KB")),
        (50, "percent", (50, "%")),
        (2, "processes", (2, "")),
        (2, None, (2, "")),
    ],
    ids=[
        "mib",
        "gb",
        "kib",
        "ms-as-written",
        "kb-as-written",
        "tb-as-written",
        "counter-as-written",
        "minutes",
        "hours",
        "nanoseconds",
        "micro-sign",
        "seconds-spelled-out",
        "bytes-spelled-out",
        "kilo-lowercase",
        "percent-spelled-out",
        "a-count",
        "no-unit",
    ],
)
def test_nagios_units(value_: float, unit: str | None, expected: tuple[float, str]) -> None:
    converted, uom = nagios_unit(value_, unit)
    assert (pytest.approx(converted), uom) == expected
    assert uom == "" or uom in UOMS


@pytest.mark.parametrize("unit", sorted(SCALES))
def test_nagios_and_metrics_say_the_same_quantity(unit: str) -> None:
    value = 7.25
    converted, uom = nagios_unit(value, unit)
    assert uom in UOMS
    # Read back through the same table, the Nagios value is the /metrics value.
    assert base_unit(converted, uom) == pytest.approx(base_unit(value, unit))
