"""The example third-party package, examples/acme-probes, installed by pip as a user
installs it, then used from a config by its entry-point names; and its own tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "acme-probes"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process in which acme-probes is installed.

    pip builds and installs it into a directory of its own (the package's
    health-adapter dependency is this checkout, so --no-deps), from a copy so
    the build leaves nothing in the repository.
    """
    work = tmp_path_factory.mktemp("acme")
    source = work / "source"
    shutil.copytree(EXAMPLE, source)
    target = work / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "acme_probes-0.1.0.dist-info" / "entry_points.txt").exists()
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)]),
        "ACME_SOURCE": str(source),
    }


async def adapter(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapter",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
async def queue_port() -> AsyncIterator[int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, name = (await reader.readline()).decode().split()
        writer.write(b"12\n" if name == "orders" else b"0\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_the_types_are_listed_with_their_distribution(installed: dict[str, str]) -> None:
    code, stdout, stderr = await adapter(installed, "probes")
    assert code == 0, stderr
    rows = {line.split()[0]: line.split()[1:3] for line in stdout.splitlines()}
    assert rows["queue_depth"] == ["acme-probes", "0.1.0"]
    assert rows["spool_depth"] == ["acme-probes", "0.1.0"]

    code, stdout, stderr = await adapter(installed, "probes", "spool_depth")
    assert code == 0, stderr
    assert "  older_than: duration, optional\n" in stdout
    assert "  max_files: integer >= 0, required\n" in stdout


async def test_a_config_uses_them_by_entry_point_name(
    installed: dict[str, str], queue_port: int, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    for index in range(3):
        (spool / f"m{index}").write_text("x")
    config = tmp_path / "health.yaml"
    config.write_text(
        "checks:\n"
        f"  - {{name: orders, queue_depth: {{port: {queue_port}, queue: orders, "
        "max_depth: 100, warn_depth: 10}}\n"
        f"  - {{name: outbox, spool_depth: {{directory: '{spool}', max_files: 2}}}}\n"
    )

    code, stdout, stderr = await adapter(installed, "check", "--config", str(config))

    assert code == 2, stdout + stderr
    assert stdout.splitlines() == [
        "HEALTH CRITICAL - 1 of 2 checks failing: outbox | 'outbox'=3;;;; 'orders'=12;;;;",
        f"[FAIL] outbox: 3 files in {spool}, more than 2 (failed)",
        "[WARN] orders: 12 messages wait in orders",
    ]


async def test_their_options_are_validated_like_the_builtins(
    installed: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "health.yaml"
    config.write_text(
        "checks:\n  - {name: outbox, spool_depth: {directory: /x, max_fils: 2}}\n"
        "  - {name: q, queue_depth: {port: 1, max_depth: 5, warn_depth: 9}}\n"
    )

    code, _, stderr = await adapter(installed, "validate", "--config", str(config))

    assert code == 2
    assert stderr.splitlines()[1:] == [
        "  checks[0] (outbox).spool_depth.max_fils: unknown key; did you mean 'max_files'?",
        "  checks[1] (q).queue_depth.warn_depth: warn_depth must not exceed max_depth",
    ]


async def test_the_schema_has_their_options(installed: dict[str, str]) -> None:
    code, stdout, stderr = await adapter(installed, "schema")
    assert code == 0, stderr
    assert '"queue_depth.Options"' in stdout and '"spool_depth.Options"' in stdout


def test_the_example_packages_own_tests_pass(installed: dict[str, str]) -> None:
    source = Path(installed["ACME_SOURCE"])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=source,
        env=installed,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("14 passed")
