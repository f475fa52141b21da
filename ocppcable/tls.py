"""TLS with client certificates (OCPP security profile 3) as a Twisted endpoint type.

``mtls:8443:privateKey=key.pem:certKey=cert.pem:caCerts=ca.pem`` listens like Twisted's ``ssl:``
endpoint but requires every client to present a certificate signed by one of ``caCerts`` (a PEM
bundle). The dropin ``twisted/plugins/ocppcable_endpoints.py`` registers it, so it works in
``--listen`` as any other endpoint string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.x509.oid import NameOID
from twisted.internet import ssl
from twisted.internet.endpoints import SSL4ServerEndpoint

_BEGIN = b"-----BEGIN CERTIFICATE-----"


def ca_certificates(bundle: bytes) -> list[ssl.Certificate]:
    """Every certificate in a PEM bundle."""
    parts = [_BEGIN + part for part in bundle.split(_BEGIN)[1:]]
    if not parts:
        raise ValueError("no PEM certificate in the CA bundle")
    return [ssl.Certificate.loadPEM(part) for part in parts]


def certificate_options(
    privateKey: str, certKey: str | None = None, caCerts: str | None = None
) -> ssl.CertificateOptions:
    """The TLS settings of a listener: the server's key and certificate (PEM files; the
    certificate defaults to ``privateKey``'s file) and, with ``caCerts`` (a PEM bundle), a client
    certificate signed by one of those CAs required of every client."""
    key = Path(privateKey).read_bytes()
    cert = Path(certKey or privateKey).read_bytes()
    identity = ssl.PrivateCertificate.loadPEM(key + b"\n" + cert)
    if caCerts is None:
        return ssl.CertificateOptions(
            privateKey=identity.privateKey.original, certificate=identity.original
        )
    return ssl.CertificateOptions(
        privateKey=identity.privateKey.original,
        certificate=identity.original,
        verify=True,
        caCerts=[c.original for c in ca_certificates(Path(caCerts).read_bytes())],
        requireCertificate=True,
    )


def mtls_endpoint(
    reactor: Any,
    port: str,
    privateKey: str,
    certKey: str | None = None,
    caCerts: str | None = None,
    interface: str = "",
    backlog: str = "50",
) -> SSL4ServerEndpoint:
    if caCerts is None:
        raise ValueError("mtls: endpoints need caCerts=<PEM bundle of the CAs of station certs>")
    options = certificate_options(privateKey, certKey, caCerts)
    return SSL4ServerEndpoint(reactor, int(port), options, int(backlog), interface)


def peer_certificate(transport: Any) -> Any:
    """The client certificate on a TLS transport (a pyOpenSSL ``X509``), or None: none on
    plain TCP and on ``ssl:`` listeners, which do not ask for one."""
    get = getattr(transport, "getPeerCertificate", None)
    return get() if get is not None else None


def certificate_common_name(certificate: Any) -> str | None:
    """The subject CN of a pyOpenSSL certificate, if it has one."""
    names = certificate.to_cryptography().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None
