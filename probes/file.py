"""The `file` probe: a sentinel file's presence, age and content.

The heartbeat pattern (an application touches a file, the check fails when it
gets old), the maintenance flag (`exists: false`), and a status word written
into a file.
"""

from __future__ import annotations

import os
import re
import stat
import time
from typing import Annotated

import msgspec

from probes.base import Probe, Reason, Result, Status
from probes.types import Duration, option_error

__all__ = ["CONTENT_LIMIT", "FileProbe", "NotARegularFile", "read_head"]

#: `contains` and `regex` look at no more than this many leading bytes.
CONTENT_LIMIT = 64 * 1024


class NotARegularFile(Exception):
    """A directory, FIFO, socket or device was found where a file is expected."""

    def __init__(self, path: str, mode: int) -> None:
        self.path = path
        self.kind = _describe_file_type(mode)
        super().__init__(f"{path} is a {self.kind}, not a regular file")


_FILE_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def _describe_file_type(mode: int) -> str:
    for is_kind, kind in _FILE_KINDS:
        if is_kind(mode):
            return kind
    return "special file"


def read_head(path: str, limit: int) -> bytes:
    """Read at most `limit` leading bytes of the regular file at `path`.

    Never opens anything else: opening a FIFO blocks until a writer appears,
    opening a device may act on it. The type is checked before opening, and
    again on the opened descriptor in case the path was replaced in between
    (O_NONBLOCK keeps that open from blocking if it was replaced by a FIFO).
    Raises OSError (FileNotFoundError, PermissionError…) or NotARegularFile.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotARegularFile(path, mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, mode)
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# Text longer than the bytes read could never be found.
_Needle = Annotated[str, msgspec.Meta(min_length=1, max_length=CONTENT_LIMIT)]


class FileProbe(Probe):
    """Checks that a file exists (or not), is fresh, and holds the expected text."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        path: Annotated[str, msgspec.Meta(min_length=1, description="path of the file to check")]
        exists: Annotated[
            bool,
            msgspec.Meta(
                description="true: fail when the file is missing; "
                "false: fail when it is present (a maintenance flag)"
            ),
        ] = True
        max_age: Annotated[
            Duration | None,
            msgspec.Meta(description="fail when the file was last modified longer ago than this"),
        ] = None
        contains: Annotated[
            _Needle | None,
            msgspec.Meta(description="fail unless the file's first 64 KiB contain this text"),
        ] = None
        regex: Annotated[
            re.Pattern | None,  # type: ignore[type-arg]  # msgspec decodes the bare class only
            msgspec.Meta(
                description="fail unless this regular expression matches in the file's first 64 KiB"
            ),
        ] = None

        def __post_init__(self) -> None:
            if self.exists:
                return
            for key in ("max_age", "contains", "regex"):
                if getattr(self, key) is not None:
                    raise option_error(
                        key,
                        f"{key} needs the file to exist, but exists is false "
                        "(a file that must be absent has no age or content)",
                    )

    config: Options

    def check(self) -> Result:  # plain def: runs in a worker thread
        path = self.config.path
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return self._absent(path)
        except NotADirectoryError:
            return self._absent(path) if not self.config.exists else _not_a_directory(path)
        except PermissionError:
            return _fail(Reason.PERMISSION_DENIED, f"permission denied looking up {path}")
        except OSError as exc:
            return _fail(Reason.FAILED, f"cannot stat {path}: {exc.strerror or exc}")
        age = _age_of(info)
        if not self.config.exists:
            return _fail(
                Reason.FILE_PRESENT,
                f"{path} is present (modified {age}s ago), expected absent",
                age,
            )
        if not stat.S_ISREG(info.st_mode):
            return _fail(Reason.FILE_INVALID, str(NotARegularFile(path, info.st_mode)))
        max_age = self.config.max_age
        if max_age is not None and age > max_age:
            return _fail(Reason.FILE_STALE, f"modified {age}s ago, max_age {max_age}", age)
        if self.config.contains is not None or self.config.regex is not None:
            problem = self._content_problem(path)
            if problem is not None:
                reason, output = problem
                return _fail(reason, output, age)
        return Result(Status.PASS, f"modified {age}s ago", observed_value=age, observed_unit="s")

    def _absent(self, path: str) -> Result:
        if self.config.exists:
            return _fail(Reason.FILE_MISSING, _describe_missing(path))
        missing_directory = _topmost_missing_directory(path)
        if missing_directory is not None:
            # Passing is right (nothing can be there), but a typo in the
            # directory would make the flag unusable, so show it.
            return Result(
                Status.PASS, f"{path} is absent (directory {missing_directory} does not exist)"
            )
        return Result(Status.PASS, f"{path} is absent")

    def _content_problem(self, path: str) -> tuple[Reason, str] | None:
        try:
            head = read_head(path, CONTENT_LIMIT + 1)
        except FileNotFoundError:
            return Reason.FILE_MISSING, _describe_missing(path)
        except PermissionError:
            return Reason.PERMISSION_DENIED, f"permission denied reading {path}"
        except NotARegularFile as exc:
            return Reason.FILE_INVALID, str(exc)
        except OSError as exc:
            return Reason.FAILED, f"cannot read {path}: {exc.strerror or exc}"
        # One byte past the limit tells a file cut short from one read whole.
        truncated = len(head) > CONTENT_LIMIT
        head = head[:CONTENT_LIMIT]
        where = f"the first 64 KiB of {path}" if truncated else path
        # The file's content is never quoted: it may hold anything.
        contains = self.config.contains
        if contains is not None and contains.encode() not in head:
            return Reason.BODY_MISMATCH, f"{where} does not contain {contains!r}"
        regex = self.config.regex
        if regex is not None and regex.search(head.decode("utf-8", "replace")) is None:
            return Reason.BODY_MISMATCH, f"{where} does not match regex {regex.pattern!r}"
        return None


def _age_of(info: os.stat_result) -> float:
    # A clock skewed ahead on the writer's side (NFS) must not read as "stale".
    return round(max(0.0, time.time() - info.st_mtime), 1)


def _fail(reason: Reason, output: str, age: float | None = None) -> Result:
    return Result(
        Status.FAIL,
        output,
        observed_value=age,
        observed_unit=None if age is None else "s",
        reason=reason,
    )


def _describe_missing(path: str) -> str:
    missing_directory = _topmost_missing_directory(path)
    if missing_directory is not None:
        return f"directory {missing_directory} does not exist"
    return f"file {path} does not exist"


def _topmost_missing_directory(path: str) -> str | None:
    """The outermost directory on the way to `path` that does not exist, if any.

    The outermost is the one to create or mount: naming an inner one would
    send the reader looking in the wrong place.
    """
    missing = None
    directory = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(directory):
        missing = directory
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return missing


def _not_a_directory(path: str) -> Result:
    directory = os.path.dirname(os.path.abspath(path))
    while directory != os.path.dirname(directory) and not os.path.exists(directory):
        directory = os.path.dirname(directory)
    return _fail(Reason.FILE_INVALID, f"{directory} is not a directory, so {path} cannot exist")
