"""Podman for the image tests: the engine's settings on these machines, the images
built from this checkout, and containers that are always removed by name.

The base images come from scripts/build-base-image.sh (Debian packages, no
registry); they and the build layers are cached between runs, and one build runs
at a time on a machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import ROOT

BUILD_TIMEOUT = 900  # a cold build: Debian packages for the bases, then wheels from PyPI
BASE_IMAGE = "localhost/health-adapter-base:bookworm"
IMAGE = "localhost/health-adapter"
BUILD_LOCK = Path("/tmp/health-adapter-e2e-build.lock")

# Podman on these machines needs runc and no default ulimits (crun refuses the
# cgroup layout); a CONTAINERS_CONF set by the caller wins.
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""

T = TypeVar("T")

needs_podman = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")


@dataclass(frozen=True)
class Podman:
    env: dict[str, str]

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def inspect(self, name: str) -> dict[str, object]:
        return dict(json.loads(self("inspect", name).stdout)[0])


def make_podman(directory: Path) -> Podman:
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env and shutil.which("runc"):
        conf = directory / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        env["CONTAINERS_CONF"] = str(conf)
    return Podman(env)


def image_id(podman: Podman, reference: str) -> str | None:
    done = podman("image", "inspect", "--format", "{{.Id}}", reference, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def build_adapter_image(podman: Podman, variant: str, workdir: Path, extras: str = "") -> str:
    """This checkout's image on the `slim` (the default) or `full` runtime base,
    with the project's `extras` (comma-separated) installed.

    Returns a tag of its own for the caller's run (remove it with `podman rmi`);
    the shared `e2e-VARIANT` tag keeps the build cache warm for the next run.
    """
    flavour = variant + "".join(f"-{extra}" for extra in extras.split(",") if extra)
    tag = f"{IMAGE}:e2e-{flavour}-{uuid.uuid4().hex[:8]}"
    with BUILD_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time on a machine
        script = subprocess.run(
            [
                str(ROOT / "scripts" / "build-base-image.sh"),
                *(["--full"] if variant == "full" else []),
                BASE_IMAGE,
            ],
            env={**podman.env, "ENGINE": "podman", "TMPDIR": str(workdir)},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        assert script.returncode == 0, f"build-base-image.sh:\n{script.stdout}{script.stderr}"
        shared = f"{IMAGE}:e2e-{flavour}"
        previous = image_id(podman, shared)
        podman(
            "build",
            "--format",
            "docker",  # keeps the HEALTHCHECK
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "--build-arg",
            f"RUNTIME_IMAGE={BASE_IMAGE}-{variant}",
            "--build-arg",
            f"EXTRAS={extras}",
            "-t",
            shared,
            "-t",
            tag,
            str(ROOT),
            timeout=BUILD_TIMEOUT,
        )
        if previous not in (None, image_id(podman, shared)):
            podman("rmi", previous, check=False)  # refused (and kept) while in use
    return tag


@contextlib.contextmanager
def container(
    podman: Podman, image: str, *options: str, args: tuple[str, ...] = ()
) -> Iterator[str]:
    """`podman run -d` with a name of its own; the container is removed by that name
    whatever happens, and its logs are printed for the test's report."""
    name = f"ha-e2e-{uuid.uuid4().hex[:8]}"
    try:
        podman("run", "-d", "--name", name, "--health-cmd", "none", *options, image, *args)
        yield name
    finally:
        logs = podman("logs", "--tail", "40", name, check=False)
        print(f"--- {name} logs\n{logs.stdout}{logs.stderr}")
        podman("rm", "-f", "-t", "0", name, check=False)


def host_pid(podman: Podman, name: str) -> int:
    """The container's main process as the host sees it."""
    state = podman.inspect(name)["State"]
    assert isinstance(state, dict)
    return int(state["Pid"])


def wait_until(what: str, predicate: Callable[[], T | None], timeout: float = 60) -> T:
    """Poll `predicate` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except OSError as error:
            last = error
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
