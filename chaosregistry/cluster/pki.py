"""The cluster's certificates and keys, made with ``cryptography``, kept under ``<state>/pki``.

One CA signs everything: etcd's serving and client certs, the apiserver's serving cert, the
client certs of admin (``system:masters``), controller-manager, scheduler and the kubelet
(``system:node:<name>`` in ``system:nodes``, which the Node authorizer requires), the kubelet's
serving cert and the apiserver's client cert for kubelets. The service-account token pair is a
separate ECDSA key. Files already present are kept, so a restart keeps tokens and kubeconfigs
valid; ``ensure_pki`` regenerates only what is missing.
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
SERVER = (ExtendedKeyUsageOID.SERVER_AUTH,)
CLIENT = (ExtendedKeyUsageOID.CLIENT_AUTH,)


@dataclass(frozen=True)
class CertSpec:
    """What one leaf certificate says: subject, SANs and what it is used for."""

    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    usages: tuple[x509.ObjectIdentifier, ...] = CLIENT


@dataclass(frozen=True)
class Pki:
    """Paths under ``<state>/pki``: ``<name>.crt`` / ``<name>.key`` per certificate."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def service_account_key(self) -> Path:
        return self.directory / "service-account.key"

    @property
    def service_account_pub(self) -> Path:
        return self.directory / "service-account.pub"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"


def cluster_cert_specs(node_name: str, node_ip: str, service_ip: str) -> tuple[CertSpec, ...]:
    """Every leaf certificate the cluster needs, for one node."""
    api_dns = (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    )
    return (
        CertSpec(
            "etcd-server",
            "etcd",
            dns_names=("localhost",),
            ip_addresses=("127.0.0.1",),
            usages=SERVER + CLIENT,
        ),
        CertSpec("apiserver-etcd-client", "kube-apiserver-etcd-client"),
        CertSpec(
            "apiserver",
            "kube-apiserver",
            dns_names=api_dns,
            ip_addresses=("127.0.0.1", service_ip, node_ip),
            usages=SERVER,
        ),
        CertSpec(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organizations=("system:masters",),
        ),
        CertSpec("admin", "kubernetes-admin", organizations=("system:masters",)),
        CertSpec("controller-manager", "system:kube-controller-manager"),
        CertSpec("scheduler", "system:kube-scheduler"),
        CertSpec("kubelet-client", f"system:node:{node_name}", organizations=("system:nodes",)),
        # Chaos Mesh's controller: cluster admin on this test bed (its Helm chart's ClusterRoles
        # are not installed here), and the webhook pair it refuses to start without.
        CertSpec(
            "chaos-mesh-controller",
            "chaos-mesh:controller-manager",
            organizations=("system:masters",),
        ),
        CertSpec(
            "chaos-mesh-webhook",
            "chaos-mesh-webhook",
            dns_names=("localhost",),
            ip_addresses=("127.0.0.1",),
            usages=SERVER,
        ),
        CertSpec(
            "kubelet-server",
            node_name,
            dns_names=(node_name, "localhost"),
            ip_addresses=("127.0.0.1", node_ip),
            usages=SERVER,
        ),
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(pem)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an ECDSA key")
    return key


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(parts)


def _base_builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _ensure_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if pki.ca_cert.is_file() and pki.ca_key.is_file():
        return x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()), _load_key(pki.ca_key)
    key = _new_key()
    subject = _name("chaosregistry-cluster-ca")
    cert = (
        _base_builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
    _write_key(pki.ca_key, key)
    pki.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _issue(
    pki: Pki, spec: CertSpec, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> None:
    key = _new_key()
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in spec.dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ip_addresses]
    builder = (
        _base_builder(
            _name(spec.common_name, spec.organizations), ca_cert.subject, key.public_key()
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(spec.usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(pki.key(spec.name), key)
    pki.cert(spec.name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ensure_service_account_pair(pki: Pki) -> None:
    if pki.service_account_key.is_file() and pki.service_account_pub.is_file():
        return
    key = _new_key()
    _write_key(pki.service_account_key, key)
    pki.service_account_pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def ensure_pki(directory: Path, specs: tuple[CertSpec, ...]) -> Pki:
    """Create the CA, each missing leaf cert and the service-account pair under ``directory``."""
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_cert, ca_key = _ensure_ca(pki)
    for spec in specs:
        if not (pki.cert(spec.name).is_file() and pki.key(spec.name).is_file()):
            _issue(pki, spec, ca_cert, ca_key)
    _ensure_service_account_pair(pki)
    return pki
