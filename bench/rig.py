"""The test rig: settings, the servers under test and how they are loaded.

Layout on the machine: the server under test (adapter, bare aiohttp,
blackbox_exporter) runs pinned to the first CPU; the load generator, the
watched app and everything else run on the others. Each server under test thus
gets the same one core, and the load generator never competes with it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import configs
from bench.load import WrkRun, get, run_wrk
from bench.procs import Supervisor, free_port


@dataclasses.dataclass(frozen=True)
class Settings:
    load_seconds: float = 4.0  # one wrk run
    rounds: int = 5  # wrk runs per target, interleaved with the other targets' runs
    warmup_seconds: float = 2.0
    connections: int = 50
    polls: int = 1000
    hang_timeout: str = "2s"  # the checks' timeout in figure 3
    scale: tuple[int, ...] = (10, 100, 1000, 5000)
    scale_keep_alive: tuple[int, ...] = (1000, 5000)  # the same with keep_alive: true
    window: float = 10.0  # CPU and drift are measured over this many seconds
    process_window: float = 20.0
    settle: float = 5.0  # after every check has its first result
    extra_processes: int = 2000
    process_checks: tuple[int, ...] = (10, 100)
    footprint: tuple[int, ...] = (10, 100)
    startups: int = 5

    @classmethod
    def quick(cls) -> Settings:
        """A few seconds per figure: proves that the harness runs, measures nothing."""
        return cls(
            load_seconds=1.0,
            rounds=1,
            warmup_seconds=0.0,
            polls=100,
            hang_timeout="300ms",
            scale=(10,),
            scale_keep_alive=(),
            window=1.0,
            process_window=1.5,
            settle=0.2,
            extra_processes=50,
            process_checks=(2, 10),
            footprint=(10,),
            startups=1,
        )


@dataclasses.dataclass(frozen=True)
class Row:
    figure: str
    what: str
    value: str
    target: str = ""
    met: bool | None = None  # None: a figure to report, without a target
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


class Skipped(Exception):
    """A figure cannot be measured here (a tool is missing); the message says why."""


@dataclasses.dataclass(frozen=True)
class Series:
    """The wrk runs of one target; its figures are the medians over the runs."""

    runs: tuple[WrkRun, ...]

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    def describe(self) -> str:
        text = f"{self.rate:,.0f} req/s; p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms"
        if len(self.runs) > 1:
            rates = sorted(run.rate for run in self.runs)
            text += (
                f" (median of {len(rates)} runs; req/s {rates[0]:,.0f}-{rates[-1]:,.0f},"
                f" p99 up to {max(run.p99_ms for run in self.runs):.2f} ms)"
            )
        errors = sum(run.errors for run in self.runs)
        statuses = sum(run.status_errors for run in self.runs)
        if errors or statuses:
            text += f"; {errors} errors, {statuses} error statuses"
        return text

    def data(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "runs": [dataclasses.asdict(run) for run in self.runs],
        }


@dataclasses.dataclass
class Adapter:
    """A running adapter process and its port."""

    child: subprocess.Popen[Any]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until(
        self, path: str, accept: Callable[[int, bytes], bool], timeout: float = 60.0
    ) -> None:
        deadline = time.monotonic() + timeout
        status, body = 0, b""
        while time.monotonic() < deadline:
            status, body = get(self.url + path)
            if accept(status, body):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{path} not as expected after {timeout:g}s: {status} {body[:300]!r}")

    def wait_passing(self, timeout: float = 60.0) -> None:
        self.wait_until("/health", lambda status, _: status == 200, timeout)


@dataclasses.dataclass
class Host(Adapter):
    """The adapter run by bench/host.py, which answers commands on stdin/stdout."""

    def command(self, line: str, timeout: float = 30.0) -> Any:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(line.encode() + b"\n")
        self.child.stdin.flush()
        ready, _, _ = select.select([self.child.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"the adapter did not answer {line!r} within {timeout:g}s")
        answer = self.child.stdout.readline()
        if not answer:
            raise RuntimeError(f"the adapter exited (code {self.child.poll()})")
        return json.loads(answer)

    def stats(self) -> dict[str, Any]:
        return dict(self.command("stats"))

    def reset(self) -> None:
        self.command("reset")

    def wait_results(self, count: int, timeout: float) -> None:
        """Wait until `count` checks have a result."""
        deadline = time.monotonic() + timeout
        while (have := self.stats()["with_result"]) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {have} of {count} checks have a result after {timeout:g}s"
                )
            time.sleep(0.2)


@dataclasses.dataclass
class Bench:
    supervisor: Supervisor
    workdir: Path
    settings: Settings
    #: CPUs for the server under test, and for everything else (None: no pinning).
    server_cpus: set[int] | None = None
    other_cpus: set[int] | None = None
    app_port: int = 0

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @staticmethod
    def python(*args: str) -> list[str]:
        return [sys.executable, *args]

    def start_app(self) -> None:
        self.app_port = free_port()
        child = self.supervisor.start(
            self.python("-m", "bench.servers", "app", "--port", str(self.app_port)),
            log="app",
            cpus=self.other_cpus,
        )
        self.supervisor.wait_listening(self.app_port, child)

    def app_requests(self) -> int:
        """The requests the watched app has received so far."""
        _, body = get(f"{self.app_url}/__count")
        return int(body)

    def config(self, name: str, text: str) -> Path:
        return configs.write(self.workdir, name, text)

    @contextmanager
    def adapter(self, config: Path, log: str) -> Iterator[Adapter]:
        """`health-adapter serve`, exactly as a container runs it."""
        port = free_port()
        child = self.supervisor.start(
            self.python(
                "-m", "adapter", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"
            ),
            log=log,
            cpus=self.server_cpus,
        )
        try:
            self.supervisor.wait_listening(port, child)
            yield Adapter(child, port)
        finally:
            self.supervisor.stop(child)

    @contextmanager
    def host(self, config: Path, log: str) -> Iterator[Host]:
        """The adapter with the harness's control line (see bench/host.py)."""
        port = free_port()
        child = self.supervisor.start(
            self.python(
                "-m", "bench.host", "--config", str(config), "--listen", f"127.0.0.1:{port}"
            ),
            log=log,
            cpus=self.server_cpus,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            self.supervisor.wait_listening(port, child, timeout=120)
            yield Host(child, port)
        finally:
            self.supervisor.stop(child)

    def interleaved(self, urls: dict[str, str]) -> dict[str, Series]:
        """Load each URL in turn, `rounds` times over: a Series of wrk runs per URL.

        A shared machine's speed drifts over minutes; runs of the targets that
        are close in time keep that drift out of their comparison.
        """
        settings = self.settings
        runs: dict[str, list[WrkRun]] = {name: [] for name in urls}

        def load(url: str, seconds: float) -> WrkRun:
            return run_wrk(
                self.supervisor,
                url,
                connections=settings.connections,
                seconds=seconds,
                cpus=self.other_cpus,
            )

        if settings.warmup_seconds:
            for url in urls.values():
                load(url, settings.warmup_seconds)
        for _ in range(settings.rounds):
            for name, url in urls.items():
                runs[name].append(load(url, settings.load_seconds))
        return {name: Series(tuple(series)) for name, series in runs.items()}


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """The first CPU for the server under test, the others for everything else."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])
