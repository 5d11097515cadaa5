"""The cluster's certificates and keys, kept under ``<state>/pki`` (made by
``chaosregistry.trust.pki``).

One CA signs everything: etcd's serving and client certs, the apiserver's serving cert, the
client certs of admin (``system:masters``), controller-manager, scheduler and the kubelet
(``system:node:<name>`` in ``system:nodes``, which the Node authorizer requires), the kubelet's
serving cert and the apiserver's client cert for kubelets. The service-account token pair is a
separate ECDSA key. Files already present are kept, so a restart keeps tokens and kubeconfigs
valid; ``ensure_pki`` regenerates only what is missing.
"""

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from chaosregistry.trust import pki as certs
from chaosregistry.trust.pki import CLIENT, SERVER, CertSpec

CA_NAME = "chaosregistry-cluster-ca"


@dataclass(frozen=True)
class Pki(certs.Pki):
    """The cluster's CA directory, plus the service-account token pair."""

    @property
    def service_account_key(self) -> Path:
        return self.directory / "service-account.key"

    @property
    def service_account_pub(self) -> Path:
        return self.directory / "service-account.pub"


def cluster_cert_specs(node_name: str, node_ip: str, service_ip: str) -> tuple[CertSpec, ...]:
    """Every leaf certificate the cluster needs, with the first node's (``node_cert_specs``
    for the others)."""
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
        *node_cert_specs(node_name, node_ip),
    )


def node_cert_specs(node_name: str, node_ip: str, suffix: str = "") -> tuple[CertSpec, ...]:
    """A kubelet's client cert (``system:node:<name>``) and serving cert, named
    ``kubelet-client<suffix>`` / ``kubelet-server<suffix>`` (the first node's have none)."""
    return (
        CertSpec(
            f"kubelet-client{suffix}", f"system:node:{node_name}", organizations=("system:nodes",)
        ),
        CertSpec(
            f"kubelet-server{suffix}",
            node_name,
            dns_names=(node_name, "localhost"),
            ip_addresses=("127.0.0.1", node_ip),
            usages=SERVER,
        ),
    )


def _ensure_service_account_pair(pki: Pki) -> None:
    if pki.service_account_key.is_file() and pki.service_account_pub.is_file():
        return
    key = certs.new_key()
    certs.write_key(pki.service_account_key, key)
    pki.service_account_pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def ensure_pki(directory: Path, specs: tuple[CertSpec, ...]) -> Pki:
    """Create the CA, each missing leaf cert and the service-account pair under ``directory``."""
    certs.ensure_pki(directory, specs, ca_name=CA_NAME)
    pki = Pki(directory)
    _ensure_service_account_pair(pki)
    return pki
