"""The `grpc` probe: the standard gRPC health check, `grpc.health.v1.Health/Check`.

SERVING passes; NOT_SERVING, UNKNOWN, a service the server does not know and a
server without the health service fail. It needs the `grpc` extra
(`pip install 'health-adapter[grpc]'`): this module imports without it, and a
config that uses the probe without it is refused with that hint.

Each check keeps one channel between runs and closes it with the adapter:
gRPC core finishes (or gives up) a connection attempt in its own time, up to
20 s after the channel that began it was closed, so a channel per run would
pile sockets up against a server that accepts and never answers. What a kept
channel remembers never decides a later run, though:

- a call that failed drops the channel, and the next run starts a new one,
  so the channel's reconnect backoff (which grows to minutes during a long
  outage) never fails the first run after the server is back;
- every run resolves the host name; when its addresses change, the channel
  is replaced, so the check follows a name that moved, like the tcp probe;
- the TLS files are read again when they change on disk (probes.material),
  and the channel is replaced with one that uses them.

The runner owns the deadline: the call has none of its own, and a cancelled
run cancels the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import os
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Annotated, Any

import msgspec

from probes.address import Host, format_endpoint
from probes.base import Probe, Reason, Result, Status
from probes.certificates import (
    CertExpiry,
    CertExpiryFail,
    CertExpiryWarn,
    ExpiryLimits,
    presented_expiry,
)
from probes.connection import classify_connect_error, elapsed_ms, tls_failure
from probes.material import Reread
from probes.tls import (
    CaFile,
    KeyFile,
    PemMaterial,
    PemPath,
    ServerName,
    TlsSettings,
    TlsSetupError,
    pem_material,
)
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
    # Names are resolved by the system's resolver (getaddrinfo), as the http and
    # tcp probes resolve them: gRPC's own c-ares resolver reads /etc/hosts its
    # own way (one address of a name that has two) and caches on its own terms.
    os.environ.setdefault("GRPC_DNS_RESOLVER", "native")
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
            Host,
            msgspec.Meta(
                description="host name or address of the gRPC server; an IPv6 address "
                "with or without brackets"
            ),
        ] = Host("127.0.0.1")
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
        server_name: ServerName = None
        cert_file: Annotated[
            PemPath | None, msgspec.Meta(description="PEM client certificate, for mutual TLS")
        ] = None
        key_file: KeyFile = None
        cert_expiry_warn: CertExpiryWarn = None
        cert_expiry_fail: CertExpiryFail = None

        def __post_init__(self) -> None:
            ExpiryLimits.checked(self.cert_expiry_warn, self.cert_expiry_fail)
            if not self.tls:
                for key in (
                    "ca_file",
                    "server_name",
                    "cert_file",
                    "key_file",
                    "cert_expiry_warn",
                    "cert_expiry_fail",
                ):
                    if getattr(self, key) is not None:
                        raise option_error(key, f"{key} needs tls: true")
            if (self.cert_file is None) != (self.key_file is None):
                raise option_error(
                    "cert_file" if self.cert_file is None else "key_file",
                    "cert_file and key_file go together",
                )

    config: Options
    _open_channel: Any = None  # made at the first run, closed with the adapter
    # What the open channel was made for: the TLS material and the host's addresses.
    _channel_made_for: tuple[PemMaterial | None, frozenset[str]] | None = None

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
        target = format_endpoint(config.host, config.port)
        material = self._material.get() if config.tls else None
        try:
            addresses = await _resolve(str(config.host), config.port)
        except socket.gaierror as exc:
            await self.close()
            return Result(
                Status.FAIL,
                f"cannot resolve {config.host}: {exc.strerror or exc}",
                reason=Reason.DNS,
            )
        made_for = (material, addresses)
        if self._open_channel is not None and self._channel_made_for != made_for:
            await self.close()
        if self._open_channel is None:
            self._open_channel = self._channel(modules, target, material)
            self._channel_made_for = made_for
        started = time.perf_counter()
        stub = modules.health_pb2_grpc.HealthStub(self._open_channel)
        request = modules.health_pb2.HealthCheckRequest(service=config.service)
        try:
            response = await stub.Check(request)
        except modules.aio.AioRpcError as exc:
            # The call has ended, and with it the channel's connection attempt:
            # a new channel next run, without this one's reconnect backoff.
            await self.close()
            reason, message = classify_rpc_error(
                exc, modules.grpc, target, config.service, str(config.server_name or config.host)
            )
            return Result(Status.FAIL, message, reason=reason)
        elapsed = elapsed_ms(started)
        serving = modules.health_pb2.HealthCheckResponse.ServingStatus
        name = serving.Name(response.status)
        what = f"service {config.service!r}" if config.service else "server"
        output = f"{what} is {name} ({target}, {elapsed} ms)"
        if response.status == serving.Value("SERVING"):
            result = Result(Status.PASS, output, elapsed, "ms")
        else:
            result = Result(Status.FAIL, output, elapsed, "ms", reason=Reason.STATUS)
        if not self._limits.active:
            return result
        try:
            expiry = await self._presented_expiry()
        except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
            reason, message = classify_connect_error(exc, target, tls=True)
            return Result(Status.FAIL, f"reading the certificate: {message}", reason=reason)
        return self._limits.apply(result, expiry, time.time())

    async def _presented_expiry(self) -> CertExpiry | None:
        """The expiry of the chain the server presents, read in a TLS handshake of its own.

        gRPC's Python API shows a client nothing of the server's certificate,
        so the probe opens one more connection, with the same server name,
        ALPN h2 and client certificate, and closes it after the handshake. It
        does not verify: gRPC's own handshake has just done that, and an
        expired certificate must still be read.
        """
        config = self.config
        context = self._chain_context.get()
        _reader, writer = await asyncio.open_connection(
            str(config.host),
            config.port,
            ssl=context,
            server_hostname=str(config.server_name or config.host),
        )
        try:
            return presented_expiry(writer.get_extra_info("ssl_object"))
        finally:
            writer.close()
            writer.transport.abort()

    @functools.cached_property
    def _limits(self) -> ExpiryLimits:
        return ExpiryLimits(self.config.cert_expiry_warn, self.config.cert_expiry_fail)

    @functools.cached_property
    def _chain_context(self) -> Reread[ssl.SSLContext]:
        config = self.config
        settings = TlsSettings(False, config.ca_file, config.cert_file, config.key_file)
        return Reread(
            settings.files(),
            functools.partial(_with_h2, settings.build),
            what="TLS material " + ", ".join(f for f in settings.files() if f),
            errors=(TlsSetupError,),
        )

    async def close(self) -> None:
        channel, self._open_channel = self._open_channel, None
        if channel is not None:
            await channel.close(grace=None)

    @functools.cached_property
    def _material(self) -> Reread[PemMaterial]:
        config = self.config
        return pem_material(config.ca_file, config.cert_file, config.key_file)

    def _channel(self, modules: _Grpc, target: str, material: PemMaterial | None) -> Any:
        config = self.config
        # No retries: one call, one answer; the service config would retry
        # UNAVAILABLE calls and hide a server that refuses connections.
        # No proxy from the environment either (http_proxy, grpc_proxy): the target is
        # the service beside the adapter, as for the http probe.
        options: list[tuple[str, Any]] = [("grpc.enable_retries", 0), ("grpc.enable_http_proxy", 0)]
        if not config.tls:
            return modules.aio.insecure_channel(target, options=options)
        if config.server_name is not None:
            options.append(("grpc.ssl_target_name_override", config.server_name))
        ca, cert, key = material if material is not None else (None, None, None)
        credentials = modules.grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=cert
        )
        return modules.aio.secure_channel(target, credentials, options=options)


def _with_h2(build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    context = build()
    context.set_alpn_protocols(["h2"])  # what a gRPC client offers
    return context


async def _resolve(host: str, port: int) -> frozenset[str]:
    """The addresses `host` names now (a literal address names itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return frozenset(str(info[4][0]) for info in infos)


def classify_rpc_error(
    exc: Any, grpc: ModuleType, target: str, service: str, server_name: str | None = None
) -> tuple[Reason, str]:
    """The reason and a one-line output for a failed health call; `server_name` is
    the name the certificate was verified against, for the wording of a mismatch."""
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
            return Reason.TLS, tls_failure(target, details, server_name=server_name)
        return Reason.CONNECTION_ERROR, f"cannot reach {target}: {details or 'UNAVAILABLE'}"
    # Any other code comes with the server's own message, which is the target's
    # text like a response body: it is not quoted.
    return Reason.CONNECTION_ERROR, f"health call to {target} failed: {code.name}"
