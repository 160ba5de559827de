"""The `file` probe against real files, directories, FIFOs, sockets and devices."""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import re
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
        {"path": "/shared/heartbeat", "max_age": "30s", "regex": "^ok$"}
    )

    assert options.max_age == Duration(30)
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
    ],
)
def test_invalid_options_are_reported_at_their_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(message)):
        FileProbe.parse_options(options)


def test_file_probe_runs_in_a_worker_thread() -> None:
    assert FileProbe.is_blocking()


# --- heartbeat ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "max_age", "status", "reason", "output"),
    [
        pytest.param(2, "30s", Status.PASS, None, r"^modified 2\.\ds ago$", id="fresh"),
        pytest.param(
            45,
            "30s",
            Status.FAIL,
            Reason.FILE_STALE,
            r"^modified 45\.\ds ago, max_age 30s$",
            id="stale",
        ),
        pytest.param(
            1,
            "250ms",
            Status.FAIL,
            Reason.FILE_STALE,
            r"^modified 1\.\ds ago, max_age 250ms$",
            id="stale-in-milliseconds",
        ),
        pytest.param(
            7200, None, Status.PASS, None, r"^modified 7200\.\ds ago$", id="old-without-max-age"
        ),
        pytest.param(
            -3600, "30s", Status.PASS, None, r"^modified 0\.0s ago$", id="mtime-in-the-future"
        ),
    ],
)
def test_heartbeat(
    tmp_path: Path,
    age: float,
    max_age: str | None,
    status: Status,
    reason: Reason | None,
    output: str,
) -> None:
    heartbeat = touch(tmp_path / "heartbeat", age=age)
    options = {} if max_age is None else {"max_age": max_age}

    result = check(path=heartbeat, **options)

    assert (result.status, result.reason) == (status, reason)
    assert re.match(output, result.output), result.output
    assert result.observed_unit == "s"
    assert isinstance(result.observed_value, float)
    assert result.observed_value == pytest.approx(max(age, 0), abs=5)
    assert result.observed_value == round(result.observed_value, 1)  # 0.1 s precision


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
    ],
)
def test_missing(tmp_path: Path, relative: str, reason: Reason, output: str) -> None:
    touch(tmp_path / "regular")

    result = check(path=tmp_path / relative)

    assert (result.status, result.reason) == (Status.FAIL, reason)
    assert result.output == output.format(tmp=tmp_path)
    assert result.observed_value is None


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


@pytest.mark.parametrize("content_options", [{}, {"contains": "ok"}], ids=["stat", "read"])
@pytest.mark.parametrize(
    ("make", "kind"),
    [
        pytest.param(make_directory, "directory", id="directory"),
        pytest.param(make_fifo, "FIFO", id="fifo"),
        pytest.param(make_socket, "socket", id="socket"),
        pytest.param(the_null_device, "character device", id="device"),
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


@pytest.mark.parametrize(
    ("make", "status", "reason", "output"),
    [
        pytest.param(None, Status.PASS, None, "^{path} is absent$", id="absent"),
        pytest.param(
            lambda path: touch(path, age=300),
            Status.FAIL,
            Reason.FILE_PRESENT,
            r"^{path} is present \(modified 300\.\ds ago\), expected absent$",
            id="present",
        ),
        pytest.param(
            make_directory,
            Status.FAIL,
            Reason.FILE_PRESENT,
            "^{path} is present",
            id="present-as-a-directory",
        ),
    ],
)
def test_maintenance_flag(
    tmp_path: Path,
    make: Callable[[Path], Any] | None,
    status: Status,
    reason: Reason | None,
    output: str,
) -> None:
    flag = tmp_path / "maintenance"
    if make is not None:
        make(flag)

    result = check(path=flag, exists=False)

    assert (result.status, result.reason) == (status, reason)
    assert re.search(with_path(output, flag), result.output), result.output


def test_maintenance_flag_in_a_missing_directory_passes_and_says_so(tmp_path: Path) -> None:
    flag = tmp_path / "run" / "maintenance"

    result = check(path=flag, exists=False)

    assert result.status is Status.PASS
    assert result.output == f"{flag} is absent (directory {tmp_path}/run does not exist)"


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
