"""The `file` probe against real files, directories, FIFOs, sockets and devices."""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import re
import shutil
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from probes import Duration, Reason, Result, Status
from probes.file import CONTENT_LIMIT, FileProbe


def check(**options: Any) -> Result:
    options["path"] = str(options["path"])
    return FileProbe("hb", options).check()


def touch(path: Path, age: float = 0.0, content: str | bytes = "") -> Path:
    """Create `path` with `content`, last modified `age` seconds ago."""
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    mtime = time.time() - age
    os.utime(path, (mtime, mtime))
    return path


def with_path(pattern: str, path: Path) -> str:
    """`pattern` with `{path}` standing for the escaped `path`."""
    return pattern.replace("{path}", re.escape(str(path)))


def returns_promptly(call: Callable[[], Result], path: Path) -> Result:
    """Call `call` in a thread and fail if it has not returned within 10 s.

    A check that opened the FIFO at `path` would wait for a writer forever;
    one is supplied before failing, so that the thread ends with the test.
    """
    outcome: list[Result] = []
    worker = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():
        if stat.S_ISFIFO(os.lstat(path).st_mode):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=10)
        pytest.fail("check() blocked")
    return outcome[0]


class _CapabilityHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapabilitySet(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_CAPABILITY_VERSION_3 = 0x20080522
_DAC_OVERRIDES = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


def unprivileged(call: Callable[[], Result]) -> Result:
    """Run `call` where file permission bits apply, even when the tests run as root.

    Root ignores a chmod 000 through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH.
    Capabilities belong to a thread, so `call` runs in a fresh thread that
    drops those two from its effective set: the rest of the test process
    keeps them, and the thread ends with the call.
    """
    if os.geteuid() != 0:
        return call()

    def without_dac_override() -> Result:
        libc = ctypes.CDLL(None, use_errno=True)
        header = _CapabilityHeader(_CAPABILITY_VERSION_3, 0)
        capabilities = (_CapabilitySet * 2)()
        if libc.capget(ctypes.byref(header), capabilities) != 0:
            pytest.skip(f"capget failed: {os.strerror(ctypes.get_errno())}")
        capabilities[0].effective &= ~_DAC_OVERRIDES
        if libc.capset(ctypes.byref(header), capabilities) != 0:
            pytest.skip(f"capset failed: {os.strerror(ctypes.get_errno())}")
        return call()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(without_dac_override).result(timeout=10)


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """chmod 000 a path for one test, and give it back its mode afterwards."""
    modes: list[tuple[Path, int]] = []

    def lock(path: Path) -> Path:
        modes.append((path, stat.S_IMODE(path.stat().st_mode)))
        path.chmod(0)
        return path

    yield lock
    for path, mode in reversed(modes):
        path.chmod(mode)


# --- options --------------------------------------------------------------------------------


def test_options_are_decoded() -> None:
    options = FileProbe.parse_options(
        {"path": "/shared/heartbeat", "max_age": "30s", "max_clock_skew": "1m", "regex": "^ok$"}
    )

    assert options.max_age == Duration(30)
    assert options.max_clock_skew == Duration(60)
    assert isinstance(options.max_age, Duration)
    assert options.regex.search("ok")
    assert (options.exists, options.contains) == (True, None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({}, "Object missing required field `path`", id="no-path"),
        pytest.param({"path": ""}, "length >= 1 - at `$.path`", id="empty-path"),
        pytest.param(
            {"path": "/hb", "max_age": "30 sec"},
            "invalid duration '30 sec' (write it like 250ms, 10s, 2m, 1h or a number of "
            "seconds) - at `$.max_age`",
            id="bad-duration",
        ),
        pytest.param(
            {"path": "/hb", "regex": "(ok"},
            "invalid regular expression '(ok'",
            id="bad-regex",
        ),
        pytest.param({"path": "/hb", "contains": ""}, "- at `$.contains`", id="empty-contains"),
        pytest.param(
            {"path": "/hb", "contains": "x" * (CONTENT_LIMIT + 1)},
            "- at `$.contains`",
            id="contains-longer-than-what-is-read",
        ),
        pytest.param({"path": "/hb", "exists": "maybe"}, "- at `$.exists`", id="exists-not-bool"),
        pytest.param(
            {"path": "/hb", "age": "30s"},
            "Object contains unknown field `age`",
            id="unknown-key",
        ),
        pytest.param(
            {"path": "/maintenance", "exists": False, "max_age": "30s"},
            "max_age needs the file to exist, but exists is false (a file that must be "
            "absent has no age or content) - at `$.max_age`",
            id="absent-file-with-max-age",
        ),
        pytest.param(
            {"path": "/maintenance", "exists": False, "contains": "on"},
            "contains needs the file to exist, but exists is false (a file that must be "
            "absent has no age or content) - at `$.contains`",
            id="absent-file-with-contains",
        ),
        pytest.param(
            {"path": "/maintenance", "exists": False, "regex": "on"},
            "- at `$.regex`",
            id="absent-file-with-regex",
        ),
        pytest.param(
            {"path": "/hb", "max_clock_skew": "10s"},
            "max_clock_skew needs max_age (only the age check judges the mtime) "
            "- at `$.max_clock_skew`",
            id="clock-skew-without-max-age",
        ),
        pytest.param(
            {"path": "/hb", "max_age": "30s", "max_clock_skew": "-5s"},
            "invalid duration '-5s'",
            id="negative-clock-skew",
        ),
    ],
)
def test_invalid_options_are_reported_at_their_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(message)):
        FileProbe.parse_options(options)


