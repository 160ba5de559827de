"""`python -m bench.cost`: what one adapter costs a pod when nobody is loading it.

    python -m bench.cost                 # about 6 minutes
    python -m bench.cost --quick         # about 40 s, short windows: proves it runs
    python -m bench.cost --output FILE.md

The figures a fleet pays for, at the rates fleets use (docs/performance.md,
"The cost of one sidecar"): RSS and anonymous memory idle with 10 HTTP checks;
CPU per HTTP check run with 10 checks every 1 s and every 10 s; idle CPU with
checks every 60 s; start to the first answer and to the first verdict with every
check run; RSS before and after a flood of 500 connections (wrk), with the
default connection cap and with a cap of 64; and blackbox_exporter's
CPU per probe, for the fleet table.

CPU is user + system time from /proc/PID/stat (10 ms ticks) over windows long
enough for that to be a few per cent; runs are counted by the watched app. Every
process is a child of this one and is stopped by its pid when its figure is done.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import configs
from bench.figures import BLACKBOX, BLACKBOX_CONFIG
from bench.load import have_wrk
from bench.procs import OtherLoad, Supervisor, cpu_seconds, free_port, rss_mib

TEN = 10


@dataclass
class Rig:
    supervisor: Supervisor
    workdir: Path
    app_port: int
    quick: bool

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    def count(self) -> int:
        with urllib.request.urlopen(f"{self.app_url}/__count", timeout=5) as response:
            return int(response.read())

    @contextlib.contextmanager
    def adapter(self, config: str, name: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
        path = configs.write(self.workdir, name, config)
        port = free_port()
        child = self.supervisor.start(
            [
                sys.executable,
                "-m",
                "adapter",
                "serve",
                "-c",
                str(path),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            log=name,
        )
        try:
            self.supervisor.wait_listening(port, child)
            yield child, f"http://127.0.0.1:{port}"
        finally:
            self.supervisor.stop(child)


def status_of(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def memory(pid: int) -> dict[str, float]:
    """RSS, its anonymous part, and where the resident pages are (smaps), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = {
        k: int(v) / 1024 for k, v in re.findall(r"^(VmRSS|RssAnon|RssFile):\s+(\d+)", status, re.M)
    }
    parts = {"heap": 0.0, "anonymous mappings": 0.0, "shared objects": 0.0, "other files": 0.0}
    kind = "other files"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            name = fields[5] if len(fields) > 5 else ""
            if name == "[heap]":
                kind = "heap"
            elif name == "" or name.startswith("["):
                kind = "anonymous mappings"
            elif ".so" in name:
                kind = "shared objects"
            else:
                kind = "other files"
        elif fields[0] == "Rss:":
            parts[kind] += int(fields[1]) / 1024
    return {"rss": found["VmRSS"], "anon": found["RssAnon"], **parts}


def wait_passing(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if status_of(f"{url}/readyz") == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url}/readyz never passed")


def idle_memory(rig: Rig) -> list[str]:
    config = configs.http_checks(TEN, rig.app_url, interval="1s")
    with rig.adapter(config, "memory") as (child, url):
        wait_passing(url)
        time.sleep(3 if rig.quick else 10)
        m = memory(child.pid)
    parts = ", ".join(
        f"{k} {m[k]:.1f}" for k in ("heap", "anonymous mappings", "shared objects", "other files")
    )
    return [
        f"| RSS idle, 10 HTTP checks at 1 s | {m['rss']:.1f} MiB; anonymous {m['anon']:.1f} MiB (smaps, MiB: {parts}) | <= 40 MiB |"
    ]


def cpu_per_run(rig: Rig) -> list[str]:
    rows = []
    for interval, window in (("1s", 60.0), ("10s", 150.0)):
        window = 8.0 if rig.quick else window
        config = configs.http_checks(TEN, rig.app_url, interval=interval)
        with rig.adapter(config, f"cpu-{interval}") as (child, url):
            wait_passing(url)
            time.sleep(2.0)
            other = OtherLoad()
            runs, cpu = rig.count(), cpu_seconds(child.pid)
            time.sleep(window)
            runs, cpu = rig.count() - runs, cpu_seconds(child.pid) - cpu
        per_run = cpu / runs * 1e3 if runs else float("nan")
        rows.append(
            f"| CPU per HTTP check run, 10 checks every {interval} | {per_run:.2f} ms "
            f"({cpu * 1e3:.0f} ms in {window:.0f} s, {runs} runs; other processes used "
            f"{other.cores():.2f} cores meanwhile) | <= 1 ms |"
        )
    config = configs.http_checks(TEN, rig.app_url, interval="60s")
    window = 8.0 if rig.quick else 60.0
    with rig.adapter(config, "cpu-60s") as (child, url):
        wait_passing(url)
        time.sleep(1.0)
        cpu = cpu_seconds(child.pid)
        time.sleep(window)
        cpu = cpu_seconds(child.pid) - cpu
    rows.append(
        f"| CPU idle, 10 checks every 60 s, {window:.0f} s between runs | {cpu * 1e3:.0f} ms | 0 |"
    )
    return rows


