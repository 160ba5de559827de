"""A stop asked for by a signal, whatever moment it arrives.

Kubelet and podman send SIGTERM when they like, including while the adapter
is still importing its modules, reading its config or importing a plugin.
Python's default for SIGTERM is to die at once (exit 143, nothing logged) and
for SIGINT a traceback. `install` replaces both, before anything slow, with a
handler that remembers the signal; `interruptible` lets a slow synchronous
step be cut short by it; `serve` hands both signals to its event loop and acts
at once on one remembered from before. Every path ends in the same logged
`stopping`, `stopped` and exit 0.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_received: list[str] = []
_armed = False


class StopRequested(BaseException):
    """Raised inside an `interruptible` step by SIGTERM or SIGINT.

    A BaseException, so that a plugin's `except Exception` around its import
    or set-up does not swallow the stop.
    """

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def _remember(signum: int, frame: FrameType | None) -> None:
    if not _received:
        _received.append(signal.Signals(signum).name)
    if _armed:
        raise StopRequested(_received[0])


def install() -> None:
    """Remember SIGTERM and SIGINT from now on instead of dying of them."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _remember)


def received() -> str | None:
    """The name of the first stop signal remembered (`SIGTERM`), or None."""
    return _received[0] if _received else None


def remember(signal_name: str) -> None:
    """Note a stop signal that arrived through the event loop's own handler."""
    if not _received:
        _received.append(signal_name)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Run the block so that a stop signal, earlier or during it, raises StopRequested."""
    global _armed
    if _received:
        raise StopRequested(_received[0])
    _armed = True
    try:
        yield
    finally:
        _armed = False
