"""TLS material of the probes that speak TLS (http, tcp, grpc).

A CA file, a client certificate or a key that cannot be loaded is the
adapter's own misconfiguration, not the target's fault: it is raised as
`TlsSetupError`, which the runner reports as an error of the check.

The files are read again at the first run after they change on disk
(`TlsSettings.reread`, see probes.material), so a rotated CA or client
certificate is used without a restart. A TLS failure is worded in every
probe by probes.connection (`tls_failure`, re-exported here): `TLS error with
HOST:PORT: certificate verify failed (...)`.
"""

from __future__ import annotations

import dataclasses
import ssl
from typing import Annotated

import msgspec

from probes.connection import describe_ssl_error, tls_failure
from probes.material import Reread

__all__ = [
    "CaFile",
    "KeyFile",
    "PemPath",
    "ServerName",
    "TlsSettings",
    "TlsSetupError",
    "describe_ssl_error",
    "pem_material",
    "tls_failure",
]

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
ServerName = Annotated[
    Annotated[str, msgspec.Meta(min_length=1)] | None,
    msgspec.Meta(
        description="name sent as SNI and verified in the certificate (default: the host)"
    ),
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

    def reread(self) -> Reread[ssl.SSLContext]:
        """The context of these settings, built again when one of its files changes."""
        return Reread(
            (self.ca_file, self.cert_file, self.key_file),
            self.build,
            what="TLS material " + ", ".join(f for f in self.files() if f),
            errors=(TlsSetupError,),
        )

    def files(self) -> tuple[str | None, ...]:
        return (self.ca_file, self.cert_file, self.key_file)

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


PemMaterial = tuple[bytes | None, bytes | None, bytes | None]


def pem_material(
    ca_file: str | None, cert_file: str | None, key_file: str | None
) -> Reread[PemMaterial]:
    """The bytes of (ca_file, cert_file, key_file), read again when one changes (gRPC)."""

    def read() -> PemMaterial:
        material = (
            read_pem(ca_file, "ca_file"),
            read_pem(cert_file, "cert_file"),
            read_pem(key_file, "key_file"),
        )
        # A file caught half written is cut inside a PEM block.
        for data, key in zip(material, ("ca_file", "cert_file", "key_file"), strict=True):
            if data is not None and data.count(b"-----BEGIN") != data.count(b"-----END"):
                raise TlsSetupError(f"{key} holds an incomplete PEM block")
        return material

    return Reread(
        (ca_file, cert_file, key_file),
        read,
        what="TLS material " + ", ".join(f for f in (ca_file, cert_file, key_file) if f),
        errors=(TlsSetupError,),
    )
