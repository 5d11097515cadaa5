"""Where one test cluster keeps everything, which ports and addresses it uses.

Everything lives under one state directory (default ``./runs/cluster``)::

    cluster.json              settings of this cluster (instance, ports, node, registry) +
                              sandbox endpoints (the test bed's own: the product never reads it)
    kubeconfig                admin kubeconfig for the user (``KUBECONFIG=<state>/kubeconfig``)
    vars.yaml                 the vars file for game days on this cluster (kubeconfig, sandbox)
    pki/                      CA, leaf certs, service-account key pair (0700)
    kubeconfigs/              one per component (controller-manager, scheduler, kubelet)
    etcd/                     etcd data
    containerd/               config.toml, root/, state/, certs.d/<registry>/hosts.toml, socket
    cni/net.d/  cni/ipam/     the bridge network's conflist and host-local's leases
    kubelet/                  config.yaml and the kubelet root dir (root/)
    node-2/                   a second node's own containerd/, cni/ and kubelet/ (``--nodes 2``)
    sandbox/                  the embedded registry sandbox this cluster pulls from
    registry-lb/              nginx.conf and temp dirs of the in-cluster registry's balancer
    chaos-mesh/certs/         the webhook serving pair Chaos Mesh's controller insists on
    logs/<process>.log  pids/<process>.pid

Ports are ``base_port + offset`` (all on 127.0.0.1 except the kubelet, which listens on the node
address). The node address lives on an interface of ours (a port-less bridge), because the
kubelet refuses a loopback node IP; pods get addresses from a bridge of ours. No traffic leaves
the machine.

A second node (``Node(1)``) is a second kubelet with its own containerd (root, state, socket,
image store), beside the first on this host: its own node name, an address of its own on the
same node interface, its own CNI bridge and pod subnet (the host routes between the two bridges),
its own kubelet ports and a cgroup root of its own below the first's.

What the whole machine sees by name or address (the node interface, bridges, addresses, subnets,
cgroup root, CNI network) comes from the cluster's ``Instance``: two clusters on two instances
can run side by side.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosregistry.errors import ConfigError

DEFAULT_STATE_DIR = Path("runs/cluster")
DEFAULT_BASE_PORT = 16440
# A different range from the sandbox's default (15000..15049).
DEFAULT_SANDBOX_BASE_PORT = 15100
PORT_SPAN = 14
# Nodes a cluster can have; each node after the first adds a containerd and a kubelet.
MAX_NODES = 2

NODE_NAME = "chaosregistry-node"
# The image host name pods use; containerd maps it to the sandbox through hosts.toml.
REGISTRY_HOST = "registry.chaosregistry.test"
DEMO_NAMESPACE = "chaos-demo"
# The in-cluster registry (registry node kills) lives in a namespace of its own.
REGISTRY_NAMESPACE = "registry"
CHAOS_LABEL = ("chaosregistry.io/chaos", "enabled")

PROCESS_NAMES = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "registry-lb",
    "chaos-controller-manager",
)


# Test clusters that can run on one machine at once, one per instance (0..INSTANCES - 1).
INSTANCES = 2


@dataclass(frozen=True)
class Instance:
    """Which of the machine's test-cluster slots a cluster runs in; every name and address of it
    that the whole machine sees comes from here, and only from here.

    Why instances: a cluster's ports and state directory are its own, but some of what it makes
    is the machine's: an interface carrying its node addresses (the kubelet refuses a loopback
    node IP), a bridge and a pod subnet per node, a cgroup root (in every cgroup v1 hierarchy),
    a CNI network (libcni caches its results in /var/lib/cni by network name) and the service
    range its certificates name. Two clusters with the same names would share them, and one's
    ``down`` would delete the other's. Each instance has its own, so two clusters run side by
    side (the test suite runs its cluster tier on two workers, one instance each). Instance 0,
    the default, keeps the names a single cluster always had; instance N > 0 adds N to each
    name's stem (``chaosreg1-node0``, ``chaosregistry1``) and takes the next addresses
    (``10.213.N.x``, pod subnets ``10.214.(2N + node).0/24``, services ``10.0.N.0/24``).
    """

    number: int = 0

    def __post_init__(self) -> None:
        if type(self.number) is not int or not 0 <= self.number < INSTANCES:
            raise ConfigError(f"instance must be 0..{INSTANCES - 1}, got {self.number!r}")

    @property
    def _tag(self) -> str:
        return "" if self.number == 0 else str(self.number)

    @property
    def node_interface(self) -> str:
        """The interface of ours that carries every node's address (a port-less bridge)."""
        return f"chaosreg{self._tag}-node0"

    def node_ip(self, index: int) -> str:
        return f"10.213.{self.number}.{index + 1}"

    def bridge(self, index: int) -> str:
        """Node ``index``'s CNI bridge, its pod subnet's gateway on the host."""
        return f"chaosreg{self._tag}-cni{index}"

    def pod_subnet(self, index: int) -> str:
        return f"10.214.{self.number * MAX_NODES + index}.0/24"

    @property
    def service_subnet(self) -> str:
        return f"10.0.{self.number}.0/24"

    @property
    def service_ip(self) -> str:
        """The apiserver's address in the service range (its certificate names it)."""
        return f"10.0.{self.number}.1"

    @property
    def cgroup_root(self) -> str:
        """Every pod cgroup of the cluster lives under this cgroup, in every cgroup v1 hierarchy."""
        return f"chaosregistry{self._tag}"

    @property
    def cni_network(self) -> str:
        return f"chaosregistry{self._tag}"

    # Every node's, whatever a cluster's count: ``down`` and the leftover checks look for all.
    @property
    def bridges(self) -> tuple[str, ...]:
        return tuple(self.bridge(index) for index in range(MAX_NODES))

    @property
    def pod_subnets(self) -> tuple[str, ...]:
        return tuple(self.pod_subnet(index) for index in range(MAX_NODES))

    @property
    def node_ips(self) -> tuple[str, ...]:
        return tuple(self.node_ip(index) for index in range(MAX_NODES))

    def others(self) -> "list[Instance]":
        return [Instance(number) for number in range(INSTANCES) if number != self.number]