def test_file_probe_runs_in_a_worker_thread() -> None:
    assert FileProbe.is_blocking()


# --- heartbeat ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "options", "status", "reason", "output", "observed"),
    [
        pytest.param(
            2, {"max_age": "30s"}, Status.PASS, None, r"^modified 2\.\ds ago$", 2, id="fresh"
        ),
        pytest.param(
            0, {"max_age": "30s"}, Status.PASS, None, r"^modified 0\.\ds ago$", 0, id="touched-now"
        ),
        pytest.param(
            45,
            {"max_age": "30s"},
            Status.FAIL,
            Reason.FILE_STALE,
            r"^modified 45\.\ds ago, max_age 30s$",
            45,
            id="stale",
        ),
        pytest.param(
            1,
            {"max_age": "250ms"},
            Status.FAIL,
            Reason.FILE_STALE,
            r"^modified 1\.\ds ago, max_age 250ms$",
            1,
            id="stale-in-milliseconds",
        ),
        pytest.param(
            86400,
            {"max_age": "30s"},
            Status.FAIL,
            Reason.FILE_STALE,
            r"^modified 86400\.\ds ago, max_age 30s$",
            86400,
            id="rewritten-with-an-mtime-a-day-old",
        ),
        pytest.param(
            7200, {}, Status.PASS, None, r"^modified 7200\.\ds ago$", 7200, id="old-without-max-age"
        ),
        pytest.param(
            -3,
            {"max_age": "30s"},
            Status.PASS,
            None,
            r"^modified 0\.0s ago$",
            0,
            id="future-within-the-default-skew",
        ),
        pytest.param(
            -7200,
            {"max_age": "30s"},
            Status.FAIL,
            Reason.CLOCK_SKEW,
            r"^modified 7(199|200)\.\ds in the future \(clock skew\?\), max_clock_skew 5s$",
            -7200,
            id="writer-clock-two-hours-ahead",
        ),
        pytest.param(
            -60,
            {"max_age": "1h"},
            Status.FAIL,
            Reason.CLOCK_SKEW,
            r"^modified (59|60)\.\ds in the future \(clock skew\?\), max_clock_skew 5s$",
            -60,
            id="touched-a-minute-ahead",
        ),
        pytest.param(
            -8,
            {"max_age": "30s"},
            Status.FAIL,
            Reason.CLOCK_SKEW,
            r"^modified [78]\.\ds in the future \(clock skew\?\), max_clock_skew 5s$",
            -8,
            id="seconds-past-the-default-skew",
        ),
        pytest.param(
            -60,
            {"max_age": "30s", "max_clock_skew": "2m"},
            Status.PASS,
            None,
            r"^modified 0\.0s ago$",
            0,
            id="future-within-a-raised-skew",
        ),
        pytest.param(
            -2,
            {"max_age": "30s", "max_clock_skew": "500ms"},
            Status.FAIL,
            Reason.CLOCK_SKEW,
            r"^modified [12]\.\ds in the future \(clock skew\?\), max_clock_skew 500ms$",
            -2,
            id="future-beyond-a-lowered-skew",
        ),
        pytest.param(
            -7200,
            {},
            Status.PASS,
            None,
            r"^modified 7(199|200)\.\ds in the future \(clock skew\?\)$",
            -7200,
            id="future-without-max-age-is-shown-not-judged",
        ),
    ],
)
def test_heartbeat(
    tmp_path: Path,
    age: float,
    options: dict[str, str],
    status: Status,
    reason: Reason | None,
    output: str,
    observed: float,
) -> None:
    heartbeat = touch(tmp_path / "heartbeat", age=age)

    result = check(path=heartbeat, **options)

    assert (result.status, result.reason) == (status, reason)
    assert re.match(output, result.output), result.output
    assert result.observed_unit == "s"
    assert isinstance(result.observed_value, float)
    assert result.observed_value == pytest.approx(observed, abs=5)
    assert result.observed_value == round(result.observed_value, 1)  # 0.1 s precision


