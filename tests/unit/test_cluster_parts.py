"""The cluster's pure parts, without a cluster: certificates, configs, images, build recipes.

Fast and root-free; the end-to-end behaviour is in test_cluster.py.
"""

import base64
import gzip
import hashlib
import io
import ipaddress
import json
import os
import re
import shlex
import subprocess
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chaosregistry.cluster import build, images
from chaosregistry.cluster.configs import (
    RegistryAccess,
    cni_conflist,
    containerd_config,
    kubeconfig,
    kubelet_config,
    registry_hosts_toml,
    registry_lb_config,
    write_configs,
)
from chaosregistry.cluster.layout import (
    NODE_NAME,
    PORT_SPAN,
    Instance,
    Layout,
    Node,
    Ports,
    nodes_of,
)
from chaosregistry.cluster.pki import cluster_cert_specs, ensure_pki, node_cert_specs
from chaosregistry.cluster.workloads import head_of_line_deployments

NODE_IP, SERVICE_IP = Instance(0).node_ip(0), Instance(0).service_ip
SPECS = cluster_cert_specs(NODE_NAME, NODE_IP, SERVICE_IP)
CHROOT = "/usr/sbin/chroot"


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _verify_signed_by(cert: x509.Certificate, ca: x509.Certificate) -> None:
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


