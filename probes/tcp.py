"""The `tcp` probe: connect to a port; optionally send a line, expect a reply, speak TLS.

A run is one connection. With nothing else configured, a completed connect
(and TLS handshake, with `tls: true`) passes. `send` writes text once the
connection is up; `expect` reads the reply until the pattern matches, the
peer closes, or 4 KiB have been read (the rule of probes.reading). The runner owns the deadline: nothing
here times out on its own, and the connection is closed however the run ends.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from typing import Annotated

import msgspec

from probes.address import Host, format_endpoint
from probes.base import Probe, Reason, Result, Status
from probes.certificates import (
    CertExpiryFail,
    CertExpiryWarn,
    ExpiryLimits,
    presented_expiry,
)
from probes.connection import classify_connect_error, describe_ssl_error, elapsed_ms
from probes.material import Reread
from probes.reading import Ended, read_until, text_matcher
from probes.tls import CaFile, KeyFile, PemPath, ServerName, TlsSettings, TlsSetupError
from probes.types import option_error

__all__ = ["EXPECT_LIMIT", "Step", "TcpProbe", "TlsSetupError", "classify_connect_error"]

#: `expect` looks at no more than this many leading bytes of the reply.
EXPECT_LIMIT = 4096

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_LITERAL_ESCAPE = re.compile(r"\\[rn]")
_TLS_KEYS = (
    "ca_file",
    "server_name",
    "cert_file",
    "key_file",
    "cert_expiry_warn",
    "cert_expiry_fail",
)


class Step(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One step of a tcp `dialog`: exactly one of `send`, `expect` and `starttls: true`."""

    send: Annotated[
        _NonEmpty | None,
        msgspec.Meta(description="text to send, UTF-8; in double quotes for escapes"),
    ] = None
    expect: Annotated[
        re.Pattern | None,  # type: ignore[type-arg]  # msgspec decodes the bare class only
        msgspec.Meta(
            description="regular expression the reply must match, judged as soon as it "
            "does, within 4 KiB read after the line the previous expect matched in"
        ),
    ] = None
    starttls: Annotated[
        bool,
        msgspec.Meta(
            description="upgrade the connection to TLS here, with the probe's TLS options"
        ),
    ] = False

    def __post_init__(self) -> None:
        given = [key for key in ("send", "expect") if getattr(self, key) is not None] + (
            ["starttls"] if self.starttls else []
        )
        if len(given) != 1:
            found = f"it has {' and '.join(given)}" if given else "it has none"
            raise ValueError(f"a step is exactly one of send, expect or starttls: true; {found}")
        _check_send(self.send, "send")


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
        dialog: Annotated[
            tuple[Step, ...],
            msgspec.Meta(
                description="steps run in order once connected, each one of send: TEXT, "
                "expect: PATTERN or starttls: true (instead of send and expect)"
            ),
        ] = ()
        tls: Annotated[bool, msgspec.Meta(description="do a TLS handshake after connecting")] = (
            False
        )
        tls_verify: Annotated[
            bool,
            msgspec.Meta(
                description="verify the server's certificate and host name (with tls or "
                "a starttls step)"
            ),
        ] = True
        ca_file: CaFile = None
        cert_file: Annotated[
            PemPath | None,
            msgspec.Meta(description="PEM client certificate, for mutual TLS (may hold the key)"),
        ] = None
        key_file: KeyFile = None
        server_name: ServerName = None
        cert_expiry_warn: CertExpiryWarn = None
        cert_expiry_fail: CertExpiryFail = None

        def __post_init__(self) -> None:
            ExpiryLimits.checked(self.cert_expiry_warn, self.cert_expiry_fail)
            starttls = [index for index, step in enumerate(self.dialog) if step.starttls]
            if self.dialog and (self.send is not None or self.expect is not None):
                key = "send" if self.send is not None else "expect"
                raise option_error(
                    key, f"{key} and dialog exclude each other: put it in the dialog as a step"
                )
            if self.tls and starttls:
                raise option_error(
                    f"dialog[{starttls[0]}]",
                    "starttls needs a plain connection: leave out tls: true",
                )
            if len(starttls) > 1:
                raise option_error(f"dialog[{starttls[1]}]", "starttls may come only once")
            if not self.tls and not starttls:
                for key in _TLS_KEYS:
                    if getattr(self, key) is not None:
                        raise option_error(key, f"{key} needs tls: true or a starttls step")
                if not self.tls_verify:
                    raise option_error(
                        "tls_verify", "tls_verify needs tls: true or a starttls step"
                    )
            if self.key_file is not None and self.cert_file is None:
                raise option_error("key_file", "key_file requires cert_file")
            _check_send(self.send, "send")

        @property
        def steps(self) -> tuple[Step, ...]:
            """The dialog, or the one-step form (send, then expect) as one."""
            if self.dialog:
                return self.dialog
            one = [Step(send=self.send)] if self.send is not None else []
            return (*one, Step(expect=self.expect)) if self.expect is not None else tuple(one)

        @property
        def limits(self) -> ExpiryLimits:
            return ExpiryLimits(self.cert_expiry_warn, self.cert_expiry_fail)

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
                server_hostname=self._server_hostname if config.tls else None,
            )
        except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
            reason, message = classify_connect_error(exc, where, tls=config.tls)
            return Result(Status.FAIL, message, reason=reason)
        connect_ms = elapsed_ms(started)
        connected = f"{'TLS ' if config.tls else ''}connected to {where} in {connect_ms} ms"
        conversation = _Conversation(reader, writer)
        try:
            problem = await self._converse(conversation, where)
        except (OSError, ssl.SSLError) as exc:
            problem = Reason.CONNECTION_ERROR, f"{connected}, then: {describe_ssl_error(exc)}"
        finally:
            # Close without waiting for the peer: a TLS close_notify is sent,
            # an answer to it is not awaited, and no socket outlives the run.
            writer = conversation.writer
            expiry = presented_expiry(writer.get_extra_info("ssl_object"))
            writer.close()
            writer.transport.abort()
        if problem is not None:
            reason, output = problem
            result = Result(Status.FAIL, output, connect_ms, "ms", reason=reason)
        else:
            if config.dialog:
                steps = len(config.dialog)
                connected += f"; dialog of {steps} step{'s' if steps > 1 else ''} completed"
            elif config.expect is not None:
                connected += f"; reply matches /{config.expect.pattern}/"
            result = Result(Status.PASS, connected, connect_ms, "ms")
        return config.limits.apply(result, expiry, time.time())

    async def _converse(self, conversation: _Conversation, where: str) -> tuple[Reason, str] | None:
        """Run the steps; the reason and output when one of them goes wrong."""
        config = self.config
        for index, step in enumerate(config.steps):
            # The one-step form keeps its wording; a dialog names the step.
            prefix = f"dialog step {index + 1}: " if config.dialog else ""
            if step.send is not None:
                await conversation.send(step.send)
            elif step.expect is not None:
                ended = await conversation.expect(step.expect)
                if ended is not None:
                    # The reply itself is not quoted: it is the target's, and may be anything.
                    return (
                        Reason.BODY_MISMATCH,
                        f"{prefix}reply does not match /{step.expect.pattern}/ ({ended})",
                    )
            else:
                try:
                    await conversation.start_tls(self._tls_context.get(), self._server_hostname)
                except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
                    reason, message = classify_connect_error(exc, where, tls=True)
                    return reason, f"{prefix}starttls: {message}"
        return None

    @property
    def _server_hostname(self) -> str:
        return str(self.config.server_name or self.config.host)

    @functools.cached_property
    def _tls_context(self) -> Reread[ssl.SSLContext]:
        config = self.config
        return TlsSettings(
            config.tls_verify, config.ca_file, config.cert_file, config.key_file
        ).reread()


