"""The adapter's life, one class: start, serve, drain, reload, stop.

Like uvicorn's `Server`, `Lifecycle` owns the order of things and nothing
else: the orphan reaper first, then the HTTP port bound (an address in use
fails before any check runs), then the extra listeners, then the scheduler;
at a stop, /readyz turns 503 at once, the shutdown delay passes, and
everything stops in reverse. `serve()` is what `health-adapter serve` runs;
tests drive the same object in-process: `start()`, `drain()`,
`reload()`, `request_stop()`, `stop()`.

Extra listeners (`Listener`) are started right after the HTTP port is bound
and before the first check runs, and stopped at shutdown after the delay,
before the HTTP port closes; the HAProxy agent and gRPC health ports
(adapter.side_listeners.SidePorts) are always among them, binding what the
config asks for. Whatever makes the adapter unready without stopping it
says so with `drain(reason)`, or is a source of the same `Drain`
(adapter.drain; the config's drain file is one): /readyz, the agent and
gRPC's `ready` all read it. Under systemd (adapter.notify) the lifecycle
says READY=1 once listening and every check has run once, WATCHDOG=1 while
the scheduler is alive, and STOPPING=1 when a stop is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from aiohttp import web

from adapter import stopping
from adapter.config import ENDPOINT_GROUPS, Config
from adapter.drain import Drain
from adapter.endpoints import empty_group_note
from adapter.health import SHUTTING_DOWN, in_group
from adapter.listener import start_listening
from adapter.logs import event
from adapter.notify import Notifier, notify_lifecycle
from adapter.reaper import OrphanReaper
from adapter.reload import Reloader
from adapter.server import SCHEDULER, STORE, make_app, reloader_for
from adapter.side_listeners import SidePorts
from probes.types import format_duration

log = logging.getLogger("health_adapter")

#: What a signal handler was before `serve` set its own (as `signal.getsignal` gives it).
_Previous = Callable[[int, FrameType | None], object] | int | None


class Listener(Protocol):
    """A way in beside HTTP (an HAProxy agent port, a gRPC health service), or a
    source of drain (a drain file), that lives as long as the adapter serves.

    `start` is awaited once the HTTP port is bound and before the first check
    runs, so a port of its own that is in use also fails before any check; it
    reads the running application as `lifecycle.app` (its store, config and
    `Drain`) and may call `lifecycle.drain()`, `undrain()` and
    `request_stop()`. An exception from `start` stops the start-up as a
    ListenError does. `stop` is awaited at shutdown, after the shutdown delay
    (so it answers "draining" all through it) and before the HTTP port
    closes; it must return within the shutdown timeout (a second more and it
    is abandoned).
    """

    name: str

    async def start(self, lifecycle: Lifecycle) -> None:
        """Begin serving; the HTTP port is bound and no check has run yet."""

    async def stop(self) -> None:
        """Stop serving and release what was taken, within the shutdown timeout."""


class Lifecycle:
    """The adapter serving `config` on `listen` (an address as `--listen` takes it).

    `config_path` is re-read by `reload()` (SIGHUP, and changes of the file
    with `server.watch_config`). `shutdown_delay` (seconds) is how long a
    started adapter keeps serving, unready, after a stop is asked for;
    `shutdown_timeout` (seconds) is what requests in flight get at the end.
    `listeners` are started and stopped with the HTTP port, in order, after
    the agent and gRPC ports (`SidePorts`). `notifier` speaks systemd's notify
    protocol (adapter.notify); the default says nothing.
    """

    def __init__(
        self,
        config: Config,
        listen: str,
        *,
        config_path: str | Path | None = None,
        shutdown_timeout: float = 3.0,
        shutdown_delay: float = 0.0,
        listeners: Sequence[Listener] = (),
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.listen = listen
        self.config_path = config_path
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_delay = shutdown_delay
        self.listeners: tuple[Listener, ...] = (SidePorts(), *listeners)
        self.notifier = notifier if notifier is not None else Notifier(None)
        #: The application, once made; None before `start` and when a stop came first.
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None
        self.reloader: Reloader | None = None
        #: True once every check is scheduled and `started` is logged.
        self.started = False
        #: What asked for the stop first (a signal's name, `SIGTERM`), once one has.
        self.stop_cause: str | None = None
        self.draining_state = Drain()
        self._stop_requested = asyncio.Event()
        self._hurry = asyncio.Event()
        self._background: set[asyncio.Task[object]] = set()
        self._reaper: OrphanReaper | None = None
        self._running_listeners: list[Listener] = []
        self._stopped = False

    # -- draining ---------------------------------------------------------------

    def drain(self, reason: str) -> None:
        """Turn /readyz (and every listener reading the `Drain`) unready for `reason`,
        without stopping anything; idempotent per reason."""
        self.draining_state.begin(reason)

    def undrain(self, reason: str) -> None:
        """Take `reason` back (a drain file removed); ready again once no reason holds."""
        self.draining_state.end(reason)

    @property
    def draining(self) -> bool:
        """Whether any drain reason holds (/readyz answers 503)."""
        return self.draining_state.draining

    # -- stopping ---------------------------------------------------------------

    def request_stop(self, cause: str) -> None:
        """What a stop signal does: drain at once and end `serve()`'s wait.

        A second request ends the shutdown delay (logged `already_stopping`).
        """
        if self.stop_cause is not None:
            event(log, "already_stopping", signal=cause)
            self._hurry.set()
            return
        self.stop_cause = cause
        self.drain(SHUTTING_DOWN)  # /readyz answers 503 from this moment
        self.notifier.send("STOPPING=1")
        self._stop_requested.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop has been asked for."""
        return self.stop_cause is not None

    async def wait_for_stop(self) -> None:
        """Until a stop is asked for (`request_stop`, a signal)."""
        await self._stop_requested.wait()

    # -- starting ---------------------------------------------------------------

    async def start(self, ready: Callable[[web.AppRunner], None] | None = None) -> None:
        """Reaper, HTTP port, listeners, then the checks; each step skipped once a stop
        is asked for. Raises ListenError (adapter.listener) when the port cannot be
        bound, with no check run. `ready` is called with the runner once started."""
        if self.stopping:
            return
        # First, so that the leftovers of the very first commands come back here too.
        self._reaper = OrphanReaper() if OrphanReaper.needed() else None
        if self._reaper is not None:
            self._reaper.start()
        app = make_app(self.config, start_checks=False, drain=self.draining_state)
        self.app = app
        self.runner = await start_listening(
            app, self.config, self.listen, shutdown_timeout=self.shutdown_timeout
        )
        try:
            for listener in self.listeners:
                if self.stopping:
                    return
                await listener.start(self)
                self._running_listeners.append(listener)
        except BaseException:
            await self._close_listeners()  # no port of ours stays bound
            await self.runner.cleanup()
            raise
        if self.stopping:
            return
        await app[SCHEDULER].start()
        if self.config_path is not None:
            self.reloader = reloader_for(app, self.config_path)
            if self.config.server.watch_config:
                self._spawn(self.reloader.watch(), "config watch")
        # Everything made so far (modules, config, probes) lives as long as the
        # process: keep it out of the collector's scans, which otherwise grow with it.
        gc.freeze()
        event(
            log,
            "started",
            listen=self.listen,
            checks=len(self.config.checks),
            config=self.config.source,
            pid=os.getpid(),
            loop=loop_name(asyncio.get_running_loop()),
        )
        log_empty_groups(self.config)
        self.started = True
        self._spawn(
            notify_lifecycle(
                self.notifier,
                app[STORE],
                app[SCHEDULER].alive,
                status=f"listening on {self.listen}",
            ),
            "systemd notify",
        )
        if ready is not None:
            ready(self.runner)

    # -- reloading --------------------------------------------------------------

    async def reload(self, trigger: str = "signal") -> bool:
        """Re-read `config_path` into the running adapter (adapter.reload); False when
        there is nothing to reload, a stop is under way, or the new file is refused."""
        if self.reloader is None or self.stopping:
            return False
        return await self.reloader.reload(trigger)

    def _reload_in_background(self) -> None:
        if self.reloader is None or self.stopping:
            return
        self._spawn(self.reloader.reload("signal"), "config reload")

    # -- the whole life ---------------------------------------------------------

    async def serve(
        self,
        ready: Callable[[web.AppRunner], None] | None = None,
        *,
        handle_signals: bool = True,
    ) -> None:
        """Start, serve until a stop is asked for, then stop; log `stopped`.

        With `handle_signals`, SIGTERM and SIGINT ask for the stop (a second one
        ends the shutdown delay), SIGHUP reloads, and a stop signal remembered
        by adapter.stopping before this began acts at once; the handlers that
        were there before are put back at the end.
        """
        loop = asyncio.get_running_loop()
        previous = self._install_signal_handlers(loop) if handle_signals else None
        try:
            await self.start(ready)
            await self.wait_for_stop()
            await self.stop()
        finally:
            await self._stop_reaper()  # also when the port cannot be bound
            if previous is not None:
                _restore_signal_handlers(loop, previous)
        event(log, "stopped")

    async def stop(self, cause: str = "") -> None:
        """Drain, keep serving for the shutdown delay, then stop everything in reverse.

        The delay is skipped when the adapter never started, since no one has
        seen it ready. Running probes are cancelled (exec probes kill their
        children) while the last requests are answered from the store, then
        the listeners stop and the HTTP port closes. Runs once.
        """
        if self._stopped:
            return
        self._stopped = True
        if not self.stopping:
            self.request_stop(cause)
        delay = self.shutdown_delay if self.started else 0.0
        event(
            log,
            "stopping",
            signal=self.stop_cause or "",
            shutdown_delay=format_duration(delay),
            during=None if self.started else "start-up",
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), delay)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.app is not None and self.runner is not None:
            if SCHEDULER in self.app:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.app[SCHEDULER].stop(), self.shutdown_timeout + 2)
            await self._close_listeners()
            await self.runner.cleanup()
        await self._stop_reaper()

    async def _close_listeners(self) -> None:
        while self._running_listeners:
            listener = self._running_listeners.pop()
            with contextlib.suppress(Exception):
                # A second more than its own grace: a listener that overruns is abandoned.
                await asyncio.wait_for(listener.stop(), self.shutdown_timeout + 1)

    async def _stop_reaper(self) -> None:
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            await reaper.stop()

    def _spawn(self, work: Coroutine[Any, Any, object], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _install_signal_handlers(
        self, loop: asyncio.AbstractEventLoop
    ) -> dict[signal.Signals, _Previous]:
        # First of all, so that no moment of start-up is left to the default (exit 143).
        previous = {signum: signal.getsignal(signum) for signum in stopping.STOP_SIGNALS}
        for signum in stopping.STOP_SIGNALS:
            loop.add_signal_handler(signum, self.request_stop, signum.name)
        loop.add_signal_handler(signal.SIGHUP, self._reload_in_background)
        early = stopping.received()
        if early is not None:
            self.request_stop(early)
        return previous


def _restore_signal_handlers(
    loop: asyncio.AbstractEventLoop, previous: dict[signal.Signals, _Previous]
) -> None:
    for signum in (*stopping.STOP_SIGNALS, signal.SIGHUP):
        loop.remove_signal_handler(signum)
    # Back to what was there: in the command, adapter.stopping's, so that a
    # signal from here to the exit is remembered, not the default exit 143.
    for signum, handler in previous.items():
        if handler is not None:  # None: not set from Python, nothing to put back
            signal.signal(signum, handler)


async def serve(
    config: Config,
    listen: str,
    *,
    config_path: str | Path | None = None,
    shutdown_timeout: float = 3.0,
    shutdown_delay: float = 0.0,
    ready: Callable[[web.AppRunner], None] | None = None,
    listeners: Sequence[Listener] = (),
) -> None:
    """Serve until SIGTERM or SIGINT, then drain and stop well inside Kubernetes' 30 s.

    SIGHUP re-reads `config_path` (and so does a change of the file, with
    `server.watch_config`). On SIGTERM /readyz turns 503 at once; for
    `shutdown_delay` seconds the adapter keeps serving and checking, so that load
    balancers and monitors polling it see it go unready before its port closes
    (a second signal ends the delay). Then the running probes are cancelled, the
    listening socket closes, and requests in flight get `shutdown_timeout`
    seconds to finish.

    The port is bound before the first check runs: an address in use raises
    ListenError with no check run. A stop signal at any moment, including one
    remembered by adapter.stopping before this began, ends in the same logged
    `stopping` and `stopped`; one that comes before the adapter has started
    skips the shutdown delay, since no one has seen it ready. The HAProxy
    agent and gRPC health ports the config asks for are bound right after
    the HTTP port, before the first check, and closed after the delay; under
    systemd, `NOTIFY_SOCKET` is told READY=1, WATCHDOG=1 and STOPPING=1
    (adapter.notify).
    """
    lifecycle = Lifecycle(
        config,
        listen,
        config_path=config_path,
        shutdown_timeout=shutdown_timeout,
        shutdown_delay=shutdown_delay,
        listeners=listeners,
        notifier=Notifier.from_environ(),
    )
    await lifecycle.serve(ready)


def log_empty_groups(config: Config) -> None:
    """One line at start for /livez or /readyz with no check in its group: it passes
    with nothing to check, which is right for a /livez nobody asked for, and a
    mistake worth seeing for a /readyz whose checks are all elsewhere."""
    for group in ENDPOINT_GROUPS:
        if in_group(config.checks, group):
            continue
        event(
            log,
            "empty_group",
            logging.WARNING if group == "ready" else logging.INFO,
            endpoint=f"/{group}z",
            group=group,
            note=empty_group_note(group),
        )


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """`uvloop` or `asyncio`: which event loop runs, for the `started` line."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
