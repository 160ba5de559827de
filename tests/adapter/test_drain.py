"""Draining: held reasons (the shutdown delay), and sources such as the operator's drain file."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.drain import Drain, drain_file_reason
from adapter.health import SHUTTING_DOWN


def drain_file(path: Path) -> Drain:
    return Drain(sources=[lambda: drain_file_reason(str(path))])


def test_no_drain_without_a_reason(tmp_path: Path) -> None:
    assert drain_file_reason(None) is None
    assert drain_file(tmp_path / "drain").reason is None
    assert not Drain().draining


def test_the_drain_file_drains_while_it_exists(tmp_path: Path) -> None:
    path = tmp_path / "drain"
    drain = drain_file(path)
    path.touch()
    assert drain.reason == f"draining: drain file {path} exists"
    path.unlink()
    assert drain.reason is None


def test_a_dangling_symlink_still_drains(tmp_path: Path) -> None:
    # A symlink's presence is the operator's act, whatever it points at.
    (tmp_path / "drain").symlink_to(tmp_path / "nowhere")
    assert drain_file(tmp_path / "drain").draining


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        ([SHUTTING_DOWN], SHUTTING_DOWN),
        (["maintenance", SHUTTING_DOWN], SHUTTING_DOWN),
        (["maintenance"], "maintenance"),
    ],
    ids=["shutting-down", "shutting-down-begun-later", "held-reason"],
)
def test_held_reasons_win_over_the_drain_file(
    tmp_path: Path, held: list[str], expected: str
) -> None:
    (tmp_path / "drain").touch()
    drain = drain_file(tmp_path / "drain")
    for reason in held:
        drain.begin(reason)
    assert drain.reason == expected


def test_a_held_reason_is_taken_back(tmp_path: Path) -> None:
    drain = Drain()
    drain.begin("maintenance")
    drain.begin("maintenance")
    drain.end("maintenance")
    assert not drain.draining
