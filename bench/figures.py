"""The six measurements of the performance issue; each returns rows of the table."""

from __future__ import annotations

import http.client
import json
import math
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench import configs
from bench.load import get, have_wrk, poll
from bench.procs import CpuWindow, free_port, rss_mib
from bench.rig import Bench, Host, Row, Series, Skipped

BLACKBOX = "prometheus-blackbox-exporter"
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""
P99_TARGET_MS = 10.0


# -- 1, 2, 3: polling ----------------------------------------------------------------------


def poll_throughput(bench: Bench) -> list[Row]:
    """/health with 10 checks at 50 connections, against the bare handler and blackbox."""
    if not have_wrk():
        raise Skipped("wrk is not installed")
    config = bench.config("ten", configs.http_checks(10, bench.app_url))
    with ExitStack() as stack:
        adapter = stack.enter_context(bench.adapter(config, "adapter-10"))
        adapter.wait_passing()
        _, body = get(adapter.url + "/health")
        body_file = bench.workdir / "health-body.json"
        body_file.write_bytes(body)
        bare_port = free_port()
        bare = bench.supervisor.start(
            bench.python(
                "-m", "bench.servers", "bare", "--port", str(bare_port), "--body", str(body_file)
            ),
            log="bare",
            cpus=bench.server_cpus,
        )
        stack.callback(bench.supervisor.stop, bare)
        bench.supervisor.wait_listening(bare_port, bare)
        targets = {
            "adapter": adapter.url + "/health",
            "bare": f"http://127.0.0.1:{bare_port}/health",
        }
        blackbox_missing = ""
        try:
            targets["blackbox"] = stack.enter_context(_blackbox(bench))
        except Skipped as skipped:
            blackbox_missing = str(skipped)
        series = bench.interleaved(targets)
    ours = series["adapter"]
    rows = [
        _series_row("1", "/health, 10 HTTP checks (adapter)", ours, {"body_bytes": len(body)}),
        _series_row("1", f"bare aiohttp handler, the same {len(body)}-byte body", series["bare"]),
        _ratio_row("1", "adapter / bare aiohttp", ours, series["bare"], 0.9),
    ]
    if blackbox_missing:
        rows.append(
            Row(
                "1",
                "blackbox_exporter /probe of the same app URL",
                f"not measured: {blackbox_missing}",
            )
        )
    else:
        rows.append(
            _series_row("1", "blackbox_exporter /probe of the same app URL", series["blackbox"])
        )
        rows.append(_ratio_row("1", "adapter / blackbox_exporter", ours, series["blackbox"], 10))
    rows.append(_p99_row("1", "/health p99 at 50 connections", ours))
    return rows


def _series_row(figure: str, what: str, series: Series, data: dict[str, Any] | None = None) -> Row:
    return Row(figure, what, series.describe(), data={**series.data(), **(data or {})})


def _ratio_row(figure: str, what: str, ours: Series, theirs: Series, target: float) -> Row:
    """The median of the per-round ratios: each compares runs made one after the other."""
    ratios = sorted(a.rate / b.rate for a, b in zip(ours.runs, theirs.runs, strict=True))
    ratio = statistics.median(ratios)
    spread = f" (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""
    return Row(
        figure,
        what,
        f"{ratio:.2f} x{spread}",
        f">= {target:g} x",
        ratio >= target,
        {"ratio": ratio, "ratios": ratios},
    )


def _p99_row(figure: str, what: str, series: Series) -> Row:
    p99s = sorted(run.p99_ms for run in series.runs)
    value = f"{series.p99_ms:.2f} ms"
    if len(p99s) > 1:
        value += f" (median of {len(p99s)} runs; {p99s[0]:.2f}-{p99s[-1]:.2f})"
    return Row(
        figure,
        what,
        value,
        f"< {P99_TARGET_MS:g} ms",
        series.p99_ms < P99_TARGET_MS,
        {"p99_ms": p99s},
    )


