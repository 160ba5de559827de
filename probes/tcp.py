"""The `tcp` probe: connect to a port; optionally send a line, expect a reply, speak TLS.

A run is one connection. With nothing else configured, a completed connect
(and TLS handshake, with `tls: true`) passes. `send` writes text once the
connection is up; `expect` reads the reply until the pattern matches, the
peer closes, or 4 KiB have been read (the rule of probes.reading). The runner owns the deadline: nothing
here times out on its own, and the connection is closed however the run ends.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import re
import socket
import ssl
import time
from typing import Annotated

import msgspec

from probes.address import Host, format_endpoint
from probes.base import Probe, Reason, Result, Status
from probes.material import Reread
from probes.reading import Ended, read_until, text_matcher
from probes.tls import (
    CaFile,
    KeyFile,
    PemPath,
    ServerName,
    TlsSettings,
    TlsSetupError,
    describe_ssl_error,
    tls_failure,
)
from probes.types import option_error

__all__ = ["EXPECT_LIMIT", "TcpProbe", "TlsSetupError", "classify_connect_error"]

#: `expect` looks at no more than this many leading bytes of the reply.
EXPECT_LIMIT = 4096

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
# "Multiple exceptions: [Errno 111] Connect call failed ('::1', …), [Errno 111] …":
# asyncio's message when every address of a name failed (3.11 keeps no list).
_ERRNO_IN_MESSAGE = re.compile(r"\[Errno (\d+)\]")
_LITERAL_ESCAPE = re.compile(r"\\[rn]")


class TcpProbe(Probe):
    """Connect to a TCP port; optionally send text and expect a reply, over TLS if asked."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        host: Annotated[
            Host,
            msgspec.Meta(
                description="host name or address to connect to; an IPv6 address with "
                "or without brackets"
            ),
        ] = Host("127.0.0.1")
        port: Annotated[Port, msgspec.Meta(description="TCP port to connect to")]
        send: Annotated[
            _NonEmpty | None,
            msgspec.Meta(
                description="text to send once connected, UTF-8; write it in double quotes "
                'for escapes: "PING\\r\\n"'
            ),
        ] = None
        expect: Annotated[
            re.Pattern | None,  # type: ignore[type-arg]  # msgspec decodes the bare class only
            msgspec.Meta(
                description="regular expression the reply must match within its first 4 KiB"
            ),
        ] = None
        tls: Annotated[bool, msgspec.Meta(description="do a TLS handshake after connecting")] = (
            False
        )
        tls_verify: Annotated[
            bool,
            msgspec.Meta(description="verify the server's certificate and host name (with tls)"),
        ] = True
        ca_file: CaFile = None
        cert_file: Annotated[
            PemPath | None,
            msgspec.Meta(description="PEM client certificate, for mutual TLS (may hold the key)"),
        ] = None
        key_file: KeyFile = None
        server_name: ServerName = None

        def __post_init__(self) -> None:
            if not self.tls:
                for key in ("ca_file", "server_name", "cert_file", "key_file"):
                    if getattr(self, key) is not None:
                        raise option_error(key, f"{key} needs tls: true")
                if not self.tls_verify:
                    raise option_error("tls_verify", "tls_verify needs tls: true")
            if self.key_file is not None and self.cert_file is None:
                raise option_error("key_file", "key_file requires cert_file")
            if self.send is not None and _LITERAL_ESCAPE.search(self.send):
                # A plain or single-quoted YAML scalar keeps \r\n as two characters;
                # no line protocol wants a backslash there.
                raise option_error(
                    "send",
                    "send holds a literal backslash escape (\\r or \\n); write the text in "
                    'double quotes, like "PING\\r\\n", so that YAML turns it into a line break',
                )

    config: Options

    async def check(self) -> Result:
        config = self.config
        where = format_endpoint(config.host, config.port)
        context = self._tls_context.get() if config.tls else None
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection(
                str(config.host),  # uvloop and the ssl module take an exact str
                config.port,
                ssl=context,
                server_hostname=str(config.server_name or config.host) if config.tls else None,
            )
        except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
            reason, message = classify_connect_error(exc, where, tls=config.tls)
            return Result(Status.FAIL, message, reason=reason)
        connect_ms = _elapsed_ms(started)
        connected = f"{'TLS ' if config.tls else ''}connected to {where} in {connect_ms} ms"
        try:
            problem = await self._converse(reader, writer)
        except (OSError, ssl.SSLError) as exc:
            problem = Reason.CONNECTION_ERROR, f"{connected}, then: {describe_ssl_error(exc)}"
        finally:
            # Close without waiting for the peer: a TLS close_notify is sent,
            # an answer to it is not awaited, and no socket outlives the run.
            writer.close()
            writer.transport.abort()
        if problem is not None:
            reason, output = problem
            return Result(Status.FAIL, output, connect_ms, "ms", reason=reason)
        if config.expect is not None:
            connected += f"; reply matches /{config.expect.pattern}/"
        return Result(Status.PASS, connected, connect_ms, "ms")

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[Reason, str] | None:
        """Send and expect as configured; the reason and output when the reply is wrong."""
        config = self.config
        if config.send is not None:
            writer.write(config.send.encode())
            await writer.drain()
        if config.expect is None:
            return None
        reading = await read_until(reader.read, EXPECT_LIMIT, text_matcher(pattern=config.expect))
        if reading.ended is Ended.MATCH:
            return None
        if reading.ended is Ended.END:
            ended = f"the connection was closed after {len(reading.data)} bytes"
        else:
            ended = f"no match in the first {EXPECT_LIMIT} bytes"
        # The reply itself is not quoted: it is the target's, and may be anything.
        return Reason.BODY_MISMATCH, f"reply does not match /{config.expect.pattern}/ ({ended})"

    @functools.cached_property
    def _tls_context(self) -> Reread[ssl.SSLContext]:
        config = self.config
        return TlsSettings(
            config.tls_verify, config.ca_file, config.cert_file, config.key_file
        ).reread()


def classify_connect_error(
    exc: BaseException, where: str, *, tls: bool = False
) -> tuple[Reason, str]:
    """The reason and a one-line output for a connection that could not be made."""
    if isinstance(exc, ssl.CertificateError | ssl.SSLError):
        return Reason.TLS, tls_failure(where, exc)
    if isinstance(exc, socket.gaierror):
        host = where.rpartition(":")[0]
        return Reason.DNS, f"cannot resolve {host}: {exc.strerror or exc}"
    numbers = _errnos(exc)
    if numbers and all(number == errno.ECONNREFUSED for number in numbers):
        return Reason.CONNECTION_REFUSED, f"connection refused by {where}"
    if tls and isinstance(exc, ConnectionResetError | ConnectionAbortedError | EOFError):
        return Reason.TLS, tls_failure(where, exc)
    return Reason.CONNECTION_ERROR, f"cannot connect to {where}: {describe_ssl_error(exc)}"


def _errnos(exc: BaseException) -> list[int]:
    if isinstance(exc, OSError) and exc.errno is not None:
        return [exc.errno]
    return [int(number) for number in _ERRNO_IN_MESSAGE.findall(str(exc))]


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