YEAR_2100 = 4102444800.0  # 2100-01-01T00:00:00Z
YEAR_1960 = -315619200.0  # 1960-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("mtime", "status", "reason", "output"),
    [
        pytest.param(
            YEAR_2100,
            Status.FAIL,
            Reason.CLOCK_SKEW,
            r"^modified \d{10}\.\ds in the future \(clock skew\?\), max_clock_skew 5s$",
            id="year-2100",
        ),
        pytest.param(
            YEAR_1960,
            Status.FAIL,
            Reason.FILE_STALE,
            r"^modified \d{10}\.\ds ago, max_age 30s$",
            id="before-1970",
        ),
        pytest.param(
            0.0, Status.FAIL, Reason.FILE_STALE, r"^modified \d+\.\ds ago", id="the-epoch"
        ),
    ],
)
def test_heartbeat_with_an_mtime_far_from_now(
    tmp_path: Path, mtime: float, status: Status, reason: Reason, output: str
) -> None:
    heartbeat = touch(tmp_path / "heartbeat")
    os.utime(heartbeat, (mtime, mtime))
    assert os.stat(heartbeat).st_mtime == mtime

    result = check(path=heartbeat, max_age="30s")

    assert (result.status, result.reason) == (status, reason)
    assert re.match(output, result.output), result.output
    assert result.observed_value == pytest.approx(time.time() - mtime, abs=5)


def test_the_adapters_clock_stepping_back_is_a_finding_until_the_writer_catches_up(
    tmp_path: Path,
) -> None:
    """A step of this host's clock cannot be made on demand; seen from the
    probe it is the file's mtime moving ahead of now by the same amount."""
    heartbeat = touch(tmp_path / "heartbeat")
    assert check(path=heartbeat, max_age="30s").status is Status.PASS

    touch(heartbeat, age=-3600)  # the clock stepped back an hour: the last beat is "ahead"

    stepped = check(path=heartbeat, max_age="30s")
    assert stepped.reason is Reason.CLOCK_SKEW
    assert stepped.output.endswith("s in the future (clock skew?), max_clock_skew 5s")

    touch(heartbeat)  # the writer beats again, on the same (stepped) clock

    assert check(path=heartbeat, max_age="30s").status is Status.PASS


def test_heartbeat_turns_stale_when_no_longer_touched(tmp_path: Path) -> None:
    heartbeat = touch(tmp_path / "heartbeat")
    assert check(path=heartbeat, max_age="30s").status is Status.PASS

    touch(heartbeat, age=31)

    assert check(path=heartbeat, max_age="30s").reason is Reason.FILE_STALE


# --- missing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "reason", "output"),
    [
        pytest.param(
            "heartbeat", Reason.FILE_MISSING, "file {tmp}/heartbeat does not exist", id="file"
        ),
        pytest.param(
            "shared/run/heartbeat",
            Reason.FILE_MISSING,
            "directory {tmp}/shared does not exist",
            id="directory",
        ),
        pytest.param(
            "regular/heartbeat",
            Reason.FILE_INVALID,
            "{tmp}/regular is not a directory, so {tmp}/regular/heartbeat cannot exist",
            id="file-where-a-directory-is-expected",
        ),
        pytest.param(
            "regular/",
            Reason.FILE_INVALID,
            "{tmp}/regular is not a directory, so {tmp}/regular/ cannot exist",
            id="file-named-with-a-trailing-slash",
        ),
    ],
)
def test_missing(tmp_path: Path, relative: str, reason: Reason, output: str) -> None:
    touch(tmp_path / "regular")

    result = check(path=f"{tmp_path}/{relative}")  # a Path would drop a trailing slash

    assert (result.status, result.reason) == (Status.FAIL, reason)
    assert result.output == output.format(tmp=tmp_path)
    assert result.observed_value is None


@pytest.mark.parametrize(
    ("made", "output"),
    [
        pytest.param(
            [],
            "file {tmp}/backup-*.tar.gz does not exist",
            id="nothing-the-pattern-would-match",
        ),
        pytest.param(
            ["backup-1.tar.gz"],
            "file {tmp}/backup-*.tar.gz does not exist (the path is taken as written, "
            "not as a pattern, which 1 file matches)",
            id="one-file-the-pattern-would-match",
        ),
        pytest.param(
            ["backup-1.tar.gz", "backup-2.tar.gz"],
            "file {tmp}/backup-*.tar.gz does not exist (the path is taken as written, "
            "not as a pattern, which 2 files match)",
            id="two-files-the-pattern-would-match",
        ),
    ],
)
def test_a_path_with_wildcards_is_one_file_and_never_passes_on_zero_matches(
    tmp_path: Path, made: list[str], output: str
) -> None:
    for name in made:
        touch(tmp_path / name)

    result = check(path=f"{tmp_path}/backup-*.tar.gz", max_age="1h")

    assert (result.status, result.reason) == (Status.FAIL, Reason.FILE_MISSING)
    assert result.output == output.format(tmp=tmp_path)


