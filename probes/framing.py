"""HTTP/1.1 answers framed the way curl and Go's client (the kubelet's) frame them.

aiohttp's response parser keeps parsing after a complete answer: bytes a
server sends beyond it (a 204 or 304 that carries a body, more bytes than its
Content-Length, a body after a HEAD answer) are read as the start of a next
answer, and when they arrive in the same read as the answer itself the
parser's error throws that complete answer away ("invalid HTTP response").

`FramedRequest`, the request class of the http probe's sessions, puts a
`_SalvagingParser` in front of the connection's parser for each request. When
the parser fails, the answer is framed again from the bytes received, by
RFC 9112 section 6.3: 1xx answers are skipped, an answer to HEAD and a 1xx,
204 or 304 end with their headers, otherwise Content-Length bytes follow.
The complete answer is handed over, what follows it is discarded and the
connection is never reused, so a kept-alive connection cannot hand the
leftovers to a later run (RFC 9112 lets a client discard data after a complete
response on a connection it closes). Only when the answer cannot be framed
(the status line or the headers are broken, a chunked body is malformed) does
the parser's error stand.

This is the one place that reaches into aiohttp's connection protocol (its
`_parser` attribute); the probe's tests hold it to aiohttp's behaviour.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import set_exception
from aiohttp.http import HttpResponseParser
from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["MAX_FIELD_SIZE", "MAX_LINE_SIZE", "BadFraming", "FramedRequest"]

#: A header line or status line may be this long: real answers carry large
#: cookies and Content-Security-Policy headers, which a status check ignores.
MAX_FIELD_SIZE = 64 * 1024
MAX_LINE_SIZE = 64 * 1024

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_VERSION = re.compile(rb"HTTP/\d\.\d")
_STATUS = re.compile(rb"\d{3}")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
# Bytes kept to frame an answer again: the largest head aiohttp is told to accept.
_KEEP = 2 * MAX_FIELD_SIZE + 256 * 1024
_NOTHING: tuple[tuple[()], bool, bytes] = ((), False, b"")


class FramedRequest(aiohttp.ClientRequest):
    """aiohttp's request, its answer framed by `_SalvagingParser`."""

    async def send(self, conn: Any) -> aiohttp.ClientResponse:
        """Send the request as aiohttp does, its answer read by `_SalvagingParser`."""
        protocol = conn.protocol
        # set_response_params() has just made a parser for this request, and
        # nothing has been sent yet, so no byte of the answer has reached it.
        if isinstance(protocol, ResponseHandler):
            parser = getattr(protocol, "_parser", None)
            if parser is not None and not isinstance(parser, _SalvagingParser):
                protocol._parser = _SalvagingParser(  # type: ignore[assignment]
                    parser, protocol, bodiless=self.method == "HEAD"
                )
        return await super().send(conn)


class BadFraming(Exception):
    """The body of an answer whose head arrived intact cannot be framed."""


