"""Probe types by name: the built-ins, installed entry points, and `module:Class`.

Entry points of the group `health_adapter.probes` are listed once, when the
registry is made; a name claimed twice (by two distributions, or by one and a
built-in) is an error that names both sources. Classes are imported only when
a config uses them, so an unused plugin costs nothing and a broken one only
breaks the configs that use it.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
from collections.abc import Iterable, Iterator

from probes import Probe

ENTRY_POINT_GROUP = "health_adapter.probes"
PLUGIN_KEY = "plugin"
OWN_DISTRIBUTION = "health-adapter"

#: Built-in probe types, declared here alone: adding one is its module, its
#: tests and one line here. Our own distribution declares no entry points;
#: those are for other distributions' probe types.
BUILTINS: dict[str, str] = {
    "http": "probes.http:HttpProbe",
    "file": "probes.file:FileProbe",
    "process": "probes.process:ProcessProbe",
    "tcp": "probes.tcp:TcpProbe",
    "exec": "probes.exec:ExecProbe",
    "grpc": "probes.grpc:GrpcProbe",
}


class RegistryError(Exception):
    """A probe type that cannot be used: unknown, clashing or not importable."""


@dataclasses.dataclass(frozen=True)
class ProbeType:
    """A registered probe type: the block key a config uses (`name`), the class
    as `package.module:Class` (`target`, not imported yet) and who declared it
    (`source`: "built-in" or "<distribution> <version>")."""

    name: str
    target: str
    source: str

    def load(self) -> type[Probe]:
        """Import the class; RegistryError naming the type and its source if that fails."""
        return load_class(self.target, what=f"probe type {self.name!r} from {self.source}")


@dataclasses.dataclass(frozen=True)
class EntryPointSpec:
    """The parts of an entry point the registry needs, so tests can pass their own."""

    name: str
    value: str
    distribution: str
    version: str = ""

    @property
    def source(self) -> str:
        """Who declared it, as errors and `health-adapter probes` name it: "acme-probes 1.2"."""
        return f"{self.distribution} {self.version}".strip()


class Registry:
    """Probe type name -> class, for one config load.

    Names are unique; `plugin` is reserved for `plugin:` blocks (and is `in`
    every registry, though no type is registered under it). Classes are
    imported on first `load` and kept.
    """

    def __init__(self, types: Iterable[ProbeType] = ()) -> None:
        self._types: dict[str, ProbeType] = {}
        self._loaded: dict[str, type[Probe]] = {}
        for probe_type in types:
            self.add(probe_type)

    @classmethod
    def discover(cls, entry_points: Iterable[EntryPointSpec] | None = None) -> Registry:
        """The built-ins plus every installed entry point of the probe group."""
        registry = cls(ProbeType(name, target, "built-in") for name, target in BUILTINS.items())
        clashes = []
        for spec in installed_entry_points() if entry_points is None else entry_points:
            if _normalize(spec.distribution) == OWN_DISTRIBUTION and spec.name in BUILTINS:
                # Metadata of an install made when the built-ins were declared
                # as entry points too (an editable install keeps it until the
                # next pip install): the same built-in, not a clash.
                continue
            try:
                registry.add(ProbeType(spec.name, spec.value, spec.source))
            except RegistryError as exc:
                clashes.append(str(exc))  # every clash at once, not one per fix
        if clashes:
            raise RegistryError("; ".join(clashes))
        return registry

    def add(self, probe_type: ProbeType) -> None:
        """Register `probe_type`; RegistryError if its name is reserved or taken,
        naming both sources (pluggy's rule for duplicate plugins)."""
        if probe_type.name == PLUGIN_KEY:
            raise RegistryError(
                f"probe type name {PLUGIN_KEY!r} from {probe_type.source} is reserved "
                "for plugin: blocks"
            )
        existing = self._types.get(probe_type.name)
        if existing is not None:
            raise RegistryError(
                f"probe type {probe_type.name!r} is defined twice: by {existing.source} "
                f"({existing.target}) and by {probe_type.source} ({probe_type.target})"
            )
        self._types[probe_type.name] = probe_type

    def __contains__(self, name: object) -> bool:
        return name == PLUGIN_KEY or name in self._types

    def __iter__(self) -> Iterator[ProbeType]:
        return iter(sorted(self._types.values(), key=lambda t: t.name))

    def names(self) -> list[str]:
        """The registered names, sorted (without `plugin`)."""
        return sorted(self._types)

    def info(self, name: str) -> ProbeType:
        """The registered type `name`; RegistryError listing the others if there is none."""
        try:
            return self._types[name]
        except KeyError:
            raise RegistryError(
                f"unknown probe type {name!r} (available: {', '.join(self.names())})"
            ) from None

    def load(self, name: str) -> type[Probe]:
        """The class of a registered probe type, imported on first use."""
        cls = self._loaded.get(name)
        if cls is None:
            cls = self._loaded[name] = self.info(name).load()
        return cls


def installed_entry_points() -> list[EntryPointSpec]:
    """Every entry point of the group `health_adapter.probes` installed beside the adapter."""
    specs = []
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        if dist is None:
            specs.append(
                EntryPointSpec(entry_point.name, entry_point.value, "unknown distribution")
            )
        else:
            specs.append(
                EntryPointSpec(entry_point.name, entry_point.value, dist.name, dist.version)
            )
    return specs


def _normalize(distribution: str) -> str:
    return distribution.lower().replace("_", "-").replace(".", "-")


def load_class(target: str, what: str | None = None) -> type[Probe]:
    """Import `package.module:Class` (or `package.module.Class`) and check it is a Probe."""
    what = what or f"plugin class {target!r}"
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise RegistryError(f"{what}: write it as 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise RegistryError(f"{what} could not be imported: {type(exc).__name__}: {exc}") from None
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise RegistryError(f"{what}: module {module_name!r} has no {attr!r}") from None
    if not (isinstance(obj, type) and issubclass(obj, Probe)):
        raise RegistryError(f"{what} is not a subclass of probes.Probe")
    return obj
