"""Fixtures shared by the probe tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start child processes (`spawn(*argv)`) that are killed and reaped when the test ends."""
    children: list[subprocess.Popen[bytes]] = []

    def start(*argv: str | Path) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(argv)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
    for child in children:
        child.wait()


#: A program that takes the shapes real daemons take: `name NAME` renames itself
#: (prctl PR_SET_NAME), `title TITLE PAD...` rewrites its arguments into one title
#: padded with NULs (setproctitle, nginx, postgres), `spaced TITLE PAD...` pads
#: with spaces instead, `leader` ends its main thread while another runs on.
SHAPES_C = r"""
#include <pthread.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void *idle(void *unused) { (void)unused; sleep(60); return 0; }

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "name") == 0) {
        prctl(PR_SET_NAME, argv[2], 0, 0, 0);
    } else if (argc > 2 && (strcmp(argv[1], "title") == 0 || strcmp(argv[1], "spaced") == 0)) {
        char title[4096];
        char *start = argv[0];
        char *end = argv[argc - 1] + strlen(argv[argc - 1]);  /* the area's last NUL */
        size_t room = (size_t)(end - start), size;
        strncpy(title, argv[2], sizeof title - 1);
        title[sizeof title - 1] = 0;
        size = strlen(title) < room ? strlen(title) : room;
        memset(start, argv[1][0] == 't' ? '\0' : ' ', room);
        memcpy(start, title, size);
    } else if (argc > 1 && strcmp(argv[1], "leader") == 0) {
        pthread_t thread;
        pthread_create(&thread, 0, idle, 0);
        pthread_exit(0);
    }
    sleep(60);
    return 0;
}
"""


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SHAPES_C program, compiled (the test is skipped without a C compiler)."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("needs a C compiler (gcc or cc) to build a program that rewrites its title")
    directory = tmp_path_factory.mktemp("shapes")
    (directory / "shapes.c").write_text(SHAPES_C)
    subprocess.run(
        [compiler, "-pthread", "-o", str(directory / "shapes"), str(directory / "shapes.c")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory / "shapes"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll `condition` until it holds (or fail naming `what`)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


def proc_state(pid: int) -> str:
    """The state letter in /proc/PID/stat ("" once the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            return stream.read().rpartition(b")")[2].split()[0].decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def proc_bytes(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as stream:
            return stream.read()
    except (FileNotFoundError, ProcessLookupError):
        return b""