def test_apiserver_cert_names_every_address_clients_use(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", SPECS)
    cert = _cert(pki.cert("apiserver"))
    _verify_signed_by(cert, _cert(pki.ca_cert))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", SERVICE_IP, NODE_IP} <= ips
    assert ipaddress.ip_address(SERVICE_IP) in ipaddress.ip_network("10.0.0.0/24")
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_certs_carry_the_identities_rbac_and_the_node_authorizer_expect(
    tmp_path: Path,
) -> None:
    pki = ensure_pki(tmp_path / "pki", SPECS)

    def identity(name: str) -> tuple[str, list[str]]:
        subject = _cert(pki.cert(name)).subject
        common_name = subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        orgs = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        return str(common_name), [str(o) for o in orgs]

    assert identity("admin")[1] == ["system:masters"]
    assert identity("kubelet-client") == (f"system:node:{NODE_NAME}", ["system:nodes"])
    assert identity("controller-manager")[0] == "system:kube-controller-manager"
    assert identity("scheduler")[0] == "system:kube-scheduler"
    assert (pki.key("admin").stat().st_mode & 0o777) == 0o600


def test_ensure_pki_keeps_what_exists(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path / "pki", SPECS)
    before = {p.name: p.read_bytes() for p in first.directory.iterdir()}
    first.cert("scheduler").unlink()
    second = ensure_pki(tmp_path / "pki", SPECS)
    after = {p.name: p.read_bytes() for p in second.directory.iterdir()}
    assert after["ca.crt"] == before["ca.crt"]
    assert after["service-account.key"] == before["service-account.key"]
    assert after["apiserver.crt"] == before["apiserver.crt"]
    # The missing one came back, signed by the same CA.
    _verify_signed_by(_cert(second.cert("scheduler")), _cert(second.ca_cert))


def test_hosts_toml_sends_every_pull_through_the_hop_with_basic_auth() -> None:
    access = RegistryAccess("https://127.0.0.1:15100", "/run/sandbox/pki/ca.crt", "chaos", "s3cret")
    hosts = tomllib.loads(registry_hosts_toml(access))
    assert hosts["server"] == "https://127.0.0.1:15100"
    assert hosts["ca"] == "/run/sandbox/pki/ca.crt"
    mirror = hosts["host"]["https://127.0.0.1:15100"]
    assert mirror["capabilities"] == ["pull", "resolve"]
    # containerd verifies the sandbox's certificate against the sandbox's CA, per host.
    assert mirror["ca"] == "/run/sandbox/pki/ca.crt"
    expected = "Basic " + base64.b64encode(b"chaos:s3cret").decode()
    assert mirror["header"]["Authorization"] == expected
    assert hosts["header"]["Authorization"] == expected


def test_hosts_toml_mirror_first_lists_the_mirror_then_the_hop_as_fallback() -> None:
    access = RegistryAccess("https://127.0.0.1:15100", "/run/sandbox/pki/ca.crt", "chaos", "s3cret")
    text = registry_hosts_toml(access, mirror_url="https://127.0.0.1:15101/")
    hosts = tomllib.loads(text)
    # containerd tries the [host] entries in the file's order, then the server.
    assert list(hosts["host"]) == ["https://127.0.0.1:15101", "https://127.0.0.1:15100"]
    assert text.index('[host."https://127.0.0.1:15101"]') < text.index(
        '[host."https://127.0.0.1:15100"]'
    )
    assert hosts["server"] == "https://127.0.0.1:15100"
    mirror, origin = (
        hosts["host"]["https://127.0.0.1:15101"],
        hosts["host"]["https://127.0.0.1:15100"],
    )
    assert mirror["capabilities"] == origin["capabilities"] == ["pull", "resolve"]
    assert mirror["ca"] == origin["ca"] == "/run/sandbox/pki/ca.crt"
    # The mirror is anonymous: the registry's credentials go to the origin only.
    assert "header" not in mirror and "s3cret" not in text.split("[host.")[1]
    expected = "Basic " + base64.b64encode(b"chaos:s3cret").decode()
    assert origin["header"]["Authorization"] == hosts["header"]["Authorization"] == expected


def test_cluster_up_refuses_an_unknown_node_pulls_in_one_line(tmp_path: Path) -> None:
    from chaosregistry.cluster import up
    from chaosregistry.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        up(tmp_path / "state", node_pulls="mirror-only")
    assert str(caught.value) == (
        "node_pulls must be one of origin, mirror-first, got 'mirror-only'"
    )
    assert not (tmp_path / "state").exists()


def test_containerd_config_keeps_every_path_under_the_state_dir(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path / "state")
    config = tomllib.loads(containerd_config(Node(layout, 0), "registry.example.test/pause:1"))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    paths = [
        config["root"],
        config["state"],
        config["grpc"]["address"],
        cri["cni"]["conf_dir"],
        cri["registry"]["config_path"],
        cri["containerd"]["runtimes"]["runc"]["options"]["Root"],
        config["plugins"]["io.containerd.internal.v1.opt"]["path"],
    ]
    assert all(p.startswith(str(layout.state_dir) + "/") for p in paths), paths
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "registry.example.test/pause:1"


def test_cni_and_kubelet_configs_leave_the_host_alone(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path / "state")
    (bridge,) = cni_conflist(Node(layout, 0))["plugins"]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"].startswith(str(layout.state_dir))
    pki = ensure_pki(layout.pki_dir, SPECS)
    config = kubelet_config(Node(layout, 0), pki, Ports(16440))
    assert config["makeIPTablesUtilChains"] is False
    assert config["failCgroupV1"] is False
    assert config["cgroupRoot"] == "/chaosregistry"
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["podLogsDir"].startswith(str(layout.state_dir))


def test_kubelet_pulls_in_parallel_unless_its_node_is_told_to_serialize(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path / "state")
    pki = ensure_pki(layout.pki_dir, SPECS)
    parallel = kubelet_config(Node(layout, 0), pki, Ports(16440))
    assert (parallel["serializeImagePulls"], parallel["maxParallelImagePulls"]) == (False, 3)
    serial = kubelet_config(Node(layout, 0), pki, Ports(16440), serial_pulls=True)
    assert serial["serializeImagePulls"] is True
    # The kubelet refuses to start with serialized pulls and a parallel limit above 1.
    assert "maxParallelImagePulls" not in serial


def test_write_configs_serializes_only_the_nodes_named(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path / "state")
    nodes = nodes_of(layout, 2)
    for node in nodes:
        node.make_dirs()
    layout.make_dirs()
    pki = ensure_pki(
        layout.pki_dir, SPECS + node_cert_specs(nodes[1].name, nodes[1].ip, nodes[1].suffix)
    )
    write_configs(layout, nodes, pki, Ports(16440), "r.test/pause:1", serial_pulls=frozenset({1}))
    written = [yaml.safe_load(node.kubelet_config.read_text()) for node in nodes]
    assert [k["serializeImagePulls"] for k in written] == [True, False]


def test_cluster_up_refuses_serial_pulls_on_a_node_it_does_not_have(tmp_path: Path) -> None:
    from chaosregistry.cluster import up
    from chaosregistry.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        up(tmp_path / "state", nodes=1, serial_pulls=(2,))
    assert str(caught.value) == "serial_pulls: 2 is not a node of this cluster (1..1)"
    assert not (tmp_path / "state").exists()


def test_head_of_line_pairs_run_the_pause_image_one_pod_each_pinned_to_their_node() -> None:
    deployments = head_of_line_deployments(["node-a", "node-b"])
    placed = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["nodeSelector"][
            "kubernetes.io/hostname"
        ]
        for d in deployments
    }
    assert placed == {
        "head-of-line-slow-1": "node-a",
        "head-of-line-other-1": "node-a",
        "head-of-line-slow-2": "node-b",
        "head-of-line-other-2": "node-b",
    }
    for deployment in deployments:
        assert deployment["spec"]["replicas"] == 1
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        # Already on every node: they start without a pull and leave a cold node cold.
        assert container["image"] == images.image_name(images.PAUSE_REPOSITORY, images.PAUSE_TAG)
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert (
            deployment["spec"]["selector"]["matchLabels"]
            == (deployment["spec"]["template"]["metadata"]["labels"])
        )


