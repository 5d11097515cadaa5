"""``up``, ``down`` and ``status`` of the test cluster (one node, or two with ``nodes=2``).

``up`` is idempotent: it builds (or finds cached) binaries, starts (or keeps) the registry
sandbox, pushes the cluster's images, writes PKI and configs, starts each process that is not
running and waits for it, then makes sure of the nodes, the namespace, Chaos Mesh's CRDs and the
demo Deployment. A second node gets the pause image pulled into its containerd (as a node
image has it pre-loaded) and nothing else: it starts cold. ``down`` drains the nodes (pods
deleted so each runtime tears their networks down properly), stops every process, cleans
what is left on the host and verifies nothing of ours remains. One file lock per state dir
keeps two of them from running at once.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from chaosregistry import sandbox
from chaosregistry.backends.kubernetes_deploy import revert_expired_bad_tags
from chaosregistry.cluster import components, versions
from chaosregistry.cluster.build import Binaries, ensure_binaries
from chaosregistry.cluster.configs import RegistryAccess, write_configs, write_registry_hosts
from chaosregistry.cluster.crds import generate_crds, install_chaos_mesh_crds
from chaosregistry.cluster.host import (
    claim_host,
    clean_host,
    ensure_cgroup_root,
    leftovers,
    netns_of_ours,
)
from chaosregistry.cluster.images import (
    PAUSE_REPOSITORY,
    PAUSE_TAG,
    REGISTRY_REPOSITORY,
    Image,
    cluster_images,
    image_name,
    push_images,
    registry_image,
)
from chaosregistry.cluster.layout import (
    DEFAULT_BASE_PORT,
    DEFAULT_SANDBOX_BASE_PORT,
    DEMO_NAMESPACE,
    MAX_NODES,
    NODE_NAME,
    PROCESS_NAMES,
    REGISTRY_NAMESPACE,
    Layout,
    Node,
    Ports,
    node_process_names,
    nodes_of,
    read_json,
)
from chaosregistry.cluster.pki import Pki, cluster_cert_specs, ensure_pki, node_cert_specs
from chaosregistry.cluster.processes import (
    ClusterError,
    ProcessSpec,
    kill_pids,
    other_cluster_kubelet,
    running_pid,
    start,
    stop,
    strays,
)
from chaosregistry.cluster.readiness import (
    deployment_not_available,
    http_not_answering,
    http_not_ok,
    https_not_ok,
    node_not_ready,
    statefulset_not_ready,
    unix_socket_not_answering,
    wait_until,
)
from chaosregistry.cluster.varsfile import write_vars_file
from chaosregistry.cluster.workloads import (
    DEMO_NAME,
    HEAD_OF_LINE_ROLES,
    REGISTRY_NAME,
    apply_objects,
    chaos_namespace,
    cold_start_deployment,
    demo_deployment,
    head_of_line_deployments,
    head_of_line_name,
    registry_statefulset,
)
from chaosregistry.errors import ConfigError

# How the node pulls (`cluster up --node-pulls`): named once, by the settings that read it back
# from the vars file.
from chaosregistry.experiment.settings import NODE_PULLS, NODE_PULLS_MIRROR_FIRST, NODE_PULLS_ORIGIN
from chaosregistry.kubernetes import chaosmesh
from chaosregistry.kubernetes import client as kube
from chaosregistry.osutil import locks
from chaosregistry.osutil.files import write_json
from chaosregistry.osutil.supervise import start_until_ready
from chaosregistry.sandbox.layout import Layout as SandboxLayout

Progress = Callable[[str], None]

CTR = "/usr/bin/ctr"
REQUIRED_FILES = {
    "/usr/bin/containerd": "containerd",
    CTR: "containerd",
    "/usr/bin/containerd-shim-runc-v2": "containerd",
    "/usr/sbin/runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/lib/cni/host-local": "containernetworking-plugins",
    "/usr/lib/cni/loopback": "containernetworking-plugins",
    "/bin/busybox": "busybox-static",
    "/usr/bin/docker-registry": "docker-registry",
    "/usr/sbin/nginx": "nginx-light",
}
# A unix socket path must fit in sockaddr_un (108 bytes, containerd adds ".ttrpc").
MAX_SOCKET_PATH = 100


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def _state_lock(layout: Layout) -> Iterator[None]:
    busy = ClusterError(f"another cluster up/down is running on {layout.state_dir}")
    with locks.hold_or_raise(layout.state_dir / ".lock", busy, timeout=0):
        yield


def _check_host(layout: Layout) -> None:
    if os.geteuid() != 0:
        raise ConfigError("the test cluster needs root (kubelet, containerd, network setup)")
    missing = sorted({pkg for path, pkg in REQUIRED_FILES.items() if not Path(path).exists()})
    if missing:
        raise ConfigError(
            f"missing Debian packages: {' '.join(missing)} (make setup installs them)"
        )
    for tool in ("ip", "umount"):
        if shutil.which(tool) is None:
            raise ConfigError(f"{tool} not found on PATH")
    other = other_cluster_kubelet(layout)
    if other is not None:
        root = next((arg for arg in other.split() if arg.startswith("--root-dir=")), other[:120])
        raise ConfigError(
            f"another test cluster runs on instance {layout.instance.number} of this host "
            f"({root}): bring it down first, or use another --instance"
        )
    deepest = Node(layout, MAX_NODES - 1).containerd_socket
    if len(str(deepest)) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"state dir {layout.state_dir} is too deep: containerd's socket path must stay "
            f"under {MAX_SOCKET_PATH} characters"
        )


def _settings(
    layout: Layout,
    base_port: int,
    sandbox_base_port: int,
    sandbox_dir: Path | None,
    node_pulls: str = NODE_PULLS_ORIGIN,
    nodes: int = 1,
    serial_pulls: tuple[int, ...] = (),
) -> dict[str, Any]:
    """The cluster's settings; a running cluster keeps the instance, ports, nodes and pull
    serialization it was started with (a kubelet reads its configuration only when it starts)."""
    previous = read_json(layout.settings_file) or {}
    running = any(running_pid(layout, name) for name in ALL_PROCESS_NAMES)
    if running and previous.get("instance", 0) != layout.instance.number:
        raise ConfigError(
            f"{layout.state_dir} runs a cluster on instance {previous.get('instance', 0)}, "
            f"not {layout.instance.number}: run down first"
        )
    if running and previous.get("base_port") not in (None, base_port):
        raise ConfigError(
            f"{layout.state_dir} runs a cluster on base port {previous['base_port']}, "
            f"not {base_port}: run down first"
        )
    if running and previous.get("nodes", 1) != nodes:
        raise ConfigError(
            f"{layout.state_dir} runs a cluster of {previous.get('nodes', 1)} node(s), "
            f"not {nodes}: run down first"
        )
    if running and previous.get("serial_pulls", []) != list(serial_pulls):
        raise ConfigError(
            f"{layout.state_dir} runs a cluster with serial pulls on node(s) "
            f"{previous.get('serial_pulls', [])}, not {list(serial_pulls)}: run down first"
        )
    return {
        "state_dir": str(layout.state_dir),
        "instance": layout.instance.number,
        "base_port": base_port,
        "sandbox_base_port": sandbox_base_port,
        "sandbox_dir": str(sandbox_dir or layout.sandbox_dir),
        "sandbox_owned": sandbox_dir is None,
        "kubernetes_version": versions.KUBERNETES_VERSION,
        "etcd_version": versions.ETCD_VERSION,
        "chaos_mesh_api_version": versions.CHAOS_MESH_API_VERSION,
        "node_name": NODE_NAME,
        "node_ip": layout.instance.node_ip(0),
        "nodes": nodes,
        "node_names": [node.name for node in nodes_of(layout, nodes)],
        "node_pulls": node_pulls,
        "serial_pulls": list(serial_pulls),
    }


def _start_sandbox(settings: dict[str, Any], say: Progress) -> dict[str, Any]:
    if settings["sandbox_owned"]:
        say(f"sandbox: starting the registry sandbox in {settings['sandbox_dir']}")
        return dict(
            sandbox.up(
                settings["sandbox_dir"],
                base_port=settings["sandbox_base_port"],
                progress=lambda m: say(f"sandbox: {m}"),
            )
        )
    return dict(sandbox.load_endpoints(settings["sandbox_dir"]))


def _sandbox_with_images(
    settings: dict[str, Any], say: Progress
) -> tuple[dict[str, Any], RegistryAccess, Image]:
    """The cluster's sandbox up, the cluster's images pushed to it: its endpoints, the nodes'
    access to it and the in-cluster registry's image."""
    endpoints = _start_sandbox(settings, say)
    access, push_url = _registry_access(endpoints)
    in_cluster_registry = registry_image()
    pushed = push_images(
        push_url,
        access.username,
        access.password,
        [*cluster_images(), in_cluster_registry],
        ca_file=access.ca_file,
    )
    say(f"images: {pushed} pushed to the sandbox ({push_url}), pods pull via {access.url}")
    return endpoints, access, in_cluster_registry


