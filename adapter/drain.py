"""Whether readiness drains, and why: the one place every way in reads.

While draining, `/readyz` answers 503 naming the reason, HAProxy's agent says
`drain` and gRPC's `ready` service is NOT_SERVING; liveness is untouched,
since a drained server is still alive. Reasons come from two kinds of place:
held ones, begun and ended (the shutdown delay, `Lifecycle.drain`), and
sources asked at every answer, like the operator's drain file (one `stat`, so
creating or removing it takes effect at the next poll, with no reload and no
signal).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from adapter.health import SHUTTING_DOWN

#: A drain source: asked at every answer, it gives why readiness drains now, or None.
DrainSource = Callable[[], str | None]


@dataclasses.dataclass
class Drain:
    """Whether the adapter is draining, and why.

    `reasons` are held phrases (`"shutting down"`), begun and ended by their
    owner; `sources` are asked each time. The shutdown wins over every other
    reason, since it is the one that ends with the port closing; then the held
    reasons in the order they began, then the sources in the order they were
    added.
    """

    reasons: list[str] = dataclasses.field(default_factory=list)
    sources: list[DrainSource] = dataclasses.field(default_factory=list)

    @property
    def reason(self) -> str | None:
        """Why readiness drains now, or None when it does not."""
        if SHUTTING_DOWN in self.reasons:
            return SHUTTING_DOWN
        if self.reasons:
            return self.reasons[0]
        for source in self.sources:
            reason = source()
            if reason is not None:
                return reason
        return None

    @property
    def draining(self) -> bool:
        """Whether any reason holds now."""
        return self.reason is not None

    def begin(self, reason: str) -> None:
        """Drain for `reason` (again: no change)."""
        if reason not in self.reasons:
            self.reasons.append(reason)

    def end(self, reason: str) -> None:
        """Take `reason` back; ready again once no reason is left."""
        if reason in self.reasons:
            self.reasons.remove(reason)

    def add_source(self, source: DrainSource) -> None:
        """Ask `source` too, at every answer from now on."""
        self.sources.append(source)


def drain_file_reason(drain_file: str | None) -> str | None:
    """The reason `server.drain_file` gives: it drains while the path exists (a
    dangling symlink too: its presence is the operator's act), else None."""
    if drain_file is not None and os.path.lexists(drain_file):
        return f"draining: drain file {drain_file} exists"
    return None