def test_a_file_named_with_a_star_is_found_as_written(tmp_path: Path) -> None:
    touch(tmp_path / "backup-*.tar.gz")
    touch(tmp_path / "backup-1.tar.gz")

    result = check(path=f"{tmp_path}/backup-*.tar.gz", max_age="1h")

    assert result.status is Status.PASS


# --- something other than a regular file ------------------------------------------------


def make_directory(path: Path) -> Path:
    path.mkdir()
    return path


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def make_socket(path: Path) -> Path:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
    return path


def the_null_device(path: Path) -> Path:
    return Path(os.devnull)


def make_block_device(path: Path) -> Path:
    try:  # a loop device's numbers; the node is never opened
        os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    return path


@pytest.mark.parametrize("content_options", [{}, {"contains": "ok"}], ids=["stat", "read"])
@pytest.mark.parametrize(
    ("make", "kind"),
    [
        pytest.param(make_directory, "directory", id="directory"),
        pytest.param(make_fifo, "FIFO", id="fifo"),
        pytest.param(make_socket, "socket", id="socket"),
        pytest.param(the_null_device, "character device", id="device"),
        pytest.param(make_block_device, "block device", id="block-device"),
    ],
)
def test_not_a_regular_file(
    tmp_path: Path,
    make: Callable[[Path], Path],
    kind: str,
    content_options: dict[str, str],
) -> None:
    path = make(tmp_path / "heartbeat")

    result = returns_promptly(lambda: check(path=path, **content_options), path)

    assert (result.status, result.reason) == (Status.FAIL, Reason.FILE_INVALID)
    assert result.output == f"{path} is a {kind}, not a regular file"


def test_fifo_is_never_opened_even_when_it_replaces_the_file_after_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between stat and open cannot be hit on demand, so stat is
    made to report the FIFO as the regular file it was a moment before."""
    fifo = make_fifo(tmp_path / "heartbeat")
    regular = touch(tmp_path / "regular").stat()
    real_stat = os.stat

    def stat_from_before_the_swap(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        return regular if str(path) == str(fifo) else real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_from_before_the_swap)

    result = returns_promptly(lambda: check(path=fifo, contains="ok"), fifo)

    assert result.reason is Reason.FILE_INVALID
    assert result.output == f"{fifo} is a FIFO, not a regular file"


# --- symlinks -----------------------------------------------------------------------------


def link(path: Path, target: str | Path) -> Path:
    """A symlink at `path` to `target`, written as given (relative stays relative)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


def dangling_absolute(tmp: Path) -> Path:
    return link(tmp / "heartbeat", tmp / "releases/current/heartbeat")


def dangling_relative(tmp: Path) -> Path:
    return link(tmp / "heartbeat", "releases/heartbeat")


def dangling_chain(tmp: Path) -> Path:
    link(tmp / "current", "release-2/heartbeat")
    return link(tmp / "heartbeat", "current")


def dangling_through_a_file(tmp: Path) -> Path:
    touch(tmp / "regular")
    return link(tmp / "heartbeat", "regular/heartbeat")


def loop_to_itself(tmp: Path) -> Path:
    return link(tmp / "heartbeat", "heartbeat")


def loop_of_two(tmp: Path) -> Path:
    link(tmp / "other", "heartbeat")
    return link(tmp / "heartbeat", "other")


def chain_past_the_kernels_limit(tmp: Path) -> Path:
    touch(tmp / "real")
    link(tmp / "l41", "real")
    for hop in range(40, 0, -1):
        link(tmp / f"l{hop}", f"l{hop + 1}")
    return link(tmp / "heartbeat", "l1")


def to_a_directory(tmp: Path) -> Path:
    (tmp / "data").mkdir()
    return link(tmp / "heartbeat", "data")


def to_a_fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "pipe")
    return link(tmp / "heartbeat", "pipe")


def to_the_null_device(tmp: Path) -> Path:
    return link(tmp / "heartbeat", os.devnull)


def in_a_dangling_directory_link(tmp: Path) -> Path:
    link(tmp / "current", "release-2")
    return tmp / "current" / "heartbeat"


def in_a_directory_link_loop(tmp: Path) -> Path:
    link(tmp / "current", "current")
    return tmp / "current" / "heartbeat"


