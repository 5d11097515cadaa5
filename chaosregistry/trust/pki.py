"""Certificates and keys, made with ``cryptography``: one CA per directory and the leaves it signs.

The one place this project makes X.509 material. Users: the sandbox (its HTTPS serving
certificates), the certificate faults (an expired, a wrong-host or an untrusted certificate on
purpose), the Kubernetes test bed (``chaosregistry.cluster.pki`` names its certificates) and the
tests that need a server with a broken certificate.

Layout of a directory: ``ca.crt`` / ``ca.key`` and ``<name>.crt`` / ``<name>.key`` per leaf.
Keys are ECDSA P-256, written 0600. Files already present are kept (``ensure_pki``), so a
restart keeps serving the certificates clients were told to trust; ``issue`` always writes anew.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
# Leaves start a little in the past so a clock a few minutes behind still accepts them.
BACKDATE = datetime.timedelta(minutes=5)
SERVER = (ExtendedKeyUsageOID.SERVER_AUTH,)
CLIENT = (ExtendedKeyUsageOID.CLIENT_AUTH,)
DEFAULT_CA_NAME = "chaosregistry-ca"


@dataclass(frozen=True)
class CertSpec:
    """What one leaf certificate says: subject, SANs, usages and when it is valid.

    ``not_before`` / ``not_after`` default to now - 5 minutes and now + ``VALIDITY``; set both in
    the past for an expired certificate.
    """

    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    usages: tuple[x509.ObjectIdentifier, ...] = CLIENT
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None


@dataclass(frozen=True)
class Pki:
    """Paths of one CA directory: ``ca.crt`` / ``ca.key``, ``<name>.crt`` / ``<name>.key``."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"


def server_spec(
    name: str,
    *,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> CertSpec:
    """A TLS serving certificate for ``dns_names`` and ``ip_addresses`` (loopback by default)."""
    common_name = dns_names[0] if dns_names else (ip_addresses[0] if ip_addresses else name)
    return CertSpec(
        name,
        common_name,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        usages=SERVER,
        not_before=not_before,
        not_after=not_after,
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """PEM (PKCS#8, unencrypted), owner-only before a byte is written."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(pem)


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an ECDSA key")
    return key


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(parts)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - BACKDATE)
        .not_valid_after(not_after or now + VALIDITY)
    )


def ensure_ca(
    pki: Pki, common_name: str = DEFAULT_CA_NAME
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of ``pki``, created (self-signed, 10 years) when missing."""
    if pki.ca_cert.is_file() and pki.ca_key.is_file():
        return load_cert(pki.ca_cert), load_key(pki.ca_key)
    pki.directory.mkdir(parents=True, exist_ok=True)
    pki.directory.chmod(0o700)
    key = new_key()
    subject = _name(common_name)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        _builder(subject, subject, key.public_key(), not_after=now + 10 * VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_key(pki.ca_key, key)
    pki.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def issue(pki: Pki, spec: CertSpec, *, ca_name: str = DEFAULT_CA_NAME) -> Path:
    """Sign a new leaf for ``spec`` with the CA of ``pki`` (made when missing); its cert path."""
    ca_cert, ca_key = ensure_ca(pki, ca_name)
    key = new_key()
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in spec.dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ip_addresses]
    builder = (
        _builder(
            _name(spec.common_name, spec.organizations),
            ca_cert.subject,
            key.public_key(),
            spec.not_before,
            spec.not_after,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(spec.usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    write_key(pki.key(spec.name), key)
    pki.cert(spec.name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pki.cert(spec.name)


def ensure_pki(
    directory: Path, specs: tuple[CertSpec, ...], *, ca_name: str = DEFAULT_CA_NAME
) -> Pki:
    """The CA and every leaf of ``specs`` under ``directory``; only missing files are made."""
    pki = Pki(directory)
    ensure_ca(pki, ca_name)
    for spec in specs:
        if not (pki.cert(spec.name).is_file() and pki.key(spec.name).is_file()):
            issue(pki, spec, ca_name=ca_name)
    return pki
