"""The order of checks in every answer that people read or that a budget may cut.

Failing checks first, then warning, then passing, each in config order: what
needs attention is read first, and what a size budget cuts (the Nagios 8 KiB,
the status page's compact part) is the passing detail, never a failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from adapter.health import CheckVerdict
from probes import Status

__all__ = ["RANK", "worst_first"]

#: Sort keys: the lower, the sooner shown.
RANK = {Status.FAIL: 0, Status.WARN: 1, Status.PASS: 2}

Check = TypeVar("Check", bound=CheckVerdict)


def worst_first(checks: Iterable[Check]) -> list[Check]:
    """`checks` by their own status, fail, warn, pass; config order within each (a stable sort)."""
    return sorted(checks, key=lambda check: RANK[check.status])
