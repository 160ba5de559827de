"""TLS material of the probes that speak TLS (http, tcp, grpc).

A CA file, a client certificate or a key that cannot be loaded is the
adapter's own misconfiguration, not the target's fault: it is raised as
`TlsSetupError`, which the runner reports as an error of the check.
"""

from __future__ import annotations

import dataclasses
import ssl
from typing import Annotated

import msgspec

__all__ = ["CaFile", "KeyFile", "PemPath", "TlsSettings", "TlsSetupError", "describe_ssl_error"]

#: A PEM file option: an empty value is a mistake (`${CA:-}`), not "the default".
PemPath = Annotated[str, msgspec.Meta(min_length=1)]
# The options that mean the same in every probe that speaks TLS.
CaFile = Annotated[
    PemPath | None,
    msgspec.Meta(description="PEM file of the CAs to trust instead of the system ones"),
]
KeyFile = Annotated[
    PemPath | None, msgspec.Meta(description="PEM private key of the client certificate")
]


class TlsSetupError(Exception):
    """The probe's own TLS material (ca_file, cert_file, key_file) cannot be loaded."""


@dataclasses.dataclass(frozen=True, slots=True)
class TlsSettings:
    """What makes one SSL context; equal settings may share one context."""

    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def build(self) -> ssl.SSLContext:
        try:
            # A ca_file replaces the system trust store, as curl --cacert does.
            context = ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(
                f"cannot load ca_file {self.ca_file}: {describe_ssl_error(exc)}"
            ) from exc
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                files = ", ".join(f for f in (self.cert_file, self.key_file) if f)
                raise TlsSetupError(
                    f"cannot load the client certificate ({files}): {describe_ssl_error(exc)}"
                ) from exc
        return context


def read_pem(path: str | None, key: str) -> bytes | None:
    """The bytes of a PEM file named by option `key`, for libraries that take bytes (gRPC)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as exc:
        raise TlsSetupError(f"cannot read {key} {path}: {exc.strerror or exc}") from None


def describe_ssl_error(exc: BaseException) -> str:
    """A short, lower-case reason: the SSL library's, or the OS error's."""
    if isinstance(exc, ssl.SSLError) and isinstance(exc.reason, str) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    message = str(exc).strip()
    return message or type(exc).__name__