@contextmanager
def _blackbox(bench: Bench) -> Iterator[str]:
    """blackbox_exporter on a free loopback port; yields its /probe URL of the app."""
    if shutil.which(BLACKBOX) is None:
        raise Skipped(f"{BLACKBOX} is not installed")
    config = bench.workdir / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    port = free_port()
    child = bench.supervisor.start(
        [
            BLACKBOX,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log="blackbox",
        cpus=bench.server_cpus,
    )
    try:
        bench.supervisor.wait_listening(port, child)
        url = f"http://127.0.0.1:{port}/probe?module=http_2xx&target={bench.app_url}/c0000"
        status, body = get(url)
        if status != 200 or b"probe_success 1" not in body:
            raise RuntimeError(f"blackbox_exporter's probe of the app failed: {status}")
        yield url
    finally:
        bench.supervisor.stop(child)


def app_load(bench: Bench) -> list[Row]:
    """Requests that reach the app per 1,000 polls: the adapter against blackbox_exporter."""
    polls = bench.settings.polls
    scale = 1000 / polls
    # A long interval: after the first round the scheduler sends nothing for an
    # hour, so every app request counted while polling is one that polling caused.
    config = bench.config("ten-idle", configs.http_checks(10, bench.app_url, interval="1h"))
    with bench.adapter(config, "adapter-10-idle") as adapter:
        adapter.wait_passing()
        before = bench.app_requests()
        statuses = poll(adapter.url + "/health", polls)
        caused = bench.app_requests() - before
    rows = [
        Row(
            "2",
            f"adapter: app requests per 1,000 polls of /health "
            f"({polls} polls answered {_statuses(statuses)})",
            f"{caused * scale:g}",
            "0",
            caused == 0,
            {"polls": polls, "app": caused},
        )
    ]
    try:
        with _blackbox(bench) as probe_url:
            before = bench.app_requests()
            statuses = poll(probe_url, polls)
            caused = bench.app_requests() - before
    except Skipped as skipped:
        rows.append(
            Row(
                "2",
                "blackbox_exporter: app requests per 1,000 polls of /probe",
                f"not measured: {skipped}",
            )
        )
    else:
        rows.append(
            Row(
                "2",
                f"blackbox_exporter: app requests per 1,000 polls of /probe "
                f"({polls} polls answered {_statuses(statuses)})",
                f"{caused * scale:g}",
                data={"polls": polls, "app": caused},
            )
        )
    return rows


def _statuses(statuses: dict[int, int]) -> str:
    return ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))


def hanging_target(bench: Bench) -> list[Row]:
    """/health latency while one of the 10 checks waits on a target that never answers."""
    if not have_wrk():
        raise Skipped("wrk is not installed")
    hang_port = free_port()
    hang = bench.supervisor.start(
        bench.python("-m", "bench.servers", "hang", "--port", str(hang_port)),
        log="hang",
        cpus=bench.other_cpus,
    )
    try:
        bench.supervisor.wait_listening(hang_port, hang)
        config = bench.config(
            "ten-hang",
            configs.http_checks(
                10,
                bench.app_url,
                timeout=bench.settings.hang_timeout,
                hang_url=f"http://127.0.0.1:{hang_port}/",
            ),
        )
        with bench.adapter(config, "adapter-10-hang") as adapter:
            adapter.wait_until("/health/hang", lambda _, body: b"timed out" in body)
            series = bench.interleaved({"adapter": adapter.url + "/health"})["adapter"]
            _, body = get(adapter.url + "/health/hang")
    finally:
        bench.supervisor.stop(hang)
    output = json.loads(body)["checks"]["hang"][0]["output"]
    return [
        _series_row("3", f"/health while one check hangs (it reports: {output})", series),
        _p99_row("3", "/health p99 while a check hangs", series),
    ]


# -- 4, 5: running checks ------------------------------------------------------------------


def _measure_window(
    bench: Bench, host: Host, seconds: float
) -> tuple[CpuWindow, dict[str, Any], dict[str, Any]]:
    """Let the checks settle, then take CPU, lateness, runs and scans over `seconds`."""
    time.sleep(bench.settings.settle)
    cpu = CpuWindow(host.child.pid)
    host.reset()
    before = host.stats()
    cpu.start()
    time.sleep(seconds)
    cpu.stop()
    after = host.stats()
    return cpu, before, after


def _statuses_of(stats: dict[str, Any]) -> str:
    return ", ".join(f"{count} {status}" for status, count in sorted(stats["statuses"].items()))