class _SalvagingParser:
    """aiohttp's response parser, with the answer framed again when it fails."""

    def __init__(self, inner: Any, protocol: ResponseHandler, *, bodiless: bool) -> None:
        self._inner = inner
        self._protocol = protocol
        self._bodiless = bodiless
        self._received = bytearray()
        self._payloads: list[Any] = []  # of final answers; 1xx ones are not kept
        self._done = False

    def feed_data(self, data: bytes) -> Any:
        if self._done:
            return _NOTHING  # what follows a complete answer is not an answer
        if not self._payloads and len(self._received) < _KEEP:
            self._received += data
        try:
            result = self._inner.feed_data(data)
        except HttpProcessingError:
            if self._payloads:
                if all(payload.is_eof() for payload in self._payloads):
                    return self._discard_rest()
                raise  # the answer's own body is broken: that is its error
            salvaged = self._reframe()
            if salvaged is None:
                raise
            return salvaged
        self._keep_final(result[0])
        return result

    def feed_eof(self) -> Any:
        return self._inner.feed_eof()

    def _keep_final(self, messages: Any) -> None:
        self._payloads.extend(payload for message, payload in messages if message.code >= 200)

    def _discard_rest(self) -> Any:
        self._done = True
        self._protocol.force_close()
        return _NOTHING

    def _fresh_parser(self) -> Any:
        self._inner = HttpResponseParser(
            self._protocol,
            self._protocol._loop,
            2**16,
            payload_exception=aiohttp.ClientPayloadError,
            response_with_body=not self._bodiless,
            auto_decompress=False,
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
        )
        return self._inner

    def _reframe(self) -> Any:
        framed = _frame(bytes(self._received), bodiless=self._bodiless)
        if framed is None:
            return None
        try:
            result = self._fresh_parser().feed_data(framed.data)
        except HttpProcessingError:
            # The body itself cannot be framed (a broken chunk): hand over the
            # head, with the body failing for that reason.
            framed = _Framed(framed.head_only, False, "invalid chunked encoding")
            result = self._fresh_parser().feed_data(framed.data)
        self._keep_final(result[0])
        if framed.error is not None:
            for payload in self._payloads:
                set_exception(
                    payload,
                    aiohttp.ClientPayloadError(framed.error),
                    BadFraming(framed.error),
                )
        if framed.complete or framed.error is not None:
            self._discard_rest()
        return result


@dataclasses.dataclass(frozen=True, slots=True)
class _Framed:
    """Bytes for a fresh parser: the answer's heads made well-formed, and its body."""

    data: bytes
    complete: bool  # the answer ends within `data`; anything after it is discarded
    error: str | None = None  # why the body cannot be framed
    head_only: bytes = b""  # the heads with a body that never ends, for a broken one


def _frame(data: bytes, *, bodiless: bool) -> _Framed | None:
    """The final answer at the start of `data` (after any 1xx), framed by RFC 9112
    section 6.3; None when its status line or head is not there or not HTTP.

    Header lines that are not `name: value` (a name that is no token, no colon,
    control characters) are dropped: a check never fails on a header it does
    not read. A Content-Length that is not one number is a framing error.
    """
    out = bytearray()
    start = 0
    while True:
        head_end = _HEAD_END.search(data, start)
        if head_end is None:
            return None
        lines = data[start : head_end.start()].split(b"\n")
        status_line = lines[0].rstrip(b"\r")
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not _VERSION.fullmatch(fields[0]) or not _STATUS.fullmatch(fields[1]):
            return None
        kept = [_header(line) for line in lines[1:]]
        headers = [header for header in kept if header is not None]
        status = int(fields[1])
        head = _head(status_line, headers)
        body_start = head_end.end()
        if 100 <= status < 200:
            out += head
            start = body_start
            continue
        without_framing = [h for h in headers if h[0].lower() not in _FRAMING]
        broken = bytes(out) + _head(
            status_line, [*without_framing, (b"Transfer-Encoding", b"chunked")]
        )
        if bodiless or status in (204, 304):
            # No body follows, whatever the framing headers say.
            return _Framed(bytes(out + _head(status_line, without_framing)), True)
        names = [name.lower() for name, _ in headers]
        if b"transfer-encoding" in names:
            # RFC 9112 section 6.3: Transfer-Encoding overrides a Content-Length sent beside it.
            chunked = _head(status_line, [h for h in headers if h[0].lower() != b"content-length"])
            return _Framed(bytes(out + chunked + data[body_start:]), False, head_only=broken)
        lengths = {value.strip() for name, value in headers if name.lower() == b"content-length"}
        if not lengths:
            return _Framed(bytes(out + head + data[body_start:]), False, head_only=broken)
        length = lengths.pop()
        if lengths or not length.isdigit():
            return _Framed(broken, False, "invalid Content-Length header")
        end = body_start + int(length)
        return _Framed(bytes(out + head + data[body_start:end]), end <= len(data), head_only=broken)


def _header(line: bytes) -> tuple[bytes, bytes] | None:
    line = line.rstrip(b"\r")
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.fullmatch(name) or _CONTROL.search(value):
        return None
    return name, value.strip()


def _head(status_line: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [status_line, *(name + b": " + value for name, value in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n"
