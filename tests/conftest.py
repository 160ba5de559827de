"""Shared fixtures: config files on disk, free ports, and clean-up of test switches."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapter.config import Config, parse_config
from tests import sample_probes

ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def _reset_sample_probes() -> Iterator[None]:
    sample_probes.RELEASE.clear()
    yield
    sample_probes.SWITCHES.clear()
    sample_probes.COUNTS.clear()
    sample_probes.Counting.running.clear()
    sample_probes.Counting.overlaps.clear()
    sample_probes.RELEASE.set()


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a config file and return its path."""

    def write(text: str, name: str = "health.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def make_config() -> Callable[[str], Config]:
    def make(text: str) -> Config:
        return parse_config(text, environ={})

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
