"""`python -m bench`: run every measurement and write the table.

    python -m bench                      # all figures, 5 to 6 minutes on 2 cores
    python -m bench --only throughput    # some of them (repeat --only)
    python -m bench --quick              # about 20 s of tiny sizes: checks that it runs
    python -m bench --output FILE.md     # also write the table (and FILE.json)
    python -m bench --only scale --scale 2000    # figure 4 with other numbers of checks

docs/performance.md says what each figure is, how it is measured, and what it was.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import importlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import aiohttp

from adapter.loop import event_loop_factory
from bench.figures import FIGURES
from bench.procs import OtherLoad, Supervisor
from bench.rig import Bench, Row, Settings, Skipped, split_cpus


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    loop = "asyncio"
    if event_loop_factory() is not None:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    return {
        "cpu": f"{model}, {len(os.sched_getaffinity(0))} cores",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "event loop": loop,
        "wrk": _version(["wrk", "-v"]).split(" [")[0].removeprefix("wrk "),
        "blackbox_exporter": _version(["prometheus-blackbox-exporter", "--version"])
        .split(" (")[0]
        .removeprefix("blackbox_exporter, version "),
    }


def _version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def render(rows: list[Row], info: dict[str, str], command: str, *, judged: bool = True) -> str:
    """The table; with `judged` False (quick mode, whose tiny sizes measure nothing)
    without the column that holds each figure against its target."""
    lines = [f"Command: `{command}`  "]
    if not judged:
        lines.append(
            "Quick mode: tiny sizes and windows that prove the harness runs; the "
            "figures are not measurements, so none is held against its target.  "
        )
    lines += [
        "Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()),
        "",
    ]
    if judged:
        lines += [
            "| # | measured | figure | target / ratio | met |",
            "| --- | --- | --- | --- | --- |",
        ]
    else:
        lines += ["| # | measured | figure | target / ratio |", "| --- | --- | --- | --- |"]
    for row in rows:
        cells = [row.figure, row.what, row.value, row.target]
        if judged:
            cells.append("" if row.met is None else ("met" if row.met else "**missed**"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compile_sources() -> None:
    """Byte-compile the adapter as installing it would: a source tree run with
    PYTHONDONTWRITEBYTECODE=1 would otherwise compile it again at every start."""
    for package in ("adapter", "probes"):
        init = importlib.import_module(package).__file__
        assert init is not None
        compileall.compile_dir(Path(init).parent, quiet=1)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the supervisor, which stops every child


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", action="append", choices=list(FIGURES), help="measure only these figures"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and windows: proves the harness runs, not the figures",
    )
    parser.add_argument(
        "--scale",
        type=int,
        action="append",
        metavar="N",
        help="figure 4 with N HTTP checks (repeat; default 10 100 1000 5000)",
    )
    parser.add_argument("--output", type=Path, help="write the table here (and .json beside)")
    parser.add_argument(
        "--workdir", type=Path, help="configs and logs go here (default: a new temporary directory)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary work directory (configs, logs)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    compile_sources()
    settings = Settings.quick() if args.quick else Settings()
    if args.scale:
        settings = dataclasses.replace(settings, scale=tuple(args.scale), scale_keep_alive=())
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="health-adapter-bench-"))
    server_cpus, other_cpus = split_cpus()
    rows: list[Row] = []
    began = time.monotonic()
    load_before = os.getloadavg()[0]
    other_load = OtherLoad()
    try:
        with Supervisor(workdir) as supervisor:
            bench = Bench(supervisor, workdir, settings, server_cpus, other_cpus)
            bench.start_app()
            for name in args.only or list(FIGURES):
                print(f"bench: {name} …", file=sys.stderr, flush=True)
                number, measure = FIGURES[name]
                try:
                    measured = measure(bench)
                except Skipped as skipped:
                    measured = [Row(number, f"{name}: skipped", str(skipped))]
                rows.extend(measured)
                for row in measured:
                    print(f"  {row.what}: {row.value}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted; every child process was stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep or args.workdir:
            print(f"bench: logs and configs in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    command = "python -m bench" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    info = machine()
    info["other load"] = (
        f"{other_load.cores():.2f} cores on average used by other processes "
        f"during the run (load average {load_before:.2f} before it)"
    )
    table = render(rows, info, command, judged=not args.quick)
    print(table, end="")
    print(f"bench: {time.monotonic() - began:.0f} s", file=sys.stderr)
    if args.output:
        args.output.write_text(table)
        args.output.with_suffix(".json").write_text(
            json.dumps(
                {
                    "machine": info,
                    "command": command,
                    "rows": [dataclasses.asdict(row) for row in rows],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
