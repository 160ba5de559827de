"""Whether readiness drains, and why: the shutdown delay, or an operator's drain file.

While draining, `/readyz` answers 503 naming the reason, HAProxy's agent says
`drain` and gRPC's `ready` service is NOT_SERVING; liveness is untouched, since
a drained server is still alive. The drain file is looked at on every answer
(one `stat`), so creating or removing it takes effect at the next poll, with
no reload and no signal.
"""

from __future__ import annotations

import os

from adapter.health import SHUTTING_DOWN


def drain_reason(shutting_down: bool, drain_file: str | None) -> str | None:
    """Why readiness drains now, or None when it does not.

    The shutdown delay wins over the drain file: it is the one that ends with
    the port closing.
    """
    if shutting_down:
        return SHUTTING_DOWN
    if drain_file is not None and os.path.lexists(drain_file):
        return f"draining: drain file {drain_file} exists"
    return None
