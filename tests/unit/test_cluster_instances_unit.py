"""Two test clusters on one machine (chaosregistry.cluster.layout.Instance), without a cluster:
the names and addresses each instance takes, and the machine's sysctls and kubelet paths, which
only the last cluster down puts back."""

import ipaddress
from dataclasses import fields
from itertools import combinations
from pathlib import Path

import pytest

from chaosregistry.cluster import components, host
from chaosregistry.cluster.build import Binaries
from chaosregistry.cluster.configs import cni_conflist, kubelet_config
from chaosregistry.cluster.layout import INSTANCES, NODE_NAME, Instance, Layout, Ports, nodes_of
from chaosregistry.cluster.pki import cluster_cert_specs, ensure_pki, node_cert_specs
from chaosregistry.errors import ConfigError

ALL = [Instance(number) for number in range(INSTANCES)]


def names(instance: Instance) -> list[str]:
    """What the machine sees of an instance's cluster by name: links, cgroup root, CNI network."""
    return [
        instance.node_interface,
        *instance.bridges,
        instance.cgroup_root,
        instance.cni_network,
    ]


def networks(instance: Instance) -> list[ipaddress.IPv4Network]:
    addresses = [ipaddress.ip_network(f"{ip}/32") for ip in instance.node_ips]
    subnets = [ipaddress.ip_network(s) for s in (*instance.pod_subnets, instance.service_subnet)]
    return addresses + subnets


def test_instance_0_keeps_the_names_a_single_cluster_always_had() -> None:
    default = Instance()
    assert default == Instance(0) == Layout.at("/s").instance
    assert (default.node_interface, default.bridges) == (
        "chaosreg-node0",
        ("chaosreg-cni0", "chaosreg-cni1"),
    )
    assert (default.node_ips, default.pod_subnets) == (
        ("10.213.0.1", "10.213.0.2"),
        ("10.214.0.0/24", "10.214.1.0/24"),
    )
    assert (default.service_subnet, default.service_ip) == ("10.0.0.0/24", "10.0.0.1")
    assert (default.cgroup_root, default.cni_network) == ("chaosregistry", "chaosregistry")


@pytest.mark.parametrize(("one", "other"), list(combinations(ALL, 2)))
def test_two_instances_share_no_name_address_subnet_or_cgroup_root(
    one: Instance, other: Instance
) -> None:
    assert not set(names(one)) & set(names(other))
    assert not any(a.overlaps(b) for a in networks(one) for b in networks(other))
    # The leftover checks find an instance's iptables rules by substring (its links and
    # addresses) and its CNI cache entries (<network>-<container>-<interface>) by prefix: none of
    # one instance's may be found inside the other's.
    for a, b in ((one, other), (other, one)):
        markers = {i: [*i.bridges, i.node_interface, *i.node_ips, *i.pod_subnets] for i in (a, b)}
        assert not [(x, y) for x in markers[a] for y in markers[b] if x in y]
        assert not f"{b.cni_network}-x".startswith(f"{a.cni_network}-")
    # Neither cgroup root is below the other's: down walks (and empties) its own root.
    assert not Path(one.cgroup_root).is_relative_to(other.cgroup_root)
    assert not Path(other.cgroup_root).is_relative_to(one.cgroup_root)


@pytest.mark.parametrize("instance", ALL)
def test_an_instance_names_fit_the_kernel_and_its_networks_do_not_overlap(
    instance: Instance,
) -> None:
    # IFNAMSIZ: 16 bytes with the terminating NUL.
    assert all(len(name) <= 15 for name in (instance.node_interface, *instance.bridges))
    assert len({instance.node_interface, *instance.bridges}) == 1 + len(instance.bridges)
    assert not any(a.overlaps(b) for a, b in combinations(networks(instance), 2))
    assert ipaddress.ip_address(instance.service_ip) in ipaddress.ip_network(
        instance.service_subnet
    )


