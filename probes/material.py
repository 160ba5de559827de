"""Things built from files that are rotated in place: TLS material, tokens.

A CA bundle, a client certificate or a token is replaced on disk while the
adapter runs (cert-manager, a Kubernetes Secret's `..data` symlink swap). What
is built from such files is kept only as long as the files stay the same:
`Reread.get()` compares each file's identity (device, inode, size and
modification time of the file its path resolves to now) with the one it was
built from, and builds again when one differs. A replacement that cannot be
used (unreadable, half written) keeps the previous material in use, logged
once per replacement; with no previous material the error is raised.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["FileIdentity", "Reread", "identity_of"]

T = TypeVar("T")
#: (device, inode, size, mtime_ns) of the file a path resolves to; None when it cannot be seen.
FileIdentity = tuple[int, int, int, int] | None

log = logging.getLogger("health_adapter.material")


def identity_of(path: str) -> FileIdentity:
    """The identity of the file `path` names now, following symlinks."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


class Reread(Generic[T]):
    """The value `build()` makes from `paths`, built again when one of them changes.

    `build` raises when the files cannot be used; `errors` are the exception
    types that mean that (anything else propagates as is).
    """

    __slots__ = ("_build", "_built_from", "_errors", "_failed_on", "_paths", "_value", "what")

    def __init__(
        self,
        paths: Sequence[str | None],
        build: Callable[[], T],
        *,
        what: str,
        errors: tuple[type[BaseException], ...] = (Exception,),
    ) -> None:
        self._paths = tuple(path for path in paths if path is not None)
        self._build = build
        self._errors = errors
        self.what = what
        self._value: T | None = None
        self._built_from: tuple[FileIdentity, ...] | None = None
        self._failed_on: tuple[FileIdentity, ...] | None = None

    def identity(self) -> tuple[FileIdentity, ...]:
        """What the files are now (see `identity_of`); a change means a rebuild."""
        return tuple(identity_of(path) for path in self._paths)

    def get(self) -> T:
        """The current value; rebuilt first when a file changed since it was built."""
        # Taken before building: a file that changes during the build is seen
        # as changed at the next call, and built again then.
        current = self.identity()
        if self._value is not None and current == self._built_from:
            return self._value
        if self._value is not None and current == self._failed_on:
            return self._value  # this replacement was judged already
        try:
            value = self._build()
        except self._errors as exc:
            if self._value is None:
                raise
            self._failed_on = current
            log.warning(
                "material_kept",
                extra={
                    "fields": {
                        "what": self.what,
                        "error": str(exc),
                        "note": "the files changed but cannot be used; the previous ones stay",
                    }
                },
            )
            return self._value
        self._value, self._built_from, self._failed_on = value, current, None
        return value
