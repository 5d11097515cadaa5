"""Command lines of the cluster's processes, in start order.

Secure ports only: the apiserver serves TLS on 127.0.0.1 with client-cert authentication,
Node + RBAC authorization and NodeRestriction; etcd speaks TLS with client certs; every
component's own serving port is bound to 127.0.0.1 and writes its self-made certificates
under the state directory rather than /var/run/kubernetes.
"""

from chaosregistry.cluster.build import Binaries
from chaosregistry.cluster.layout import (
    REGISTRY_NAMESPACE,
    Layout,
    Node,
    Ports,
)
from chaosregistry.cluster.pki import Pki
from chaosregistry.cluster.processes import ProcessSpec

CONTAINERD = "/usr/bin/containerd"
NGINX = "/usr/sbin/nginx"


def containerd(node: Node) -> ProcessSpec:
    return ProcessSpec(
        node.containerd_process, (CONTAINERD, "--config", str(node.containerd_config))
    )


def etcd(binaries: Binaries, layout: Layout, pki: Pki, ports: Ports) -> ProcessSpec:
    client = f"https://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return ProcessSpec(
        "etcd",
        (
            str(binaries.etcd),
            "--name=chaosregistry",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=chaosregistry={peer}",
            "--initial-cluster-state=new",
            f"--cert-file={pki.cert('etcd-server')}",
            f"--key-file={pki.key('etcd-server')}",
            f"--trusted-ca-file={pki.ca_cert}",
            "--client-cert-auth=true",
            "--log-level=warn",
        ),
    )


def kube_apiserver(binaries: Binaries, layout: Layout, pki: Pki, ports: Ports) -> ProcessSpec:
    return ProcessSpec(
        "kube-apiserver",
        (
            str(binaries.kube_apiserver),
            "--bind-address=127.0.0.1",
            f"--advertise-address={layout.instance.node_ip(0)}",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={layout.cert_dir('kube-apiserver')}",
            f"--tls-cert-file={pki.cert('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.ca_cert}",
            "--anonymous-auth=false",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            f"--etcd-servers=https://127.0.0.1:{ports.etcd_client}",
            f"--etcd-cafile={pki.ca_cert}",
            f"--etcd-certfile={pki.cert('apiserver-etcd-client')}",
            f"--etcd-keyfile={pki.key('apiserver-etcd-client')}",
            f"--kubelet-certificate-authority={pki.ca_cert}",
            f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
            f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-cluster-ip-range={layout.instance.service_subnet}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--profiling=false",
            "--v=1",
        ),
    )


def kube_controller_manager(
    binaries: Binaries, layout: Layout, pki: Pki, ports: Ports
) -> ProcessSpec:
    kubeconfig = layout.component_kubeconfig("kube-controller-manager")
    return ProcessSpec(
        "kube-controller-manager",
        (
            str(binaries.kube_controller_manager),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.controller_manager}",
            f"--cert-dir={layout.cert_dir('kube-controller-manager')}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={layout.instance.service_subnet}",
            "--allocate-node-cidrs=false",
            "--profiling=false",
            "--v=1",
        ),
    )


def kube_scheduler(binaries: Binaries, layout: Layout, ports: Ports) -> ProcessSpec:
    kubeconfig = layout.component_kubeconfig("kube-scheduler")
    return ProcessSpec(
        "kube-scheduler",
        (
            str(binaries.kube_scheduler),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.scheduler}",
            f"--cert-dir={layout.cert_dir('kube-scheduler')}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ),
    )


def kubelet(binaries: Binaries, node: Node) -> ProcessSpec:
    return ProcessSpec(
        node.kubelet_process,
        (
            str(binaries.kubelet),
            f"--config={node.kubelet_config}",
            f"--kubeconfig={node.kubelet_kubeconfig}",
            f"--root-dir={node.kubelet_root}",
            f"--hostname-override={node.name}",
            f"--node-ip={node.ip}",
            "--node-labels=chaosregistry.io/node=true",
            "--v=1",
        ),
        # runc and the CNI plugins are found through PATH by containerd, not by the kubelet;
        # the kubelet only needs the usual tools (mount, iptables is not used).
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def registry_lb(layout: Layout) -> ProcessSpec:
    """nginx in front of the in-cluster registry's replicas (config: ``registry_lb_config``)."""
    prefix = layout.registry_lb_dir
    return ProcessSpec(
        "registry-lb",
        (
            NGINX,
            "-p",
            f"{prefix}/",
            "-c",
            str(prefix / "nginx.conf"),
            # Before the config is read nginx logs to its compiled-in path; keep it ours.
            "-e",
            str(layout.log_file("registry-lb-error")),
        ),
    )


def chaos_controller_manager(binaries: Binaries, layout: Layout, ports: Ports) -> ProcessSpec:
    """Chaos Mesh's controller out of cluster, scoped to the registry's namespace.

    Namespace-scoped on purpose: it carries out PodChaos there (pod-kill needs no daemon), while
    chaos objects elsewhere stay untouched (NetworkChaos needs chaos-daemon's privileged
    network namespace access, which this machine's root lacks). No admission webhooks are
    registered, but the server always starts, so it gets a pair on loopback. Configured by
    environment only (the binary has no flags besides --version).
    """
    return ProcessSpec(
        "chaos-controller-manager",
        (str(binaries.chaos_controller_manager),),
        env={
            "KUBECONFIG": str(layout.component_kubeconfig("chaos-controller-manager")),
            "CLUSTER_SCOPED": "false",
            "TARGET_NAMESPACE": REGISTRY_NAMESPACE,
            "NAMESPACE": REGISTRY_NAMESPACE,
            "ENABLE_LEADER_ELECTION": "false",
            "ENABLED_WEBHOOKS": "none",
            "SECURITY_MODE": "false",
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(ports.chaos_mesh_webhook),
            "CERTS_DIR": str(layout.chaos_mesh_certs),
            "METRICS_HOST": "127.0.0.1",
            "METRICS_PORT": str(ports.chaos_mesh_metrics),
            "PPROF_ADDR": "0",
        },
    )
