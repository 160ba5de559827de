"""Where and how the adapter listens: a TCP address or a Unix socket, a cap on
open connections, and the limits every connection is held to.

aiohttp has no connection cap of its own. `LimitedSite` hands the runner's
protocol factory to the event loop behind a check: once `max_connections`
are open, a new connection takes the place of the oldest one that is not
busy with a request (idle, or still waiting for a whole request), which is
closed. So a flood that holds every slot and reconnects as fast as it is
closed cannot lock a monitor out: the monitor's connection is the newest,
and its request is answered before the flood's turn over the slots. Only
when every slot is busy answering is a new connection closed as soon as it
is accepted. Idle connections, and clients that never finish a request
(slowloris), are also closed after `keepalive_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import stat
from typing import TYPE_CHECKING

from aiohttp import web

from adapter.request_log import BadRequestFilter, sampled_access_logger
from probes.address import MissingPort, format_endpoint, split_host_port

if TYPE_CHECKING:
    # Only for annotations: the config imports this module to check `listen`.
    from adapter.config import Config

log = logging.getLogger("health_adapter")

#: Where the adapter listens when the config does not say.
DEFAULT_LISTEN = "0.0.0.0:9180"

#: The request line (method, URL, version) at most; a longer one is answered 414/400.
MAX_REQUEST_LINE = 4096
#: One header field at most (browsers on the same host may send long cookies).
MAX_HEADER_FIELD = 8190
MAX_HEADERS = 64
#: Request bodies are never read: the endpoints take none.
CLIENT_MAX_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class TcpAddress:
    """A TCP address to listen on; `host` "0.0.0.0" or "::" is every address."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_endpoint(self.host, self.port)


@dataclasses.dataclass(frozen=True)
class UnixAddress:
    """A Unix socket to listen on, by its absolute path."""

    path: str

    def __str__(self) -> str:
        return f"unix:{self.path}"


ListenAddress = TcpAddress | UnixAddress
UNIX_PREFIX = "unix:"


def parse_listen(value: str) -> ListenAddress:
    """`host:port`, `[v6]:port`, `:port`, `port` (empty host = all) or `unix:/path`.

    Raises ValueError with a message that quotes `value` and says how to write
    it. A Unix socket path is at most 107 bytes (sun_path in unix(7)).
    """
    text = str(value).strip()
    if text.startswith(UNIX_PREFIX):
        path = text[len(UNIX_PREFIX) :]
        if not path.startswith("/") or "\0" in path:
            raise ValueError(
                f"invalid listen address {value!r}: write a Unix socket as unix:/absolute/path.sock"
            )
        if len(os.fsencode(path)) > 107:  # sun_path holds 108 bytes with the NUL
            raise ValueError(
                f"invalid listen address {value!r}: a Unix socket path is limited to 107 bytes"
            )
        return UnixAddress(path)
    try:
        host, port = split_host_port(text, default_host="0.0.0.0")
    except MissingPort:
        raise ValueError(
            f"invalid listen address {value!r}: write it as HOST:PORT or "
            f"unix:/path.sock, e.g. {DEFAULT_LISTEN!r}"
        ) from None
    except ValueError as exc:
        raise ValueError(f"invalid listen address {value!r}: {exc}") from None
    return TcpAddress(host, port)


class ListenError(Exception):
    """The listen address cannot be bound."""


def runner_options(config: Config) -> dict[str, object]:
    """The aiohttp runner settings that harden every connection."""
    server = config.server
    http_log = logging.getLogger("health_adapter.http")
    # One budget per server started (in practice, per process).
    for old in [f for f in http_log.filters if isinstance(f, BadRequestFilter)]:
        http_log.removeFilter(old)
    http_log.addFilter(BadRequestFilter())
    options: dict[str, object] = {
        "handle_signals": False,
        "keepalive_timeout": float(server.keepalive_timeout),
        # A body nobody reads is not waited for: after the answer, a connection
        # whose request body is still arriving is closed instead of drained.
        "lingering_time": 0,
        "max_line_size": MAX_REQUEST_LINE,
        "max_field_size": MAX_HEADER_FIELD,
        "max_headers": MAX_HEADERS,
        "logger": http_log,
        "access_log": None,
    }
    if server.access_log > 0:
        options["access_log"] = logging.getLogger("health_adapter.access")
        options["access_log_class"] = sampled_access_logger(server.access_log)
    return options


