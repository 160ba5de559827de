"""Fixtures shared by the probe tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start child processes (`spawn(*argv)`) that are killed and reaped when the test ends."""
    children: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(argv)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
    for child in children:
        child.wait()
