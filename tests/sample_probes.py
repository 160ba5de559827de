"""Probes for the adapter's own tests: each misbehaves, or obeys the test, on purpose."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from typing import Annotated, ClassVar

import msgspec

from probes import Duration, Probe, Result

#: Statuses the tests set for `Switch` probes, by key.
SWITCHES: dict[str, str] = {}
#: Runs counted by `Counting` probes, by key.
COUNTS: dict[str, int] = {}
#: Set by tests to release `BlockForever` threads at the end.
RELEASE = threading.Event()


class Ok(Probe):
    """Always passes."""

    async def check(self) -> Result:
        return Result("pass", output="fine", observed_value=1, observed_unit="items")


class Switch(Probe):
    """Reports whatever status the test put in SWITCHES[key] (pass by default)."""

    async def check(self) -> Result:
        status = SWITCHES.get(self.options["key"], "pass")
        return Result(status, output=f"switch says {status}")


class Counting(Probe):
    """Passes and counts its runs, and how many overlap."""

    running: ClassVar[dict[str, int]] = {}
    overlaps: ClassVar[dict[str, int]] = {}

    async def check(self) -> Result:
        key = self.options["key"]
        COUNTS[key] = COUNTS.get(key, 0) + 1
        Counting.running[key] = Counting.running.get(key, 0) + 1
        if Counting.running[key] > 1:
            Counting.overlaps[key] = Counting.overlaps.get(key, 0) + 1
        try:
            await asyncio.sleep(float(self.options.get("sleep", 0)))
        finally:
            Counting.running[key] -= 1
        return Result("pass")


class SleepSync(Probe):
    """A plain-def probe that blocks its thread for `sleep` seconds."""

    def check(self) -> Result:
        time.sleep(float(self.options.get("sleep", 5)))
        return Result("pass", output="woke up")


class BlockForever(Probe):
    """A plain-def probe whose thread never returns until the test releases it."""

    def check(self) -> Result:
        RELEASE.wait(60)
        return Result("pass")


class SleepAsync(Probe):
    async def check(self) -> Result:
        await asyncio.sleep(float(self.options.get("sleep", 5)))
        return Result("pass")


class SwallowCancel(Probe):
    """An async probe that ignores cancellation for a while: a badly written plugin."""

    async def check(self) -> Result:
        deadline = time.monotonic() + float(self.options.get("hold", 3))
        while time.monotonic() < deadline:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue
        return Result("pass")


class Raises(Probe):
    async def check(self) -> Result:
        raise RuntimeError("database unreachable")


class RaisesSync(Probe):
    def check(self) -> Result:
        raise OSError(5, "Input/output error")


class ReturnsGarbage(Probe):
    async def check(self) -> Result:
        return {"status": "pass"}  # type: ignore[return-value]


class BadResult(Probe):
    async def check(self) -> Result:
        return Result("pass", observed_value=float("nan"))


class HugeOutput(Probe):
    async def check(self) -> Result:
        return Result("fail", output="x" * 100_000 + "\udcff")


class Typed(Probe):
    """A plugin with a typed options schema."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        max_depth: Annotated[int, msgspec.Meta(ge=0)]
        window: Duration = Duration(60)
        queue: str = "default"

    async def check(self) -> Result:
        return Result("pass", observed_value=self.config.max_depth)


@dataclasses.dataclass(frozen=True)
class DataclassOptions:
    url: str
    retries: int = 3


class WithDataclass(Probe):
    Options = DataclassOptions

    async def check(self) -> Result:
        return Result("pass", output=f"{self.config.url} x{self.config.retries}")


class NotAProbe:
    pass


class SpawnsChild(Probe):
    """Runs `sleep 60` as a child and waits for it, writing the child's pid to
    `pidfile`; a cancelled run kills its child, as the exec probe does."""

    async def check(self) -> Result:
        process = await asyncio.create_subprocess_exec("sleep", "60")
        with open(self.options["pidfile"], "w") as stream:
            stream.write(f"{process.pid}\n")
        try:
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        return Result("pass")


class Flapping(Probe):
    """Passes and fails on alternate runs."""

    runs: int = 0

    async def check(self) -> Result:
        self.runs += 1
        status = "pass" if self.runs % 2 else "fail"
        return Result(
            status, output=f"run {self.runs}", observed_value=self.runs, observed_unit="runs"
        )


class Gate(Probe):
    """Touches `mark` when its run begins, then waits (at most `hold` seconds) for
    `release` to exist: a test sees the run under way and decides when it ends."""

    async def check(self) -> Result:
        open(self.options["mark"], "a").close()
        deadline = time.monotonic() + float(self.options.get("hold", 60))
        release = str(self.options.get("release", ""))
        while time.monotonic() < deadline:
            if release and os.path.exists(release):
                return Result("pass")
            await asyncio.sleep(0.01)
        return Result("fail", output="never released")