def _registry_access(endpoints: dict[str, Any]) -> tuple[RegistryAccess, str]:
    """containerd's way to the sandbox (its client-facing hop) and where to push images."""
    credentials = json.loads(Path(endpoints["credentials_file"]).read_text())
    access = RegistryAccess(
        url=str(endpoints["registry"]),
        ca_file=str(endpoints["ca_file"]),
        username=str(credentials["username"]),
        password=str(credentials["password"]),
    )
    return access, str(endpoints.get("registry_direct") or endpoints["registry"])


def _specs(
    binaries: Binaries, layout: Layout, nodes: list[Node], pki: Pki, ports: Ports
) -> list[ProcessSpec]:
    first, *others = nodes
    specs = [
        components.containerd(first),
        components.etcd(binaries, layout, pki, ports),
        components.kube_apiserver(binaries, layout, pki, ports),
        components.kube_controller_manager(binaries, layout, pki, ports),
        components.kube_scheduler(binaries, layout, ports),
        components.kubelet(binaries, first),
        components.registry_lb(layout),
    ]
    for node in others:
        specs += [components.containerd(node), components.kubelet(binaries, node)]
    return specs


def _chaos_mesh_spec(binaries: Binaries, layout: Layout, ports: Ports) -> ProcessSpec:
    # Started once its CRDs are established: its informers fail on kinds the API lacks.
    return components.chaos_controller_manager(binaries, layout, ports)