def start_up(rig: Rig) -> list[str]:
    config = configs.http_checks(TEN, rig.app_url, interval="1s")
    path = configs.write(rig.workdir, "start", config)
    answers, verdicts = [], []
    for _ in range(2 if rig.quick else 5):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        begin = time.monotonic()
        child = rig.supervisor.start(
            [
                sys.executable,
                "-m",
                "adapter",
                "serve",
                "-c",
                str(path),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            log="start",
        )
        try:
            answered = None
            deadline = begin + 30
            while time.monotonic() < deadline:
                try:
                    code = status_of(f"{url}/readyz", timeout=1)
                except OSError:
                    time.sleep(0.005)
                    continue
                now = time.monotonic()
                answered = answered or now
                if code == 200:
                    answers.append(answered - begin)
                    verdicts.append(now - begin)
                    break
                time.sleep(0.005)
        finally:
            rig.supervisor.stop(child)
    return [
        f"| start to first answer, 10 HTTP checks | {statistics.median(answers) * 1e3:.0f} ms "
        f"(median of {len(answers)}, max {max(answers) * 1e3:.0f}) | <= 0.3 s |",
        f"| start to first verdict, every check run | {statistics.median(verdicts) * 1e3:.0f} ms "
        f"(max {max(verdicts) * 1e3:.0f}) | <= 0.5 s + the slowest check |",
    ]


def flood(rig: Rig) -> list[str]:
    if not have_wrk():
        return ["| RSS after a flood | not measured: wrk is not installed | |"]
    rows = []
    for cap in (None, 64):
        config = configs.http_checks(TEN, rig.app_url, interval="1s")
        if cap is not None:
            config += f"server: {{max_connections: {cap}}}\n"
        with rig.adapter(config, f"flood-{cap}") as (child, url):
            wait_passing(url)
            time.sleep(3 if rig.quick else 8)
            before = memory(child.pid)
            subprocess.run(
                ["wrk", "-t2", "-c500", f"-d{3 if rig.quick else 10}s", f"{url}/health"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            peak = memory(child.pid)
            deadline = time.monotonic() + (3 if rig.quick else 20)
            while time.monotonic() < deadline:  # kubelet keeps asking meanwhile
                status_of(f"{url}/livez")
                time.sleep(1)
            after = memory(child.pid)
        growth = (after["rss"] / before["rss"] - 1) * 100
        rows.append(
            f"| RSS around a flood of 500 connections, max_connections "
            f"{cap or 'default (256)'} | {before['rss']:.1f} -> {peak['rss']:.1f} at its end -> "
            f"{after['rss']:.1f} MiB 20 s later ({growth:+.1f} %); anonymous "
            f"{before['anon']:.1f} -> {after['anon']:.1f} | back within 10 % |"
        )
    return rows


def blackbox(rig: Rig) -> list[str]:
    """blackbox_exporter's CPU per /probe of the app and its RSS, probes paced at 100/s:
    the central prober's side of the fleet table."""
    if shutil.which(BLACKBOX) is None:
        return [f"| blackbox_exporter per probe | not measured: {BLACKBOX} is not installed | |"]
    config = rig.workdir / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    port = free_port()
    child = rig.supervisor.start(
        [
            BLACKBOX,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log="blackbox",
    )
    try:
        rig.supervisor.wait_listening(port, child)
        url = f"http://127.0.0.1:{port}/probe?module=http_2xx&target={rig.app_url}/c0000"
        rate, window = 100, (5.0 if rig.quick else 30.0)
        for _ in range(rate):  # warm up
            status_of(url)
        cpu, begin, probes = cpu_seconds(child.pid), time.monotonic(), 0
        while (now := time.monotonic()) < begin + window:
            status_of(url)
            probes += 1
            time.sleep(max(0.0, begin + probes / rate - now))
        cpu = cpu_seconds(child.pid) - cpu
        rss = rss_mib(child.pid)
    finally:
        rig.supervisor.stop(child)
    return [
        f"| blackbox_exporter per /probe of the app, {rate} probes/s | {cpu / probes * 1e3:.2f} ms "
        f"CPU ({cpu * 1e3:.0f} ms for {probes} probes); RSS {rss:.1f} MiB | |"
    ]


FIGURES = {
    "memory": idle_memory,
    "cpu": cpu_per_run,
    "start": start_up,
    "flood": flood,
    "blackbox": blackbox,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cost", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", choices=sorted(FIGURES))
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    lines = ["| measured | figure | target |", "| --- | --- | --- |"]
    with (
        tempfile.TemporaryDirectory(prefix="bench-cost-") as tmp,
        Supervisor(Path(tmp)) as supervisor,
    ):
        app_port = free_port()
        app = supervisor.start(
            [sys.executable, "-m", "bench.servers", "app", "--port", str(app_port)], log="app"
        )
        supervisor.wait_listening(app_port, app)
        rig = Rig(supervisor, Path(tmp), app_port, args.quick)
        for name in args.only or FIGURES:
            rows = FIGURES[name](rig)
            lines.extend(rows)
            print("\n".join(rows), flush=True)
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if args.output:
        args.output.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
