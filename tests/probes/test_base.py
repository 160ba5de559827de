"""The probe API's fixed vocabularies, as the docs list them."""

from __future__ import annotations

import re
from pathlib import Path

from probes import Reason

MONITORING = Path(__file__).parents[2] / "docs" / "monitoring.md"


def test_every_failure_reason_is_documented_with_the_metrics() -> None:
    """The reasons label health_check_failures_total: each one is in the list
    docs/monitoring.md gives, and the list names no reason that does not exist."""
    text = MONITORING.read_text()
    start = text.index("Every failure carries a `reason` from a fixed list")
    paragraph = text[start : text.index("The same word labels", start)]
    listed = set(re.findall(r"`([a-z_]+)`", paragraph)) - {"reason", "def"}
    assert listed == {reason.value for reason in Reason}