@pytest.mark.parametrize("content_options", [{}, {"contains": "ok"}], ids=["stat", "read"])
@pytest.mark.parametrize(
    ("make", "reason", "output"),
    [
        pytest.param(
            dangling_absolute,
            Reason.FILE_MISSING,
            "{tmp}/heartbeat is a symlink to {tmp}/releases/current/heartbeat, "
            "which does not exist",
            id="dangling",
        ),
        pytest.param(
            dangling_relative,
            Reason.FILE_MISSING,
            "{tmp}/heartbeat is a symlink to releases/heartbeat, which does not exist",
            id="dangling-relative",
        ),
        pytest.param(
            dangling_chain,
            Reason.FILE_MISSING,
            "{tmp}/heartbeat is a symlink to current, a symlink to release-2/heartbeat, "
            "which does not exist",
            id="dangling-at-the-end-of-a-chain",
        ),
        pytest.param(
            dangling_through_a_file,
            Reason.FILE_MISSING,
            "{tmp}/heartbeat is a symlink to regular/heartbeat, which does not exist",
            id="dangling-through-a-file",
        ),
        pytest.param(
            loop_to_itself,
            Reason.FILE_INVALID,
            "{tmp}/heartbeat is a symlink loop ({tmp}/heartbeat -> heartbeat)",
            id="loop-to-itself",
        ),
        pytest.param(
            loop_of_two,
            Reason.FILE_INVALID,
            "{tmp}/heartbeat is a symlink loop ({tmp}/heartbeat -> other -> heartbeat)",
            id="loop-of-two",
        ),
        pytest.param(
            chain_past_the_kernels_limit,
            Reason.FILE_INVALID,
            "{tmp}/heartbeat is a symlink to l1, the start of a chain of more than 40 symlinks",
            id="chain-past-the-kernels-limit",
        ),
        pytest.param(
            to_a_directory,
            Reason.FILE_INVALID,
            "{tmp}/heartbeat is a symlink to data, which is a directory, not a regular file",
            id="to-a-directory",
        ),
        pytest.param(
            to_a_fifo,
            Reason.FILE_INVALID,
            "{tmp}/heartbeat is a symlink to pipe, which is a FIFO, not a regular file",
            id="to-a-fifo",
        ),
        pytest.param(
            to_the_null_device,
            Reason.FILE_INVALID,
            "{tmp}/heartbeat is a symlink to /dev/null, which is a character device, "
            "not a regular file",
            id="to-a-device",
        ),
        pytest.param(
            in_a_dangling_directory_link,
            Reason.FILE_MISSING,
            "directory {tmp}/current is a symlink to release-2, which does not exist",
            id="directory-on-the-way-dangling",
        ),
        pytest.param(
            in_a_directory_link_loop,
            Reason.FILE_INVALID,
            "{tmp}/current/heartbeat cannot be reached: a symlink loop in a directory on the way "
            "(too many levels of symbolic links)",
            id="directory-on-the-way-a-loop",
        ),
    ],
)
def test_a_symlink_is_named_for_what_it_is(
    tmp_path: Path,
    make: Callable[[Path], Path],
    reason: Reason,
    output: str,
    content_options: dict[str, str],
) -> None:
    path = make(tmp_path)

    result = returns_promptly(lambda: check(path=path, **content_options), path)

    assert (result.status, result.reason) == (Status.FAIL, reason)
    assert result.output == output.format(tmp=tmp_path)
    assert result.observed_value is None


def test_a_symlink_is_followed_to_its_target(tmp_path: Path) -> None:
    touch(make_directory(tmp_path / "beats") / "heartbeat", age=45, content="status: ok")
    heartbeat = link(tmp_path / "heartbeat", "beats/heartbeat")  # the link itself is new

    result = check(path=heartbeat, max_age="30s", contains="ok")

    assert (result.status, result.reason) == (Status.FAIL, Reason.FILE_STALE)
    assert result.observed_value == pytest.approx(45, abs=5)


def test_permission_denied_following_a_symlink(
    tmp_path: Path, locked: Callable[[Path], Path]
) -> None:
    touch(make_directory(tmp_path / "private") / "heartbeat")
    heartbeat = link(tmp_path / "heartbeat", "private/heartbeat")
    locked(tmp_path / "private")

    result = unprivileged(lambda: check(path=heartbeat))

    assert (result.status, result.reason) == (Status.FAIL, Reason.PERMISSION_DENIED)
    assert result.output == (
        f"{heartbeat} is a symlink to private/heartbeat, which cannot be followed: "
        "permission denied"
    )


def projected_volume(directory: Path, version: str, age: float, content: str) -> None:
    """Publish `version` of a Kubernetes Secret/ConfigMap volume as the kubelet does.

    The files live in a timestamped directory; `..data` points at it and is
    swapped by a rename, so readers see the old or the new version whole; each
    visible name is a symlink through `..data`.
    """
    touch(make_directory(directory / version) / "heartbeat", age=age, content=content)
    link(directory / "..data_tmp", version)
    os.rename(directory / "..data_tmp", directory / "..data")
    if not os.path.lexists(directory / "heartbeat"):
        link(directory / "heartbeat", "..data/heartbeat")


