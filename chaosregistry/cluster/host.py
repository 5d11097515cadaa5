"""What the cluster changes on the host, and how ``down`` puts it back.

``up`` adds: an interface (a port-less bridge) with the node address, a cgroup
``/chaosregistry`` in each cgroup v1 hierarchy (the kubelet's ``cgroupRoot``), and, through the
kubelet and the bridge plugin, a few sysctls and kubelet paths (recorded first and restored by
``down``). Running pods add a bridge, veth pairs, network namespaces (bind-mounted under the
state dir), overlay and tmpfs mounts, CNI result files and /var/log/containers links.
``leftovers`` lists whatever of that remains; ``clean_host`` removes it.

Names come from the cluster's instance (``layout.Instance``), so ``down``, ``leftovers`` and
``clean_host`` see only their own instance's interfaces, cgroups, rules and cache entries, never
another cluster's. Sysctls and the kubelet's fixed paths are the machine's whatever the
instance: the first cluster up records them (``HOST_STATE``) and the last one down restores
them, so a ``down`` never puts them back under a cluster that still runs.
"""

import contextlib
import errno
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from chaosregistry.cluster.layout import (
    MAX_NODES,
    Instance,
    Layout,
    Node,
    read_json,
)
from chaosregistry.cluster.processes import ClusterError, kill_pids
from chaosregistry.osutil import locks
from chaosregistry.osutil.files import write_json

CGROUP_V1 = Path("/sys/fs/cgroup")
PROC_SYS = Path("/proc/sys")
# The machine's values from before the first of its clusters came up (every instance's): on
# tmpfs, as the sysctls it records do not outlive a reboot either.
HOST_STATE = Path("/run/chaosregistry/host-state.json")
# The kubelet sets these unless protectKernelDefaults; the bridge plugin turns on forwarding.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
)
# The kubelet creates these whatever its --root-dir (the device-plugin socket path is fixed),
# deepest first; down removes those that did not exist before the cluster's first up.
KUBELET_HOST_PATHS = (
    Path("/var/lib/kubelet/device-plugins"),
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
)
KUBELET_HOST_FILES = ("kubelet.sock", "kubelet_internal_checkpoint")
CNI_CACHE = Path("/var/lib/cni/results")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
# Directories that containerd's shims and libcni create outside our state dir; removed when
# they are empty (a running containerd or CNI user of someone else's would keep them non-empty).
RUNTIME_DIRS = (Path("/run/containerd/s"), Path("/run/containerd"), CNI_CACHE, CNI_CACHE.parent)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        ["ip", *args], capture_output=True, text=True, check=False, timeout=10
    )
    if check and completed.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)}: {completed.stderr.strip()}")
    return completed


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ensure_node_interface(instance: Instance, addresses: list[str]) -> None:
    """An interface carrying every node's address (kubelet refuses a loopback node address).

    A port-less bridge rather than a dummy link: the test machines' kernels lack the dummy
    driver (CONFIG_DUMMY is not set), while bridges are built in. Its addresses are local all
    the same, so traffic to them never leaves the host.
    """
    name = instance.node_interface
    if not link_exists(name):
        _ip("link", "add", name, "type", "bridge")
    present = _ip("-o", "-4", "addr", "show", "dev", name).stdout
    for address in addresses:
        if f" {address}/" not in present:
            _ip("addr", "add", f"{address}/32", "dev", name)
    _ip("link", "set", name, "up")


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup v1 hierarchies (named ones like ``systemd`` included)."""
    if not CGROUP_V1.is_dir():
        return []
    return sorted(
        p
        for p in CGROUP_V1.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and p.name != "unified"
        and (p / "cgroup.procs").exists()
    )


def ensure_cgroup_root(roots: list[str]) -> None:
    """Create each node's cgroup root (``/chaosregistry``, the second node's below it) in every
    hierarchy; cpuset needs its cpus/mems filled in, from the parent."""
    for hierarchy in cgroup_hierarchies():
        for root in roots:
            parent = hierarchy
            for part in Path(root).parts:
                ours = parent / part
                ours.mkdir(exist_ok=True)
                if hierarchy.name == "cpuset":
                    for knob in ("cpuset.cpus", "cpuset.mems"):
                        if not (ours / knob).read_text().strip():
                            (ours / knob).write_text((parent / knob).read_text())
                parent = ours


def _cgroup_dirs(instance: Instance) -> list[Path]:
    """Every cgroup directory of the instance's cluster, deepest first."""
    found: list[Path] = []
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / instance.cgroup_root
        if root.is_dir():
            found += [Path(dirpath) for dirpath, _, _ in os.walk(root)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def cgroup_pids(instance: Instance) -> list[int]:
    pids: set[int] = set()
    for directory in _cgroup_dirs(instance):
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in (directory / "cgroup.procs").read_text().split())
    return sorted(pids)


