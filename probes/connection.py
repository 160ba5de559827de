"""Connections of the probes that dial a peer (http, tcp, grpc): their failures
in one wording, and their timing.

A failure to connect is worded the same whichever probe and library saw it:
`connection refused by HOST:PORT`, `cannot resolve HOST: …`, `cannot connect
to HOST:PORT: …`, and for TLS `TLS error with HOST:PORT: certificate verify
failed (…)`. One rule holds everywhere: over TLS, a connection reset or closed
once connected is the server ending the handshake (a TCP connect is refused,
never reset), so it is a TLS failure.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
import ssl
import time

from probes.base import Reason

__all__ = [
    "classify_connect_error",
    "describe_ssl_error",
    "elapsed_ms",
    "handshake_reset",
    "tls_failure",
]

# "Multiple exceptions: [Errno 111] Connect call failed ('::1', …), [Errno 111] …":
# asyncio's message when every address of a name failed (3.11 keeps no list).
_ERRNO_IN_MESSAGE = re.compile(r"\[Errno (\d+)\]")
# gRPC core's wording of the same failures the ssl module reports.
_GRPC_VERIFY = re.compile(r"CERTIFICATE_VERIFY_FAILED(?::\s*(?P<detail>[^:;]+))?")
_GRPC_PEER_NAME = re.compile(r"Peer name (?P<name>\S+) is not in peer certificate")
_GRPC_NAME_CHECK = "Hostname Verification Check failed"
_CLOSED_IN_HANDSHAKE = "the server closed the connection during the handshake"


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a `time.perf_counter()` reading), in 0.1 ms steps."""
    return round((time.perf_counter() - started) * 1000, 1)


def handshake_reset(error: BaseException | None) -> bool:
    """Whether `error`, met while connecting over TLS, is the server ending the handshake."""
    return isinstance(error, ConnectionResetError | ConnectionAbortedError | EOFError)


def classify_connect_error(
    exc: BaseException, where: str, *, tls: bool = False
) -> tuple[Reason, str]:
    """The reason and a one-line output for a connection to `where` (`HOST:PORT`)
    that could not be made; `tls` tells whether a handshake was part of it."""
    if isinstance(exc, ssl.CertificateError | ssl.SSLError):
        return Reason.TLS, tls_failure(where, exc)
    if isinstance(exc, socket.gaierror):
        host = where.rpartition(":")[0]
        return Reason.DNS, f"cannot resolve {host}: {exc.strerror or exc}"
    numbers = _errnos(exc)
    if numbers and all(number == errno.ECONNREFUSED for number in numbers):
        return Reason.CONNECTION_REFUSED, f"connection refused by {where}"
    if tls and handshake_reset(exc):
        return Reason.TLS, tls_failure(where, exc)
    return Reason.CONNECTION_ERROR, f"cannot connect to {where}: {describe_ssl_error(exc)}"


def tls_failure(
    where: str | None, error: BaseException | str, *, server_name: str | None = None
) -> str:
    """One line for a failed TLS handshake with `where` (`HOST:PORT`), worded the
    same whichever library reported it: an ssl exception, or gRPC's details
    (which do not name the server name that was verified: `server_name` does).
    Without a `where`, the same words without it: `TLS error: …`."""
    if where is None:
        return f"TLS error: {_tls_reason(error, server_name)}"
    return f"TLS error with {where}: {_tls_reason(error, server_name)}"


def describe_ssl_error(exc: BaseException) -> str:
    """A short, lower-case reason: the SSL library's, or the OS error's."""
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    if isinstance(reason, str) and reason:
        return reason.lower().replace("_", " ")
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    message = str(exc).strip()
    return message or type(exc).__name__


def _tls_reason(error: BaseException | str, server_name: str | None = None) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = error.verify_message
        return f"certificate verify failed ({detail})" if detail else "certificate verify failed"
    if isinstance(error, BaseException) and handshake_reset(error):
        return _CLOSED_IN_HANDSHAKE
    if isinstance(error, BaseException):
        return describe_ssl_error(error)
    verify = _GRPC_VERIFY.search(error)
    if verify is not None:
        detail = (verify["detail"] or "").strip()
        return f"certificate verify failed ({detail})" if detail else "certificate verify failed"
    peer = _GRPC_PEER_NAME.search(error)
    name = peer["name"] if peer is not None else server_name
    if name is not None and (peer is not None or _GRPC_NAME_CHECK in error):
        kind = "IP address" if _is_ip(name) else "Hostname"
        return (
            f"certificate verify failed ({kind} mismatch, certificate is not valid for {name!r}.)"
        )
    lowered = error.lower()
    if "connection reset" in lowered or "socket closed" in lowered or "eof" in lowered:
        return _CLOSED_IN_HANDSHAKE
    return f"handshake failed ({error})" if error else "handshake failed"


def _errnos(exc: BaseException) -> list[int]:
    if isinstance(exc, OSError) and exc.errno is not None:
        return [exc.errno]
    return [int(number) for number in _ERRNO_IN_MESSAGE.findall(str(exc))]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True
