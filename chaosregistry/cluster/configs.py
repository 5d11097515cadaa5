"""Configuration files of the cluster's components: kubeconfigs, containerd, CNI, kubelet.

Pure renderers plus ``write_configs``, which writes them all under the state directory.
Files holding keys or registry credentials are written owner-only.
"""

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chaosregistry.cluster.layout import (
    REGISTRY_HOST,
    Layout,
    Node,
    Ports,
)
from chaosregistry.cluster.pki import Pki
from chaosregistry.sandbox.configs import NGINX_BLOB_STREAMING


@dataclass(frozen=True)
class RegistryAccess:
    """How containerd reaches the sandbox: its client-facing (HTTPS) URL, the CA that signed
    the sandbox's certificate, and basic-auth credentials."""

    url: str
    ca_file: str
    username: str
    password: str

    @property
    def authorization(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


def kubeconfig(
    *, server: str, ca_file: Path, cert_file: Path, key_file: Path, user: str, embed: bool
) -> dict[str, Any]:
    """A one-context kubeconfig; ``embed`` inlines the PEMs (for the user's copy)."""
    cluster: dict[str, Any] = {"server": server}
    credentials: dict[str, Any] = {}
    if embed:
        cluster["certificate-authority-data"] = base64.b64encode(ca_file.read_bytes()).decode()
        credentials["client-certificate-data"] = base64.b64encode(cert_file.read_bytes()).decode()
        credentials["client-key-data"] = base64.b64encode(key_file.read_bytes()).decode()
    else:
        cluster["certificate-authority"] = str(ca_file)
        credentials["client-certificate"] = str(cert_file)
        credentials["client-key"] = str(key_file)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "chaosregistry", "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": "chaosregistry", "context": {"cluster": "chaosregistry", "user": user}}
        ],
        "current-context": "chaosregistry",
    }


def containerd_config(node: Node, sandbox_image: str) -> str:
    """containerd 1.6 config (version 2) of one node: every path under the node's part of the
    state dir, its own socket, image store and CNI config."""
    state = node.path("containerd", "state")
    return f"""version = 2
root = "{node.path("containerd", "root")}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{node.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{node.path("containerd", "opt")}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_tcp_service = true
  # Network namespaces as bind mounts under our state dir rather than /run/netns.
  netns_mounts_under_state_dir = true
  max_concurrent_downloads = 3
  # Never ask for an oom_score_adj below containerd's own: lowering it needs CAP_SYS_RESOURCE,
  # which the test VMs do not grant even to root (runc then fails "can't get final child's
  # PID from pipe" because nsexec cannot write -998 for the pause container).
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "runc"
        Root = "{node.path("containerd", "runc")}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{node.cni_conf_dir}"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{node.registry_hosts_dir}"
"""


def registry_hosts_toml(access: RegistryAccess, *, mirror_url: str | None = None) -> str:
    """hosts.toml for REGISTRY_HOST: pulls go to the sandbox's client-facing hop, or first to
    its pull-through mirror (``mirror_url``) with the hop as the fallback.

    containerd (1.6.20 here) tries the ``[host]`` entries in the file's order, then ``server``;
    a host that fails (refused, reset, a 5xx, a 404) is skipped for the next one, for the tag's
    resolve and for each blob alike (remotes/docker resolver.go and fetcher.go), which is what
    dockerd's ``registry-mirrors`` does. The server itself is the hop too, so a failing host
    never falls back to a real name lookup. Basic-auth rides as a header because hosts.toml has
    no credentials field, and the pause image is pulled by containerd itself, where no
    imagePullSecret reaches; the mirror is anonymous and is sent none. ``ca`` makes containerd
    verify the sandbox's HTTPS certificates (the mirror's too) against the sandbox's own CA.
    """
    url = access.url.rstrip("/")
    auth = json.dumps(access.authorization)
    ca = json.dumps(access.ca_file)
    mirror = ""
    if mirror_url:
        mirror = f"""
[host."{mirror_url.rstrip("/")}"]
  capabilities = ["pull", "resolve"]
  ca = {ca}
"""
    return f"""server = "{url}"
ca = {ca}

[header]
  Authorization = {auth}
{mirror}
[host."{url}"]
  capabilities = ["pull", "resolve"]
  ca = {ca}

  [host."{url}".header]
    Authorization = {auth}
"""


def cni_conflist(node: Node) -> dict[str, Any]:
    """A bridge network of ours per node, with the node's own subnet; no masquerading (pods
    need no way out), leases in the node's state dir. Each bridge is the gateway of its subnet
    on the host, so the host routes between the nodes' pods."""
    return {
        "cniVersion": "1.0.0",
        "name": node.layout.instance.cni_network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(node.cni_ipam_dir),
                    "ranges": [[{"subnet": node.pod_subnet}]],
                },
            },
        ],
    }


