"""The servers the harness runs as child processes: `python -m bench.servers KIND --port N`.

- `app`: the watched application. Answers every request `200 ok` and counts
  it; `GET /__count` answers the count so far and is not counted itself.
- `hang`: a target that accepts connections, reads what comes and never answers.
- `bare`: the ceiling of the stack: an aiohttp handler that returns a fixed JSON
  body (the file given with --body), on the same event loop the adapter uses.

`app` and `hang` speak just enough HTTP/1.1 themselves, so that the app costs
as little CPU as possible and the adapter's cost stands out.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import cast

COUNT_PATH = b"/__count"
_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: keep-alive\r\n\r\nok\n"
)
_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024


class Counter:
    requests = 0


class CountingApp(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, no request bodies expected (GET and HEAD)."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(_HEAD_END)) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + len(_HEAD_END) :]
            request_line, _, headers = head.partition(b"\r\n")
            parts = request_line.split(b" ")
            path = parts[1] if len(parts) > 1 else b""
            if path == COUNT_PATH:
                body = b"%d\n" % self.counter.requests
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            else:
                self.counter.requests += 1
                self.transport.write(_OK)
            if b"connection: close" in headers.lower():
                self.transport.close()
                return
        if len(self.buffer) > _MAX_HEAD:
            self.transport.close()


class Hang(asyncio.Protocol):
    """Accepts, reads and discards; never answers. The client gives up first."""

    def data_received(self, data: bytes) -> None:
        pass


async def serve_protocol(kind: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    counter = Counter()
    factory = (lambda: CountingApp(counter)) if kind == "app" else Hang
    server = await loop.create_server(factory, "127.0.0.1", port, backlog=4096)
    await _until_signalled()
    server.close()


async def serve_bare(port: int, body: bytes) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        # The adapter's own headers too: the ceiling answers exactly what it answers.
        return web.Response(
            body=body,
            content_type="application/health+json",
            headers={"Cache-Control": "no-store", "Vary": "Accept"},
        )

    app = web.Application()
    app.router.add_get("/health", handler)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
    await _until_signalled()
    await runner.cleanup()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("kind", choices=["app", "hang", "bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, help="bare: the JSON body to answer")
    args = parser.parse_args()
    from adapter.loop import event_loop_factory

    if args.kind == "bare":
        body = args.body.read_bytes() if args.body else b'{"status":"pass"}'
        coroutine = serve_bare(args.port, body)
    else:
        coroutine = serve_protocol(args.kind, args.port)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(coroutine)


if __name__ == "__main__":
    main()
