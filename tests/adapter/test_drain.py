"""Draining: the shutdown delay and the operator's drain file."""

from __future__ import annotations

from pathlib import Path

from adapter.drain import drain_reason


def test_no_drain_without_a_reason(tmp_path: Path) -> None:
    assert drain_reason(False, None) is None
    assert drain_reason(False, str(tmp_path / "drain")) is None


def test_the_drain_file_drains_while_it_exists(tmp_path: Path) -> None:
    drain = tmp_path / "drain"
    drain.touch()
    assert drain_reason(False, str(drain)) == f"draining: drain file {drain} exists"
    drain.unlink()
    assert drain_reason(False, str(drain)) is None


def test_a_dangling_symlink_still_drains(tmp_path: Path) -> None:
    # A symlink's presence is the operator's act, whatever it points at.
    (tmp_path / "drain").symlink_to(tmp_path / "nowhere")
    assert drain_reason(False, str(tmp_path / "drain")) is not None


def test_shutting_down_wins_over_the_drain_file(tmp_path: Path) -> None:
    (tmp_path / "drain").touch()
    assert drain_reason(True, str(tmp_path / "drain")) == "shutting down"
