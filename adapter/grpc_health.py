"""gRPC's health service (grpc.health.v1.Health) from the verdicts HTTP serves.

    Check(service)  SERVING (pass, warn) or NOT_SERVING (fail); NOT_FOUND for a
                    name that is neither a group nor a check (adapter.services)
    Watch(service)  the status now, then a message on every change and nothing
                    in between; SERVICE_UNKNOWN for an unknown name (the
                    protocol's own rule: it may appear later)

Nothing runs on a request: each RPC judges the kept results, as HTTP does.
A watcher wakes when the state store records a run and, once a second, for
what time alone changes (a result turning stale, the drain file); it sends
only when the status differs from what it sent last. At most `max_rpcs`
calls run at once, watches included; more are refused RESOURCE_EXHAUSTED by
gRPC itself, so a flood of watchers cannot grow without bound.

Needs the `grpc` extra (grpcio, grpcio-health-checking); the config refuses
`server.grpc` without it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapter.health import Verdict
from adapter.state import CheckState, StateStore
from probes import Status
from probes.address import format_endpoint

SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: int = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
#: A request is one service name: anything larger is not a health request.
MAX_MESSAGE = 4096
#: Seconds between a watcher's looks at what time alone changes (staleness, drain file).
RECHECK = 1.0


class GrpcHealth:
    """The gRPC server. `verdict_for(service)` is a verdict, or None for an unknown name."""

    def __init__(
        self,
        verdict_for: Callable[[str], Verdict | None],
        store: StateStore,
        *,
        max_rpcs: int = 256,
        recheck: float = RECHECK,
    ) -> None:
        self.verdict_for = verdict_for
        self.store = store
        self.max_rpcs = max_rpcs
        self.recheck = recheck
        self.port: int | None = None
        self._server: grpc.aio.Server | None = None
        self._changed = asyncio.Event()
        self._stopping = False

    def status(self, service: str) -> int:
        verdict = self.verdict_for(service)
        if verdict is None:
            return SERVICE_UNKNOWN
        return NOT_SERVING if verdict.status is Status.FAIL else SERVING

    async def start(self, host: str, port: int) -> None:
        """Listen on `host:port` (port 0: any free one); OSError if it cannot bind."""
        server = grpc.aio.server(
            maximum_concurrent_rpcs=self.max_rpcs,
            options=[
                ("grpc.so_reuseport", 0),  # a second adapter on the port is an error
                ("grpc.max_receive_message_length", MAX_MESSAGE),
            ],
        )
        health_pb2_grpc.add_HealthServicer_to_server(_Servicer(self), server)
        try:
            bound = server.add_insecure_port(format_endpoint(host, port))
        except RuntimeError as exc:  # grpcio >= 1.50 raises instead of returning 0
            raise OSError(f"address unavailable ({exc})") from None
        if bound == 0:
            raise OSError("address unavailable")
        self.port = bound
        self.store.subscribe(self._on_change)
        await server.start()
        self._server = server

    async def stop(self, grace: float = 1.0) -> None:
        """Stop listening; watches end at once (they never finish by themselves), other
        calls in flight get `grace` seconds."""
        self.store.unsubscribe(self._on_change)
        self._stopping = True
        self._on_change("", CheckState(), CheckState())  # wake the watchers to end
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)

    def _on_change(self, _name: str, _old: CheckState, _new: CheckState) -> None:
        # Every watcher waits on the event of its moment: wake them all, and
        # give the next round a fresh one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def watch(self, service: str) -> AsyncIterator[int]:
        """The status of `service` now, then each time it changes."""
        last: int | None = None
        while not self._stopping:
            changed = self._changed
            status = self.status(service)
            if status != last:
                yield status
                last = status
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), self.recheck)


class _Servicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    def __init__(self, health: GrpcHealth) -> None:
        self.health = health

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        status = self.health.status(request.service)
        if status == SERVICE_UNKNOWN:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for status in self.health.watch(request.service):
            yield health_pb2.HealthCheckResponse(status=status)
