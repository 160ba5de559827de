"""The fault-injection kit: run the adapter for real on loopback, poll it like a
monitor, and prove afterwards that the fault left nothing behind.

"Left behind", precisely, comparing the moment after the adapter stopped with
the moment before the case started:

- file descriptors: entries of /proc/self/fd (number and what they point to)
  that were not open before;
- asyncio tasks: tasks of the running loop, other than the test's own, that
  were not there before;
- threads: alive threads that were not alive before, except the workers of
  the event loop's default executor (named `asyncio_N`: the pool behind
  `asyncio.to_thread`, which the loop owns and shuts down with itself, at most
  min(32, CPUs + 4), idle between uses). The adapter's own probe threads
  (`probe-N`) do count: once the adapter stopped, each must have exited — a
  case whose plugin holds a thread blocked says so with `stuck_threads`;
- child processes: descendants of the test process (psutil) that were not
  there before.

Closing is asynchronous (a peer's FIN, a thread's exit), so each is awaited
for up to `SETTLE` seconds before it counts as a leak.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import aiohttp
import psutil
from aiohttp import web

from adapter.config import Config, parse_config
from adapter.listener import LimitedSite, ListenAddress, TcpAddress, start_listening
from adapter.server import make_app

#: How long closing may take before what is still open counts as left behind.
SETTLE = 5.0
#: /health reads memory; this bound is generous so that a loaded CI machine never flakes.
MAX_LATENCY = 1.0
LOOP_EXECUTOR_PREFIX = "asyncio_"
ANY_LOOPBACK_PORT = TcpAddress("127.0.0.1", 0)


def _open_fds() -> frozenset[tuple[int, str]]:
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            fds.add((int(name), os.readlink(f"/proc/self/fd/{name}")))
    return frozenset(fds)


def _counted_threads() -> frozenset[threading.Thread]:
    return frozenset(
        t
        for t in threading.enumerate()
        if t.is_alive() and not t.name.startswith(LOOP_EXECUTOR_PREFIX)
    )


def _children() -> frozenset[int]:
    return frozenset(child.pid for child in psutil.Process().children(recursive=True))


def _tasks() -> frozenset[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return frozenset(t for t in asyncio.all_tasks() if t is not current and not t.done())


@dataclasses.dataclass(frozen=True)
class Footprint:
    """What the process holds at one moment."""

    fds: frozenset[tuple[int, str]]
    tasks: frozenset[asyncio.Task[Any]]
    threads: frozenset[threading.Thread]
    children: frozenset[int]

    @classmethod
    def take(cls) -> Footprint:
        return cls(_open_fds(), _tasks(), _counted_threads(), _children())

    def new_since(self, before: Footprint) -> dict[str, list[str]]:
        """What is open now and was not in `before`, described for an assertion message."""
        found: dict[str, list[str]] = {}
        fds = sorted(self.fds - before.fds)
        if fds:
            found["fds"] = [f"{fd} -> {target}" for fd, target in fds]
        tasks = self.tasks - before.tasks
        if tasks:
            found["tasks"] = sorted(f"{t.get_name()}: {t.get_coro()!r}" for t in tasks)
        threads = self.threads - before.threads
        if threads:
            found["threads"] = sorted(t.name for t in threads)
        children = self.children - before.children
        if children:
            found["children"] = sorted(_describe_process(pid) for pid in children)
        return found


def _describe_process(pid: int) -> str:
    try:
        process = psutil.Process(pid)
        return f"{pid} {process.status()} {' '.join(process.cmdline())[:80]}"
    except psutil.Error:
        return str(pid)


async def assert_nothing_left(
    before: Footprint, *, stuck_threads: int = 0, settle: float = SETTLE
) -> None:
    """Wait up to `settle` s for everything opened since `before` to close; fail naming
    what is still open. `stuck_threads`: probe threads a case knowingly leaves blocked."""
    deadline = time.monotonic() + settle
    while True:
        found = Footprint.take().new_since(before)
        threads = found.get("threads", [])
        if len(threads) == stuck_threads and all(t.startswith("probe-") for t in threads):
            found.pop("threads", None)
        if not found or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert not found, f"left behind: {found}"


@dataclasses.dataclass
class Polls:
    """What a monitor saw over a series of requests."""

    statuses: list[int] = dataclasses.field(default_factory=list)
    bodies: list[Any] = dataclasses.field(default_factory=list)
    latencies: list[float] = dataclasses.field(default_factory=list)

    @property
    def slowest(self) -> float:
        return max(self.latencies, default=0.0)


@dataclasses.dataclass
class Running:
    """A running adapter on a real loopback port, and a monitor's session to poll it."""

    app: web.Application
    runner: web.AppRunner
    url: str
    session: aiohttp.ClientSession

    @property
    def site(self) -> LimitedSite:
        site = next(iter(self.runner.sites))
        assert isinstance(site, LimitedSite)
        return site

    async def get(self, path: str = "/health") -> tuple[int, Any, float]:
        begin = time.monotonic()
        async with self.session.get(self.url + path) as response:
            text = await response.text()
        elapsed = time.monotonic() - begin
        body: Any = json.loads(text) if response.content_type.endswith("json") else text
        return response.status, body, elapsed

    async def poll(self, count: int, pause: float = 0.02, path: str = "/health") -> Polls:
        polls = Polls()
        for _ in range(count):
            status, body, elapsed = await self.get(path)
            polls.statuses.append(status)
            polls.bodies.append(body)
            polls.latencies.append(elapsed)
            await asyncio.sleep(pause)
        return polls

    async def until(
        self,
        predicate: Callable[[int, Any], bool],
        timeout: float = 10.0,
        path: str = "/health",
    ) -> Any:
        """Poll until `predicate(status, body)` holds; every answer must come fast."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            status, body, elapsed = await self.get(path)
            assert elapsed < MAX_LATENCY, f"{path} took {elapsed:.2f}s"
            last = (status, body)
            if predicate(status, body):
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"{path} never got there; last answer: {last}")


def check_entry(body: Any, name: str) -> dict[str, Any]:
    entry: dict[str, Any] = body["checks"][name][0]
    return entry


@contextlib.asynccontextmanager
async def running_adapter(
    config: str | Config, *, listen: ListenAddress = ANY_LOOPBACK_PORT
) -> AsyncIterator[Running]:
    """Start the adapter as `serve` does (same limits, same listener) and stop it after."""
    if isinstance(config, str):
        config = parse_config(config, environ={})
    app = make_app(config)
    runner = await start_listening(app, config, listen)
    site = next(iter(runner.sites))
    assert isinstance(site, LimitedSite)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    try:
        yield Running(app, runner, f"http://127.0.0.1:{site.port}", session)
    finally:
        await session.close()
        await runner.cleanup()


class ConnectAudit:
    """Every address a socket of this process tries to connect to, from the
    interpreter's own audit hook: proof of where traffic went, or did not go."""

    active: ClassVar[list[list[Any]]] = []

    def __enter__(self) -> list[Any]:
        addresses: list[Any] = []
        self.active.append(addresses)
        return addresses

    def __exit__(self, *exc: object) -> None:
        self.active.pop()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and ConnectAudit.active:
        ConnectAudit.active[-1].append(args[1])


sys.addaudithook(_audit)  # hooks cannot be removed; this one records only inside a ConnectAudit


async def within(awaitable: Awaitable[Any], seconds: float) -> Any:
    """The awaitable's result, or a failure naming the bound it broke."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise AssertionError(f"did not finish within {seconds}s") from None
