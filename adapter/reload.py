"""Hot reload: re-read the config file and swap a valid one into the running adapter.

The new file goes through the same validation as at start-up. A valid config
replaces the old one at once: checks whose config is unchanged keep running
and keep their state, changed ones restart, removed ones stop, new ones
start. An invalid one is rejected, each of its errors logged with where it
is, and the old config keeps running. SIGHUP triggers a reload; with
`server.watch_config` the file is also polled for changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from adapter.config import Config, ConfigError, load_config
from adapter.logs import event
from adapter.scheduler import Scheduler
from adapter.state import StateStore
from adapter.threads import DaemonThreadPool

log = logging.getLogger("health_adapter.reload")

#: Loads config files for reloads, one at a time (the reload lock orders them anyway).
_LOADER = DaemonThreadPool(1, name="config-reload")
#: How often a watched config file is looked at.
WATCH_INTERVAL = 1.0
#: Settings read once, when the adapter starts listening; a reload cannot change them.
RESTART_SETTINGS = ("max_connections", "keepalive_timeout", "access_log", "socket_mode")


@dataclasses.dataclass
class ReloadStats:
    """Counts the metrics read: reloads by outcome, and when the last one succeeded."""

    successes: int = 0
    failures: int = 0
    last_success: float | None = None  # wall-clock seconds
    last_failure: float | None = None


@dataclasses.dataclass
class LiveConfig:
    """The config in force; a reload swaps it, and every request reads it anew."""

    config: Config
    reloads: ReloadStats = dataclasses.field(default_factory=ReloadStats)


Loader = Callable[[Path], Config]


class Reloader:
    def __init__(
        self,
        path: str | os.PathLike[str],
        live: LiveConfig,
        scheduler: Scheduler,
        store: StateStore,
        *,
        load: Loader = load_config,
    ) -> None:
        self.path = Path(path)
        self.live = live
        self.scheduler = scheduler
        self.store = store
        self.load = load
        self._lock = asyncio.Lock()

    async def reload(self, trigger: str = "signal") -> bool:
        """Re-read the file; True when its config is now in force."""
        async with self._lock:
            return await self._reload(trigger)

    async def _reload(self, trigger: str) -> bool:
        stats = self.live.reloads
        try:
            # Reading the file and importing plugin modules may block: not on the
            # loop, and in a daemon thread, so that an import stuck forever does not
            # hold the exit after SIGTERM.
            new = await asyncio.get_running_loop().run_in_executor(_LOADER, self.load, self.path)
        except ConfigError as exc:
            stats.failures += 1
            stats.last_failure = time.time()
            event(
                log,
                "config_reload_failed",
                logging.WARNING,
                trigger=trigger,
                config=str(self.path),
                errors=len(exc.errors),
                note="the previous config keeps running",
            )
            for error in exc.errors:
                event(log, "config_error", logging.WARNING, config=str(self.path), error=error)
            return False
        except Exception as exc:
            stats.failures += 1
            stats.last_failure = time.time()
            event(
                log,
                "config_reload_failed",
                logging.ERROR,
                trigger=trigger,
                config=str(self.path),
                error=f"{type(exc).__name__}: {exc}",
                note="the previous config keeps running",
            )
            return False
        old = self.live.config
        changes = await self.scheduler.replace(new.checks)
        # One synchronous step: no request sees the new config with the old states.
        self.store.retain(check.name for check in new.checks)
        self.live.config = new
        stats.successes += 1
        stats.last_success = time.time()
        event(
            log,
            "config_reloaded",
            trigger=trigger,
            config=str(self.path),
            added=len(changes.added),
            removed=len(changes.removed),
            changed=len(changes.changed),
            unchanged=len(changes.unchanged),
        )
        pending = [
            key for key in RESTART_SETTINGS if getattr(old.server, key) != getattr(new.server, key)
        ]
        if old.listen != new.listen:
            pending.insert(0, "listen")
        if pending:
            event(
                log,
                "restart_needed",
                logging.WARNING,
                settings=",".join(pending),
                note="these settings take effect when the adapter restarts",
            )
        return True

    async def watch(self, interval: float = WATCH_INTERVAL) -> None:
        """Reload whenever the file's identity or content changes (runs until cancelled).

        The file's inode, size and modification time are compared, which also
        sees a Kubernetes ConfigMap update (a symlink swapped to a new file).
        """
        seen = _identity(self.path)
        while True:
            await asyncio.sleep(interval)
            current = _identity(self.path)
            if current != seen and current is not None:
                seen = current
                await self.reload("watch")


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None  # mid-update, or gone: keep the config in force
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns
