"""The HTTP probe: request a URL of the watched application and judge the answer.

A run is one request, plus the same-host redirects it leads to, on a fresh
connection (or, with `keep_alive`, on one kept open from an earlier run). The status must be one of `expect_status`; when a body check is
configured, the first 10 KiB of the (decompressed) body must contain the text
or match the pattern, judged as soon as what has arrived matches (the rule of
probes.reading). Answers are framed by probes.framing and decoded by
probes.codings, only for a body check. The runner owns the deadline: nothing
here times out on its own, and every await is a clean cancellation point.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

import aiohttp
import msgspec
import yarl
from aiohttp.client_exceptions import UnixClientConnectorError
from aiohttp.connector import Connection
from aiohttp.http_exceptions import ContentLengthError, LineTooLong, TransferEncodingError

from probes.address import format_endpoint
from probes.base import Probe, Reason, Result, Status
from probes.certificates import (
    CertExpiry,
    CertExpiryFail,
    CertExpiryWarn,
    ExpiryLimits,
    presented_expiry,
)
from probes.codings import Decoder, UndecodableBody, accept_encoding, decoder_for
from probes.connection import classify_connect_error, describe_ssl_error, elapsed_ms, tls_failure
from probes.framing import MAX_FIELD_SIZE, MAX_LINE_SIZE, BadFraming, FramedRequest
from probes.material import Reread
from probes.reading import Ended, Matcher, read_until, text_matcher
from probes.tls import CaFile, KeyFile, PemPath, TlsSettings, TlsSetupError
from probes.types import option_error

__all__ = [
    "BODY_LIMIT",
    "MAX_REDIRECTS",
    "HttpMethod",
    "HttpProbe",
    "StatusRange",
    "TargetUrl",
    "TlsSetupError",
    "classify_error",
]

#: At most this many redirects are followed in one run.
MAX_REDIRECTS = 10
#: At most this many bytes of the decompressed body are read for a body check.
BODY_LIMIT = 10 * 1024
#: A check that reads no body still reads the rest of the answer, to tell a
#: whole answer from one cut short, for at most this long (seconds) after its
#: head: a stream that stays open or a slow body is judged on its status.
BODY_GRACE = 0.2
USER_AGENT = "health-adapter"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# These answers turn the follow-up request into a GET without a body, as
# browsers and Go's client do; 307 and 308 repeat the request as it was.
_REDIRECT_TO_GET = frozenset({301, 302, 303})
# Headers that describe a request body and must go when the body is dropped.
_BODY_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding"}
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS_SPEC = re.compile(
    r"^\s*(?:(?P<class>[1-5])[xX]{2}|(?P<low>\d{3})(?:\s*-\s*(?P<high>\d{3}))?)\s*$"
)
# The same syntax for JSON Schema, which knows no named groups.
_STATUS_SPEC_SCHEMA = r"^\s*([1-5][xX]{2}|\d{3}(\s*-\s*\d{3})?)\s*$"
_URL_PASSWORD = re.compile(r"(?P<before>^[^:/?#]+://[^/?#@]*?:)[^/?#]*@")
_TARGET_AUTHORITY = re.compile(r"^(?P<authority>[^/?#]*)(?P<rest>.*)$", re.DOTALL)
_UNIX_HOST = "localhost"  # what an http+unix:// URL sends as its Host header

# The methods aiohttp sends again on a fresh connection when a kept one turns
# out to be closed (RFC 9112 9.3.1); keep_alive is for these only.
_SAFE_TO_RESEND = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

_TCP_SESSION_KEY = "probes.http:tcp-session"
_UNIX_SESSION_KEY = "probes.http:unix-session"
_TLS_CONTEXT_KEY = "probes.http:tls-context"


class HttpMethod(enum.StrEnum):
    """The request method; written in any case in the config."""

    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"

    @classmethod
    def _missing_(cls, value: object) -> HttpMethod | None:
        if isinstance(value, str):
            return cls.__members__.get(value.upper())
        return None


class StatusRange:
    """An accepted range of status codes, written 200, "200", "200-299" or "2xx"."""

    # A plain class, not a dataclass: msgspec would decode a dataclass from a
    # mapping itself instead of handing the config value to `from_config`.
    __slots__ = ("high", "low")

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatusRange):
            return NotImplemented
        return (self.low, self.high) == (other.low, other.high)

    def __hash__(self) -> int:
        return hash((self.low, self.high))

    def __repr__(self) -> str:
        return f"StatusRange({self.low}, {self.high})"

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and self.low <= status <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"

    @classmethod
    def from_config(cls, value: Any) -> StatusRange:
        if isinstance(value, int) and not isinstance(value, bool):
            return cls._checked(value, value, value)
        match = _STATUS_SPEC.match(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError(
                f"invalid status {value!r}: write a code (200), a range (200-299) or a class (2xx)"
            )
        if match["class"]:
            low = int(match["class"]) * 100
            return cls(low, low + 99)
        low = int(match["low"])
        return cls._checked(low, int(match["high"] or low), value)

    @classmethod
    def _checked(cls, low: int, high: int, written: Any) -> StatusRange:
        if not (100 <= low <= 599 and 100 <= high <= 599):
            raise ValueError(f"invalid status {written!r}: status codes are 100-599")
        if low > high:
            raise ValueError(f"invalid status {written!r}: the range ends before it starts")
        return cls(low, high)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": _STATUS_SPEC_SCHEMA},
            ],
        }


class TargetUrl(str):
    """The `url` option: http://, https:// or http+unix://<percent-encoded socket>/path."""

    __slots__ = ()

    @classmethod
    def from_config(cls, value: Any) -> TargetUrl:
        if not isinstance(value, str):
            # ValueError, not TypeError: that is the option-type contract of probes.types.
            raise ValueError(f"expected a URL, got {value!r}")
        _parse_target_url(value)
        return cls(value)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": r"^[hH][tT][tT][pP]([sS]|\+[uU][nN][iI][xX])?://",
        }


@dataclasses.dataclass(frozen=True, slots=True)
class _Endpoint:
    """Where requests go: the URL aiohttp sees, and the Unix socket to reach it through."""

    url: yarl.URL
    socket_path: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Hop:
    """One request of a run; a followed redirect makes the next one."""

    url: yarl.URL
    method: str
    headers: Mapping[str, str]
    body: str | None


class HttpProbe(Probe):
    """Request a URL; pass when the status (and, if asked, the body) is as expected."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        url: Annotated[
            TargetUrl,
            msgspec.Meta(
                description="URL to request: http://, https:// or "
                "http+unix://<percent-encoded socket path>/path"
            ),
        ]
        unix_socket: Annotated[
            Annotated[str, msgspec.Meta(min_length=1)] | None,
            msgspec.Meta(
                description="Unix socket to connect through; the URL's host is then "
                "only the Host header"
            ),
        ] = None
        method: Annotated[HttpMethod, msgspec.Meta(description="request method")] = HttpMethod.GET
        headers: Annotated[
            dict[str, str],
            msgspec.Meta(description="request headers; never shown in output"),
        ] = {}
        body: Annotated[str | None, msgspec.Meta(description="request body")] = None
        expect_status: Annotated[
            tuple[StatusRange, ...],
            msgspec.Meta(
                min_length=1,
                description='accepted status codes: 200, "200-299" or "2xx" items',
                # The default is a factory (a StatusRange is no JSON value), so
                # the schema is told the default as it would be written.
                extra_json_schema={"default": ["200-399"]},
            ),
        ] = msgspec.field(default_factory=lambda: (StatusRange(200, 399),))
        body_contains: Annotated[
            str | None,
            msgspec.Meta(description="text the first 10 KiB of the body must contain"),
        ] = None
        body_regex: Annotated[
            re.Pattern | None,  # type: ignore[type-arg]  # msgspec decodes the bare class only
            msgspec.Meta(description="regular expression the first 10 KiB of the body must match"),
        ] = None
        body_not_contains: Annotated[
            Annotated[str, msgspec.Meta(min_length=1)] | None,
            msgspec.Meta(
                description="text the first 10 KiB of the body must not contain; passes only "
                "once the body has ended or 10 KiB were read"
            ),
        ] = None
        body_not_regex: Annotated[
            re.Pattern | None,  # type: ignore[type-arg]  # msgspec decodes the bare class only
            msgspec.Meta(
                description="regular expression the first 10 KiB of the body must not match; "
                "passes only once the body has ended or 10 KiB were read"
            ),
        ] = None
        header_regex: Annotated[
            dict[str, re.Pattern],  # type: ignore[type-arg]  # msgspec decodes the bare class only
            msgspec.Meta(
                description="response headers that must be there, each with a value matching "
                "its regular expression: {Name: pattern}"
            ),
        ] = {}
        header_not_regex: Annotated[
            dict[str, re.Pattern],  # type: ignore[type-arg]  # msgspec decodes the bare class only
            msgspec.Meta(
                description="response headers none of whose values may match the regular "
                "expression; a missing header passes: {Name: pattern}"
            ),
        ] = {}
        warn_status: Annotated[
            tuple[StatusRange, ...],
            msgspec.Meta(
                description='status codes that warn instead of fail: 429, "500-503" or "5xx" '
                "items; they must not overlap expect_status"
            ),
        ] = ()
        require_tls: Annotated[
            bool,
            msgspec.Meta(
                description="fail when the final answer, after redirects, came over plain http"
            ),
        ] = False
        tls_verify: Annotated[
            bool,
            msgspec.Meta(description="verify the server's certificate and host name"),
        ] = True
        ca_file: CaFile = None
        cert_file: Annotated[
            PemPath | None,
            msgspec.Meta(description="PEM client certificate (may hold the key as well)"),
        ] = None
        key_file: KeyFile = None
        server_name: Annotated[
            Annotated[str, msgspec.Meta(min_length=1)] | None,
            msgspec.Meta(
                description="name sent as SNI and verified in the certificate (https; "
                "default: the Host header's host if one is given, else the url's host)"
            ),
        ] = None
        cert_expiry_warn: CertExpiryWarn = None
        cert_expiry_fail: CertExpiryFail = None
        follow_redirects: Annotated[
            bool,
            msgspec.Meta(description="follow redirects to the same host, at most 10"),
        ] = True
        keep_alive: Annotated[
            bool,
            msgspec.Meta(
                description="reuse an open connection from an earlier run instead of "
                "opening a new one each run: about half the CPU per run, but it no "
                "longer proves that the app accepts new connections"
            ),
        ] = False

        def __post_init__(self) -> None:
            if self.key_file is not None and self.cert_file is None:
                raise ValueError("key_file requires cert_file")
            ExpiryLimits.checked(self.cert_expiry_warn, self.cert_expiry_fail)
            url, url_socket = _parse_target_url(self.url)
            if url_socket is not None and self.unix_socket is not None:
                raise ValueError("give the socket either in an http+unix:// url or as unix_socket")
            if self.unix_socket is not None and url.scheme == "https":
                raise ValueError("https is not supported through unix_socket; use http://")
            if self.server_name is not None and url.scheme != "https":
                raise option_error("server_name", "server_name needs an https:// url")
            if self.method is HttpMethod.HEAD and (
                self.body_contains is not None or self.body_regex is not None
            ):
                raise ValueError("body_contains and body_regex need a method other than HEAD")
            if self.method is HttpMethod.HEAD and (
                self.body_not_contains is not None or self.body_not_regex is not None
            ):
                raise ValueError(
                    "body_not_contains and body_not_regex need a method other than HEAD"
                )
            tls_possible = url.scheme == "https" or (
                url.scheme == "http" and url_socket is None and self.unix_socket is None
            )
            if self.require_tls and not tls_possible:
                raise option_error(
                    "require_tls", "require_tls cannot hold: requests go through a unix socket"
                )
            for key in ("cert_expiry_warn", "cert_expiry_fail"):
                if (
                    getattr(self, key) is not None
                    and url.scheme != "https"
                    and not self.require_tls
                ):
                    raise option_error(
                        key, f"{key} needs an https:// url, or require_tls: true for a redirect"
                    )
            for key in ("header_regex", "header_not_regex"):
                for name in getattr(self, key):
                    if not _HEADER_NAME.match(name):
                        raise option_error(key, f"invalid header name {name!r}")
            for warn in self.warn_status:
                for accepted in self.expect_status:
                    if warn.low <= accepted.high and accepted.low <= warn.high:
                        raise option_error(
                            "warn_status",
                            f"warn_status {warn} overlaps expect_status {accepted}: "
                            "a status either passes or warns",
                        )
            if self.keep_alive and self.method.value not in _SAFE_TO_RESEND:
                # A kept connection the app has closed meanwhile is only retried
                # for methods that may be sent twice; anything else would fail.
                raise ValueError(
                    f"keep_alive needs a method that may be sent twice "
                    f"({', '.join(sorted(_SAFE_TO_RESEND))}), not {self.method.value}"
                )
            _check_headers(self.headers)
            if url.user is not None and any(
                name.lower() == "authorization" for name in self.headers
            ):
                # aiohttp refuses to send both; say so now rather than fail every run.
                raise option_error(
                    "headers",
                    "an Authorization header and credentials in the url "
                    "exclude each other: keep one",
                )

    config: HttpProbe.Options

    async def check(self) -> Result:
        started = time.perf_counter()
        hop = self._first_hop()
        responded = False
        try:
            for redirects in range(MAX_REDIRECTS + 1):
                async with self._send(hop) as response:
                    responded = True
                    follow = self._redirect(hop, response)
                    if not isinstance(follow, _Hop):
                        expiry = _presented_expiry(response)
                        result = await self._judge(response, started, redirects, follow)
                        return self._limits.apply(result, expiry, time.time())
                hop = follow
        except aiohttp.ClientError as exc:
            reason, message = classify_error(
                exc, over_tls=hop.url.scheme == "https", where=_where(hop.url)
            )
            value, unit = (elapsed_ms(started), "ms") if responded else (None, None)
            return Result(Status.FAIL, message, value, unit, reason=reason)
        return Result(
            Status.FAIL,
            f"more than {MAX_REDIRECTS} redirects",
            elapsed_ms(started),
            "ms",
            reason=Reason.REDIRECT,
        )

    @functools.cached_property
    def _limits(self) -> ExpiryLimits:
        return ExpiryLimits(self.config.cert_expiry_warn, self.config.cert_expiry_fail)

    @functools.cached_property
    def _endpoint(self) -> _Endpoint:
        url, url_socket = _parse_target_url(self.config.url)
        return _Endpoint(url, url_socket if url_socket is not None else self.config.unix_socket)

    @functools.cached_property
    def _server_name(self) -> str | None:
        """The name sent in SNI and verified: server_name, else the Host header's
        host (as blackbox_exporter does), else the URL's host (None)."""
        if self.config.server_name is not None:
            return self.config.server_name
        for name, value in self.config.headers.items():
            if name.lower() == "host" and value.strip():
                host = value.strip()
                if host.startswith("["):
                    return host[1:].partition("]")[0] or None
                return host.rpartition(":")[0] if host.count(":") == 1 else host
        return None

    def _first_hop(self) -> _Hop:
        config = self.config
        return _Hop(self._endpoint.url, config.method.value, config.headers, config.body)

    def _send(self, hop: _Hop) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        return self._session().request(
            hop.method,
            hop.url,
            headers=_with_accept_encoding(hop.headers),
            data=hop.body,
            allow_redirects=False,
            ssl=self._tls_context() if hop.url.scheme == "https" else True,
            # The body is decoded here, and only when a check reads it.
            auto_decompress=False,
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
            server_hostname=self._server_name if hop.url.scheme == "https" else None,
        )

    def _session(self) -> aiohttp.ClientSession:
        socket_path = self._endpoint.socket_path
        keep_alive = self.config.keep_alive
        if socket_path is None:
            return self.resources.get(
                functools.partial(_new_tcp_session, keep_alive),
                (_TCP_SESSION_KEY, keep_alive),
            )
        return self.resources.get(
            functools.partial(_new_unix_session, socket_path, keep_alive),
            (_UNIX_SESSION_KEY, socket_path, keep_alive),
        )

    def _tls_context(self) -> ssl.SSLContext:
        config = self.config
        settings = TlsSettings(config.tls_verify, config.ca_file, config.cert_file, config.key_file)
        # Shared by the checks with the same settings; rebuilt when a file changes.
        contexts: Reread[ssl.SSLContext] = self.resources.get(
            settings.reread, (_TLS_CONTEXT_KEY, settings)
        )
        return contexts.get()

    def _redirect(self, hop: _Hop, response: aiohttp.ClientResponse) -> _Hop | str | None:
        """The next request when `response` is a redirect to follow; otherwise a
        note on why a redirect is not followed, or None when there is nothing to say."""
        if not self.config.follow_redirects or response.status not in _REDIRECT_STATUSES:
            return None
        location = response.headers.get(aiohttp.hdrs.LOCATION)
        if location is None:
            return None  # a 3xx without a target is judged like any other answer
        try:
            target = hop.url.join(yarl.URL(location))
        except ValueError:
            return "redirect with an invalid Location not followed"
        # The Location header is the server's text: only its host name, which
        # the operator needs to see, ever reaches the output.
        if target.scheme not in ("http", "https") or not target.host:
            return "redirect to a non-HTTP URL not followed"
        if target.host != hop.url.host:
            return f"redirect to another host ({target.host}) not followed"
        if self._endpoint.socket_path is not None and target.scheme != "http":
            return f"redirect to {target.scheme} not followed on a unix socket"
        return _redirected_hop(hop, response.status, target.with_fragment(None))

    async def _judge(
        self,
        response: aiohttp.ClientResponse,
        started: float,
        redirects: int,
        note: str | None,
    ) -> Result:
        """The verdict on the final answer, in this order: where it came from
        (require_tls), its status (expect_status, warn_status), its headers,
        its body. The first finding that fails or warns decides."""
        config = self.config
        if config.require_tls and response.url.scheme != "https":
            output = _with_note("the answer came over plain http (require_tls)", note)
            return Result(Status.FAIL, output, elapsed_ms(started), "ms", reason=Reason.NOT_TLS)
        expected = config.expect_status
        if not any(response.status in accepted for accepted in expected):
            wanted = ", ".join(str(accepted) for accepted in expected)
            if any(response.status in warned for warned in config.warn_status):
                output = _with_note(f"HTTP {response.status}, a warn_status", note)
                return Result(Status.WARN, output, elapsed_ms(started), "ms", reason=Reason.STATUS)
            output = _with_note(f"HTTP {response.status}, expected {wanted}", note)
            return Result(Status.FAIL, output, elapsed_ms(started), "ms", reason=Reason.STATUS)
        header_problem = _header_problem(
            response.headers, config.header_regex, config.header_not_regex
        )
        if header_problem is not None:
            output = _with_note(header_problem, note)
            return Result(
                Status.FAIL, output, elapsed_ms(started), "ms", reason=Reason.HEADER_MISMATCH
            )
        timed = None if self._reads_body else (elapsed_ms(started), "ms")
        problem = await self._read_body(response)
        value, unit = timed or (elapsed_ms(started), "ms")
        if problem is not None:
            reason, why = problem
            return Result(Status.FAIL, why, value, unit, reason=reason)
        output = f"HTTP {response.status} in {value} ms"
        if redirects:
            output += f" after {redirects} redirect{'s' if redirects > 1 else ''}"
        return Result(Status.PASS, _with_note(output, note), value, unit)

    @functools.cached_property
    def _reads_body(self) -> bool:
        config = self.config
        return any(
            option is not None
            for option in (
                config.body_contains,
                config.body_regex,
                config.body_not_contains,
                config.body_not_regex,
            )
        )

    async def _read_body(self, response: aiohttp.ClientResponse) -> tuple[Reason, str] | None:
        """Why the body fails the check, or None when it passes.

        With a body check, the body is decoded and read by probes.reading's
        rule: until what has arrived decides, it ends, or BODY_LIMIT decoded
        bytes. A forbidden text or pattern (body_not_contains, body_not_regex)
        decides as soon as it appears, but its absence only at the end or the
        cap; without one, a wanted text or pattern decides as soon as it
        matches. Without a body check the body is read as sent, never
        decoded, until it ends, the cap, or BODY_GRACE, only to catch an
        answer cut short.
        """
        config = self.config
        contains, pattern = config.body_contains, config.body_regex
        body = _Body(response)
        try:
            if not self._reads_body:
                await read_until(body.read_raw, BODY_LIMIT, within=BODY_GRACE)
                return None
            body.decoder = decoder_for(response.headers.get(aiohttp.hdrs.CONTENT_ENCODING))
            reading = await read_until(body.read, BODY_LIMIT, self._body_decides)
        except UndecodableBody as exc:
            return Reason.BODY_MISMATCH, str(exc)
        except aiohttp.ClientPayloadError as exc:
            return Reason.CONNECTION_ERROR, _broken_body(exc, response)
        where = " in the first 10 KiB" if reading.ended is Ended.CAP else ""
        if self._forbidden is not None and self._forbidden(reading.data):
            if config.body_not_contains is not None and config.body_not_contains in (
                reading.data.decode("utf-8", "replace")
            ):
                return Reason.BODY_MISMATCH, "body contains the forbidden text (body_not_contains)"
            assert config.body_not_regex is not None
            forbidden = _one_line(config.body_not_regex.pattern)
            return Reason.BODY_MISMATCH, f"body matches /{forbidden}/ (body_not_regex)"
        if self._wanted is None or self._wanted(reading.data):
            return None
        if contains is not None and contains not in reading.data.decode("utf-8", "replace"):
            return Reason.BODY_MISMATCH, f"body does not contain the expected text{where}"
        assert pattern is not None
        return Reason.BODY_MISMATCH, f"body does not match /{_one_line(pattern.pattern)}/{where}"

    @functools.cached_property
    def _wanted(self) -> Matcher | None:
        config = self.config
        if config.body_contains is None and config.body_regex is None:
            return None
        return text_matcher(config.body_contains, config.body_regex)

    @functools.cached_property
    def _forbidden(self) -> Matcher | None:
        """True when the body holds what body_not_contains or body_not_regex forbids."""
        text, pattern = self.config.body_not_contains, self.config.body_not_regex
        if text is None and pattern is None:
            return None
        either = [text_matcher(contains=text)] if text is not None else []
        either += [text_matcher(pattern=pattern)] if pattern is not None else []
        return lambda data: any(matches(data) for matches in either)

    def _body_decides(self, data: bytes) -> bool:
        """Whether the body read so far settles the check before its end."""
        if self._forbidden is not None:
            return self._forbidden(data)
        return self._wanted is not None and self._wanted(data)


