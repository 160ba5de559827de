"""Durations as option values: the `d` unit for certificate lifetimes and the like."""

from __future__ import annotations

import pytest

from probes.types import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("14d", 14 * 86400, id="days"),
        pytest.param("1.5d", 1.5 * 86400, id="fractional-days"),
        pytest.param(" 2 d ", 2 * 86400, id="spaced"),
        pytest.param("36h", 36 * 3600, id="hours-stay-hours"),
    ],
)
def test_days_are_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["14D", "2w", "1y", "d"])
def test_other_long_units_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(14 * 86400, "14d", id="whole-days"),
        pytest.param(86400 + 3600, "25h", id="days-and-hours"),
        pytest.param(3600, "1h", id="an-hour"),
    ],
)
def test_whole_days_are_written_in_days(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
