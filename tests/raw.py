"""A bare TCP server on loopback, for targets that misbehave below HTTP.

aiohttp's own server will not send a malformed answer, hold a connection
open after replying or drip bytes; these tests need exactly that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def replying(reply: bytes, *, hold: bool = False, keep_serving: bool = False) -> RawHandler:
    """A handler that answers a request with exactly `reply` and hangs up.

    `hold`: the connection stays open after the reply, until the client leaves.
    `keep_serving`: every further request on the connection gets `reply` too
    (at most 100).
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(100 if keep_serving else 1):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
        if hold:
            await reader.read()  # b"" once the client hangs up

    return answer


@contextlib.asynccontextmanager
async def raw_server(
    handle: RawHandler | bytes, *, hold: bool = False, keep_serving: bool = False
) -> AsyncIterator[tuple[int, list[Any]]]:
    """A TCP server on 127.0.0.1 running `handle` per connection (or, given bytes,
    `replying(handle, hold=..., keep_serving=...)`); yields its port and the peers
    of the connections it accepted. A client that hangs up is no error: it is
    often the point. Every connection is closed on the way out."""
    if isinstance(handle, bytes):
        handle = replying(handle, hold=hold, keep_serving=keep_serving)
    accepted: list[Any] = []
    writers: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername"))
        writers.add(writer)
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await handle(reader, writer)
        finally:
            writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1], accepted
    finally:
        listener.close()
        for writer in list(writers):
            writer.close()
        await listener.wait_closed()