def _host_state_lock() -> contextlib.AbstractContextManager[None]:
    # Short critical sections (a read, a write, a link), so a generous bound never waits long.
    return locks.hold(HOST_STATE.with_suffix(".lock"), timeout=60)


def other_instances_up(instance: Instance) -> list[Instance]:
    """The other instances whose cluster is up: its node interface, made first at ``up`` and
    removed last at ``down``, exists."""
    return [other for other in instance.others() if link_exists(other.node_interface)]


def claim_host(layout: Layout, addresses: list[str]) -> None:
    """Record the machine's sysctls and kubelet paths unless a cluster has already (``up`` of
    every instance, before the cluster changes them), then make the instance's node interface
    with ``addresses``.

    One lock holds both, so a ``down`` of another instance (``restore_host``) either sees this
    one up or has already restored what this one records.
    """
    with _host_state_lock():
        if read_json(HOST_STATE) is None:
            values = {}
            for key in SYSCTLS:
                with contextlib.suppress(OSError):
                    values[key] = (PROC_SYS / key).read_text().strip()
            preexisting = [str(p) for p in KUBELET_HOST_PATHS if p.exists()]
            write_json(HOST_STATE, {"sysctls": values, "preexisting": preexisting})
        ensure_node_interface(layout.instance, addresses)


def restore_host(layout: Layout) -> list[str]:
    """Put recorded sysctls back and remove the kubelet's host paths that were not there before,
    unless another instance's cluster is still up (the last one down restores them).

    Returns what could not be restored.
    """
    with _host_state_lock():
        # A cluster brought up before the record was the machine's kept it in its state dir.
        if not HOST_STATE.exists() and layout.host_state_file.exists():
            HOST_STATE.parent.mkdir(parents=True, exist_ok=True)
            layout.host_state_file.replace(HOST_STATE)
        if other_instances_up(layout.instance):
            return []
        state = read_json(HOST_STATE) or {}
        failed = []
        for key, value in (state.get("sysctls") or {}).items():
            path = PROC_SYS / key
            try:
                if path.read_text().strip() != value:
                    path.write_text(value)
            except OSError:
                failed.append(key)
        if "preexisting" in state:
            for directory in KUBELET_HOST_PATHS:
                if str(directory) in state["preexisting"]:
                    continue
                for name in KUBELET_HOST_FILES:
                    (directory / name).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    directory.rmdir()
        if not failed:
            HOST_STATE.unlink(missing_ok=True)
        return failed


def _unescape_mount(field: str) -> str:
    return field.encode().decode("unicode_escape")


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    prefix = str(root).rstrip("/")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape_mount(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=lambda p: (p.count("/"), p), reverse=True)


def unmount_all(root: Path) -> list[str]:
    """Unmount (lazily, deepest first) everything mounted below ``root``; returns failures."""
    for _ in range(3):
        points = mounts_under(root)
        if not points:
            return []
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False, timeout=10)
    return mounts_under(root)


def veths_on_bridge(instance: Instance) -> list[str]:
    """The ports of every node's bridge."""
    found: list[str] = []
    for bridge in instance.bridges:
        bridge_ports = Path("/sys/class/net", bridge, "brif")
        if bridge_ports.is_dir():
            found += [p.name for p in bridge_ports.iterdir()]
    return sorted(found)


def all_veths() -> list[str]:
    return sorted(
        p.name
        for p in Path("/sys/class/net").iterdir()
        if (p / "ifindex").exists() and _link_kind(p.name) == "veth"
    )