def check_scale(bench: Bench) -> list[Row]:
    """10 ... 5,000 HTTP checks at a 1 s interval: CPU, drift p99, RSS."""
    settings = bench.settings
    sizes = [(count, False) for count in settings.scale]
    sizes += [(count, True) for count in settings.scale_keep_alive]
    rows = []
    for count, keep_alive in sizes:
        name = f"http-{count}{'-keep-alive' if keep_alive else ''}"
        config = bench.config(
            name, configs.http_checks(count, bench.app_url, keep_alive=keep_alive)
        )
        with bench.host(config, f"host-{name}") as host:
            host.wait_results(count, timeout=120)
            cpu, before, after = _measure_window(bench, host, settings.window)
            rss = rss_mib(host.child.pid)
        lateness = after["lateness"]
        drift_ms = (lateness["p99"] or 0) * 1000
        runs_per_s = (after["runs"] - before["runs"]) / settings.window
        value = (
            f"{cpu.cores:.3f} cores; drift p99 {drift_ms:.1f} ms "
            f"(max {(lateness['max'] or 0) * 1000:.0f} ms); RSS {rss:.1f} MiB; "
            f"{runs_per_s:,.0f} runs/s; checks: {_statuses_of(after)}"
        )
        data = {
            "cores": cpu.cores,
            "drift_p99_ms": drift_ms,
            "rss_mib": rss,
            "runs_per_s": runs_per_s,
            "lateness": lateness,
            "statuses": after["statuses"],
        }
        what = f"{count:,} HTTP checks at 1 s{', keep_alive: true' if keep_alive else ''}"
        if count == 1000 and not keep_alive:
            passing = after["statuses"].get("pass", 0) == count
            met = cpu.cores <= 0.5 and drift_ms < 100 and passing
            rows.append(
                Row("4", what, value, "<= 0.5 core, drift p99 < 100 ms, all passing", met, data)
            )
        elif count == 5000 and not keep_alive:
            rows.append(
                Row("4", what, value, "keeps running (report the cost)", runs_per_s > 0, data)
            )
        else:
            rows.append(Row("4", what, value, data=data))
    return rows


def process_checks(bench: Bench) -> list[Row]:
    """Process checks among many extra processes: CPU and scans per scheduling round."""
    extra = bench.settings.extra_processes
    sleepers = [
        bench.supervisor.start(configs.sleep_argv(index), cpus=bench.other_cpus)
        for index in range(extra)
    ]
    rows: list[Row] = []
    per_count: dict[int, dict[str, Any]] = {}
    try:
        for count in bench.settings.process_checks:
            config = bench.config(f"process-{count}", configs.process_checks(count))
            with bench.host(config, f"host-process-{count}") as host:
                host.wait_results(count, timeout=60)
                cpu, before, after = _measure_window(bench, host, bench.settings.process_window)
                # One check's endpoint: its answer costs the same whatever the
                # number of checks, so what shows is how the rounds hold up the loop.
                latency = (
                    bench.interleaved({"adapter": host.url + "/health/p0000"})["adapter"]
                    if have_wrk()
                    else None
                )
            rounds = (after["runs"] - before["runs"]) / count
            scans = after["scans"] - before["scans"]
            per_round_ms = cpu.seconds / rounds * 1000 if rounds else math.nan
            # A window cuts into at most one round at each end.
            one_per_round = 0 < scans <= math.ceil(rounds) + 1
            value = (
                f"{per_round_ms:.1f} ms CPU per round ({cpu.cores:.3f} cores); "
                f"{scans} scans in {rounds:.1f} rounds; drift p99 "
                f"{(after['lateness']['p99'] or 0) * 1000:.1f} ms; "
                f"checks: {_statuses_of(after)}"
            )
            per_count[count] = {
                "cpu_ms_per_round": per_round_ms,
                "rounds": rounds,
                "scans": scans,
                "cores": cpu.cores,
                "statuses": after["statuses"],
            }
            rows.append(
                Row(
                    "5",
                    f"{count} process checks, {extra:,} extra processes",
                    value,
                    "1 scan per round",
                    one_per_round,
                    per_count[count],
                )
            )
            if latency is not None:
                rows.append(
                    _series_row(
                        "5",
                        f"/health/p0000 while {count} process checks run among {extra:,} "
                        "extra processes",
                        latency,
                    )
                )
    finally:
        bench.supervisor.stop_many(sleepers)
    fewest, most = min(per_count), max(per_count)
    small, large = per_count[fewest], per_count[most]
    growth = large["cpu_ms_per_round"] / max(small["cpu_ms_per_round"], 1e-9)
    scans_small = small["scans"] / max(small["rounds"], 1e-9)
    scans_large = large["scans"] / max(large["rounds"], 1e-9)
    rows.append(
        Row(
            "5",
            f"{most} against {fewest} process checks",
            f"scans per round {scans_small:.2f} -> {scans_large:.2f}; CPU per round {growth:.2f} x",
            "scans per round do not grow",
            scans_large <= scans_small + 0.1,
            {"growth": growth},
        )
    )
    return rows


