"""systemd's notify protocol (sd_notify(3)), spoken without libsystemd.

Under a `Type=notify` unit, systemd sets `NOTIFY_SOCKET` (a path, or `@name`
for the abstract namespace) and reads newline-separated `KEY=VALUE` datagrams
sent to it:

    READY=1      once the ports listen and every check has finished its first
                 run, so that units ordered after this one start against a
                 verdict, not "no result yet"
    STOPPING=1   when a stop signal arrives (the shutdown delay starts)
    WATCHDOG=1   every WATCHDOG_USEC / 2, only while the event loop turns (the
                 sender is a task on it) and the scheduler's tasks are alive:
                 a wedged loop or a dead scheduler stops the pings, and
                 systemd restarts the unit (`WatchdogSec=`)

Without `NOTIFY_SOCKET` everything here does nothing. A send that fails is
logged once and never stops the adapter: health answers matter more than
systemd's bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

from adapter.logs import event
from adapter.state import CheckState, StateStore

log = logging.getLogger("health_adapter")


class Notifier:
    """Datagrams to systemd's notify socket; `address` None: a notifier that says nothing."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._failed = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, pid: int | None = None
    ) -> Notifier:
        """From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (the watchdog only
        when WATCHDOG_PID is unset or names this process, as sd_watchdog_enabled says)."""
        environ = os.environ if environ is None else environ
        pid = os.getpid() if pid is None else pid
        address = environ.get("NOTIFY_SOCKET") or None
        watchdog: int | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and watchdog_pid in ("", str(pid)):
            watchdog = int(usec)
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half the deadline, as sd_watchdog_enabled(3) advises."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def send(self, *fields: str) -> bool:
        """Send `fields` as one datagram; False (logged once) when it cannot be sent."""
        if self.address is None:
            return False
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]  # the abstract namespace
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), target)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                event(
                    log,
                    "notify_failed",
                    logging.WARNING,
                    socket=self.address,
                    error=exc.strerror or str(exc),
                )
            return False
        return True


async def first_round(store: StateStore) -> None:
    """Return once every check in `store` has finished a run."""
    done = asyncio.Event()

    def check(
        _name: str = "", _old: CheckState | None = None, _new: CheckState | None = None
    ) -> None:
        if all(state.last is not None for state in store.states().values()):
            done.set()

    store.subscribe(check)
    try:
        check()
        await done.wait()
    finally:
        store.unsubscribe(check)


async def notify_lifecycle(
    notifier: Notifier, store: StateStore, alive: Callable[[], bool], status: str = ""
) -> None:
    """READY=1 after the first round, then the watchdog's pings while `alive()`.

    Run as a task once the ports listen; cancel it at shutdown.
    """
    if not notifier.enabled:
        return
    await first_round(store)
    notifier.send("READY=1", *([f"STATUS={status}"] if status else []))
    interval = notifier.watchdog_interval
    if interval is None:
        return
    while True:
        if alive():
            notifier.send("WATCHDOG=1")
        await asyncio.sleep(interval)
