"""The `grpc` probe: the standard gRPC health check, `grpc.health.v1.Health/Check`.

SERVING passes; NOT_SERVING, UNKNOWN, a service the server does not know and a
server without the health service fail. It needs the `grpc` extra
(`pip install 'health-adapter[grpc]'`): this module imports without it, and a
config that uses the probe without it is refused with that hint.

Each check keeps one channel, made at its first run and closed with the
adapter: gRPC core finishes (or gives up) a connection attempt in its own
time, up to 20 s after the channel that began it was closed, so a channel per
run would pile sockets up against a server that accepts and never answers.
The channel reconnects by itself after a failure; a call on a channel that
cannot connect fails at once (UNAVAILABLE) rather than waiting for it. The
runner owns the deadline: the call has none of its own, and a cancelled run
cancels the call.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Annotated, Any

import msgspec

from probes.base import Probe, Reason, Result, Status
from probes.tls import CaFile, KeyFile, PemPath, TlsSetupError, read_pem
from probes.types import option_error

__all__ = [
    "INSTALL_HINT",
    "GrpcProbe",
    "GrpcUnavailable",
    "TlsSetupError",
    "classify_rpc_error",
    "load_grpc",
]

INSTALL_HINT = (
    "the grpc probe needs the grpc extra: pip install 'health-adapter[grpc]' "
    "(grpcio and grpcio-health-checking)"
)

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class GrpcUnavailable(ImportError):
    """grpcio or grpcio-health-checking is not installed."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Grpc:
    grpc: ModuleType
    aio: ModuleType
    health_pb2: Any
    health_pb2_grpc: Any


@functools.cache
def load_grpc() -> _Grpc:
    """The grpc modules the probe uses; GrpcUnavailable when the extra is missing."""
    # gRPC's core logs every failed handshake on stderr at INFO, once per run;
    # the adapter logs a check's state changes once. An explicit setting wins.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        return _Grpc(
            importlib.import_module("grpc"),
            importlib.import_module("grpc.aio"),
            importlib.import_module("grpc_health.v1.health_pb2"),
            importlib.import_module("grpc_health.v1.health_pb2_grpc"),
        )
    except ImportError as exc:
        raise GrpcUnavailable(f"{INSTALL_HINT}; {exc}") from None


class GrpcProbe(Probe):
    """Call grpc.health.v1.Health/Check; pass when the service is SERVING."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        host: Annotated[
            _NonEmpty, msgspec.Meta(description="host name or address of the gRPC server")
        ] = "127.0.0.1"
        port: Annotated[int, msgspec.Meta(ge=1, le=65535, description="port of the gRPC server")]
        service: Annotated[
            str,
            msgspec.Meta(
                description='service name to ask about; "" (the default) asks about '
                "the server as a whole"
            ),
        ] = ""
        tls: Annotated[bool, msgspec.Meta(description="connect with TLS")] = False
        ca_file: CaFile = None
        server_name: Annotated[
            _NonEmpty | None,
            msgspec.Meta(description="name expected in the server's certificate (default: host)"),
        ] = None
        cert_file: Annotated[
            PemPath | None, msgspec.Meta(description="PEM client certificate, for mutual TLS")
        ] = None
        key_file: KeyFile = None

        def __post_init__(self) -> None:
            if not self.tls:
                for key in ("ca_file", "server_name", "cert_file", "key_file"):
                    if getattr(self, key) is not None:
                        raise option_error(key, f"{key} needs tls: true")
            if (self.cert_file is None) != (self.key_file is None):
                raise option_error(
                    "cert_file" if self.cert_file is None else "key_file",
                    "cert_file and key_file go together",
                )

    config: Options
    _open_channel: Any = None  # made at the first run, closed with the adapter

    @classmethod
    def missing_requirement(cls) -> str | None:
        try:
            load_grpc()
        except GrpcUnavailable:
            return INSTALL_HINT
        return None

    @classmethod
    def parse_options(cls, options: Mapping[str, Any]) -> Any:
        # Refused here, so that `validate` reports it at the check's grpc block.
        missing = cls.missing_requirement()
        if missing is not None:
            raise msgspec.ValidationError(missing)
        return super().parse_options(options)

    async def check(self) -> Result:
        modules = load_grpc()
        config = self.config
        target = f"{_host_for_target(config.host)}:{config.port}"
        if self._open_channel is None:
            self._open_channel = self._channel(modules, target)
        started = time.perf_counter()
        stub = modules.health_pb2_grpc.HealthStub(self._open_channel)
        request = modules.health_pb2.HealthCheckRequest(service=config.service)
        try:
            response = await stub.Check(request)
        except modules.aio.AioRpcError as exc:
            reason, message = classify_rpc_error(exc, modules.grpc, target, config.service)
            return Result(Status.FAIL, message, reason=reason)
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        serving = modules.health_pb2.HealthCheckResponse.ServingStatus
        name = serving.Name(response.status)
        what = f"service {config.service!r}" if config.service else "server"
        output = f"{what} is {name} ({target}, {elapsed} ms)"
        if response.status == serving.Value("SERVING"):
            return Result(Status.PASS, output, elapsed, "ms")
        return Result(Status.FAIL, output, elapsed, "ms", reason=Reason.STATUS)

    async def close(self) -> None:
        channel, self._open_channel = self._open_channel, None
        if channel is not None:
            await channel.close(grace=None)

    def _channel(self, modules: _Grpc, target: str) -> Any:
        config = self.config
        # No retries: one call, one answer; the service config would retry
        # UNAVAILABLE calls and hide a server that refuses connections.
        options: list[tuple[str, Any]] = [("grpc.enable_retries", 0)]
        if not config.tls:
            return modules.aio.insecure_channel(target, options=options)
        if config.server_name is not None:
            options.append(("grpc.ssl_target_name_override", config.server_name))
        credentials = modules.grpc.ssl_channel_credentials(
            root_certificates=read_pem(config.ca_file, "ca_file"),
            private_key=read_pem(config.key_file, "key_file"),
            certificate_chain=read_pem(config.cert_file, "cert_file"),
        )
        return modules.aio.secure_channel(target, credentials, options=options)


def _host_for_target(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def classify_rpc_error(exc: Any, grpc: ModuleType, target: str, service: str) -> tuple[Reason, str]:
    """The reason and a one-line output for a failed health call."""
    code = exc.code()
    details = " ".join(str(exc.details() or "").split())
    codes = grpc.StatusCode
    if code is codes.NOT_FOUND:
        return Reason.STATUS, f"service {service!r} is unknown to {target} (NOT_FOUND)"
    if code is codes.UNIMPLEMENTED:
        return Reason.STATUS, f"{target} does not implement grpc.health.v1.Health (UNIMPLEMENTED)"
    if code is codes.UNAVAILABLE:
        lowered = details.lower()
        if "connection refused" in lowered:
            return Reason.CONNECTION_REFUSED, f"connection refused by {target}"
        if "dns resolution failed" in lowered or "errors resolving" in lowered:
            return Reason.DNS, f"cannot resolve {target}: {details}"
        if any(
            word in lowered for word in ("ssl", "tls", "handshake", "certificate", "verification")
        ):
            return Reason.TLS, f"TLS error with {target}: {details}"
        return Reason.CONNECTION_ERROR, f"cannot reach {target}: {details or 'UNAVAILABLE'}"
    # Any other code comes with the server's own message, which is the target's
    # text like a response body: it is not quoted.
    return Reason.CONNECTION_ERROR, f"health call to {target} failed: {code.name}"
