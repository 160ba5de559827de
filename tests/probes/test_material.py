"""Material built from rotated files: rebuilt when a file changes on disk, kept when
the replacement cannot be used."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from probes.material import Reread
from tests.rotation import SecretDir


class Broken(Exception):
    pass


def parse_token(path: str) -> str:
    text = Path(path).read_text()
    if not text.endswith("\n"):
        raise Broken(f"{path} is incomplete")
    return text.strip()


def reread(path: str) -> Reread[str]:
    return Reread([path], lambda: parse_token(path), what=f"token {path}", errors=(Broken,))


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    reads: list[str] = []

    def build() -> str:
        reads.append(str(token))
        return parse_token(str(token))

    material = Reread([str(token)], build, what="token")
    assert [material.get() for _ in range(3)] == ["one"] * 3
    assert len(reads) == 1


@pytest.mark.parametrize(
    "replace",
    [
        pytest.param("rewrite", id="written-in-place"),
        pytest.param("rename", id="renamed-over"),
        pytest.param("symlink-swap", id="kubernetes-symlink-swap"),
    ],
)
def test_a_changed_file_is_read_at_the_next_get(tmp_path: Path, replace: str) -> None:
    secret = SecretDir(tmp_path / "secret")
    plain = tmp_path / "token"
    plain.write_text("one\n")
    secret.publish({"token": b"one\n"})
    path = secret.path("token") if replace == "symlink-swap" else str(plain)
    material = reread(path)
    assert material.get() == "one"

    if replace == "rewrite":
        plain.write_text("two\n")
        # The same inode and, on a coarse clock, the same mtime: the size tells.
    elif replace == "rename":
        staged = tmp_path / "token.new"
        staged.write_text("two\n")
        os.replace(staged, plain)
    else:
        secret.publish({"token": b"two\n"})

    assert material.get() == "two"


def test_an_unusable_replacement_keeps_the_previous_material_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = SecretDir(tmp_path / "secret")
    secret.publish({"token": b"one\n"})
    material = reread(secret.path("token"))
    assert material.get() == "one"

    secret.publish({"token": b"half-writ"})  # no final line break: caught mid-write
    with caplog.at_level(logging.WARNING, logger="health_adapter.material"):
        assert [material.get() for _ in range(3)] == ["one"] * 3
    kept = [record for record in caplog.records if record.getMessage() == "material_kept"]
    assert len(kept) == 1
    fields = kept[0].fields  # type: ignore[attr-defined]
    assert fields["error"].endswith("is incomplete")

    secret.publish({"token": b"three\n"})
    assert material.get() == "three"


def test_without_previous_material_the_error_is_raised(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("half")
    with pytest.raises(Broken):
        reread(str(token)).get()