def test_every_node_config_takes_its_names_from_the_clusters_instance(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path / "state", 1)
    instance = layout.instance
    first, second = nodes_of(layout, 2)
    assert (first.ip, second.ip) == instance.node_ips
    assert [cni_conflist(node)["name"] for node in (first, second)] == [instance.cni_network] * 2
    assert [cni_conflist(node)["plugins"][0]["bridge"] for node in (first, second)] == list(
        instance.bridges
    )
    subnets = [
        cni_conflist(n)["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] for n in (first, second)
    ]
    assert subnets == list(instance.pod_subnets)
    specs = cluster_cert_specs(NODE_NAME, first.ip, instance.service_ip) + node_cert_specs(
        second.name, second.ip, second.suffix
    )
    pki = ensure_pki(layout.pki_dir, specs)
    kubelets = [kubelet_config(node, pki, Ports(16440)) for node in (first, second)]
    assert [k["cgroupRoot"] for k in kubelets] == ["/chaosregistry1", "/chaosregistry1/node-2"]
    assert [k["address"] for k in kubelets] == list(instance.node_ips)
    binaries = Binaries(**{field.name: Path("/bin", field.name) for field in fields(Binaries)})
    apiserver = components.kube_apiserver(binaries, layout, pki, Ports(16440))
    assert f"--advertise-address={instance.node_ip(0)}" in apiserver.argv
    assert f"--service-cluster-ip-range={instance.service_subnet}" in apiserver.argv
    manager = components.kube_controller_manager(binaries, layout, pki, Ports(16440))
    assert f"--service-cluster-ip-range={instance.service_subnet}" in manager.argv


@pytest.mark.parametrize("instance", [-1, INSTANCES, True])
def test_cluster_up_refuses_an_instance_out_of_range_in_one_line(
    tmp_path: Path, instance: int
) -> None:
    from chaosregistry.cluster import up

    with pytest.raises(ConfigError) as caught:
        up(tmp_path / "state", instance=instance)
    assert str(caught.value) == f"instance must be 0..{INSTANCES - 1}, got {instance!r}"
    assert not (tmp_path / "state").exists()


class FakeHost:
    """The machine as ``claim_host`` and ``restore_host`` see it: sysctl files, the kubelet's
    fixed paths, the record and the instances' node interfaces, all under a temp dir."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.proc_sys = root / "proc-sys"
        self.sysctl = self.proc_sys / "net/ipv4/ip_forward"
        self.sysctl.parent.mkdir(parents=True)
        self.sysctl.write_text("0\n")
        self.kubelet_dir = root / "var-lib-kubelet"
        self.links: set[str] = set()
        monkeypatch.setattr(host, "PROC_SYS", self.proc_sys)
        monkeypatch.setattr(host, "SYSCTLS", ("net/ipv4/ip_forward",))
        monkeypatch.setattr(host, "KUBELET_HOST_PATHS", (self.kubelet_dir,))
        monkeypatch.setattr(host, "HOST_STATE", root / "run/host-state.json")
        monkeypatch.setattr(host, "link_exists", lambda name: name in self.links)
        monkeypatch.setattr(
            host, "ensure_node_interface", lambda i, _: self.links.add(i.node_interface)
        )

    def up(self, layout: Layout) -> None:
        host.claim_host(layout, [])
        # What a running cluster's kubelet and bridge plugin do to the machine.
        self.sysctl.write_text("1\n")
        self.kubelet_dir.mkdir(exist_ok=True)

    def down(self, layout: Layout) -> list[str]:
        self.links.discard(layout.instance.node_interface)  # clean_host removes it first
        return host.restore_host(layout)

    def as_before(self) -> bool:
        return self.sysctl.read_text() == "0" and not self.kubelet_dir.exists()


@pytest.mark.parametrize("last", [0, 1], ids=["first-up-last-down", "first-up-first-down"])
def test_only_the_last_cluster_down_puts_the_machines_sysctls_and_paths_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, last: int
) -> None:
    fake = FakeHost(tmp_path, monkeypatch)
    layouts = [Layout.at(tmp_path / f"state-{n}", n) for n in range(INSTANCES)]
    fake.up(layouts[0])
    fake.up(layouts[1])
    first_down, last_down = layouts[1 - last], layouts[last]
    assert fake.down(first_down) == []
    # The other cluster still runs on what its kubelet set.
    assert fake.sysctl.read_text() == "1\n" and fake.kubelet_dir.is_dir()
    assert host.HOST_STATE.exists()
    assert fake.down(last_down) == []
    assert fake.as_before()
    assert not host.HOST_STATE.exists()


def test_a_cluster_up_after_the_last_down_records_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeHost(tmp_path, monkeypatch)
    one, other = (Layout.at(tmp_path / f"state-{n}", n) for n in range(2))
    fake.up(one)
    fake.down(one)
    fake.up(other)
    fake.down(other)
    assert fake.as_before()


def test_down_of_a_cluster_up_before_the_machine_kept_one_record_restores_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeHost(tmp_path, monkeypatch)
    layout = Layout.at(tmp_path / "state")
    layout.state_dir.mkdir()
    layout.host_state_file.write_text(
        '{"sysctls": {"net/ipv4/ip_forward": "0"}, "preexisting": []}'
    )
    fake.sysctl.write_text("1\n")
    fake.kubelet_dir.mkdir()
    assert fake.down(layout) == []
    assert fake.as_before()
    assert not layout.host_state_file.exists()
