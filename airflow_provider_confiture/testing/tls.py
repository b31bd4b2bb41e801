"""Throwaway TLS material for test clusters: a private certificate authority and server certificates.

A cluster started with :class:`ServerTls` (``PostgresCluster(..., tls=...)``) serves TLS with that
certificate and accepts TCP connections over TLS only, so tests can check that a client (the worker,
or postgres_fdw on another server) really verifies the server against the CA it was given. Keys are
EC P-256: generating them takes milliseconds. Needs the ``cryptography`` package (installed with
Airflow); imported lazily so that this module imports without it.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CertificateAuthority", "ServerTls", "new_certificate_authority"]

_VALID_FOR = datetime.timedelta(days=2)


@dataclass(frozen=True)
class ServerTls:
    """A server's certificate and private key (PEM), as a cluster writes them next to its data."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that issues server certificates (its key never leaves the test process)."""

    name: str
    cert_pem: bytes
    _key: Any = field(repr=False)
    _cert: Any = field(repr=False)

    def issue_server(self, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> ServerTls:
        """A server certificate for ``hosts`` (IP addresses and DNS names go to subjectAltName)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID_FOR)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._cert.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        return ServerTls(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


def new_certificate_authority(name: str = "confiture test CA") -> CertificateAuthority:
    """A fresh CA; two calls give two CAs that do not trust each other's certificates."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(
        name=name, cert_pem=cert.public_bytes(serialization.Encoding.PEM), _key=key, _cert=cert
    )
