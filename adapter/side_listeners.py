"""The listeners beside HTTP: HAProxy's agent check and gRPC health, started and
stopped together with the adapter's HTTP port (`SidePorts`, a Listener of
adapter.lifecycle).

Each is off unless its `server.` key is set. They read what HTTP reads (the
verdicts kept from the background runs) through `verdict_for(service)`
(adapter.services), and are held to `server.max_connections` and
`server.keepalive_timeout` as the HTTP listener is. Their addresses are read
at start-up: a reload changes what they answer, not where they listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from adapter.config import ServerConfig, TcpAddress, parse_listen
from adapter.haproxy_agent import HaproxyAgent
from adapter.health import Verdict
from adapter.listener import ListenError
from adapter.server import STORE, current_config, verdict_of
from adapter.services import GROUP_SERVICES
from adapter.state import StateStore

if TYPE_CHECKING:
    from adapter.grpc_health import GrpcHealth
    from adapter.lifecycle import Lifecycle

VerdictFor = Callable[[str], Verdict | None]


@dataclasses.dataclass
class SideListeners:
    """The agent and gRPC servers that `start_side_listeners` started (None: not asked for)."""

    agent: HaproxyAgent | None = None
    grpc: GrpcHealth | None = None

    async def stop(self, grace: float = 1.0) -> None:
        """Stop listening; open gRPC calls get `grace` seconds, agent connections none."""
        stops = []
        if self.agent is not None:
            stops.append(self.agent.stop())
        if self.grpc is not None:
            stops.append(self.grpc.stop(grace))
        await asyncio.gather(*stops, return_exceptions=True)


async def start_side_listeners(
    server: ServerConfig,
    verdict_for: VerdictFor,
    store: StateStore,
    *,
    details: Callable[[], bool],
) -> SideListeners:
    """Start what `server` asks for; ListenError (all stopped again) if one cannot bind."""
    side = SideListeners()
    try:
        if server.haproxy_agent is not None:
            agent_config = server.haproxy_agent
            side.agent = HaproxyAgent(
                lambda: _ready(verdict_for),
                warn_weight=agent_config.warn_percent,
                details=details,
                max_connections=server.max_connections,
                linger=float(server.keepalive_timeout),
            )
            await _bind(side.agent.start, agent_config.listen)
        if server.grpc is not None:
            from adapter.grpc_health import GrpcHealth  # the grpc extra, only when asked for

            side.grpc = GrpcHealth(
                _named_checks_if(details, verdict_for), store, max_rpcs=server.max_connections
            )
            await _bind(side.grpc.start, server.grpc.listen)
    except BaseException:
        with contextlib.suppress(Exception):
            await side.stop(0)
        raise
    return side


def _named_checks_if(details: Callable[[], bool], verdict_for: VerdictFor) -> VerdictFor:
    """`verdict_for`, where a check's name is unknown unless details are public: gRPC
    carries no token here, and answering by name would tell which checks exist."""

    def verdict(service: str) -> Verdict | None:
        if service == "" or service in GROUP_SERVICES or details():
            return verdict_for(service)
        return None

    return verdict


def _ready(verdict_for: VerdictFor) -> Verdict:
    verdict = verdict_for("ready")
    assert verdict is not None  # a group always has a verdict
    return verdict


async def _bind(start: Callable[[str, int], Awaitable[None]], listen: str) -> None:
    address = parse_listen(listen)
    assert isinstance(address, TcpAddress)  # the config refuses Unix sockets here
    try:
        await start(address.host, address.port)
    except OSError as exc:
        raise ListenError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


class SidePorts:
    """The agent and gRPC ports as one Listener (adapter.lifecycle): bound right
    after HTTP and before the first check, closed after the shutdown delay, so
    that both say "draining" all through it. They read the verdicts and the
    drain the HTTP endpoints read (adapter.server.verdict_of)."""

    name = "side ports"

    def __init__(self) -> None:
        self.listening: SideListeners | None = None
        self._grace = 1.0

    async def start(self, lifecycle: Lifecycle) -> None:
        """Bind what `server.haproxy_agent` and `server.grpc` ask for; ListenError if one cannot."""
        app = lifecycle.app
        assert app is not None  # the lifecycle starts listeners once the app is made
        self._grace = lifecycle.shutdown_timeout
        self.listening = await start_side_listeners(
            current_config(app).server,
            lambda service: verdict_of(app, service),
            app[STORE],
            details=lambda: current_config(app).server.details == "public",
        )

    async def stop(self) -> None:
        """Close both ports; open gRPC calls get the shutdown timeout."""
        listening, self.listening = self.listening, None
        if listening is not None:
            await listening.stop(self._grace)