@dataclass(frozen=True)
class Ports:
    base: int

    def __post_init__(self) -> None:
        if not 1024 <= self.base <= 65535 - PORT_SPAN:
            raise ConfigError(f"base port {self.base} out of range (1024..{65535 - PORT_SPAN})")

    @property
    def apiserver(self) -> int:
        return self.base

    @property
    def etcd_client(self) -> int:
        return self.base + 1

    @property
    def etcd_peer(self) -> int:
        return self.base + 2

    @property
    def kubelet(self) -> int:
        return self.base + 3

    @property
    def kubelet_healthz(self) -> int:
        return self.base + 4

    @property
    def controller_manager(self) -> int:
        return self.base + 5

    @property
    def scheduler(self) -> int:
        return self.base + 6

    @property
    def registry_lb(self) -> int:
        """nginx in front of the in-cluster registry's replicas."""
        return self.base + 7

    @property
    def registry_replicas(self) -> int:
        """The in-cluster registry's replica N listens on this + N (N = 0, 1)."""
        return self.base + 8

    @property
    def chaos_mesh_webhook(self) -> int:
        """Chaos Mesh's controller always serves its webhook port (nothing calls it here)."""
        return self.base + 10

    @property
    def chaos_mesh_metrics(self) -> int:
        return self.base + 11

    def node_kubelet(self, index: int) -> int:
        """The kubelet port of node ``index`` (the first node's is ``kubelet``)."""
        return self.kubelet if index == 0 else self.base + 12 + 2 * (index - 1)

    def node_kubelet_healthz(self, index: int) -> int:
        return self.kubelet_healthz if index == 0 else self.base + 13 + 2 * (index - 1)


@dataclass(frozen=True)
class Layout:
    """Paths of one cluster (``state_dir`` is always absolute) and its instance's names."""

    state_dir: Path
    instance: Instance = Instance()

    @classmethod
    def at(cls, state_dir: Path | str, instance: int = 0) -> "Layout":
        return cls(Path(state_dir).expanduser().resolve(), Instance(instance))

    def path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    @property
    def settings_file(self) -> Path:
        return self.path("cluster.json")

    @property
    def kubeconfig(self) -> Path:
        return self.path("kubeconfig")

    @property
    def vars_file(self) -> Path:
        return self.path("vars.yaml")

    @property
    def pki_dir(self) -> Path:
        return self.path("pki")

    def component_kubeconfig(self, name: str) -> Path:
        return self.path("kubeconfigs", f"{name}.kubeconfig")

    @property
    def etcd_data(self) -> Path:
        return self.path("etcd", "data")

    @property
    def containerd_dir(self) -> Path:
        return self.path("containerd")

    # The first node's runtime and kubelet paths (``Node`` says where each node's are).
    @property
    def containerd_config(self) -> Path:
        return Node(self, 0).containerd_config

    @property
    def containerd_socket(self) -> Path:
        return Node(self, 0).containerd_socket

    @property
    def registry_hosts_dir(self) -> Path:
        return Node(self, 0).registry_hosts_dir

    @property
    def cni_conf_dir(self) -> Path:
        return Node(self, 0).cni_conf_dir

    @property
    def cni_ipam_dir(self) -> Path:
        return Node(self, 0).cni_ipam_dir

    @property
    def kubelet_config(self) -> Path:
        return Node(self, 0).kubelet_config

    @property
    def kubelet_root(self) -> Path:
        return Node(self, 0).kubelet_root

    @property
    def pod_logs_dir(self) -> Path:
        return Node(self, 0).pod_logs_dir

    @property
    def registry_lb_dir(self) -> Path:
        return self.path("registry-lb")

    @property
    def chaos_mesh_certs(self) -> Path:
        """tls.crt / tls.key of Chaos Mesh's webhook server (its CERTS_DIR)."""
        return self.path("chaos-mesh", "certs")

    @property
    def sandbox_dir(self) -> Path:
        return self.path("sandbox")

    @property
    def host_state_file(self) -> Path:
        """Where a cluster brought up before the machine kept one record (``host.HOST_STATE``)
        recorded the host's sysctls; ``down`` adopts it."""
        return self.path("host-state.json")

    def log_file(self, name: str) -> Path:
        return self.path("logs", f"{name}.log")

    def pid_file(self, name: str) -> Path:
        return self.path("pids", f"{name}.pid")

    def cert_dir(self, component: str) -> Path:
        """Where a component may write self-signed certs it makes (never /var/run/kubernetes)."""
        return self.path("certs", component)

    def make_dirs(self) -> None:
        for directory in (
            self.path("logs"),
            self.path("pids"),
            self.path("kubeconfigs"),
            self.path("etcd"),
            self.containerd_dir,
            self.registry_hosts_dir,
            self.cni_conf_dir,
            self.cni_ipam_dir,
            self.kubelet_root,
            self.pod_logs_dir,
            self.cert_dir("kube-apiserver"),
            self.cert_dir("kube-controller-manager"),
            self.cert_dir("kube-scheduler"),
        ):
            directory.mkdir(parents=True, exist_ok=True)
        self.etcd_data.parent.chmod(0o700)
        self.path("kubeconfigs").chmod(0o700)
        self.containerd_dir.chmod(0o700)


