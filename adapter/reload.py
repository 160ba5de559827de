"""Hot reload: re-read the config file and swap a valid one into the running adapter.

The new file goes through the same validation as at start-up. A valid config
replaces the old one at once: checks whose config is unchanged keep running
and keep their state, changed ones restart, removed ones stop, new ones
start. An invalid one is rejected, each of its errors logged with where it
is, and the old config keeps running. SIGHUP triggers a reload; with
`server.watch_config` the file is also polled for changes.

Plugin code is judged as it is on disk, as a restart would judge it: a
plugin module (or another module of its package) whose file changed since
it was imported is imported afresh for the reload, so one that no longer
imports, or whose options schema changed, is refused by the reload exactly
as `validate` and a restart refuse it. A refused reload leaves the modules
in force as they were.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from adapter.config import Config, ConfigError, load_config
from adapter.logs import event
from adapter.scheduler import Scheduler
from adapter.state import StateStore
from adapter.threads import DaemonThreadPool
from probes.material import FileIdentity, identity_of

log = logging.getLogger("health_adapter.reload")

#: Loads config files for reloads, one at a time (the reload lock orders them anyway).
_LOADER = DaemonThreadPool(1, name="config-reload")
#: How often a watched config file is looked at.
WATCH_INTERVAL = 1.0
#: Settings read once, when the adapter starts listening; a reload cannot change them.
RESTART_SETTINGS = (
    "max_connections",
    "keepalive_timeout",
    "access_log",
    "socket_mode",
    "haproxy_agent",
    "grpc",
)


@dataclasses.dataclass
class ReloadStats:
    """Counts the metrics read: reloads by outcome, and when a config was last put in
    force (wall-clock seconds; the start counts, so an alert on "older than the last
    change of the file" has a value to compare from the first scrape on)."""

    successes: int = 0
    failures: int = 0
    last_success: float | None = dataclasses.field(default_factory=time.time)
    last_failure: float | None = None


@dataclasses.dataclass
class LiveConfig:
    """The config in force; a reload swaps it, and every request reads it anew."""

    config: Config
    reloads: ReloadStats = dataclasses.field(default_factory=ReloadStats)


Loader = Callable[[Path], Config]


class Reloader:
    """Reloads the config file at `path` into the running adapter, one reload at a time.

    `live` is the config in force, swapped on success; `scheduler` and `store`
    follow the new checks (adapter.scheduler.Scheduler.replace, StateStore.retain).
    `load` reads and validates a file (ConfigError for an invalid one).
    """

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
        self._plugins = PluginModules()
        self._plugins.remember(live.config)

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
            new = await asyncio.get_running_loop().run_in_executor(_LOADER, self._load_as_on_disk)
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

    def _load_as_on_disk(self) -> Config:
        set_aside = self._plugins.set_aside_changed()
        try:
            new = self.load(self.path)
        except BaseException:
            self._plugins.put_back(set_aside)
            raise
        self._plugins.remember(new)
        return new

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


class PluginModules:
    """The plugin modules in force and the identity of their files when imported.

    Built-in probes (`adapter`, `probes`) are part of the running adapter and
    change only with a restart; a plugin's whole top-level package is watched,
    so a helper module it imports is judged afresh too.
    """

    _BUILT_IN = ("adapter", "probes")

    def __init__(self) -> None:
        self._seen: dict[str, FileIdentity] = {}
        self._packages: set[str] = set()

    def remember(self, config: Config) -> None:
        """Note the plugin packages of `config` and the files their modules came from."""
        for check in config.checks:
            package = check.probe_class.__module__.partition(".")[0]
            if package not in self._BUILT_IN:
                self._packages.add(package)
        for name, module in self._modules():
            self._seen.setdefault(name, _module_identity(module))

    def set_aside_changed(self) -> dict[str, ModuleType]:
        """Take the modules whose file changed out of sys.modules, so the next import
        reads them from disk; returns them for `put_back`."""
        changed = {
            name: module
            for name, module in self._modules()
            if _module_identity(module) != self._seen.get(name)
        }
        for name in changed:
            del sys.modules[name]
            self._seen.pop(name, None)
        if changed:
            importlib.invalidate_caches()
        return changed

    def put_back(self, modules: dict[str, ModuleType]) -> None:
        """Make `modules` the ones in force again (a refused reload)."""
        for name, module in modules.items():
            sys.modules[name] = module
            # Still different from the disk: the next reload judges the file again.
            self._seen[name] = _REFUSED

    def _modules(self) -> list[tuple[str, ModuleType]]:
        return [
            (name, module)
            for name, module in list(sys.modules.items())
            if name.partition(".")[0] in self._packages
            and getattr(module, "__file__", None) is not None
        ]


# No file has this identity: a module put back is judged again at the next reload.
_REFUSED: FileIdentity = (-1, -1, -1, -1)


def _module_identity(module: ModuleType) -> FileIdentity:
    return identity_of(str(module.__file__))
