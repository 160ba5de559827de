"""Sentinel files that misbehave: huge, a FIFO, unreadable, on a path that blocks,
from the future, or a dangling symlink."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import probes.file
from probes.file import FileProbe
from tests.faults.conftest import (
    MAX_LATENCY,
    Footprint,
    assert_nothing_left,
    check_entry,
    running_adapter,
)


def file_check(path: Path | str, **options: Any) -> str:
    extra = "".join(f", {key}: {value!r}" for key, value in options.items())
    return (
        "checks:\n"
        f"  - {{name: file, interval: 100ms, timeout: 300ms, file: {{path: {str(path)!r}{extra}}}}}\n"
        "  - {name: other, interval: 100ms, plugin: {class: 'tests.sample_probes:Ok'}}\n"
    )


async def verdict_of(config: str) -> dict[str, Any]:
    async with running_adapter(config) as adapter:
        body = await adapter.until(
            lambda status, b: check_entry(b, "file").get("reason") != "no_result"
        )
        polls = await adapter.poll(10)
    assert polls.slowest < MAX_LATENCY
    return check_entry(body, "file")


def sparse_file(path: Path, head: bytes, size: int) -> Path:
    with open(path, "wb") as stream:
        stream.write(head)
        stream.truncate(size)  # holes: no disk is used
    return path


@pytest.mark.parametrize(
    ("head", "options", "status", "output"),
    [
        pytest.param(b"READY", {"contains": "READY"}, "pass", "modified", id="text-at-the-start"),
        pytest.param(
            b"",
            {"contains": "READY"},
            "fail",
            "the first 64 KiB of {path} does not contain 'READY'",
            id="text-absent",
        ),
        pytest.param(
            b"",
            {"regex": "^READY"},
            "fail",
            "the first 64 KiB of {path} does not match regex '^READY'",
            id="regex",
        ),
    ],
)
async def test_a_huge_sentinel_file_is_read_64KiB_deep(
    tmp_path: Path, head: bytes, options: dict[str, str], status: str, output: str
) -> None:
    path = sparse_file(tmp_path / "huge", head, 16 * 1024**3)
    before = Footprint.take()
    entry = await verdict_of(file_check(path, **options))
    await assert_nothing_left(before)
    assert entry["status"] == status
    assert entry["output"].startswith(output.format(path=path))


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="exists"),
        pytest.param({"contains": "x"}, id="contains"),
        pytest.param({"max_age": "10s"}, id="max-age"),
    ],
)
async def test_a_fifo_is_reported_and_never_opened(tmp_path: Path, options: dict[str, str]) -> None:
    fifo = tmp_path / "heartbeat"
    os.mkfifo(fifo)
    before = Footprint.take()
    entry = await verdict_of(file_check(fifo, **options))
    await assert_nothing_left(before)  # no thread is left blocked in open()
    assert (entry["status"], entry["reason"]) == ("fail", "file_invalid")
    assert entry["output"] == f"{fifo} is a FIFO, not a regular file"


async def test_a_file_that_cannot_be_read_even_by_root() -> None:
    # /proc/self/mem is a regular file whose first page is never mapped: reading it fails.
    before = Footprint.take()
    entry = await verdict_of(file_check("/proc/self/mem", contains="x"))
    await assert_nothing_left(before)
    assert (entry["status"], entry["reason"]) == ("fail", "failed")
    assert entry["output"] == "cannot read /proc/self/mem: Input/output error"


def check_as_unprivileged_user(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Run the real file probe in a forked child that dropped root, as a sidecar
    running as a non-root user does; return its result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            result = FileProbe("file", {"path": str(path), **options}).check()
            os.write(
                write,
                json.dumps(
                    {
                        "status": result.status.value,
                        "output": result.output,
                        "reason": result.reason and result.reason.value,
                    }
                ).encode(),
            )
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        data = stream.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    answer: dict[str, Any] = json.loads(data)
    return answer


@pytest.mark.parametrize(
    ("where", "options", "reason", "output"),
    [
        pytest.param(
            "file",
            {"contains": "x"},
            "permission_denied",
            "permission denied reading {path}",
            id="file-mode-000",
        ),
        pytest.param(
            "directory",
            {},
            "permission_denied",
            "permission denied looking up {path}",
            id="directory-mode-000",
        ),
    ],
)
def test_an_unreadable_file(where: str, options: dict[str, Any], reason: str, output: str) -> None:
    # Not under tmp_path: pytest keeps that private to its user, so an unprivileged
    # user could not even reach it.
    base = Path(tempfile.mkdtemp(prefix="health-adapter-"))
    base.chmod(0o755)
    directory = base / "locked"
    directory.mkdir()
    path = directory / "heartbeat"
    path.write_text("x")
    (path if where == "file" else directory).chmod(0)
    try:
        if os.geteuid() == 0:
            result = check_as_unprivileged_user(path, options)
        else:
            probe = FileProbe("file", {"path": str(path), **options})
            outcome = probe.check()
            result = {
                "status": outcome.status.value,
                "output": outcome.output,
                "reason": outcome.reason and outcome.reason.value,
            }
    finally:
        directory.chmod(0o755)
        shutil.rmtree(base)
    assert result == {"status": "fail", "reason": reason, "output": output.format(path=path)}


async def test_a_path_that_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing on this machine blocks a lookup on demand (a dead NFS or FUSE
    # mount would): this one case uses a fake, an os.stat and os.lstat that
    # hang for one path.
    path = tmp_path / "on-a-dead-mount"
    path.write_text("x")
    hang = threading.Event()
    release = threading.Event()

    def hanging(real: Callable[..., os.stat_result]) -> Callable[..., os.stat_result]:
        def look_up(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            if str(target) == str(path) and not release.is_set():
                hang.set()
                release.wait(30)
            return real(target, *args, **kwargs)

        return look_up

    fake_os = types.SimpleNamespace(
        **{name: getattr(os, name) for name in dir(os) if not name.startswith("__")}
    )
    fake_os.stat = hanging(os.stat)
    fake_os.lstat = hanging(os.lstat)
    monkeypatch.setattr(probes.file, "os", fake_os)
    before = Footprint.take()
    try:
        async with running_adapter(file_check(path)) as adapter:
            body = await adapter.until(
                lambda status, b: check_entry(b, "file").get("reason") == "stuck"
            )
            assert check_entry(body, "file")["output"] == (
                "previous run still running (timed out after 300ms)"
            )
            assert check_entry(body, "other")["status"] == "pass"
            polls = await adapter.poll(20)
            assert polls.slowest < MAX_LATENCY
            assert all(check_entry(b, "other")["status"] == "pass" for b in polls.bodies)
            release.set()  # the mount comes back
            await adapter.until(lambda status, b: check_entry(b, "file")["status"] == "pass")
    finally:
        release.set()
    assert hang.is_set()
    await assert_nothing_left(before)


def future_heartbeat(tmp: Path) -> Path:
    heartbeat = tmp / "heartbeat"
    heartbeat.write_text("")
    ahead = time.time() + 7200  # the writer's clock two hours ahead, then it stopped
    os.utime(heartbeat, (ahead, ahead))
    return heartbeat


def dangling_heartbeat(tmp: Path) -> Path:
    heartbeat = tmp / "heartbeat"
    os.symlink(tmp / "releases" / "current" / "heartbeat", heartbeat)
    return heartbeat


def dangling_maintenance_flag(tmp: Path) -> Path:
    flag = tmp / "maintenance"
    os.symlink(tmp / "reasons" / "maintenance.txt", flag)
    return flag


@pytest.mark.parametrize(
    ("make", "options", "reason", "output", "observed"),
    [
        pytest.param(
            future_heartbeat,
            {"max_age": "30s"},
            "clock_skew",
            r"modified 7(199|200)\.\ds in the future \(clock skew\?\), max_clock_skew 5s",
            -7200,
            id="heartbeat-from-the-future",
        ),
        pytest.param(
            dangling_heartbeat,
            {"max_age": "30s"},
            "file_missing",
            "{tmp}/heartbeat is a symlink to {tmp}/releases/current/heartbeat, "
            "which does not exist",
            None,
            id="dangling-heartbeat",
        ),
        pytest.param(
            dangling_maintenance_flag,
            {"exists": False},
            "file_present",
            "{tmp}/maintenance is present (a symlink to {tmp}/reasons/maintenance.txt, "
            "which does not exist), expected absent",
            None,
            id="dangling-maintenance-flag",
        ),
    ],
)
async def test_a_sentinel_that_lies_about_itself_is_reported_as_it_is(
    tmp_path: Path,
    make: Callable[[Path], Path],
    options: dict[str, Any],
    reason: str,
    output: str,
    observed: float | None,
) -> None:
    path = make(tmp_path)
    entry = await verdict_of(file_check(path, **options))
    assert (entry["status"], entry["reason"]) == ("fail", reason)
    if observed is None:
        assert entry["output"] == output.format(tmp=tmp_path)
        assert "observedValue" not in entry
    else:
        assert re.fullmatch(output, entry["output"]), entry["output"]
        assert entry["observedValue"] == pytest.approx(observed, abs=5)
        assert entry["observedUnit"] == "s"