class _Conversation:
    """One connection as a dialog goes over it.

    An expect consumes the reply up to the end of the line its match ends in
    (as blackbox_exporter's query_response reads line by line); lines read
    past it are kept for the next expect. A starttls upgrades the writer in place.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._unread = b""

    async def send(self, text: str) -> None:
        self.writer.write(text.encode())
        await self.writer.drain()

    async def expect(self, pattern: re.Pattern[str]) -> str | None:
        """None once `pattern` matches; else how the reading ended, in words."""
        reading = await read_until(self._read, EXPECT_LIMIT, text_matcher(pattern=pattern))
        if reading.ended is Ended.MATCH:
            # Decoded so that every byte maps back. The line the match ends in
            # is consumed; the lines after it stay for the next expect.
            text = reading.data.decode("utf-8", "surrogateescape")
            match = pattern.search(text)
            rest = ""
            if match is not None:
                end = match.end()
                if not text[:end].endswith("\n"):
                    line_end = text.find("\n", end)
                    end = len(text) if line_end < 0 else line_end + 1
                rest = text[end:]
            self._unread = rest.encode("utf-8", "surrogateescape")
            return None
        if reading.ended is Ended.END:
            return f"the connection was closed after {len(reading.data)} bytes"
        return f"no match in the first {EXPECT_LIMIT} bytes"

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        # Plain bytes that arrived before the upgrade are never read as if
        # they had come over TLS (the STARTTLS injection of RFC 3207's errata).
        self._unread = b""
        await self.writer.start_tls(context, server_hostname=server_hostname)

    async def _read(self, most: int) -> bytes:
        if self._unread:
            chunk, self._unread = self._unread[:most], self._unread[most:]
            return chunk
        return await self.reader.read(most)


def _check_send(text: str | None, key: str) -> None:
    if text is not None and _LITERAL_ESCAPE.search(text):
        # A plain or single-quoted YAML scalar keeps \r\n as two characters;
        # no line protocol wants a backslash there.
        raise option_error(
            key,
            "send holds a literal backslash escape (\\r or \\n); write the text in "
            'double quotes, like "PING\\r\\n", so that YAML turns it into a line break',
        )
