"""Certificate expiry of a TLS peer: the earliest notAfter of the chain it presented.

"The chain" is what the server sent in its TLS Certificate message, as
OpenSSL keeps it for the client (`SSL_get_peer_cert_chain`): the leaf first,
then every intermediate the server sends, and a root only if the server sends
one. It is not the chain that verification builds from the local trust store:
a trust anchor the server does not send never counts, and the chain is the
same with `tls_verify: false` (an expired self-signed certificate is still
read and reported). This is what blackbox_exporter's
`probe_ssl_earliest_cert_expiry` reads (Go's `ConnectionState.PeerCertificates`).

Python 3.11 and 3.12 give that chain only through the private
`SSLObject._sslobj.get_unverified_chain()` (made public in 3.13); each
certificate's `get_info()` is the same decoding `getpeercert()` does, so no
X.509 library is needed.

The options `cert_expiry_warn` and `cert_expiry_fail` are the same in every
probe that speaks TLS (http, tcp, grpc).
"""

from __future__ import annotations

import dataclasses
import datetime
import ssl
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import msgspec

from probes.base import Reason, Result, Status
from probes.types import Duration, format_duration, option_error

__all__ = [
    "MEASUREMENT",
    "CertExpiry",
    "CertExpiryFail",
    "CertExpiryWarn",
    "ExpiryLimits",
    "earliest_expiry",
    "presented_expiry",
]

#: The name of the expiry where outputs key values by name: health+json's
#: `"<check>:certNotAfter"` entry and the Nagios perfdata label.
MEASUREMENT = "certNotAfter"

CertExpiryWarn = Annotated[
    Duration | None,
    msgspec.Meta(
        description="warn when the earliest certificate of the chain the server presented "
        "expires within this long (like 14d); an expired one fails"
    ),
]
CertExpiryFail = Annotated[
    Duration | None,
    msgspec.Meta(
        description="fail when the earliest certificate of the chain the server presented "
        "expires within this long (like 3d), or has expired"
    ),
]


@dataclasses.dataclass(frozen=True, slots=True)
class CertExpiry:
    """When the first certificate of a presented chain expires, and which one it is.

    `not_after` is a Unix time in seconds; `name` is the certificate's subject
    common name, else its first subjectAltName, else its subject as written.
    """

    not_after: float
    name: str

    def describe(self, now: float) -> str:
        """`certificate 'app.example' expires 2026-12-10 10:18 UTC (in 10 days)`."""
        when = datetime.datetime.fromtimestamp(self.not_after, datetime.UTC)
        left = self.not_after - now
        if left < 0:
            return (
                f"certificate {self.name!r} expired {when:%Y-%m-%d %H:%M} UTC ({_span(-left)} ago)"
            )
        return f"certificate {self.name!r} expires {when:%Y-%m-%d %H:%M} UTC (in {_span(left)})"


@dataclasses.dataclass(frozen=True, slots=True)
class ExpiryLimits:
    """A probe's `cert_expiry_warn` and `cert_expiry_fail`, in seconds (None: off)."""

    warn: float | None = None
    fail: float | None = None

    @property
    def active(self) -> bool:
        return self.warn is not None or self.fail is not None

    @staticmethod
    def checked(warn: float | None, fail: float | None) -> ExpiryLimits:
        """The limits, or a located option error when the warning could never show."""
        if warn is not None and fail is not None and fail >= warn:
            raise option_error(
                "cert_expiry_warn",
                f"cert_expiry_warn ({format_duration(warn)}) must be longer than "
                f"cert_expiry_fail ({format_duration(fail)}), or the warning never shows",
            )
        return ExpiryLimits(warn, fail)

    def status(self, expiry: CertExpiry, now: float) -> Status:
        left = expiry.not_after - now
        if left <= 0 or (self.fail is not None and left <= self.fail):
            return Status.FAIL
        if self.warn is not None and left <= self.warn:
            return Status.WARN
        return Status.PASS

    def apply(self, result: Result, expiry: CertExpiry | None, now: float) -> Result:
        """`result` with the expiry recorded and, when limits are set, judged.

        The worse of the two findings decides: a failing check keeps its own
        reason and output (the expiry noted after it); an expiry that warns or
        fails leads the output with reason `cert_expiry`. Without limits the
        status and output are left as they are.
        """
        if expiry is None:
            return result
        recorded = dataclasses.replace(result, cert_not_after=expiry.not_after)
        if not self.active:
            return recorded
        status, text = self.status(expiry, now), expiry.describe(now)
        if status is Status.PASS:
            return dataclasses.replace(recorded, output=_joined(result.output, text))
        limit = self.fail if status is Status.FAIL else self.warn
        if limit is not None:
            key = "cert_expiry_fail" if status is Status.FAIL else "cert_expiry_warn"
            text += f", within {key} {format_duration(limit)}"
        if result.status.severity >= status.severity:
            return dataclasses.replace(recorded, output=_joined(result.output, text))
        return dataclasses.replace(
            recorded,
            status=status,
            output=_joined(text, result.output),
            reason=Reason.CERT_EXPIRY,
        )


def presented_expiry(ssl_object: Any) -> CertExpiry | None:
    """The earliest expiry of the chain the peer presented on `ssl_object`
    (an `ssl.SSLObject` or `ssl.SSLSocket`); None without one or a chain."""
    if ssl_object is None:
        return None
    inner = getattr(ssl_object, "_sslobj", ssl_object)
    read_chain = getattr(inner, "get_unverified_chain", None)
    chain = read_chain() if read_chain is not None else None
    if chain:
        return earliest_expiry(certificate.get_info() for certificate in chain)
    # Without the private call only the leaf is known, and only when verified.
    leaf = ssl_object.getpeercert()
    return earliest_expiry([leaf]) if leaf else None


def earliest_expiry(certificates: Iterable[Mapping[str, Any]]) -> CertExpiry | None:
    """The first to expire of `certificates`, each decoded as `getpeercert()` decodes it."""
    earliest: CertExpiry | None = None
    for info in certificates:
        not_after = info.get("notAfter")
        if not isinstance(not_after, str):
            continue
        expiry = CertExpiry(float(ssl.cert_time_to_seconds(not_after)), _name(info))
        if earliest is None or expiry.not_after < earliest.not_after:
            earliest = expiry
    return earliest


def _name(info: Mapping[str, Any]) -> str:
    subject = [pair for rdn in info.get("subject", ()) for pair in rdn]
    for key, value in subject:
        if key == "commonName":
            return str(value)
    for _kind, value in info.get("subjectAltName", ()):
        return str(value)
    return ", ".join(f"{key}={value}" for key, value in subject) or "(no subject)"


def _span(seconds: float) -> str:
    """A rounded-down length for people: `10 days`, `59 minutes`, `1 day`."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    count = int(seconds)
    return f"{count} second{'s' if count != 1 else ''}"


def _joined(first: str, second: str) -> str:
    return f"{first}; {second}" if first and second else first or second
