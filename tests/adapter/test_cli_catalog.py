"""`health-adapter probes [NAME]` and `health-adapter schema`, run as a user runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from adapter.registry import BUILTINS, PLUGIN_KEY
from tests.adapter.test_cli import cli
from tests.adapter.test_registry import install_distribution
from tests.conftest import ROOT

PROBE_TYPES = ", ".join([*sorted(BUILTINS), PLUGIN_KEY])


def with_plugin(tmp_path: Path) -> dict[str, str]:
    """The environment of a process that has an installed plugin distribution."""
    install_distribution(tmp_path)
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}


def test_probes_lists_every_builtin_with_a_summary() -> None:
    done = cli("probes")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert {*BUILTINS, "plugin"} <= set(rows)
    # Anything more comes from a distribution installed beside the adapter.
    assert all(rows[name].split()[1] != "built-in" for name in set(rows) - {*BUILTINS, "plugin"})
    assert rows["tcp"].split()[1] == "built-in"
    assert "Connect to a TCP port" in rows["tcp"]
    assert "exit status" in rows["exec"]


def test_probes_names_the_distribution_a_type_comes_from(tmp_path: Path) -> None:
    done = cli("probes", env=with_plugin(tmp_path))
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("queue_depth "))
    assert row.split()[1:4] == ["acme_probes", "1.0", "Fails"]


def test_probes_name_prints_options_types_defaults_and_docs() -> None:
    done = cli("probes", "tcp")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        "tcp  (built-in, probes.tcp:TcpProbe)",
        "  Connect to a TCP port; optionally send text and expect a reply, over TLS if asked.",
    ]
    assert (
        "  host: text, default 127.0.0.1\n      host name or address to connect to; "
        "an IPv6 address with or without brackets\n" in done.stdout
    )
    assert "  port: integer 1-65535, required\n" in done.stdout
    assert "  expect: regular expression, optional\n" in done.stdout


def test_probes_name_of_an_installed_plugin(tmp_path: Path) -> None:
    done = cli("probes", "queue_depth", env=with_plugin(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "queue_depth  (acme_probes 1.0, acme_queue:QueueDepth)"
    assert "  max_depth: integer, required\n" in done.stdout


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("htpp", "; did you mean 'http'?"),
        ("plugn", "; did you mean 'plugin'?"),
        ("Tcp", "; did you mean 'tcp'?"),
        ("zzz", ""),
    ],
    ids=["swapped-letters", "plugin-is-listed", "case", "nothing-close"],
)
def test_probes_of_an_unknown_type_suggests_the_close_one(name: str, hint: str) -> None:
    done = cli("probes", name)
    assert done.returncode == 1
    assert done.stderr == (
        f"health-adapter: unknown probe type {name!r}{hint} (probe types: {PROBE_TYPES})\n"
    )


def test_probes_plugin_explains_the_class_key() -> None:
    done = cli("probes", "plugin")
    assert done.returncode == 0
    assert "  class: text, required\n" in done.stdout


def test_schema_builtin_is_the_shipped_file() -> None:
    done = cli("schema", "--builtin")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "schema" / "health-adapter.schema.json").read_text()


def test_schema_includes_installed_plugins(tmp_path: Path) -> None:
    done = cli("schema", env=with_plugin(tmp_path))
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    blocks = [set(branch["required"]) - {"name"} for branch in schema["$defs"]["Check"]["anyOf"]]
    assert {"queue_depth"} in blocks and {"tcp"} in blocks


def install_odd_plugins(root: Path) -> dict[str, str]:
    """A distribution with a probe that declares no options and one that cannot be imported."""
    (root / "odd_probes.py").write_text(
        "from probes import Probe, Result\n"
        "class Untyped(Probe):\n"
        "    '''Reads its options itself.'''\n"
        "    async def check(self):\n"
        "        return Result('pass')\n"
    )
    dist = root / "odd_probes-2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: odd-probes\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text(
        "[health_adapter.probes]\nuntyped = odd_probes:Untyped\nbroken = no_such_module:Probe\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(root), str(ROOT)])}


def test_a_plugin_that_cannot_be_loaded_is_listed_with_the_reason(tmp_path: Path) -> None:
    done = cli("probes", env=install_odd_plugins(tmp_path))
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("broken "))
    assert (
        "(cannot be loaded: probe type 'broken' from odd-probes 2.0 could not be imported: "
        "ModuleNotFoundError: No module named 'no_such_module')" in row
    )

    done = cli("probes", "broken", env={"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    assert done.returncode == 1
    assert "could not be imported" in done.stderr


def test_a_plugin_without_declared_options(tmp_path: Path) -> None:
    done = cli("probes", "untyped", env=install_odd_plugins(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "untyped  (odd-probes 2.0, odd_probes:Untyped)\n"
        "  Reads its options itself.\n"
        "\n"
        "options: not declared (the probe reads its block's keys itself)\n"
    )
