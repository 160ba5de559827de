"""The `file` probe: a sentinel file's presence, age and content.

The heartbeat pattern (an application touches a file, the check fails when it
gets old), the maintenance flag (`exists: false`), and a status word written
into a file.

What is at the path is named for what it is: a symlink and what it points to
(even when that is missing, a loop, or a directory), a FIFO, a socket, a
device; "does not exist" is said only when nothing is there.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import stat
import time
from typing import Annotated

import msgspec

from probes.base import Probe, Reason, Result, Status
from probes.types import Duration, option_error

__all__ = [
    "CONTENT_LIMIT",
    "DEFAULT_MAX_CLOCK_SKEW",
    "FileProbe",
    "NotARegularFile",
    "read_head",
    "read_regular",
]

#: `contains` and `regex` look at no more than this many leading bytes.
CONTENT_LIMIT = 64 * 1024
# The characters that make a path a shell pattern (which the probe never expands).
_WILDCARD = re.compile(r"[*?[]")

#: How far in the future an mtime may be before it is a finding (`max_clock_skew`).
DEFAULT_MAX_CLOCK_SKEW = Duration(5)

# Linux follows at most 40 symlinks in one lookup (MAXSYMLINKS) before ELOOP.
_MAX_SYMLINKS = 40


class NotARegularFile(Exception):
    """A directory, FIFO, socket or device was found where a file is expected."""

    def __init__(self, path: str, mode: int) -> None:
        self.path = path
        self.mode = mode
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


def read_regular(path: str, limit: int) -> tuple[os.stat_result, bytes]:
    """The status and at most `limit` leading bytes of the regular file at `path`.

    Both come from one open descriptor, so they describe the same file even
    when it is replaced by a rename meanwhile (atomic writers do that): the
    mtime and the content always agree. Symlinks are followed.

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
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(path, info.st_mode)
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return info, b"".join(chunks)
    finally:
        os.close(fd)


def read_head(path: str, limit: int) -> bytes:
    """At most `limit` leading bytes of the regular file at `path`; see `read_regular`."""
    return read_regular(path, limit)[1]


# Text longer than the bytes read could never be found.
_Needle = Annotated[str, msgspec.Meta(min_length=1, max_length=CONTENT_LIMIT)]