class _Refused(asyncio.Protocol):
    """Stands in for a connection over the cap: closed at once, nothing read or sent."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports act as asyncio.Transport without subclassing it.
        abort = getattr(transport, "abort", None)
        if abort is not None:
            abort()
        else:
            transport.close()


class LimitedSite(web.BaseSite):
    """A TCP or Unix socket site that keeps at most `max_connections` open.

    `evicted` counts idle connections closed to make room for a new one,
    `refused` new ones closed because every slot was busy answering (see the
    module's docstring for why that order).
    """

    __slots__ = (
        "_accepting",
        "_evicted",
        "address",
        "evicted",
        "max_connections",
        "refused",
        "socket_mode",
    )

    def __init__(
        self,
        runner: web.BaseRunner,
        address: ListenAddress,
        *,
        max_connections: int,
        socket_mode: int = 0o660,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self.address = address
        self.max_connections = max_connections
        self.socket_mode = socket_mode
        self.refused = 0
        self.evicted = 0
        self._accepting = 0
        # Connections closed to make room, until their close is complete.
        self._evicted: set[web.RequestHandler] = set()

    @property
    def name(self) -> str:
        """The address as logged: `127.0.0.1:9180`, `[::]:9180` or `unix:/path`."""
        return str(self.address)

    @property
    def evicted_pending(self) -> int:
        """Connections closed to make room whose handlers are still held: until their
        close completes and the next connection arrives."""
        return len(self._evicted)

    def _accept(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        if server is None:
            return _Refused()
        if self._evicted:  # closed ones go even when no flood is left to prune them
            self._evicted.intersection_update(server.connections)
        # asyncio calls this factory, creates the transport, and only then
        # schedules the protocol's connection_made with call_soon; a burst of
        # accepts calls the factory several times before any of them is
        # registered. `_accepting` counts those, until just before their
        # connection_made runs.
        if len(server.connections) + self._accepting >= self.max_connections and not (
            self._room_made(server.connections)
        ):
            self.refused += 1
            return _Refused()
        self._accepting += 1
        asyncio.get_running_loop().call_soon(self._accepted)
        return server()

    def _accepted(self) -> None:
        self._accepting -= 1

    def _room_made(self, connections: list[web.RequestHandler]) -> bool:
        """Whether there is a slot, once the oldest connection not busy is closed."""
        self._evicted.intersection_update(connections)  # those closed are gone
        open_ = [handler for handler in connections if handler not in self._evicted]
        if len(open_) + self._accepting < self.max_connections:
            return True  # earlier evictions are still closing
        for handler in open_:  # oldest first
            # aiohttp keeps no public flag for this; a handler without it counts as busy.
            if not getattr(handler, "_request_in_progress", True):
                self._evicted.add(handler)
                handler.force_close()
                self.evicted += 1
                return True
        return False

    async def start(self) -> None:
        """Bind and listen. A Unix socket replaces a leftover socket file, never a
        file of another kind nor a socket someone listens on (OSError); its
        mode is `socket_mode`, and it is never reachable with a wider one."""
        await super().start()
        loop = asyncio.get_running_loop()
        address = self.address
        if isinstance(address, TcpAddress):
            self._server = await loop.create_server(
                self._accept,
                address.host,
                address.port,
                backlog=self._backlog,
                reuse_address=True,
            )
        else:
            _remove_stale_socket(address.path)
            # The socket file is created with the process umask; narrow it
            # before anyone can connect, then set the configured mode.
            old_umask = os.umask(0o177)
            try:
                self._server = await loop.create_unix_server(
                    self._accept, address.path, backlog=self._backlog
                )
            finally:
                os.umask(old_umask)
            os.chmod(address.path, self.socket_mode)

    async def stop(self) -> None:
        """Stop listening, and remove the Unix socket file if it is still a socket."""
        await super().stop()
        if isinstance(self.address, UnixAddress):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(self.address.path).st_mode):
                    os.unlink(self.address.path)

    @property
    def port(self) -> int | None:
        """The bound TCP port (useful with port 0), None for a Unix socket."""
        server = self._server
        if server is None or not isinstance(self.address, TcpAddress):
            return None
        # uvloop's Server has them too, without subclassing asyncio's.
        sockets = getattr(server, "sockets", None)
        return int(sockets[0].getsockname()[1]) if sockets else None


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file left by a previous run; refuse to replace anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # nobody listens: a leftover
        return
    except OSError:
        return  # let bind report it
    finally:
        probe.close()
    raise OSError(f"another process is listening on {path}")


async def start_listening(
    app: web.Application,
    config: Config,
    listen: str | ListenAddress,
    *,
    shutdown_timeout: float = 3.0,
) -> web.AppRunner:
    """Start `app` on `listen` with the hardened settings; ListenError if it cannot bind.

    `shutdown_timeout` is how long requests in flight get at cleanup.
    """
    try:
        address = parse_listen(listen) if isinstance(listen, str) else listen
    except ValueError as exc:  # --listen is not checked with the config
        raise ListenError(str(exc)) from None
    runner = web.AppRunner(
        app,
        shutdown_timeout=shutdown_timeout,
        **runner_options(config),  # type: ignore[arg-type]
    )
    await runner.setup()
    site = LimitedSite(
        runner,
        address,
        max_connections=config.server.max_connections,
        socket_mode=config.server.socket_permissions,
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        # asyncio and uvloop both put the address back into strerror; the errno says it plainly.
        reason = os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {listen}: {reason}") from None
    return runner