def _link_kind(name: str) -> str:
    completed = _ip("-d", "-j", "link", "show", "dev", name, check=False)
    try:
        info: list[dict[str, Any]] = json.loads(completed.stdout or "[]")
        return str(info[0].get("linkinfo", {}).get("info_kind", ""))
    except (ValueError, IndexError):
        return ""


def remove_links(instance: Instance) -> list[str]:
    """Delete veths on our bridges, the bridges and the node interface; returns failures."""
    failed = []
    for name in [*veths_on_bridge(instance), *instance.bridges, instance.node_interface]:
        if link_exists(name) and _ip("link", "del", name, check=False).returncode != 0:
            failed.append(name)
    return failed


def remove_cgroups(instance: Instance) -> list[str]:
    failed = []
    for directory in _cgroup_dirs(instance):
        try:
            directory.rmdir()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                failed.append(str(directory))
    return failed


def remove_runtime_files(layout: Layout) -> None:
    """CNI result cache entries of our network and kubelet's log links into our state dir."""
    if CNI_CACHE.is_dir():
        # <network>-<container id>-<interface>: no instance's network name is another's + "-".
        for entry in CNI_CACHE.glob(f"{layout.instance.cni_network}-*"):
            entry.unlink(missing_ok=True)
    if CONTAINER_LOG_LINKS.is_dir():
        for link in CONTAINER_LOG_LINKS.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(str(layout.state_dir)):
                    link.unlink()
    for directory in RUNTIME_DIRS:
        with contextlib.suppress(OSError):
            directory.rmdir()
    # Pod IP leases: every pod is gone, so are they (every node's).
    for index in range(MAX_NODES):
        ipam = Node(layout, index).cni_ipam_dir
        if ipam.is_dir():
            for lease in ipam.rglob("*"):
                if lease.is_file():
                    lease.unlink()


def iptables_rules_of_ours(instance: Instance) -> list[str]:
    """iptables-save lines naming the instance's bridges, subnets or node addresses, or
    kubelet's KUBE- chains (the machine's: our kubelets make none, ``makeIPTablesUtilChains``
    is off, so one here is some cluster's leftover whatever its instance)."""
    markers = (*instance.bridges, *instance.pod_subnets, *instance.node_ips, "KUBE-")
    lines = []
    for tool in ("iptables-save", "ip6tables-save"):
        try:
            out = subprocess.run([tool], capture_output=True, text=True, check=False, timeout=20)
        except FileNotFoundError:
            continue
        lines += [
            f"{tool}: {line}"
            for line in out.stdout.splitlines()
            if any(marker in line for marker in markers)
        ]
    return lines


def netns_of_ours(layout: Layout) -> list[str]:
    """Network namespaces bind-mounted under our state dir (containerd puts them there)."""
    return [point for point in mounts_under(layout.state_dir) if "/netns/" in point]


def leftovers(layout: Layout, processes: list[int]) -> dict[str, list[Any]]:
    """Everything of ours still on the host; every list empty after a clean ``down``."""
    instance = layout.instance
    links = [name for name in (*instance.bridges, instance.node_interface) if link_exists(name)]
    return {
        "processes": processes,
        "cgroup_processes": cgroup_pids(instance),
        "mounts": mounts_under(layout.state_dir),
        "netns": netns_of_ours(layout),
        "interfaces": links + veths_on_bridge(instance),
        "iptables": iptables_rules_of_ours(instance),
        "cgroups": [str(p) for p in _cgroup_dirs(instance)],
    }


def clean_host(layout: Layout) -> dict[str, list[str]]:
    """Kill what runs in our cgroups, unmount, delete links and cgroups, restore sysctls."""
    problems: dict[str, list[str]] = {}
    survivors = kill_pids(cgroup_pids(layout.instance), grace=2.0)
    if survivors:
        problems["cgroup_processes"] = [str(pid) for pid in survivors]
    if stuck := unmount_all(layout.state_dir):
        problems["mounts"] = stuck
    # The node interface goes before restore_host, which keeps the machine's values while any
    # other instance's interface is there.
    if failed := remove_links(layout.instance):
        problems["interfaces"] = failed
    if failed := remove_cgroups(layout.instance):
        problems["cgroups"] = failed
    remove_runtime_files(layout)
    if failed := restore_host(layout):
        problems["sysctls"] = failed
    return problems
