"""The monitors' side: wrk for throughput and latency, and exact counts of polls."""

from __future__ import annotations

import dataclasses
import http.client
import json
import math
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

from bench.procs import Supervisor

REPORT_SCRIPT = Path(__file__).with_name("report.lua")


@dataclasses.dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connect, read, write errors and timeouts: requests without an answer
    status_errors: int  # answers with a status of 400 or more

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    supervisor: Supervisor,
    url: str,
    *,
    connections: int,
    seconds: float,
    cpus: set[int] | None = None,
    threads: int = 1,
) -> WrkRun:
    """Load `url` with `connections` keep-alive connections for `seconds`."""
    duration = max(1, math.ceil(seconds))
    child = supervisor.start(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "-s",
            str(REPORT_SCRIPT),
            url,
        ],
        log="wrk",
        cpus=cpus,
        stdout=subprocess.PIPE,
    )
    try:
        output, _ = child.communicate(timeout=duration + 30)
    finally:
        supervisor.stop(child)
    lines = [line for line in output.decode().splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed on {url} (exit {child.returncode}); see wrk.log")
    data = json.loads(lines[-1])
    return WrkRun(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=data["connect_errors"]
        + data["read_errors"]
        + data["write_errors"]
        + data["timeouts"],
        status_errors=data["status_errors"],
    )


def poll(url: str, count: int, *, deadline: float = 120.0) -> dict[int, int]:
    """GET `url` exactly `count` times, one after the other on one keep-alive
    connection; the number of answers per status code."""
    connection, target = _connection(url, timeout=10)
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + deadline
    try:
        for _ in range(count):
            if time.monotonic() > stop_at:
                raise RuntimeError(f"{count} polls of {url} took more than {deadline:g}s")
            connection.request("GET", target)
            response = connection.getresponse()
            response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
    finally:
        connection.close()
    return statuses


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One GET on a fresh connection: the status and the body."""
    connection, target = _connection(url, timeout)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout), target