def kubelet_config(
    node: Node, pki: Pki, ports: Ports, *, serial_pulls: bool = False
) -> dict[str, Any]:
    """The node's KubeletConfiguration. ``serial_pulls``: one image pull at a time (the
    kubelet's own default, ``serializeImagePulls: true``, which a slow image turns into a queue
    for every other pod on the node); otherwise up to three at once, the test bed's default."""
    pulls: dict[str, Any] = (
        # The kubelet refuses a maxParallelImagePulls above 1 with serialized pulls.
        {"serializeImagePulls": True}
        if serial_pulls
        else {"serializeImagePulls": False, "maxParallelImagePulls": 3}
    )
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,
        "port": ports.node_kubelet(node.index),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.node_kubelet_healthz(node.index),
        "tlsCertFile": str(pki.cert(f"kubelet-server{node.suffix}")),
        "tlsPrivateKeyFile": str(pki.key(f"kubelet-server{node.suffix}")),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{node.cgroup_root}",
        # The host runs cgroup v1; 1.34 still allows it (see versions.py), say so explicitly.
        "failCgroupV1": False,
        "failSwapOn": False,
        # Not -999: lowering an oom_score_adj needs CAP_SYS_RESOURCE (see containerd_config).
        "oomScoreAdj": 0,
        # No KUBE-FIREWALL / KUBE-IPTABLES-HINT chains: we keep the host's iptables untouched.
        "makeIPTablesUtilChains": False,
        "podLogsDir": str(node.pod_logs_dir),
        "resolvConf": "/etc/resolv.conf",
        **pulls,
        "imageMinimumGCAge": "24h",
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
        },
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "enableDebuggingHandlers": True,
        "localStorageCapacityIsolation": True,
        "containerLogMaxSize": "5Mi",
        "containerLogMaxFiles": 2,
        "shutdownGracePeriod": "0s",
    }


REGISTRY_REPLICA_COUNT = 2


def registry_lb_config(layout: Layout, ports: Ports) -> str:
    """nginx in front of the in-cluster registry's replicas (a cloud load balancer's part).

    Plain HTTP, unlike the sandbox: only the in-cluster registry's own tests reach it.

    A replica that refuses or times out is skipped for 2 s and the request retried on the
    other (pull requests are idempotent), as the sandbox's own balancer does.
    """
    prefix = layout.registry_lb_dir
    replicas = "\n".join(
        f"        server 127.0.0.1:{ports.registry_replicas + n} max_fails=1 fail_timeout=2s;"
        for n in range(REGISTRY_REPLICA_COUNT)
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# Generated by chaosregistry.cluster; rewritten on every `cluster up`.
{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {layout.log_file("registry-lb-error")} warn;

events {{
    worker_connections 1024;
}}

http {{
    log_format lb '$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent '
                  'rt=$request_time upstream=$upstream_addr ustatus=$upstream_status';
    access_log {layout.log_file("registry-lb-access")} lb;
{temp}
{NGINX_BLOB_STREAMING}
    proxy_connect_timeout 2s;
    proxy_read_timeout 300s;
    proxy_next_upstream error timeout http_502 http_503;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $remote_addr;

    upstream registry_pods {{
{replicas}
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{ports.registry_lb};
        location / {{
            proxy_pass http://registry_pods;
        }}
    }}
}}
"""


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def write_registry_hosts(
    nodes: list[Node], access: RegistryAccess, *, mirror_url: str | None = None
) -> None:
    """Each node's hosts.toml for the registry host: how its containerd reaches the sandbox
    (``mirror_url``: through the sandbox's mirror first, see ``registry_hosts_toml``).
    containerd reads it at each pull, so it may come after containerd starts."""
    for node in nodes:
        write_private(
            node.registry_hosts_dir / REGISTRY_HOST / "hosts.toml",
            registry_hosts_toml(access, mirror_url=mirror_url),
        )


def write_configs(
    layout: Layout,
    nodes: list[Node],
    pki: Pki,
    ports: Ports,
    sandbox_image: str,
    *,
    serial_pulls: frozenset[int] = frozenset(),
) -> None:
    """Write every config file but the registry's hosts.toml (``write_registry_hosts``):
    kubeconfigs, each node's containerd, CNI and kubelet, the registry's load balancer,
    Chaos Mesh's webhook pair. None needs the sandbox. ``serial_pulls``: the numbers (1-based)
    of the nodes whose kubelet pulls one image at a time (see ``kubelet_config``)."""
    server = f"https://127.0.0.1:{ports.apiserver}"
    components = {
        "kube-controller-manager": ("controller-manager", "system:kube-controller-manager"),
        "kube-scheduler": ("scheduler", "system:kube-scheduler"),
        "chaos-controller-manager": ("chaos-mesh-controller", "chaos-mesh:controller-manager"),
    }
    for node in nodes:
        components[node.kubelet_process] = (
            f"kubelet-client{node.suffix}",
            f"system:node:{node.name}",
        )
    for component, (cert, user) in components.items():
        config = kubeconfig(
            server=server,
            ca_file=pki.ca_cert,
            cert_file=pki.cert(cert),
            key_file=pki.key(cert),
            user=user,
            embed=False,
        )
        write_private(layout.component_kubeconfig(component), yaml.safe_dump(config))
    admin = kubeconfig(
        server=server,
        ca_file=pki.ca_cert,
        cert_file=pki.cert("admin"),
        key_file=pki.key("admin"),
        user="kubernetes-admin",
        embed=True,
    )
    write_private(layout.kubeconfig, yaml.safe_dump(admin))
    for node in nodes:
        write_private(node.containerd_config, containerd_config(node, sandbox_image))
        conflist = node.cni_conf_dir / f"10-{layout.instance.cni_network}.conflist"
        conflist.write_text(json.dumps(cni_conflist(node), indent=2) + "\n")
        config = kubelet_config(node, pki, ports, serial_pulls=node.number in serial_pulls)
        node.kubelet_config.write_text(yaml.safe_dump(config))
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (layout.registry_lb_dir / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    (layout.registry_lb_dir / "nginx.conf").write_text(registry_lb_config(layout, ports))
    layout.chaos_mesh_certs.mkdir(parents=True, exist_ok=True)
    layout.chaos_mesh_certs.parent.chmod(0o700)
    for name, source in (
        ("tls.crt", pki.cert("chaos-mesh-webhook")),
        ("tls.key", pki.key("chaos-mesh-webhook")),
    ):
        write_private(layout.chaos_mesh_certs / name, source.read_text())
