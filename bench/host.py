"""The adapter, served as `health-adapter serve` serves it, with a control line.

    python -m bench.host --config FILE --listen HOST:PORT

The harness needs figures the adapter keeps but does not publish: how late
each run started (`Scheduler.lateness`), how many runs finished, how many
process-table scans ran. Rather than add an endpoint to the product, this
script runs the same `serve()` in its own process and answers on stdin/stdout,
one command per line:

    stats   one JSON line: the lateness samples since the last reset
            (count, p50, p99, max in seconds), runs, checks with a result,
            statuses and process-table scans
    reset   forget the lateness samples collected so far; answers "ok"

The only extra work on the adapter's event loop is moving the lateness
samples out of the scheduler's bounded deque every 0.25 s, so that none is
lost when thousands of checks run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import threading
from collections import Counter
from typing import Any

from aiohttp import web

from adapter import logs
from adapter.config import load_config
from adapter.lifecycle import serve
from adapter.loop import event_loop_factory
from adapter.registry import Registry
from adapter.scheduler import Scheduler
from adapter.server import SCHEDULER, STORE
from adapter.state import StateStore
from probes.process_table import ProcessTable

DRAIN_EVERY = 0.25


class Control:
    def __init__(self, scheduler: Scheduler, store: StateStore) -> None:
        self.scheduler = scheduler
        self.store = store
        self.samples: list[float] = []
        self._drain_task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._drain_task = loop.create_task(self._drain_forever())
        thread = threading.Thread(target=self._read_commands, args=(loop,), daemon=True)
        thread.start()

    async def _drain_forever(self) -> None:
        while True:
            self._drain()
            await asyncio.sleep(DRAIN_EVERY)

    def _drain(self) -> None:
        lateness = self.scheduler.lateness
        self.samples.extend(lateness)
        lateness.clear()

    def _read_commands(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(self._answer, line.strip())

    def _answer(self, command: str) -> None:
        self._drain()
        reply: Any
        if command == "reset":
            self.samples.clear()
            reply = "ok"
        elif command == "stats":
            reply = self.stats()
        else:
            reply = {"error": f"unknown command {command!r}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        states = self.store.states().values()
        return {
            "lateness": {
                "count": len(ordered),
                "p50": _percentile(ordered, 50),
                "p99": _percentile(ordered, 99),
                "max": ordered[-1] if ordered else None,
            },
            "runs": sum(state.runs for state in states),
            "with_result": sum(1 for state in states if state.status is not None),
            "statuses": dict(
                Counter(state.status.value for state in states if state.status is not None)
            ),
            "scans": self.scheduler.resources.get(ProcessTable).scans,
        }


def _percentile(ordered: list[float], percent: float) -> float | None:
    if not ordered:
        return None
    # Nearest rank: the smallest sample with at least `percent` % of them at or below it.
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.host")
    parser.add_argument("--config", required=True)
    parser.add_argument("--listen", required=True)
    args = parser.parse_args()
    logs.configure("text", "info")
    config = load_config(args.config, Registry.discover())

    def ready(runner: web.AppRunner) -> None:
        app = runner.app
        Control(app[SCHEDULER], app[STORE]).start(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(config, args.listen, ready=ready))


if __name__ == "__main__":
    main()