def test_a_kubernetes_projected_volume_is_judged_by_the_file_behind_data(tmp_path: Path) -> None:
    volume = make_directory(tmp_path / "volume")
    projected_volume(volume, "..2026_11_30_09_00_00.1", age=600, content="status: starting")
    # The links are brand new: judging them instead of the file would pass.
    options = {"path": volume / "heartbeat", "max_age": "30s"}

    before = check(**options)
    assert before.reason is Reason.FILE_STALE
    assert before.observed_value == pytest.approx(600, abs=5)
    assert check(**options, contains="ready").reason is Reason.FILE_STALE

    projected_volume(volume, "..2026_11_30_09_10_00.2", age=1, content="status: ready")

    after = check(**options, contains="ready")
    assert after.status is Status.PASS
    assert after.observed_value == pytest.approx(1, abs=5)

    shutil.rmtree(volume / "..2026_11_30_09_10_00.2")  # the version behind ..data is removed

    gone = check(**options)
    assert (gone.status, gone.reason) == (Status.FAIL, Reason.FILE_MISSING)
    assert (
        gone.output == f"{volume}/heartbeat is a symlink to ..data/heartbeat, which does not exist"
    )


def test_a_symlink_whose_target_is_removed_before_the_read_is_named_dangling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release removed between the probe's look and its read: the window is
    made to happen by removing the real target just before the open."""
    target = touch(make_directory(tmp_path / "release-1") / "status", content="ready")
    status = link(tmp_path / "status", "release-1/status")
    real_open = os.open

    def open_after_the_removal(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path) == str(status):
            target.unlink(missing_ok=True)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_after_the_removal)

    result = check(path=status, contains="ready")

    assert (result.status, result.reason) == (Status.FAIL, Reason.FILE_MISSING)
    assert result.output == f"{status} is a symlink to release-1/status, which does not exist"


def test_content_and_age_agree_while_a_writer_keeps_replacing_the_file(tmp_path: Path) -> None:
    """The same, with a real writer racing the probe: fresh versions say
    "starting", stale ones "ready", so only a mix of two versions could pass."""
    status = tmp_path / "status"
    touch(status, content="status: starting")
    stop = threading.Event()

    def writer() -> None:
        for version in range(1_000_000):
            if stop.is_set():
                return
            fresh = version % 2 == 0
            new = touch(
                tmp_path / f".status.{version}",
                age=0 if fresh else 600,
                content="status: starting" if fresh else "status: ready",
            )
            os.rename(new, status)

    racing = threading.Thread(target=writer, daemon=True)
    racing.start()
    seen: set[Reason | None] = set()
    passes = 0
    deadline = time.monotonic() + 10
    try:
        for run in range(5000):
            result = check(path=status, max_age="30s", contains="ready")
            seen.add(result.reason)
            passes += result.status is Status.PASS
            raced = seen >= {Reason.FILE_STALE, Reason.BODY_MISMATCH}
            if (raced and run >= 500) or time.monotonic() > deadline:
                break
    finally:
        stop.set()
        racing.join(timeout=10)
    assert seen >= {Reason.FILE_STALE, Reason.BODY_MISMATCH}, "the writer never raced the probe"
    assert passes == 0


def test_content_and_age_come_from_the_same_file_when_it_is_replaced_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An atomic writer renames a new version over the file between the
    probe's first look and its read: the window cannot be hit on demand, so
    the real rename is made to happen just before the probe opens the file."""
    status = touch(tmp_path / "status", age=0, content="status: starting")
    replacement = touch(tmp_path / ".status.tmp", age=600, content="status: ready")
    real_open = os.open

    def open_after_the_rename(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path) == str(status) and replacement.exists():
            os.rename(replacement, status)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_after_the_rename)

    result = check(path=status, max_age="30s", contains="ready")

    assert not replacement.exists()
    # A fresh "starting" file, then a stale "ready" one: neither passes.
    assert (result.status, result.reason) == (Status.FAIL, Reason.FILE_STALE)
    assert result.observed_value == pytest.approx(600, abs=5)


# --- permission -------------------------------------------------------------------------


def test_permission_denied_on_the_directory(tmp_path: Path, locked: Callable[[Path], Path]) -> None:
    directory = tmp_path / "private"
    heartbeat = touch(make_directory(directory) / "heartbeat")
    locked(directory)

    result = unprivileged(lambda: check(path=heartbeat))

    assert (result.status, result.reason) == (Status.FAIL, Reason.PERMISSION_DENIED)
    assert result.output == f"permission denied looking up {heartbeat}"


