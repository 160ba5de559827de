"""deploy/systemd/health-adapter.service: systemd accepts it, it runs the adapter as
`serve` expects, and the hardening is there."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.cli import build_parser
from tests.conftest import ROOT

UNIT = ROOT / "deploy" / "systemd" / "health-adapter.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
INSTALLED = "/opt/health-adapter/bin/health-adapter"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    # The same unit, with ExecStart at this machine's console script (verify checks it exists).
    script = Path(sys.executable).with_name("health-adapter")
    assert script.exists()
    text = UNIT.read_text()
    assert INSTALLED in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(INSTALLED, str(script)))
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stderr.splitlines() if UNIT.name in line] == []


def test_the_unit_starts_serve_as_the_cli_accepts_it() -> None:
    command = shlex.split(service()["ExecStart"])
    assert command[0] == INSTALLED
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve"
    assert args.config == "/etc/health-adapter/config.yaml"
    assert args.shutdown_delay == 5.0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30s"),
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("CapabilityBoundingSet", ""),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("SystemCallFilter", "@system-service"),
        ("RuntimeDirectory", "health-adapter"),
    ],
)
def test_the_unit_is_hardened(key: str, value: str) -> None:
    assert service()[key] == value


def test_the_stop_timeout_leaves_room_for_the_shutdown_delay() -> None:
    stop = int(service()["TimeoutStopSec"].removesuffix("s"))
    delay = build_parser().parse_args(shlex.split(service()["ExecStart"])[1:]).shutdown_delay
    assert stop >= delay + 10