# -- 6: footprint --------------------------------------------------------------------------


def footprint(bench: Bench) -> list[Row]:
    """Time from process start to the first answered /health; idle RSS."""
    rows = []
    for count in bench.settings.footprint:
        config = bench.config(f"footprint-{count}", configs.http_checks(count, bench.app_url))
        firsts, passes = [], []
        rss = 0.0
        for attempt in range(bench.settings.startups):
            first, passing, measured_rss = _start_once(
                bench, config, f"adapter-start-{count}", measure_rss=attempt == 0
            )
            firsts.append(first)
            passes.append(passing)
            rss = measured_rss or rss
        rows.append(
            Row(
                "6",
                f"start to first answered /health, {count} HTTP checks "
                f"(median of {len(firsts)}; all passing after "
                f"{statistics.median(passes) * 1000:.0f} ms)",
                f"{statistics.median(firsts) * 1000:.0f} ms (max {max(firsts) * 1000:.0f} ms)",
                "<= 0.5 s",
                max(firsts) <= 0.5,
                {"first_s": firsts, "passing_s": passes},
            )
        )
        rows.append(
            Row(
                "6",
                f"RSS idle, {count} HTTP checks at 1 s",
                f"{rss:.1f} MiB",
                "<= 45 MiB" if count == 100 else "",
                rss <= 45 if count == 100 else None,
                {"rss_mib": rss},
            )
        )
    return rows


def _start_once(
    bench: Bench, config: Path, log: str, *, measure_rss: bool
) -> tuple[float, float, float | None]:
    """Start `health-adapter serve`: seconds to the first answer, to passing, and RSS."""
    port = free_port()
    started = time.monotonic()
    child = bench.supervisor.start(
        bench.python(
            "-m", "adapter", "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"
        ),
        log=log,
        cpus=bench.server_cpus,
    )
    try:
        first = _first_answer(port, child, started) - started
        passing = _first_pass(port, child) - started
        rss = None
        if measure_rss:
            time.sleep(bench.settings.settle)
            rss = rss_mib(child.pid)
        return first, passing, rss
    finally:
        bench.supervisor.stop(child)


def _first_answer(port: int, child: subprocess.Popen[Any], started: float) -> float:
    """The moment /health first answers at all (a 503 "no result yet" counts)."""
    while time.monotonic() - started < 10:
        if child.poll() is not None:
            raise RuntimeError(f"the adapter exited with {child.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/health")
            connection.getresponse().read()
            return time.monotonic()
        except ConnectionRefusedError:
            time.sleep(0.002)
        finally:
            connection.close()
    raise RuntimeError("/health did not answer within 10 s of start")


def _first_pass(port: int, child: subprocess.Popen[Any]) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the adapter exited with {child.returncode}")
        status, _ = get(f"http://127.0.0.1:{port}/health")
        if status == 200:
            return time.monotonic()
        time.sleep(0.005)
    raise RuntimeError("/health did not pass within 30 s of start")


#: The figures by name, with their number in the issue and table.
FIGURES: dict[str, tuple[str, Callable[[Bench], list[Row]]]] = {
    "throughput": ("1", poll_throughput),
    "app-load": ("2", app_load),
    "hang": ("3", hanging_target),
    "scale": ("4", check_scale),
    "process": ("5", process_checks),
    "footprint": ("6", footprint),
}