def test_user_kubeconfig_embeds_credentials_and_names_the_secure_port(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", SPECS)
    config = kubeconfig(
        server="https://127.0.0.1:16440",
        ca_file=pki.ca_cert,
        cert_file=pki.cert("admin"),
        key_file=pki.key("admin"),
        user="kubernetes-admin",
        embed=True,
    )
    parsed = yaml.safe_load(yaml.safe_dump(config))
    cluster = parsed["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:16440"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca_cert.read_bytes()
    user = parsed["users"][0]["user"]
    assert base64.b64decode(user["client-key-data"]) == pki.key("admin").read_bytes()


def test_busybox_layer_is_reproducible_and_has_the_applets() -> None:
    if not images.BUSYBOX.is_file():
        pytest.skip("busybox-static is not installed")
    first, second = images.busybox_layer_tar(), images.busybox_layer_tar()
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777


def test_registry_image_runs_on_its_own_layer_and_is_tagged_by_content(tmp_path: Path) -> None:
    if not images.REGISTRY_BINARY.is_file() or not images.BUSYBOX.is_file():
        pytest.skip("docker-registry or busybox-static is not installed")
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    image = images.registry_image()
    layer_tar = gzip.decompress(image.layer.data)
    assert image.tag == "distribution-" + hashlib.sha256(layer_tar).hexdigest()[:12]
    root = tmp_path / "rootfs"
    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        tar.extractall(root, filter="tar")

    def in_image(*argv: str, **env: str) -> str:
        return subprocess.run(
            [CHROOT, str(root), *argv],
            env={"PATH": "/bin", **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    # Nothing from the host: the binary, its C library and loader all come from the layer.
    assert in_image("/bin/registry", "--version").startswith("/bin/registry github.com/")
    config = yaml.safe_load((root / "etc/registry/config.yml").read_text())
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert config["storage"]["maintenance"]["uploadpurging"]["enabled"] is False
    # The entrypoint derives the listen port from the StatefulSet ordinal with the image's sh.
    shell, flag, script = json.loads(image.config.data)["config"]["Entrypoint"]
    shown = in_image(
        shell,
        flag,
        script.replace("exec /bin/registry", "echo $n $REGISTRY_HTTP_ADDR"),
        REGISTRY_BASE_PORT="20008",
        REGISTRY_ORDINAL="1",
    )
    # Nothing answers on that port here, so it did not wait.
    assert shown.split() == ["0", "127.0.0.1:20009", "serve", "/etc/registry/config.yml"]


def test_registry_balancer_config_is_valid_nginx_naming_both_replicas(tmp_path: Path) -> None:
    if not Path("/usr/sbin/nginx").is_file():
        pytest.skip("nginx is not installed")
    layout, ports = Layout.at(tmp_path), Ports(20000)
    layout.make_dirs()
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (layout.registry_lb_dir / "tmp" / kind).mkdir(parents=True)
    text = registry_lb_config(layout, ports)
    conf = layout.registry_lb_dir / "nginx.conf"
    conf.write_text(text)
    assert re.findall(r"server 127\.0\.0\.1:(\d+)", text) == ["20008", "20009"]
    assert "listen 127.0.0.1:20007;" in text
    checked = subprocess.run(
        [
            "/usr/sbin/nginx",
            "-t",
            "-p",
            f"{layout.registry_lb_dir}/",
            "-c",
            str(conf),
            "-e",
            str(layout.log_file("registry-lb-error")),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr


def test_image_manifest_points_at_its_config_and_layer() -> None:
    layer_tar = b"not really a tar, the digests are what matter"
    image = images.build_image("demo/app", "1", ["/bin/sh"], layer_tar)
    manifest = json.loads(image.manifest.data)
    assert manifest["config"]["digest"] == image.config.digest
    assert manifest["layers"][0]["digest"] == image.layer.digest
    assert manifest["layers"][0]["size"] == len(image.layer.data)
    config = json.loads(image.config.data)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]
    assert gzip.decompress(image.layer.data) == layer_tar
    # Two builds of the same input are byte-identical (gzip without a timestamp).
    again = images.build_image("demo/app", "1", ["/bin/sh"], layer_tar)
    assert again.manifest.digest == image.manifest.digest


def test_kubernetes_build_module_replaces_staging_modules_with_their_release() -> None:
    staging = ("k8s.io/api", "k8s.io/kubelet")
    kube_build = build.GoBuild(
        name="k8s",
        version="v1.34.4",
        requires=(("k8s.io/kubernetes", "v1.34.4"),),
        replaces=tuple((m, m, "v0.34.4") for m in staging),
        packages=("k8s.io/kubernetes/cmd/kubelet",),
        stamps=build.kubernetes_version_stamps("v1.34.4"),
    )
    go_mod = kube_build.go_mod()
    assert "\tk8s.io/kubernetes v1.34.4" in go_mod
    assert "\tk8s.io/kubelet => k8s.io/kubelet v0.34.4" in go_mod
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in kube_build.ldflags()
    assert "-X k8s.io/component-base/version.gitMinor=34" in kube_build.ldflags()
    # Another stamp is another recipe: a cached build made without it is redone.
    unstamped = build.GoBuild(
        kube_build.name,
        kube_build.version,
        kube_build.requires,
        kube_build.replaces,
        kube_build.packages,
    )
    assert unstamped.recipe() != kube_build.recipe()


def test_a_failed_go_step_says_which_step_and_its_last_line_and_keeps_its_log(
    tmp_path: Path,
) -> None:
    log = tmp_path / "build.log"
    with pytest.raises(build.BuildError) as failed:
        build.run_go(
            ["sh", "-c", "echo 'main.go:1: syntax error' >&2; exit 2"],
            cwd=tmp_path,
            log=log,
            step="go build demo",
        )
    assert (
        str(failed.value) == f"go build demo failed (exit 2): main.go:1: syntax error — see {log}"
    )
    assert failed.value.log == log


def test_binary_names_follow_go_build_and_renames() -> None:
    assert build.ETCD_BUILD.built_names() == ["server"]
    assert build.ETCD_BUILD.binaries() == ["etcd"]


def test_the_makefiles_go_tools_build_without_dwarf_like_the_test_bed() -> None:
    # Two copies of one choice, the Makefile's for its `go install`s and build.py's for the
    # test bed: this keeps them from drifting apart.
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    line = re.search(r"^GO_BUILD_FLAGS := (.*)$", makefile, re.MULTILINE)
    assert line is not None
    makefile_flags = set(shlex.split(line.group(1)))
    assert {"-trimpath", "-gcflags=all=-dwarf=false"} <= set(build.GO_BUILD_FLAGS)
    assert {"-trimpath", "-gcflags=all=-dwarf=false", "-ldflags=-s -w"} == makefile_flags
    go_commands = [
        line
        for line in makefile.splitlines()
        if line.startswith("\t")
        and re.search(r"\bgo (install|build) ", line)
        and "echo" not in line
    ]
    assert len(go_commands) == 6  # toxiproxy, Distribution, crane, ggcr-registry, regsync, cosign
    assert all("$(GO_BUILD_FLAGS)" in line for line in go_commands), go_commands
    assert "-s -w" in build.ETCD_BUILD.ldflags()


@pytest.mark.parametrize(
    ("tool", "module", "variable"),
    [
        (
            "distribution-registry",
            "github.com/distribution/distribution/v3",
            "DISTRIBUTION3_VERSION",
        ),
        ("ggcr-registry", "github.com/google/go-containerregistry", "CRANE_VERSION"),
    ],
)
def test_a_go_tool_of_our_own_requires_the_version_its_cached_binary_is_named_after(
    tool: str, module: str, variable: str
) -> None:
    # The Makefile names the cached binary after a version (and the sandbox reports it); the
    # tool's go.mod decides what is compiled. Two statements of one fact, kept equal here.
    root = Path(__file__).parents[2]
    makefile = (root / "Makefile").read_text()
    named = re.search(rf"^{variable} := (\S+)$", makefile, re.MULTILINE)
    required = re.search(
        rf"^require {re.escape(module)} v(\S+)$",
        (root / "tools" / tool / "go.mod").read_text(),
        re.MULTILINE,
    )
    assert named is not None and required is not None
    assert named.group(1) == required.group(1)


def test_cluster_up_refuses_a_node_count_out_of_range_in_one_line(tmp_path: Path) -> None:
    from chaosregistry.cluster import up
    from chaosregistry.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        up(tmp_path / "state", nodes=3)
    assert str(caught.value) == "nodes must be 1..2, got 3"
    assert not (tmp_path / "state").exists()


def test_a_second_node_has_its_own_runtime_network_ports_and_identity(tmp_path: Path) -> None:
    layout = Layout.at(tmp_path / "state")
    first, second = nodes_of(layout, 2)
    ports = Ports(16440)
    # The first node keeps the single-node cluster's names and paths.
    assert (first.name, first.ip, first.kubelet_process) == (NODE_NAME, NODE_IP, "kubelet")
    assert first.containerd_socket == layout.containerd_socket
    assert first.kubelet_root == layout.kubelet_root
    assert second.name == f"{NODE_NAME}-2"
    assert (second.containerd_process, second.kubelet_process) == (
        "containerd-node-2",
        "kubelet-node-2",
    )
    assert second.containerd_socket.is_relative_to(layout.path("node-2"))
    # Nothing of one node's runtime, network or ports is the other's.
    configs = [
        tomllib.loads(containerd_config(node, "registry.example.test/pause:1"))
        for node in (first, second)
    ]
    for key in ("root", "state"):
        assert configs[0][key] != configs[1][key]
    assert configs[0]["grpc"]["address"] != configs[1]["grpc"]["address"]
    bridges = [cni_conflist(node)["plugins"][0] for node in (first, second)]
    assert bridges[0]["bridge"] != bridges[1]["bridge"]
    subnets = [ipaddress.ip_network(b["ipam"]["ranges"][0][0]["subnet"]) for b in bridges]
    assert not subnets[0].overlaps(subnets[1])
    assert bridges[0]["ipam"]["dataDir"] != bridges[1]["ipam"]["dataDir"]
    specs = SPECS + node_cert_specs(second.name, second.ip, second.suffix)
    pki = ensure_pki(layout.pki_dir, specs)
    kubelets = [kubelet_config(node, pki, ports) for node in (first, second)]
    assert kubelets[1]["address"] == second.ip != first.ip
    kubelet_ports = {k[key] for k in kubelets for key in ("port", "healthzPort")}
    assert len(kubelet_ports) == 4
    assert all(ports.base <= port < ports.base + PORT_SPAN for port in kubelet_ports)
    assert kubelet_ports.isdisjoint({ports.apiserver, ports.etcd_client, ports.registry_lb})
    # Each kubelet manages the kubepods below its own root, never the other's.
    assert kubelets[0]["cgroupRoot"] == "/chaosregistry"
    assert kubelets[1]["cgroupRoot"] == "/chaosregistry/node-2"
    assert kubelets[1]["tlsCertFile"] != kubelets[0]["tlsCertFile"]
    cert = x509.load_pem_x509_certificate(pki.cert("kubelet-client-node-2").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        f"system:node:{second.name}"
    )


# -- a Deployment's readiness, as the API reports it ------------------------------------------
class _FakeKube:
    """``get`` and ``list`` of lightkube's Client, answering with the given objects."""

    def __init__(self, deployment: Any, pods: list[Any]) -> None:
        self.deployment, self.pods = deployment, pods

    def get(self, kind: Any, name: str, namespace: str) -> Any:
        return self.deployment

    def list(self, kind: Any, namespace: str, labels: Any) -> list[Any]:
        return self.pods


def _deployment(image: str) -> Any:
    from lightkube.codecs import from_dict

    return from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "demo", "namespace": "demo", "generation": 5},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "demo"}},
                 "template": {"metadata": {"labels": {"app": "demo"}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
        "status": {"observedGeneration": 5, "updatedReplicas": 2, "availableReplicas": 2,
                   "conditions": [{"type": "Available", "status": "True"}]},
    })  # fmt: skip


def _ready_pod(name: str, image: str) -> Any:
    from lightkube.codecs import from_dict

    return from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "demo", "labels": {"app": "demo"}},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    })  # fmt: skip


def test_a_deployment_is_available_only_on_ready_pods_of_its_current_template() -> None:
    from chaosregistry.cluster.readiness import deployment_not_available

    # Right after the template went back to demo/app:1 the status still read the last
    # revision's: Available, two updated, and two ready pods, of demo/app:2.
    old = [_ready_pod("demo-a", "demo/app:2"), _ready_pod("demo-b", "demo/app:2")]
    kube: Any = _FakeKube(_deployment("demo/app:1"), old)
    assert deployment_not_available(kube, "demo", "demo") == (
        "0 of 2 pods of the current template running and ready"
    )
    kube.pods = [*old, _ready_pod("demo-c", "demo/app:1"), _ready_pod("demo-d", "demo/app:1")]
    assert deployment_not_available(kube, "demo", "demo") is None
