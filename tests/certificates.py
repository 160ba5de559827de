"""Certificate chains made in the test, with the expiry dates a test needs.

`Chain` is a root CA, an intermediate and a leaf for `localhost` and
127.0.0.1, each valid until the time given; the server presents the leaf and
the intermediate (never the root), as a well-configured server does.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOUR = 3600.0
DAY = 86400.0
FAR = 20 * 365 * DAY


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    not_after: float,
    *,
    ca: bool,
    san: bool = True,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject) if subject else x509.Name([]))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(datetime.datetime.fromtimestamp(not_after, datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca and san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclasses.dataclass(frozen=True)
class Chain:
    """A root, an intermediate and a leaf; `ca_pem` is the root, `chain_pem` what is served."""

    ca_pem: bytes
    chain_pem: bytes
    key_pem: bytes

    def server_context(self, directory: Path) -> ssl.SSLContext:
        (directory / "chain.pem").write_bytes(self.chain_pem)
        (directory / "key.pem").write_bytes(self.key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(directory / "chain.pem", directory / "key.pem")
        return context

    def ca_file(self, directory: Path) -> str:
        path = directory / "ca.pem"
        path.write_bytes(self.ca_pem)
        return str(path)


def make_self_signed(not_after: float, name: str = "self-signed.test") -> Chain:
    """One certificate, its own issuer, expiring at Unix time `not_after`."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(name, key, None, not_after, ca=False)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Chain(_pem(cert), _pem(cert), key_pem)


def make_chain(
    leaf_not_after: float,
    *,
    intermediate_not_after: float | None = None,
    leaf_name: str = "localhost",
) -> Chain:
    """A chain whose leaf (named `leaf_name` as its CN; "" for none, leaving the
    SAN to name it) expires at Unix time `leaf_not_after`."""
    now = datetime.datetime.now(datetime.UTC).timestamp()
    root_key = ec.generate_private_key(ec.SECP256R1())
    middle_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root = _issue("Test Root CA", root_key, None, now + FAR, ca=True)
    middle = _issue(
        "Test Intermediate CA",
        middle_key,
        ("Test Root CA", root_key),
        intermediate_not_after if intermediate_not_after is not None else now + FAR,
        ca=True,
    )
    leaf = _issue(
        leaf_name, leaf_key, ("Test Intermediate CA", middle_key), leaf_not_after, ca=False
    )
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Chain(_pem(root), _pem(leaf) + _pem(middle), key_pem)
