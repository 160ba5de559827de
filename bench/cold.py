"""`python -m bench.cold`: the same fixed piece of Python, timed back to back and
after sleeps, to show what running cold costs on this machine.

A check run at fleet rates always starts after a sleep, with the caches, branch
predictors and TLB holding other processes' work (and, on a virtual machine, the
vCPU waking from a halt); docs/performance.md uses this to explain why an HTTP
run costs several times more at 10 runs a second than at 1,000.
"""

from __future__ import annotations

import json
import statistics
import time


def work() -> str:
    table = {str(i): [i, i * 2, (i, str(i))] for i in range(2000)}
    return json.dumps(list(table.items())[:200])


def median_cpu_ms(calls: int, gap: float) -> float:
    """Median CPU time of one call of `work`, each call `gap` seconds after the last."""
    times = []
    for _ in range(calls):
        if gap:
            time.sleep(gap)
        begin = time.thread_time_ns()
        work()
        times.append((time.thread_time_ns() - begin) / 1e6)
    return statistics.median(times)


def main() -> None:
    work()
    for gap in (0.0, 0.01, 0.1, 1.0, 0.0):
        calls = 2000 if gap == 0 else int(min(100, 20 / gap))
        print(
            f"every {gap:g} s: {median_cpu_ms(calls, gap):.3f} ms of CPU per call (median of {calls})"
        )


if __name__ == "__main__":
    main()