class _Body:
    """The body of one answer as a probes.reading source: as sent, or decoded."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._content = response.content
        self.decoder: Decoder | None = None

    async def read_raw(self, most: int) -> bytes:
        return await self._content.read(most)

    async def read(self, most: int) -> bytes:
        """At most `most` decoded bytes; b"" at the end of the body."""
        assert self.decoder is not None
        while True:
            chunk = await self._content.read(most)
            if not chunk:
                return b""
            decoded = self.decoder.decompress_sync(chunk, most)
            if decoded:
                return decoded


def _header_problem(
    headers: Mapping[str, str],
    wanted: Mapping[str, re.Pattern[str]],
    forbidden: Mapping[str, re.Pattern[str]],
) -> str | None:
    """What is wrong with the response headers, or None.

    A header sent several times passes header_regex when one of its values
    matches, and fails header_not_regex when one does (as blackbox_exporter's
    fail_if_header_not_matches / fail_if_header_matches judge). Values are the
    target's text and never quoted.
    """
    getall = getattr(headers, "getall", None)
    for name, pattern in wanted.items():
        values = getall(name, []) if getall is not None else []
        shown = _one_line(pattern.pattern)
        if not values:
            return f"header {name!r} is missing (header_regex wants /{shown}/)"
        if not any(pattern.search(value) for value in values):
            sent = f" in any of its {len(values)} values" if len(values) > 1 else ""
            return f"header {name!r} does not match /{shown}/{sent}"
    for name, pattern in forbidden.items():
        values = getall(name, []) if getall is not None else []
        if any(pattern.search(value) for value in values):
            return f"header {name!r} matches /{_one_line(pattern.pattern)}/ (header_not_regex)"
    return None


class _PeerResponse(aiohttp.ClientResponse):
    """aiohttp's response, with the certificate expiry of the connection it came on.

    Read when the answer starts: a small answer is read whole with its head,
    and its connection is released (and closed) before the probe sees it.
    """

    cert_expiry: CertExpiry | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        if transport is not None and self.url.scheme == "https":
            self.cert_expiry = presented_expiry(transport.get_extra_info("ssl_object"))
        return await super().start(connection)


def _presented_expiry(response: aiohttp.ClientResponse) -> CertExpiry | None:
    """The earliest expiry of the chain presented on the connection that gave `response`."""
    return response.cert_expiry if isinstance(response, _PeerResponse) else None


def _broken_body(exc: aiohttp.ClientPayloadError, response: aiohttp.ClientResponse) -> str:
    """What went wrong with a body whose status line and headers arrived intact."""
    cause = exc.__cause__
    received = response.content.total_bytes
    if isinstance(cause, ContentLengthError):
        declared = response.content_length
        if declared is not None:
            return f"body cut short: {received} of {declared} bytes"
        return f"body cut short after {received} bytes"
    if isinstance(cause, TransferEncodingError) and "Not enough data" in str(cause.message):
        return (
            f"body cut short: the chunked body ended without its last chunk after {received} bytes"
        )
    if isinstance(cause, BadFraming):
        return f"body badly framed: {cause}"
    if isinstance(cause, TransferEncodingError):
        return "body badly framed: invalid chunked encoding"
    return "response body broken off or badly framed"


def classify_error(
    exc: BaseException, *, over_tls: bool = False, where: str | None = None
) -> tuple[Reason, str]:
    """The reason and a short, one-line output for a failed request.

    `over_tls` tells whether the request was https: a connection reset while
    connecting is then the server rejecting the TLS handshake. `where` is the
    target's `HOST:PORT`, named in TLS errors as the tcp and grpc probes do.
    """
    tls_error = _ssl_error_in(exc)
    if tls_error is not None:
        return Reason.TLS, tls_failure(where, tls_error)
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        return Reason.TLS, tls_failure(where, "handshake failed")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Reason.DNS, f"cannot resolve {exc.host}: {describe_ssl_error(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _classify_connect_error(exc, over_tls, where)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return (
            Reason.CONNECTION_ERROR,
            "server closed the connection without a complete answer",
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Reason.CONNECTION_ERROR, "response body broken off or badly encoded"
    if isinstance(exc, aiohttp.ClientResponseError):
        # Its message may quote the malformed bytes the server sent.
        if _caused_by(exc, LineTooLong):
            return (
                Reason.CONNECTION_ERROR,
                f"invalid HTTP response: a header line longer than {MAX_FIELD_SIZE // 1024} KiB",
            )
        return Reason.CONNECTION_ERROR, "invalid HTTP response"
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return Reason.CONNECTION_ERROR, "connection reset by the server"
    if isinstance(exc, aiohttp.ClientOSError) and exc.strerror:
        return Reason.CONNECTION_ERROR, f"connection error: {exc.strerror}"
    return Reason.CONNECTION_ERROR, f"connection error: {type(exc).__name__}"


def _classify_connect_error(
    exc: aiohttp.ClientConnectorError, over_tls: bool, target: str | None
) -> tuple[Reason, str]:
    error = exc.os_error
    if isinstance(exc, UnixClientConnectorError):
        if isinstance(error, FileNotFoundError):
            # No socket file is the Unix form of "nothing listens on that port".
            return Reason.CONNECTION_REFUSED, f"no socket at {exc.path}"
        return classify_connect_error(error, exc.path)
    where = target or format_endpoint(exc.host, exc.port if exc.port is not None else "")
    return classify_connect_error(error, where, tls=over_tls)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _ssl_error_in(exc: BaseException) -> ssl.SSLError | ssl.CertificateError | None:
    """The ssl module's own error behind `exc`, if any.

    aiohttp re-raises TLS failures as its own exceptions (some of which subclass
    ssl.SSLError without its details), keeping the original as the cause.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError) and not isinstance(
            current, aiohttp.ClientError
        ):
            return current
        current = current.__cause__ or current.__context__
    return None