def test_permission_denied_reading_the_file(tmp_path: Path, locked: Callable[[Path], Path]) -> None:
    heartbeat = locked(touch(tmp_path / "heartbeat", content="ok"))

    result = unprivileged(lambda: check(path=heartbeat, contains="ok"))

    assert (result.status, result.reason) == (Status.FAIL, Reason.PERMISSION_DENIED)
    assert result.output == f"permission denied reading {heartbeat}"


def test_a_mode_000_file_still_has_an_age(tmp_path: Path, locked: Callable[[Path], Path]) -> None:
    heartbeat = locked(touch(tmp_path / "heartbeat", age=2))

    result = unprivileged(lambda: check(path=heartbeat, max_age="30s"))

    assert result.status is Status.PASS


# --- exists: false -----------------------------------------------------------------------


def flag_file(path: Path) -> Path:
    return touch(path, age=300)


def flag_link_to_a_missing_reason(path: Path) -> Path:
    return link(path, "reasons/maintenance.txt")


def flag_link_to_a_file(path: Path) -> Path:
    touch(make_directory(path.parent / "reasons") / "maintenance.txt", age=300)
    return link(path, "reasons/maintenance.txt")


def flag_link_loop(path: Path) -> Path:
    return link(path, path.name)


def flag_link_to_a_directory(path: Path) -> Path:
    make_directory(path.parent / "reasons")
    return link(path, "reasons")


@pytest.mark.parametrize(
    ("make", "reason", "output"),
    [
        pytest.param(
            flag_file,
            Reason.FILE_PRESENT,
            r"^{path} is present \(modified 300\.\ds ago\), expected absent$",
            id="a-file",
        ),
        pytest.param(
            make_directory,
            Reason.FILE_PRESENT,
            r"^{path} is present \(a directory, modified \d+\.\ds ago\), expected absent$",
            id="a-directory",
        ),
        pytest.param(
            make_fifo,
            Reason.FILE_PRESENT,
            r"^{path} is present \(a FIFO, modified \d+\.\ds ago\), expected absent$",
            id="a-fifo",
        ),
        pytest.param(
            make_socket,
            Reason.FILE_PRESENT,
            r"^{path} is present \(a socket, modified \d+\.\ds ago\), expected absent$",
            id="a-socket",
        ),
        pytest.param(
            flag_link_to_a_missing_reason,
            Reason.FILE_PRESENT,
            r"^{path} is present \(a symlink to reasons/maintenance\.txt, which does not exist\), "
            "expected absent$",
            id="a-dangling-symlink",
        ),
        pytest.param(
            flag_link_to_a_file,
            Reason.FILE_PRESENT,
            r"^{path} is present \(a symlink to reasons/maintenance\.txt, modified 300\.\ds ago\), "
            "expected absent$",
            id="a-symlink-to-a-file",
        ),
        pytest.param(
            flag_link_to_a_directory,
            Reason.FILE_PRESENT,
            r"^{path} is present \(a symlink to reasons, a directory, modified \d+\.\ds ago\), "
            "expected absent$",
            id="a-symlink-to-a-directory",
        ),
        pytest.param(
            flag_link_loop,
            Reason.FILE_PRESENT,
            r"^{path} is present \(a symlink loop \({path} -> maintenance\)\), expected absent$",
            id="a-symlink-loop",
        ),
    ],
)
def test_a_maintenance_flag_is_present_whatever_it_is(
    tmp_path: Path, make: Callable[[Path], Any], reason: Reason, output: str
) -> None:
    """Like goss's `exists`, and unlike `test -e`: a symlink is there even
    when what it points to is not."""
    flag = tmp_path / "maintenance"
    make(flag)

    result = returns_promptly(lambda: check(path=flag, exists=False), flag)

    assert (result.status, result.reason) == (Status.FAIL, reason)
    assert re.search(with_path(output, flag), result.output), result.output


def file_where_the_directory_should_be(tmp: Path) -> tuple[str, str]:
    touch(tmp / "run")
    return "run/maintenance", "{tmp}/run/maintenance is absent ({tmp}/run is not a directory)"


def file_named_with_a_trailing_slash(tmp: Path) -> tuple[str, str]:
    touch(make_directory(tmp / "run") / "maintenance")
    return (
        "run/maintenance/",
        "{tmp}/run/maintenance/ is absent ({tmp}/run/maintenance is not a directory)",
    )


def dangling_link_where_the_directory_should_be(tmp: Path) -> tuple[str, str]:
    link(tmp / "run", "run-2")
    return (
        "run/maintenance",
        "{tmp}/run/maintenance is absent "
        "(directory {tmp}/run is a symlink to run-2, which does not exist)",
    )


def no_directory(tmp: Path) -> tuple[str, str]:
    return "run/maintenance", "{tmp}/run/maintenance is absent (directory {tmp}/run does not exist)"