def _readiness(
    layout: Layout, nodes: list[Node], pki: Pki, ports: Ports
) -> dict[str, Callable[[], str | None]]:
    checks: dict[str, Callable[[], str | None]] = {
        "containerd": lambda: unix_socket_not_answering(layout.containerd_socket),
        "etcd": lambda: https_not_ok(
            f"https://127.0.0.1:{ports.etcd_client}/health", pki, "apiserver-etcd-client"
        ),
        "kube-apiserver": lambda: https_not_ok(
            f"https://127.0.0.1:{ports.apiserver}/readyz", pki, "admin"
        ),
        "kube-controller-manager": lambda: https_not_ok(
            f"https://127.0.0.1:{ports.controller_manager}/healthz"
        ),
        "kube-scheduler": lambda: https_not_ok(f"https://127.0.0.1:{ports.scheduler}/healthz"),
        "kubelet": lambda: http_not_ok(f"http://127.0.0.1:{ports.kubelet_healthz}/healthz"),
        "registry-lb": lambda: http_not_answering(f"http://127.0.0.1:{ports.registry_lb}/"),
        "chaos-controller-manager": lambda: http_not_ok(
            f"http://127.0.0.1:{ports.chaos_mesh_metrics}/metrics"
        ),
    }
    for node in nodes[1:]:
        checks[node.containerd_process] = _socket_check(node.containerd_socket)
        checks[node.kubelet_process] = _healthz_check(ports.node_kubelet_healthz(node.index))
    return checks


