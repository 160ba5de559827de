"""Probe types: built-ins, installed entry points, `module:Class`, and clashes."""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

import pytest

from adapter.config import ConfigError, parse_config
from adapter.registry import (
    BUILTINS,
    ENTRY_POINT_GROUP,
    EntryPointSpec,
    Registry,
    RegistryError,
    load_class,
)
from probes import Probe

ROOT = Path(__file__).parents[2]


def test_builtins_are_declared_in_the_registry_alone() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    entry_points = (
        setup["options.entry_points"] if setup.has_section("options.entry_points") else {}
    )
    assert ENTRY_POINT_GROUP not in entry_points


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_loads_as_a_probe(name: str) -> None:
    cls = Registry.discover([]).load(name)
    assert issubclass(cls, Probe)


def test_entry_point_of_another_distribution_is_registered_with_its_source() -> None:
    registry = Registry.discover(
        [EntryPointSpec("ok", "tests.sample_probes:Ok", "acme-probes", "1.2")]
    )
    assert registry.info("ok").source == "acme-probes 1.2"
    assert registry.load("ok").__name__ == "Ok"
    assert "ok" in registry.names()


def test_an_install_that_still_declares_the_builtins_is_not_a_clash() -> None:
    registry = Registry.discover(
        [EntryPointSpec("http", BUILTINS["http"], "health_adapter", "0.1.0")]
    )
    assert registry.info("http").source == "built-in"


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (
            [EntryPointSpec("http", "acme:Http", "acme-probes", "1.0")],
            (
                "probe type 'http' is defined twice: by built-in (probes.http:HttpProbe) and by "
                "acme-probes 1.0 (acme:Http)"
            ),
        ),
        (
            [
                EntryPointSpec("queue", "a:Q", "acme", "1.0"),
                EntryPointSpec("queue", "b:Q", "other", "2.0"),
            ],
            "probe type 'queue' is defined twice: by acme 1.0 (a:Q) and by other 2.0 (b:Q)",
        ),
        (
            [EntryPointSpec("plugin", "a:P", "acme", "1.0")],
            "probe type name 'plugin' from acme 1.0 is reserved for plugin: blocks",
        ),
    ],
    ids=["builtin-name", "two-distributions", "reserved-name"],
)
def test_name_clashes_name_both_sources(specs: list[EntryPointSpec], message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        Registry.discover(specs)
    assert str(caught.value) == message


def test_broken_entry_point_is_reported_when_a_config_uses_it() -> None:
    registry = Registry.discover([EntryPointSpec("broken", "no_such_mod:X", "acme", "3.0")])
    text = "checks: [{name: b, broken: {}}]"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, registry=registry)
    assert caught.value.errors == [
        (
            "checks[0] (b).broken: probe type 'broken' from acme 3.0 could not be imported: "
            "ModuleNotFoundError: No module named 'no_such_mod'"
        )
    ]
    # Configs that do not use it are unaffected.
    parse_config(
        "checks: [{name: a, plugin: {class: 'tests.sample_probes:Ok'}}]", registry=registry
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.sample_probes.Ok", None),
        ("tests.sample_probes:Typed.Options", "is not a subclass of probes.Probe"),
        ("justaname", "write it as 'package.module:ClassName'"),
        (":Ok", "write it as 'package.module:ClassName'"),
        ("tests.sample_probes:", "write it as 'package.module:ClassName'"),
    ],
)
def test_load_class_forms(target: str, message: str | None) -> None:
    if message is None:
        assert load_class(target).__name__ == "Ok"
    else:
        with pytest.raises(RegistryError, match=message):
            load_class(target)


def install_distribution(root: Path, name: str = "acme_probes") -> Path:
    """A real, minimal installed distribution with an entry point, on `root`."""
    (root / "acme_queue.py").write_text(
        "import msgspec\n"
        "from probes import Probe, Result\n"
        "class QueueDepth(Probe):\n"
        "    '''Fails when the queue is deeper than max_depth.'''\n"
        "    class Options(msgspec.Struct, forbid_unknown_fields=True):\n"
        "        max_depth: int\n"
        "    async def check(self):\n"
        "        return Result('pass', observed_value=3, observed_unit='items')\n"
    )
    dist = root / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nqueue_depth = acme_queue:QueueDepth\n"
    )
    return root


def test_installed_distribution_is_found_and_usable_by_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(install_distribution(tmp_path)))
    registry = Registry.discover()
    assert registry.info("queue_depth").source == "acme_probes 1.0"
    config = parse_config("checks: [{name: q, queue_depth: {max_depth: 100}}]", registry=registry)
    assert config.checks[0].probe_class.__name__ == "QueueDepth"
    with pytest.raises(ConfigError) as caught:
        parse_config("checks: [{name: q, queue_depth: {max_depth: lots}}]", registry=registry)
    assert caught.value.errors == [
        "checks[0] (q).queue_depth.max_depth: expected an integer, got 'lots'"
    ]
    sys.modules.pop("acme_queue", None)


def test_every_clash_is_reported_at_once() -> None:
    with pytest.raises(RegistryError) as caught:
        Registry.discover(
            [
                EntryPointSpec("http", "acme:Http", "acme", "1.0"),
                EntryPointSpec("queue", "a:Q", "acme", "1.0"),
                EntryPointSpec("queue", "b:Q", "other", "2.0"),
            ]
        )
    message = str(caught.value)
    assert "probe type 'http' is defined twice" in message
    assert (
        "probe type 'queue' is defined twice: by acme 1.0 (a:Q) and by other 2.0 (b:Q)" in message
    )