class FileProbe(Probe):
    """Checks that a file exists (or not), is fresh, and holds the expected text."""

    # The keys of a `file:` block (the docstring would become the schema's
    # description of the block; each key is described by its Meta).
    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        path: Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                description="path of the file to check; a symlink is followed to its target",
            ),
        ]
        exists: Annotated[
            bool,
            msgspec.Meta(
                description="true: fail when the file is missing; "
                "false: fail when anything is there, even a dangling symlink (a maintenance flag)"
            ),
        ] = True
        max_age: Annotated[
            Duration | None,
            msgspec.Meta(description="fail when the file was last modified longer ago than this"),
        ] = None
        max_clock_skew: Annotated[
            Duration | None,
            msgspec.Meta(
                description="with max_age: fail when the file's mtime is further in the "
                "future than this, since its age is then unknown (default 5s)"
            ),
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
            if not self.exists:
                for key in ("max_age", "contains", "regex"):
                    if getattr(self, key) is not None:
                        raise option_error(
                            key,
                            f"{key} needs the file to exist, but exists is false "
                            "(a file that must be absent has no age or content)",
                        )
            if self.max_clock_skew is not None and self.max_age is None:
                raise option_error(
                    "max_clock_skew",
                    "max_clock_skew needs max_age (only the age check judges the mtime)",
                )

    config: Options

    def check(self) -> Result:  # plain def: runs in a worker thread
        """Stat (and read, when the content is judged) the path once.

        Passes with the age in seconds as the observed value when it has one;
        fails with reason file_missing, file_present, file_stale, clock_skew,
        file_invalid, body_mismatch, permission_denied or failed (another read
        error). Blocking on a dead mount is why it runs in a thread.
        """
        path = self.config.path
        try:
            # The path itself, not what a symlink there points to: a dangling
            # link is something that is there.
            found = os.lstat(path)
        except FileNotFoundError:
            return self._absent(path)
        except NotADirectoryError:
            blocker = _first_existing_ancestor(path)
            if self.config.exists:
                return _fail(
                    Reason.FILE_INVALID, f"{blocker} is not a directory, so {path} cannot exist"
                )
            return Result(Status.PASS, f"{path} is absent ({blocker} is not a directory)")
        except PermissionError:
            return _fail(Reason.PERMISSION_DENIED, f"permission denied looking up {path}")
        except OSError as exc:
            return _lookup_failed(path, exc)
        link = stat.S_ISLNK(found.st_mode)
        if not self.config.exists:
            return self._present(path, found)
        try:
            info = os.stat(path) if link else found
        except OSError as exc:
            return _unresolved(path, exc)
        if not stat.S_ISREG(info.st_mode):
            return _fail(Reason.FILE_INVALID, _not_regular(path, info.st_mode, link))
        judged = self._mtime_result(info)
        if judged.status is Status.FAIL:
            return judged
        if self.config.contains is None and self.config.regex is None:
            return judged
        try:
            info, head = read_regular(path, CONTENT_LIMIT + 1)
        except FileNotFoundError as exc:
            # Removed since it was looked at: say what is left, if anything.
            if os.path.islink(path):
                return _unresolved(path, exc)
            return _fail(Reason.FILE_MISSING, _describe_missing(path))
        except PermissionError:
            return _fail(Reason.PERMISSION_DENIED, f"permission denied reading {path}")
        except NotARegularFile as exc:
            return _fail(Reason.FILE_INVALID, _not_regular(path, exc.mode, link))
        except OSError as exc:
            return _fail(Reason.FAILED, f"cannot read {path}: {exc.strerror or exc}")
        # The file read may have replaced the one looked at: judge its own mtime.
        judged = self._mtime_result(info)
        if judged.status is Status.FAIL:
            return judged
        problem = self._content_problem(path, head)
        if problem is not None:
            return _fail(Reason.BODY_MISMATCH, problem, judged.observed_value)
        return judged

    def _mtime_result(self, info: os.stat_result) -> Result:
        """Pass with the file's age, or fail it for being stale or from the future.

        The mtime was set by the writer's clock (or the file server's), so it
        can only be compared with this host's wall clock, which may disagree
        or step. An mtime ahead by more than `max_clock_skew` means the age is
        unknown: a writer that stopped would stay "fresh" until the clocks
        meet again, so with `max_age` that fails rather than passing quietly.
        """
        ahead = info.st_mtime - time.time()
        max_age = self.config.max_age
        tolerance = self.config.max_clock_skew
        if tolerance is None:
            tolerance = DEFAULT_MAX_CLOCK_SKEW
        if ahead > tolerance:
            future = round(ahead, 1)
            output = f"modified {future}s in the future (clock skew?)"
            if max_age is None:
                return Result(Status.PASS, output, observed_value=-future, observed_unit="s")
            return _fail(Reason.CLOCK_SKEW, f"{output}, max_clock_skew {tolerance}", age=-future)
        age = round(max(0.0, -ahead), 1)
        if max_age is not None and age > max_age:
            return _fail(Reason.FILE_STALE, f"modified {age}s ago, max_age {max_age}", age)
        return Result(Status.PASS, f"modified {age}s ago", observed_value=age, observed_unit="s")

    def _absent(self, path: str) -> Result:
        if self.config.exists:
            return _fail(Reason.FILE_MISSING, _describe_missing(path))
        why = _why_the_directory_is_missing(path)
        if why is not None:
            # Passing is right (nothing can be there), but a typo in the
            # directory would make the flag unusable, so show it.
            return Result(Status.PASS, f"{path} is absent ({why})")
        return Result(Status.PASS, f"{path} is absent")

    def _present(self, path: str, found: os.stat_result) -> Result:
        """A maintenance flag is there: whatever it is, even a dangling symlink, it is present."""
        what = ""
        info: os.stat_result | None = found
        if stat.S_ISLNK(found.st_mode):
            try:
                info = os.stat(path)
            except OSError as exc:
                info = None
                what = _unresolved_link(path, exc).removeprefix(f"{path} is ")
            else:
                targets, _ = _follow(path)
                what = f"a symlink to {', a symlink to '.join(targets)}"
        if info is None:
            return _fail(Reason.FILE_PRESENT, f"{path} is present ({what}), expected absent")
        if not stat.S_ISREG(info.st_mode):
            kind = f"a {_describe_file_type(info.st_mode)}"
            what = f"{what}, {kind}" if what else kind
        judged = self._mtime_result(info)
        when = f"{what}, {judged.output}" if what else judged.output
        return _fail(
            Reason.FILE_PRESENT,
            f"{path} is present ({when}), expected absent",
            judged.observed_value,
        )

    def _content_problem(self, path: str, head: bytes) -> str | None:
        # One byte past the limit tells a file cut short from one read whole.
        truncated = len(head) > CONTENT_LIMIT
        head = head[:CONTENT_LIMIT]
        where = f"the first 64 KiB of {path}" if truncated else path
        # The file's content is never quoted: it may hold anything.
        contains = self.config.contains
        if contains is not None and contains.encode() not in head:
            return f"{where} does not contain {contains!r}"
        regex = self.config.regex
        if regex is not None and regex.search(head.decode("utf-8", "replace")) is None:
            return f"{where} does not match regex {regex.pattern!r}"
        return None


def _fail(reason: Reason, output: str, age: float | int | None = None) -> Result:
    return Result(
        Status.FAIL,
        output,
        observed_value=age,
        observed_unit=None if age is None else "s",
        reason=reason,
    )


def _unresolved(path: str, exc: OSError) -> Result:
    """The path is a symlink, and following it failed with `exc`."""
    reason = {
        errno.ENOENT: Reason.FILE_MISSING,
        errno.ENOTDIR: Reason.FILE_MISSING,
        errno.ELOOP: Reason.FILE_INVALID,
        errno.EACCES: Reason.PERMISSION_DENIED,
    }.get(exc.errno or 0, Reason.FAILED)
    return _fail(reason, _unresolved_link(path, exc))


def _unresolved_link(path: str, exc: OSError) -> str:
    """What the symlink at `path` is, given that following it failed with `exc`."""
    if exc.errno == errno.ELOOP:
        return _describe_loop(path)
    targets, _ = _follow(path)
    link = _as_symlink(path, targets)
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return f"{link}, which does not exist"
    if exc.errno == errno.EACCES:
        return f"{link}, which cannot be followed: permission denied"
    return f"{link}, which cannot be followed: {exc.strerror or exc}"


def _follow(path: str) -> tuple[list[str], bool]:
    """The targets of the symlink at `path`, hop by hop as written, and whether they loop.

    Stops at the first target that is not a symlink (or cannot be read); at
    most one hop past the kernel's limit, so a long chain is bounded too.
    """
    targets: list[str] = []
    current = os.path.abspath(path)
    seen = {current}
    for _ in range(_MAX_SYMLINKS + 1):
        try:
            target = os.readlink(current)
        except OSError:
            break
        targets.append(target)
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        if current in seen:
            return targets, True
        seen.add(current)
    return targets, False


def _as_symlink(path: str, targets: list[str]) -> str:
    """`path is a symlink to a, a symlink to b`: each hop as `ls -l` shows it."""
    hops = ", a symlink to ".join(targets)
    return f"{path} is a symlink to {hops}"


def _describe_loop(path: str) -> str:
    targets, loops = _follow(path)
    if loops:
        return f"{path} is a symlink loop ({' -> '.join([path, *targets])})"
    if len(targets) > _MAX_SYMLINKS:
        return f"{path} is a symlink to {targets[0]}, the start of a chain of more than {_MAX_SYMLINKS} symlinks"
    # The loop is in a directory on the way to a target.
    return (
        f"{_as_symlink(path, targets)}, which cannot be reached: too many levels of symbolic links"
    )


def _not_regular(path: str, mode: int, link: bool) -> str:
    kind = _describe_file_type(mode)
    if not link:
        return f"{path} is a {kind}, not a regular file"
    targets, _ = _follow(path)
    return f"{_as_symlink(path, targets)}, which is a {kind}, not a regular file"


def _lookup_failed(path: str, exc: OSError) -> Result:
    if exc.errno == errno.ELOOP:
        return _fail(
            Reason.FILE_INVALID,
            f"{path} cannot be reached: a symlink loop in a directory on the way "
            "(too many levels of symbolic links)",
        )
    return _fail(Reason.FAILED, f"cannot stat {path}: {exc.strerror or exc}")


def _describe_missing(path: str) -> str:
    why = _why_the_directory_is_missing(path)
    if why is not None:
        return why
    matching = glob.glob(path) if _WILDCARD.search(path) else []
    if matching:
        # nagios-plugins #564: `check_file_age -f /backup/*.tar.gz` passed with
        # "0 files are OK". Here the path names one file, never a pattern.
        files = "1 file matches" if len(matching) == 1 else f"{len(matching)} files match"
        return (
            f"file {path} does not exist (the path is taken as written, not as a "
            f"pattern, which {files})"
        )
    return f"file {path} does not exist"


def _why_the_directory_is_missing(path: str) -> str | None:
    """Why the directory that should hold `path` is not there, if it is not.

    Names the outermost missing directory, the one to create or mount: naming
    an inner one would send the reader looking in the wrong place. When a
    dangling symlink stands where that directory should be, says so.
    """
    missing = _topmost_missing_directory(path)
    if missing is None:
        return None
    if os.path.islink(missing):
        targets, loops = _follow(missing)
        if loops:
            return f"directory {_describe_loop(missing)}"
        return f"directory {_as_symlink(missing, targets)}, which does not exist"
    return f"directory {missing} does not exist"


def _topmost_missing_directory(path: str) -> str | None:
    """The outermost directory on the way to `path` that does not exist, if any."""
    missing = None
    directory = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(directory):
        missing = directory
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return missing


def _first_existing_ancestor(path: str) -> str:
    """The nearest existing path that `path` needs to be a directory.

    A trailing slash asks for the path itself to be a directory.
    """
    directory = os.path.abspath(path)
    if not path.endswith(os.sep):
        directory = os.path.dirname(directory)
    while directory != os.path.dirname(directory) and not os.path.exists(directory):
        directory = os.path.dirname(directory)
    return directory