def _socket_check(socket: Path) -> Callable[[], str | None]:
    return lambda: unix_socket_not_answering(socket)


def _healthz_check(port: int) -> Callable[[], str | None]:
    return lambda: http_not_ok(f"http://127.0.0.1:{port}/healthz")


# Every process a cluster may run, whatever its number of nodes: down stops them all.
ALL_PROCESS_NAMES = (*PROCESS_NAMES, *node_process_names())


def _process_names(nodes: int) -> tuple[str, ...]:
    return (*PROCESS_NAMES, *node_process_names(nodes))


def _wait_node_ready(client: Client, layout: Layout, node: Node, since: datetime | None) -> None:
    wait_until(
        f"node {node.name}",
        lambda: node_not_ready(client, node.name, since=since),
        timeout=120,
        layout=layout,
        process=node.kubelet_process,
    )


def _ctr(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTR, "--address", str(node.containerd_socket), "--namespace", "k8s.io", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _preload_pause_image(node: Node, image: str, say: Progress) -> None:
    """Pull the pause image into ``node``'s containerd (``ctr``, through the node's hosts.toml)
    unless it is there already.

    A real node image has it pre-loaded; without it a cold node's pods fail at sandbox
    creation rather than at their own image's pull while the registry is cut.
    """
    if image in _ctr(node, "images", "ls", "-q").stdout.split():
        return
    completed = _ctr(node, "images", "pull", "--hosts-dir", str(node.registry_hosts_dir), image)
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ClusterError(f"{node.name}: pulling the pause image {image} failed: {last[:300]}")
    say(f"{node.name}: pause image {image} pre-loaded")


def _start_processes(
    layout: Layout,
    specs: list[ProcessSpec],
    checks: dict[str, Callable[[], str | None]],
    say: Progress,
) -> None:
    for spec in specs:
        pid = running_pid(layout, spec.name)
        if pid is not None:
            say(f"{spec.name}: already running (pid {pid})")
        else:
            started = time.monotonic()
            _start_ready(layout, spec, checks[spec.name], say)
            say(f"{spec.name}: ready in {time.monotonic() - started:.1f} s")


def _start_ready(
    layout: Layout, spec: ProcessSpec, check: Callable[[], str | None], say: Progress
) -> None:
    def start_one() -> int:
        pid = start(layout, spec)
        say(f"{spec.name}: started (pid {pid}), log {layout.log_file(spec.name)}")
        return pid

    def exited(exc: Exception) -> None:
        say(f"{spec.name}: exited while starting ({exc}); starting it once more")

    # A piece that exits while starting gets one more start. The kubelet does so now and then
    # when the rename of its pod-resources socket into place fails (a known upstream flake, k3s
    # #4042); a second start of any piece is cheap next to a failed bring-up.
    start_until_ready(
        start_one,
        lambda pid: wait_until(spec.name, check, timeout=90, layout=layout, process=spec.name),
        runs=lambda: running_pid(layout, spec.name) is not None,
        starts=2,
        on_exit=exited,
    )


def admin_client(state_dir: Path | str, *, timeout: float = kube.DEFAULT_TIMEOUT) -> Client:
    """A client with the cluster admin's credentials (``<state>/kubeconfig``)."""
    return kube.client(Layout.at(state_dir).kubeconfig, timeout=timeout)


def _wait_available(client: Client, layout: Layout, name: str, node: Node) -> None:
    wait_until(
        f"deployment {DEMO_NAMESPACE}/{name}",
        lambda: deployment_not_available(client, DEMO_NAMESPACE, name),
        timeout=120,
        layout=layout,
        process=node.kubelet_process,
        interval=0.5,
    )


def _serial_pulls(serial_pulls: Sequence[int], nodes: int) -> tuple[int, ...]:
    """The node numbers, sorted and unique; ConfigError for one the cluster does not have."""
    for number in serial_pulls:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= nodes:
            raise ConfigError(
                f"serial_pulls: {number!r} is not a node of this cluster (1..{nodes})"
            )
    return tuple(sorted(set(serial_pulls)))


def up(
    state_dir: Path | str,
    *,
    base_port: int = DEFAULT_BASE_PORT,
    sandbox_dir: Path | str | None = None,
    sandbox_base_port: int = DEFAULT_SANDBOX_BASE_PORT,
    node_pulls: str = NODE_PULLS_ORIGIN,
    nodes: int = 1,
    serial_pulls: Sequence[int] = (),
    instance: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Bring the cluster up (or keep it); returns the settings with ``kubeconfig`` and timings.

    ``instance``: which of the machine's test-cluster slots (``layout.Instance``: 0, the
    default, or 1) it takes, so two clusters can run on one machine at once; its node
    interface, addresses, bridges, subnets and cgroup root are that instance's.

    ``nodes``: 1 (default) or 2. The second node is a kubelet with its own containerd and image
    store (``chaosregistry-node-2``), holding only the pause image: the test bed's workloads
    stay on the first node, and Deployment ``cold-start`` (zero replicas) is pinned to it.

    ``sandbox_dir`` names a running sandbox to pull from; by default the cluster starts its own
    in ``<state>/sandbox`` on ``sandbox_base_port``. ``node_pulls``: ``origin`` (every node
    pull through the sandbox's client-facing hop) or ``mirror-first`` (the sandbox's
    pull-through mirror, then that hop when the mirror fails); on a running cluster it takes
    effect at the next pull (containerd reads hosts.toml per pull). ``serial_pulls``: the
    numbers of the nodes (1-based) whose kubelet pulls one image at a time, as a kubelet does
    by default (``serializeImagePulls: true``); the others pull up to three at once, the test
    bed's default. Per node, so that one two-node cluster shows both (head-of-line-pulls).
    Raises ``ConfigError`` for
    a host that lacks something or a bad argument, ``ClusterError``/``BuildError`` naming the
    failing piece and its log.
    """
    # Opt-in, not the default: the experiments and tests that slow or cut the client-registry
    # hop (rollout-under-registry-latency, push_to_running's phases, registry-partition) assume
    # every node pull crosses it; with the mirror first their faults would miss the node.
    if node_pulls not in NODE_PULLS:
        raise ConfigError(f"node_pulls must be one of {', '.join(NODE_PULLS)}, got {node_pulls!r}")
    plain = progress or _to_stderr
    begun = time.monotonic()

    def say(message: str) -> None:
        plain(f"[{time.monotonic() - begun:5.1f}s] {message}")

    layout = Layout.at(state_dir, instance)
    ports = Ports(base_port)
    cluster_nodes = nodes_of(layout, nodes)
    serial = _serial_pulls(serial_pulls, nodes)
    _check_host(layout)
    started = time.monotonic()
    with _state_lock(layout):
        settings = _settings(
            layout,
            base_port,
            sandbox_base_port,
            Path(sandbox_dir).resolve() if sandbox_dir else None,
            node_pulls,
            nodes,
            serial,
        )
        layout.make_dirs()
        for node in cluster_nodes:
            node.make_dirs()
        # Written first, so that a down after a failed up knows what to stop.
        write_json(layout.settings_file, settings)
        # Every build first (binaries, controller-gen and the CRDs it generates), so a cold up
        # compiles before it starts anything.
        binaries = ensure_binaries(say)
        generate_crds(say)
        # The sandbox (and the images pushed to it) comes up beside the control plane and the
        # nodes, which need it only once a pod pulls: containerd reads hosts.toml at each pull.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-sandbox") as pool:
            registry = pool.submit(_sandbox_with_images, settings, say)
            try:
                specs = cluster_cert_specs(
                    NODE_NAME, layout.instance.node_ip(0), layout.instance.service_ip
                )
                for node in cluster_nodes[1:]:
                    specs += node_cert_specs(node.name, node.ip, node.suffix)
                pki = ensure_pki(layout.pki_dir, specs)
                write_configs(
                    layout,
                    cluster_nodes,
                    pki,
                    ports,
                    image_name(PAUSE_REPOSITORY, PAUSE_TAG),
                    serial_pulls=frozenset(serial),
                )
                if serial:
                    say(f"image pulls: one at a time on node(s) {', '.join(map(str, serial))}")
                claim_host(layout, [node.ip for node in cluster_nodes])
                slot = layout.instance
                say(
                    f"host: instance {slot.number}, node interface {slot.node_interface} "
                    f"({', '.join(node.ip for node in cluster_nodes)}), cgroup root "
                    f"/{slot.cgroup_root}"
                )
                ensure_cgroup_root([node.cgroup_root for node in cluster_nodes])
                kubelets_running = {
                    node.name: running_pid(layout, node.kubelet_process) is not None
                    for node in cluster_nodes
                }
                # Second precision: the API reports heartbeats in whole seconds.
                kubelet_start = datetime.now(UTC).replace(microsecond=0)
                checks = _readiness(layout, cluster_nodes, pki, ports)
                _start_processes(
                    layout, _specs(binaries, layout, cluster_nodes, pki, ports), checks, say
                )
                client = admin_client(layout.state_dir)
                for node in cluster_nodes:
                    since = None if kubelets_running[node.name] else kubelet_start
                    _wait_node_ready(client, layout, node, since)
                    say(f"node {node.name}: Ready")
                apply_objects(client, [chaos_namespace(), chaos_namespace(REGISTRY_NAMESPACE)])
                install_chaos_mesh_crds(client, say)
                _start_processes(layout, [_chaos_mesh_spec(binaries, layout, ports)], checks, say)
            except BaseException:
                # Not before the sandbox is up or failed: a down must find what it started.
                wait([registry])
                raise
            endpoints, access, in_cluster_registry = registry.result()
        mirror_url = str(endpoints["mirror"]) if node_pulls == NODE_PULLS_MIRROR_FIRST else None
        write_registry_hosts(cluster_nodes, access, mirror_url=mirror_url)
        if mirror_url:
            say(f"node pulls: the mirror {mirror_url} first, then {access.url}")
        settings.update(
            kubeconfig=str(layout.kubeconfig),
            apiserver=f"https://127.0.0.1:{ports.apiserver}",
            registry=access.url,
            cluster_registry=f"http://127.0.0.1:{ports.registry_lb}",
            cluster_registry_namespace=REGISTRY_NAMESPACE,
            sandbox_endpoints=endpoints,
        )
        write_json(layout.settings_file, settings)
        # What the product reads to reach this cluster: a vars file, never cluster.json.
        settings["vars_file"] = str(write_vars_file(layout, settings))
        for node in cluster_nodes[1:]:
            _preload_pause_image(node, image_name(PAUSE_REPOSITORY, PAUSE_TAG), say)
        apply_objects(client, [demo_deployment()])
        if len(cluster_nodes) > 1:
            apply_objects(
                client,
                [
                    cold_start_deployment(cluster_nodes[1].name),
                    *head_of_line_deployments([node.name for node in cluster_nodes]),
                ],
            )
        wait_until(
            f"deployment {DEMO_NAMESPACE}/{DEMO_NAME}",
            lambda: deployment_not_available(client, DEMO_NAMESPACE, DEMO_NAME),
            timeout=180,
            layout=layout,
            process="kubelet",
            interval=1.0,
        )
        say(f"deployment {DEMO_NAMESPACE}/{DEMO_NAME}: Available")
        if len(cluster_nodes) > 1:
            # The drill's pairs start without a pull (the pause image is on every node).
            for node in cluster_nodes:
                for role in HEAD_OF_LINE_ROLES:
                    _wait_available(client, layout, head_of_line_name(role, node.number), node)
        storage = SandboxLayout.at(settings["sandbox_dir"]).registry_storage
        apply_objects(
            client,
            [
                registry_statefulset(
                    image_name(REGISTRY_REPOSITORY, in_cluster_registry.tag),
                    str(storage),
                    ports.registry_replicas,
                ),
            ],
        )
        wait_until(
            f"statefulset {REGISTRY_NAMESPACE}/{REGISTRY_NAME}",
            lambda: (
                statefulset_not_ready(client, REGISTRY_NAMESPACE, REGISTRY_NAME)
                or http_not_ok(f"{settings['cluster_registry']}/v2/")
            ),
            timeout=180,
            layout=layout,
            process="kubelet",
            interval=1.0,
        )
        say(f"in-cluster registry: 2 replicas behind {settings['cluster_registry']}")
        seconds = time.monotonic() - started
        say(f"ready in {seconds:.0f} s: export KUBECONFIG={layout.kubeconfig}")
        settings["up_seconds"] = round(seconds, 1)
        write_json(layout.settings_file, settings)
        return settings


def _drain(layout: Layout, say: Progress) -> None:
    """Delete every pod while the kubelet runs, so containerd tears each network down itself."""
    ports = Ports(int((read_json(layout.settings_file) or {}).get("base_port", DEFAULT_BASE_PORT)))
    if running_pid(layout, "kubelet") is None or running_pid(layout, "kube-apiserver") is None:
        return
    if https_not_ok(f"https://127.0.0.1:{ports.apiserver}/readyz", Pki(layout.pki_dir), "admin"):
        return
    _remove_chaos_objects(layout, say)
    # Nothing may recreate the pods while they go.
    for name in ("kube-controller-manager", "kube-scheduler"):
        stop(layout, name)
    client = admin_client(layout.state_dir, timeout=10)
    try:
        with kube.translated():
            pods = list(client.list(Pod, namespace="*"))
            for pod in pods:
                meta = pod.metadata
                if meta is not None and meta.name:
                    client.delete(Pod, meta.name, namespace=meta.namespace, grace_period=0)
    except kube.KubeError as exc:
        say(f"drain: {exc}; cleaning up by force")
        return
    say(f"drain: deleted {len(pods)} pods, waiting for their sandboxes to stop")
    deadline = time.monotonic() + 40
    while netns_of_ours(layout) and time.monotonic() < deadline:
        time.sleep(0.5)


CHAOS_KINDS = ("PodChaos", "NetworkChaos")


def _remove_chaos_objects(layout: Layout, say: Progress) -> None:
    """Delete Chaos Mesh objects while its controller still runs: it holds a finalizer on each
    it handled, and a namespace cannot go while one is stuck. Stuck ones lose the finalizer."""
    client = admin_client(layout.state_dir, timeout=10)
    for kind in CHAOS_KINDS:
        resource = chaosmesh.resource(kind)
        try:
            with kube.translated():
                objects = list(client.list(resource, namespace="*"))
            for obj in objects:
                meta = obj.metadata
                if meta is None or not meta.name:
                    continue
                try:
                    chaosmesh.delete_verified(client, kind, meta.name, str(meta.namespace))
                except kube.KubeError:
                    with kube.translated():
                        client.patch(
                            resource,
                            meta.name,
                            {"metadata": {"finalizers": None}},
                            namespace=meta.namespace,
                            patch_type=PatchType.MERGE,
                        )
                    say(f"drain: {kind} {meta.namespace}/{meta.name} released from its finalizer")
        except kube.KubeError as exc:
            say(f"drain: listing {kind}: {exc}")


# Chaos Mesh's controller stops its manager on the first SIGTERM and then waits for a second
# one; nothing of it needs a graceful end, so it gets SIGKILL after this long.
STOP_TIMEOUTS = {"chaos-controller-manager": 2.0}


def down(state_dir: Path | str, *, progress: Progress | None = None) -> dict[str, list[Any]]:
    """Stop everything of the cluster (and its own sandbox); returns what is left (all empty).

    Raises ``ClusterError`` listing anything of ours that survives.
    """
    plain = progress or _to_stderr
    begun = time.monotonic()

    def say(message: str) -> None:
        plain(f"[{time.monotonic() - begun:5.1f}s] {message}")

    layout = Layout.at(state_dir)
    if not layout.state_dir.is_dir():
        raise ConfigError(f"{layout.state_dir}: no cluster state directory")
    with _state_lock(layout):
        settings = read_json(layout.settings_file) or {}
        # Only what this cluster's instance made: another instance's cluster may run beside it.
        layout = Layout.at(state_dir, int(settings.get("instance", 0)))
        _drain(layout, say)
        for name in reversed(ALL_PROCESS_NAMES):
            if stop(layout, name, timeout=STOP_TIMEOUTS.get(name, 15.0)):
                say(f"{name}: stopped")
        left = kill_pids(strays(layout))
        problems = clean_host(layout)
        if settings.get("sandbox_owned") and Path(settings.get("sandbox_dir", "")).is_dir():
            sandbox.down(settings["sandbox_dir"])
            say("sandbox: stopped")
        remaining = leftovers(layout, strays(layout) + left)
        if any(remaining.values()) or problems:
            detail = {k: v for k, v in remaining.items() if v} | problems
            raise ClusterError(f"down left things behind: {detail}")
        say("down: no process, mount, interface, netns or iptables rule of ours is left")
        return remaining


def status(state_dir: Path | str) -> dict[str, Any]:
    """``{"state_dir", "running", "processes": {name: pid|None}, "node_ready", "demo",
    "cluster_registry", ...}``."""
    layout = Layout.at(state_dir)
    settings = read_json(layout.settings_file) or {}
    count = int(settings.get("nodes", 1))
    processes = {name: running_pid(layout, name) for name in _process_names(count)}
    result: dict[str, Any] = {
        "state_dir": str(layout.state_dir),
        "instance": int(settings.get("instance", 0)),
        "kubeconfig": str(layout.kubeconfig),
        "vars_file": str(layout.vars_file) if layout.vars_file.is_file() else None,
        "kubernetes_version": settings.get("kubernetes_version"),
        "node_pulls": settings.get("node_pulls", NODE_PULLS_ORIGIN),
        "nodes": count,
        "serial_pulls": settings.get("serial_pulls", []),
        "processes": processes,
        "running": all(processes.values()),
        "node_ready": None,
        "demo_available": None,
    }
    if processes["kube-apiserver"] and layout.kubeconfig.is_file():
        try:
            client = admin_client(layout.state_dir, timeout=5)
            node_problem = None
            for node in nodes_of(layout, count):
                problem = node_not_ready(client, node.name)
                if problem is None and not processes[node.kubelet_process]:
                    # The node object outlives its kubelet; its Ready is stale until it times out.
                    problem = "kubelet not running (the API still shows its last Ready status)"
                if problem is not None:
                    node_problem = f"{node.name}: {problem}" if count > 1 else problem
                    break
            demo_problem = deployment_not_available(client, DEMO_NAMESPACE, DEMO_NAME)
        except kube.KubeError as exc:
            node_problem = demo_problem = str(exc)
        # The safety net for a bad-tag fault whose ledger and watchdog are gone.
        result["expired_faults_reverted"] = revert_expired_bad_tags(
            layout.kubeconfig, timeout=5, throttle=False
        )
        result["node_ready"] = node_problem is None
        result["node_detail"] = node_problem or ("Ready" if count == 1 else f"{count} nodes Ready")
        result["demo_available"] = demo_problem is None
        result["demo_detail"] = demo_problem or "Available"
        registry_problem = None
        try:
            registry_problem = statefulset_not_ready(client, REGISTRY_NAMESPACE, REGISTRY_NAME)
        except kube.KubeError as exc:
            registry_problem = str(exc)
        if registry_problem is None and settings.get("cluster_registry"):
            registry_problem = http_not_ok(f"{settings['cluster_registry']}/v2/")
        result["cluster_registry"] = settings.get("cluster_registry")
        result["cluster_registry_ready"] = registry_problem is None
        result["cluster_registry_detail"] = registry_problem or "2 replicas ready"
    return result
