"""The probe API's fixed vocabularies, as the docs list them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probes import Reason, Result

MONITORING = Path(__file__).parents[2] / "docs" / "monitoring.md"


def test_every_failure_reason_is_documented_with_the_metrics() -> None:
    """The reasons label health_check_failures_total: each one is in the list
    docs/monitoring.md gives, and the list names no reason that does not exist."""
    text = MONITORING.read_text()
    start = text.index("Every failure carries a `reason` from a fixed list")
    paragraph = text[start : text.index("The same word labels", start)]
    listed = set(re.findall(r"`([a-z_]+)`", paragraph)) - {"reason", "def"}
    assert listed == {reason.value for reason in Reason}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "2026-01-01"])
def test_a_certificate_expiry_must_be_a_finite_unix_time(value: object) -> None:
    with pytest.raises(ValueError, match="cert_not_after must be a finite number"):
        Result("pass", cert_not_after=value)  # type: ignore[arg-type]


def test_a_certificate_expiry_is_kept() -> None:
    assert Result("pass", cert_not_after=1_767_225_600).cert_not_after == 1_767_225_600
