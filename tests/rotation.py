"""A directory of secrets rotated the way Kubernetes rotates a mounted Secret.

Each version is written into a new hidden directory, then the `..data`
symlink is swapped to it in one rename; the visible names are symlinks
through `..data`, so a reader sees the old set or the new one, never a mix.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path


class SecretDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._versions = itertools.count(1)

    def path(self, name: str) -> str:
        return str(self.root / name)

    def publish(self, files: dict[str, bytes]) -> None:
        """Make `files` the Secret's content, with one atomic symlink swap."""
        version = self.root / f"..v{next(self._versions)}"
        version.mkdir()
        for name, data in files.items():
            (version / name).write_bytes(data)
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        os.replace(staged, self.root / "..data")
        for name in files:
            visible = self.root / name
            if not visible.is_symlink():
                visible.symlink_to(f"..data/{name}")