def _where(url: yarl.URL) -> str:
    """`HOST:PORT` of a request URL, the port filled in from the scheme."""
    return format_endpoint(url.host or "", url.port or "")


def _new_tcp_session(keep_alive: bool) -> aiohttp.ClientSession:
    # limit=0: every check has at most one request in flight, so a pool limit
    # could only make checks wait for each other and eat into their deadlines.
    # use_dns_cache=False: each run resolves the host name afresh, as the tcp
    # probe and kubelet do; aiohttp's default would keep an address for 10 s
    # after the name has moved.
    return _new_session(
        aiohttp.TCPConnector(force_close=not keep_alive, limit=0, use_dns_cache=False)
    )


def _new_unix_session(socket_path: str, keep_alive: bool) -> aiohttp.ClientSession:
    return _new_session(aiohttp.UnixConnector(socket_path, force_close=not keep_alive, limit=0))


def _new_session(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    # force_close on the connector (unless a check asks for keep_alive): each
    # run opens a new connection, which is what proves that the application
    # still accepts them.
    return aiohttp.ClientSession(
        connector=connector,
        request_class=FramedRequest,  # complete answers framed as curl frames them
        response_class=_PeerResponse,
        trust_env=False,  # proxies and netrc from the environment never apply
        timeout=aiohttp.ClientTimeout(),  # the runner owns the deadline
        cookie_jar=aiohttp.DummyCookieJar(),  # runs and checks share no state
        headers={aiohttp.hdrs.USER_AGENT: USER_AGENT},
    )


def _parse_target_url(text: str) -> tuple[yarl.URL, str | None]:
    """The URL to request and the socket path an http+unix:// URL names.

    Raises ValueError naming the problem; the URL itself is not repeated in
    full because it may carry a password.
    """
    if any(char.isspace() for char in text):
        raise ValueError("invalid url: it contains white space (percent-encode it)")
    scheme, separator, remainder = text.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in ("http", "https", "http+unix"):
        raise ValueError(
            f"invalid url {_redacted(text)!r}: it must start with http://, https:// or http+unix://"
        )
    if scheme == "http+unix":
        return _parse_unix_url(remainder)
    authority = remainder.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    if authority.count(":") > 1 and not authority.startswith("["):
        raise ValueError(
            f"invalid url {_redacted(text)!r}: write an IPv6 address in brackets, "
            f"like {scheme}://[::1]:8080/"
        )
    try:
        url = yarl.URL(text)
    except ValueError as exc:
        raise ValueError(f"invalid url {_redacted(text)!r}: {exc}") from None
    if not url.host:
        raise ValueError(f"invalid url {_redacted(text)!r}: it has no host")
    return url, None


def _parse_unix_url(remainder: str) -> tuple[yarl.URL, str]:
    # The socket path is read from the raw text: a URL parser would lower-case
    # it as a host name.
    match = _TARGET_AUTHORITY.match(remainder)
    assert match is not None  # the pattern matches any text
    socket_path = urllib.parse.unquote(match["authority"])
    if not socket_path:
        raise ValueError(
            "invalid url: http+unix:// needs the percent-encoded socket path as its host, "
            "like http+unix://%2Frun%2Fapp.sock/healthz"
        )
    try:
        url = yarl.URL(f"http://{_UNIX_HOST}{match['rest']}")
    except ValueError as exc:
        raise ValueError(f"invalid url: {exc}") from None
    return url, socket_path


def _redacted(text: str) -> str:
    return _URL_PASSWORD.sub(r"\g<before>***@", text)


def _check_headers(headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise option_error("headers", f"invalid header name {name!r}")
        if any(char in value for char in "\r\n\0"):
            # The value may be a secret: name the header, never the value.
            raise option_error("headers", f"the value of {name!r} contains a line break or NUL")


def _redirected_hop(hop: _Hop, status: int, target: yarl.URL) -> _Hop:
    if status not in _REDIRECT_TO_GET:
        return dataclasses.replace(hop, url=target)
    method = hop.method if hop.method in ("GET", "HEAD") else "GET"
    headers = {
        name: value for name, value in hop.headers.items() if name.lower() not in _BODY_HEADERS
    }
    return _Hop(target, method, headers, None)


def _with_accept_encoding(headers: Mapping[str, str]) -> Mapping[str, str]:
    # Offer what can be decoded; a check's own Accept-Encoding wins.
    if any(name.lower() == "accept-encoding" for name in headers):
        return headers
    return {**headers, aiohttp.hdrs.ACCEPT_ENCODING: accept_encoding()}


def _with_note(output: str, note: str | None) -> str:
    return output if note is None else f"{output}; {note}"


def _one_line(text: str, limit: int = 80) -> str:
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