def an_empty_directory(tmp: Path) -> tuple[str, str]:
    make_directory(tmp / "run")
    return "run/maintenance", "{tmp}/run/maintenance is absent"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(an_empty_directory, id="absent"),
        pytest.param(no_directory, id="directory-missing"),
        pytest.param(file_where_the_directory_should_be, id="file-where-the-directory-should-be"),
        pytest.param(file_named_with_a_trailing_slash, id="file-named-with-a-trailing-slash"),
        pytest.param(
            dangling_link_where_the_directory_should_be,
            id="dangling-symlink-where-the-directory-should-be",
        ),
    ],
)
def test_a_maintenance_flag_that_cannot_be_there_passes_and_says_why(
    tmp_path: Path, make: Callable[[Path], tuple[str, str]]
) -> None:
    relative, output = make(tmp_path)

    result = check(path=f"{tmp_path}/{relative}", exists=False)

    assert (result.status, result.reason) == (Status.PASS, None)
    assert result.output == output.format(tmp=tmp_path)


def test_a_maintenance_flag_behind_a_locked_directory_is_not_taken_for_absent(
    tmp_path: Path, locked: Callable[[Path], Path]
) -> None:
    flag = tmp_path / "private" / "maintenance"
    touch(make_directory(flag.parent) / "other")
    locked(flag.parent)

    result = unprivileged(lambda: check(path=flag, exists=False))

    assert (result.status, result.reason) == (Status.FAIL, Reason.PERMISSION_DENIED)
    assert result.output == f"permission denied looking up {flag}"


# --- content ------------------------------------------------------------------------------

SECRET = "token=s3cr3t-value"
PAST_THE_LIMIT = "x" * CONTENT_LIMIT


@pytest.mark.parametrize(
    ("content", "options", "status", "output"),
    [
        pytest.param(
            "status: ready\n",
            {"contains": "ready"},
            Status.PASS,
            r"^modified \d+\.\ds ago$",
            id="contains",
        ),
        pytest.param(
            f"{SECRET}\nstatus: starting\n",
            {"contains": "ready"},
            Status.FAIL,
            "^{path} does not contain 'ready'$",
            id="does-not-contain",
        ),
        pytest.param(
            "status: ready\n",
            {"regex": "^status: (ready|ok)$"},
            Status.PASS,
            "^modified",
            id="regex",
        ),
        pytest.param(
            f"{SECRET}\n",
            {"regex": "^status: (ready|ok)$"},
            Status.FAIL,
            r"^{path} does not match regex '\^status: \(ready\|ok\)\$'$",
            id="regex-does-not-match",
        ),
        pytest.param(
            "status: ready\n",
            {"contains": "ready", "regex": "^status"},
            Status.PASS,
            "^modified",
            id="contains-and-regex",
        ),
        pytest.param(
            "status: ready\n",
            {"contains": "ready", "regex": "^ok"},
            Status.FAIL,
            "does not match regex",
            id="contains-but-regex-fails",
        ),
        pytest.param(
            f"{PAST_THE_LIMIT}ready",
            {"contains": "ready"},
            Status.FAIL,
            "^the first 64 KiB of {path} does not contain 'ready'$",
            id="needle-past-64-KiB",
        ),
        pytest.param(
            f"{PAST_THE_LIMIT[:-2]}ready",
            {"contains": "ready"},
            Status.FAIL,
            "does not contain",
            id="needle-across-the-64-KiB-boundary",
        ),
        pytest.param(
            f"{PAST_THE_LIMIT[:-5]}ready",
            {"contains": "ready"},
            Status.PASS,
            "^modified",
            id="needle-ending-at-64-KiB",
        ),
        pytest.param(
            f"{PAST_THE_LIMIT}ready",
            {"regex": "ready"},
            Status.FAIL,
            "^the first 64 KiB of {path} does not match regex 'ready'$",
            id="regex-past-64-KiB",
        ),
        pytest.param(
            b"\xff\xfe\x00ready\x80",
            {"regex": "ready"},
            Status.PASS,
            "^modified",
            id="regex-in-binary-content",
        ),
        pytest.param("", {"contains": "ready"}, Status.FAIL, "does not contain", id="empty-file"),
    ],
)
def test_content(
    tmp_path: Path,
    content: str | bytes,
    options: dict[str, str],
    status: Status,
    output: str,
) -> None:
    path = touch(tmp_path / "status", content=content)

    result = check(path=path, **options)

    assert result.status is status
    assert result.reason is (Reason.BODY_MISMATCH if status is Status.FAIL else None)
    assert re.search(with_path(output, path), result.output), result.output
    assert SECRET not in result.output
    assert result.observed_unit == "s"


def test_content_is_read_only_when_the_file_is_fresh(tmp_path: Path) -> None:
    path = touch(tmp_path / "status", age=60, content="status: starting")

    result = check(path=path, max_age="30s", contains="ready")

    assert result.reason is Reason.FILE_STALE
