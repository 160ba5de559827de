"""The test kit for probe authors: run a probe once, as the adapter would, and get its Result.

    from adapter.testing import run_probe, run_probe_sync

    async def test_a_deep_queue_fails():            # with pytest-asyncio or pytest-aiohttp
        result = await run_probe(QueueDepth, {"max_depth": 5})
        assert result.status == "fail"

    def test_a_deep_queue_fails_too():              # no async test plugin needed
        assert run_probe_sync("queue_depth", {"max_depth": 5}).status == "fail"

The options are validated exactly as the config loader validates a probe
block: a mistake raises `ConfigError` whose `errors` are the lines
`health-adapter validate` would print, like
`checks[0] (test).queue_depth.max_depth: expected an integer, got 'lots'`.
The run goes through the adapter's own runner, so an exception, an overrun of
`timeout` or a stuck thread gives the Result it gives in the adapter.

It lives in the adapter, not in `probes`, because it runs the adapter's
config loader and runner, and `probes` (the API a plugin builds on) depends
on nothing of the adapter's. The names in `__all__` are the stable entry
for plugin tests; everything else of `adapter` may change between releases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from adapter.config import ConfigError, parse_probe_options
from adapter.registry import PLUGIN_KEY, Registry, load_class
from adapter.runner import ProbeRunner
from adapter.threads import DaemonThreadPool
from probes import Probe, Resources, Result
from probes.types import parse_duration

__all__ = ["ConfigError", "make_probe", "run_probe", "run_probe_sync"]


def make_probe(
    probe: type[Probe] | str,
    options: Mapping[str, Any] | None = None,
    *,
    name: str = "test",
    resources: Resources | None = None,
    registry: Registry | None = None,
) -> Probe:
    """The probe a config block `{<type>: options}` makes, its options validated.

    `probe` is a Probe subclass, a registered type name ("tcp", or one an
    installed distribution adds) or "package.module:Class".
    """
    probe_class, type_name = _resolve(probe, registry)
    options = dict(options or {})
    probe_config = parse_probe_options(probe_class, options, f"checks[0] ({name}).{type_name}")
    return probe_class(name, options, resources or Resources(), config=probe_config)


async def run_probe(
    probe: type[Probe] | str,
    options: Mapping[str, Any] | None = None,
    *,
    name: str = "test",
    timeout: float | str = 5.0,
    resources: Resources | None = None,
    registry: Registry | None = None,
) -> Result:
    """Run `probe` once with `options` under `timeout` (seconds or "250ms") and
    return its Result, exactly as the adapter would record it.

    Resources passed in are left open for the caller; otherwise the run's own
    are closed afterwards, as is the probe.
    """
    own_resources = resources is None
    resources = resources or Resources()
    instance = make_probe(probe, options, name=name, resources=resources, registry=registry)
    pool = DaemonThreadPool(1, name=f"test-probe-{name}")
    try:
        run = await ProbeRunner(instance, float(parse_duration(timeout)), pool).run()
    finally:
        await instance.close()
        if own_resources:
            await resources.aclose()
        pool.shutdown(wait=False, cancel_futures=True)
    return run.result


def run_probe_sync(
    probe: type[Probe] | str,
    options: Mapping[str, Any] | None = None,
    *,
    name: str = "test",
    timeout: float | str = 5.0,
    registry: Registry | None = None,
) -> Result:
    """`run_probe` for plain test functions: runs it in a fresh event loop."""
    return asyncio.run(run_probe(probe, options, name=name, timeout=timeout, registry=registry))


def _resolve(probe: type[Probe] | str, registry: Registry | None) -> tuple[type[Probe], str]:
    """The probe class and the block key a config would use for it."""
    if isinstance(probe, str):
        if ":" in probe:
            return load_class(probe), PLUGIN_KEY
        registry = registry or Registry.discover()
        return registry.load(probe), probe
    if not (isinstance(probe, type) and issubclass(probe, Probe)):
        raise TypeError(f"expected a Probe subclass or a probe type name, not {probe!r}")
    target = f"{probe.__module__}:{probe.__qualname__}"
    registry = registry or Registry.discover()
    for probe_type in registry:
        if probe_type.target == target:
            return probe, probe_type.name
    return probe, PLUGIN_KEY
