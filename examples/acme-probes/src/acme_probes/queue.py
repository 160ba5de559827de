"""`queue_depth`: ask a queue server how many messages wait, over its line protocol.

The server answers `DEPTH <queue>\n` with the number of waiting messages on
one line. An async probe: it runs on the adapter's event loop, so it must
never block; every `await` is a point where the adapter may cancel it when
the check's timeout passes.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec

from probes import Probe, Reason, Result, Status
from probes.types import option_error


class QueueDepth(Probe):
    """Fails when more than max_depth messages wait in a queue (warns above warn_depth)."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        host: Annotated[str, msgspec.Meta(description="queue server address")] = "127.0.0.1"
        port: Annotated[int, msgspec.Meta(ge=1, le=65535, description="queue server port")]
        queue: Annotated[str, msgspec.Meta(pattern=r"^\S+$", description="name of the queue")] = (
            "default"
        )
        max_depth: Annotated[
            int, msgspec.Meta(ge=0, description="fail when more messages than this wait")
        ]
        warn_depth: Annotated[
            Annotated[int, msgspec.Meta(ge=0)] | None,
            msgspec.Meta(description="warn when more messages than this wait"),
        ] = None

        def __post_init__(self) -> None:
            if self.warn_depth is not None and self.warn_depth > self.max_depth:
                # Reported at that key: checks[0] (orders).queue_depth.warn_depth: …
                raise option_error("warn_depth", "warn_depth must not exceed max_depth")

    config: Options  # the validated options, typed

    async def check(self) -> Result:
        options = self.config
        try:
            reader, writer = await asyncio.open_connection(options.host, options.port)
        except ConnectionRefusedError:
            return Result(
                Status.FAIL,
                f"connection refused by {options.host}:{options.port}",
                reason=Reason.CONNECTION_REFUSED,
            )
        try:
            writer.write(f"DEPTH {options.queue}\n".encode())
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        depth = int(line)  # a garbled answer raises: the adapter reports it as a failure
        if depth > options.max_depth:
            return Result(
                Status.FAIL,
                f"{depth} messages wait in {options.queue}, more than {options.max_depth}",
                observed_value=depth,
                observed_unit="messages",
            )
        if options.warn_depth is not None and depth > options.warn_depth:
            return Result(
                Status.WARN,
                f"{depth} messages wait in {options.queue}",
                observed_value=depth,
                observed_unit="messages",
            )
        return Result(
            Status.PASS,
            f"{depth} messages wait in {options.queue}",
            observed_value=depth,
            observed_unit="messages",
        )