@dataclass(frozen=True)
class Node:
    """One node of the cluster: a kubelet and its own containerd, named by ``index`` (0-based).

    The first node keeps the single-node cluster's names and paths; node N (N >= 1) lives in
    ``<state>/node-<N+1>/`` with process names ``containerd-node-<N+1>`` / ``kubelet-node-<N+1>``.
    """

    layout: Layout
    index: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < MAX_NODES:
            raise ConfigError(f"node index {self.index} out of range (0..{MAX_NODES - 1})")

    @property
    def number(self) -> int:
        """The node's number as users give it (``cluster up --serial-pulls 1``): 1-based."""
        return self.index + 1

    @property
    def suffix(self) -> str:
        return "" if self.index == 0 else f"-node-{self.index + 1}"

    @property
    def name(self) -> str:
        return NODE_NAME if self.index == 0 else f"{NODE_NAME}-{self.index + 1}"

    @property
    def ip(self) -> str:
        return self.layout.instance.node_ip(self.index)

    @property
    def bridge(self) -> str:
        return self.layout.instance.bridge(self.index)

    @property
    def pod_subnet(self) -> str:
        return self.layout.instance.pod_subnet(self.index)

    @property
    def cgroup_root(self) -> str:
        """Below the first node's root: one walk finds (and ``down`` removes) every node's
        cgroups, while each kubelet only manages the ``kubepods`` under its own root."""
        root = self.layout.instance.cgroup_root
        return root if self.index == 0 else f"{root}/node-{self.index + 1}"

    @property
    def containerd_process(self) -> str:
        return f"containerd{self.suffix}"

    @property
    def kubelet_process(self) -> str:
        return f"kubelet{self.suffix}"

    def path(self, *parts: str) -> Path:
        if self.index == 0:
            return self.layout.path(*parts)
        return self.layout.path(f"node-{self.index + 1}", *parts)

    @property
    def containerd_config(self) -> Path:
        return self.path("containerd", "config.toml")

    @property
    def containerd_socket(self) -> Path:
        return self.path("containerd", "containerd.sock")

    @property
    def registry_hosts_dir(self) -> Path:
        return self.path("containerd", "certs.d")

    @property
    def cni_conf_dir(self) -> Path:
        return self.path("cni", "net.d")

    @property
    def cni_ipam_dir(self) -> Path:
        return self.path("cni", "ipam")

    @property
    def kubelet_config(self) -> Path:
        return self.path("kubelet", "config.yaml")

    @property
    def kubelet_root(self) -> Path:
        return self.path("kubelet", "root")

    @property
    def pod_logs_dir(self) -> Path:
        return self.path("kubelet", "pod-logs")

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.layout.component_kubeconfig(self.kubelet_process)

    def make_dirs(self) -> None:
        for directory in (
            self.registry_hosts_dir,
            self.cni_conf_dir,
            self.cni_ipam_dir,
            self.kubelet_root,
            self.pod_logs_dir,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        self.path("containerd").chmod(0o700)


def nodes_of(layout: Layout, count: int) -> list[Node]:
    """The cluster's first ``count`` nodes; ConfigError for a count out of 1..MAX_NODES."""
    if not 1 <= count <= MAX_NODES:
        raise ConfigError(f"nodes must be 1..{MAX_NODES}, got {count}")
    return [Node(layout, index) for index in range(count)]


def node_process_names(count: int = MAX_NODES) -> tuple[str, ...]:
    """The per-node processes of nodes after the first (the first's are in PROCESS_NAMES)."""
    names: list[str] = []
    for index in range(1, count):
        suffix = f"-node-{index + 1}"
        names += [f"containerd{suffix}", f"kubelet{suffix}"]
    return tuple(names)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return value if isinstance(value, dict) else None
