"""The two-node test cluster, for real: a second kubelet with its own containerd and image
store beside the first, and the experiments that need two nodes under ``chaos run``:
blast-radius-verified, registry-outage-recovery (on the cold second node) and
head-of-line-pulls (both nodes).

One two-node cluster (with its own sandbox) serves the module; the last test brings it down and
checks that nothing of either node is left. The first node's kubelet serializes its image pulls
(``serial_pulls=(1,)``, the kubelet's own default), the second pulls in parallel (the test
bed's default): head-of-line-pulls measures both in one run, and the outage recovery, all on the
second node, sees the same kubelet as before. The blast radius is verified before the recovery
runs, and leaves the second node as cold as it found it (the recovery needs it cold).
"""

import ipaddress
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube.codecs import from_dict
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.resources.core_v1 import Node as NodeObject
from support.cluster import KubeCluster, outputs, run_gameday, running_cluster
from support.polling import eventually

from chaosregistry.cluster import down
from chaosregistry.cluster.host import leftovers
from chaosregistry.cluster.images import (
    DEMO_REPOSITORY,
    DEMO_TAG,
    PAUSE_REPOSITORY,
    PAUSE_TAG,
    image_name,
)
from chaosregistry.cluster.layout import (
    DEMO_NAMESPACE,
    Node,
    nodes_of,
)
from chaosregistry.cluster.processes import strays
from chaosregistry.cluster.workloads import (
    COLD_START_NAME,
    DEMO_LABELS,
    HOSTNAME_LABEL,
    chaos_namespace,
)
from chaosregistry.faults.ledger import FaultState, Ledger

DEMO_IMAGE = image_name(DEMO_REPOSITORY, DEMO_TAG)
PAUSE_IMAGE = image_name(PAUSE_REPOSITORY, PAUSE_TAG)
NEVER_PULLED = image_name("tiny/hello", "tiny-dev-0.0.1")  # in the sandbox, on no node


@pytest.fixture(scope="module")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    with running_cluster(tmp_path_factory, nodes=2, serial_pulls=(1,)) as cluster:
        yield cluster


def node_images(node: Node) -> set[str]:
    """The image names in the node's own containerd (what its kubelet's CRI sees)."""
    socket = str(node.containerd_socket)
    listed = subprocess.run(
        ["ctr", "--address", socket, "--namespace", "k8s.io", "images", "ls", "-q"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return set(listed.stdout.split())


def test_two_nodes_are_ready_each_with_its_own_address_and_image_store(
    kube_cluster: KubeCluster,
) -> None:
    first, second = nodes_of(kube_cluster.layout, 2)
    for node in (first, second):
        found = kube_cluster.client.get(NodeObject, node.name)
        assert found.status is not None
        ready = [c.status for c in found.status.conditions or [] if c.type == "Ready"]
        assert ready == ["True"], node.name
        addresses = [a.address for a in found.status.addresses or [] if a.type == "InternalIP"]
        assert addresses == [node.ip]
    # The demo runs on the first node only: its image is cached there and not on the second,
    # which holds the pause image its pods need and nothing else.
    pods = kube_cluster.client.list(Pod, namespace=DEMO_NAMESPACE, labels=DEMO_LABELS)
    assert {p.spec.nodeName for p in pods if p.spec} == {first.name}
    assert DEMO_IMAGE in node_images(first)
    assert DEMO_IMAGE not in node_images(second)
    assert PAUSE_IMAGE in node_images(second)


def deployment(
    name: str, namespace: str, image: str, policy: str, *, node: str | None, replicas: int = 1
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": image, "imagePullPolicy": policy}],
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
    }
    if node:
        spec["nodeSelector"] = {HOSTNAME_LABEL: node}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def status_images(kube_cluster: KubeCluster, node: str) -> set[str]:
    """The images ``node``'s status names (the kubelet refreshes the list every 30 s or so)."""
    found = kube_cluster.client.get(NodeObject, node)
    return {
        name
        for image in ((found.status.images if found.status else None) or ())
        for name in image.names or ()
    }


def running(kube_cluster: KubeCluster, namespace: str) -> set[str]:
    return {
        str((p.metadata.labels or {}).get("app"))
        for p in kube_cluster.client.list(Pod, namespace=namespace)
        if p.metadata and p.status and p.status.phase == "Running"
    }


def test_blast_radius_verified_game_day_observes_each_workload_as_predicted(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workload of each class, provoked while the registry is cut, does what the blast radius
    predicted: the agreement is 1, workload by workload."""
    ledger_dir = tmp_path / "ledger"
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(ledger_dir))
    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    first, second = nodes_of(kube_cluster.layout, 2)
    client = kube_cluster.client
    namespace = f"verify-{uuid.uuid4().hex[:6]}"
    client.create(from_dict(chaos_namespace(namespace)))
    try:
        for obj in (
            # the pause image is on both nodes: keeps running
            deployment("steady", namespace, PAUSE_IMAGE, "IfNotPresent", node=None),
            # the demo's image is on the first node only: degraded
            deployment("warm-only", namespace, DEMO_IMAGE, "IfNotPresent", node=first.name),
            # pulls on every start: breaks
            deployment("always", namespace, DEMO_IMAGE, "Always", node=first.name),
            # on no node: breaks as soon as it needs a pod
            deployment("cold", namespace, NEVER_PULLED, "IfNotPresent", node=None, replicas=0),
        ):
            client.create(from_dict(obj))
        eventually(
            "steady, warm-only and always running",
            lambda: {"steady", "warm-only", "always"} <= running(kube_cluster, namespace),
            timeout=60,
        )
        eventually(
            "each node's status names its images",
            lambda: (
                {PAUSE_IMAGE, DEMO_IMAGE} <= status_images(kube_cluster, first.name)
                and PAUSE_IMAGE in status_images(kube_cluster, second.name)
            ),
            timeout=90,
        )
        process, journal = run_gameday(
            kube_cluster, tmp_path, "blast-radius-verified", blast_namespace=namespace
        )
        assert process.returncode == 0, process.stdout[-3000:]
        out = outputs(journal)
        verified = out["observed-as-predicted"]
        table = {
            w["name"]: (w["predicted"], w["provocation"], w["observed"])
            for w in verified["workloads"]
        }
        print("\nblast-radius-verified:")
        for w in verified["workloads"]:
            print(
                f"  {w['name']:<10} predicted {w['predicted']:<13} {w['provocation']:<8} "
                f"{w['node'] or '':<22} observed {w['observed']} after {w['seconds']} s: {w['why']}"
            )
        print(f"  agreement {verified['agreement']}, waited {verified['waited_seconds']} s")
        assert table == {
            "steady": ("keeps-running", "restart", "keeps-running"),
            "warm-only": ("degraded", "move", "degraded"),
            "always": ("breaks", "restart", "breaks"),
            "cold": ("breaks", "scale-up", "breaks"),
        }
        assert verified["agreement"] == 1.0 and verified["disagreements"] == []
        moved = next(w for w in verified["workloads"] if w["name"] == "warm-only")
        assert moved["node"] == second.name
        # Every fault was undone, verified: the partition healed, each provocation ended.
        entries = Ledger(ledger_dir).all()
        assert {e.kind for e in entries} == {"network.partition", "deploy.provoke"}
        assert all(e.state is FaultState.REVERTED for e in entries)
        assert len([e for e in entries if e.kind == "deploy.provoke"]) == 4
        warm = client.get(Deployment, "warm-only", namespace=namespace)
        assert warm.spec is not None and warm.spec.template.spec is not None
        assert warm.spec.template.spec.nodeSelector == {HOSTNAME_LABEL: first.name}
        gameday = json.loads((tmp_path / "blast-radius-verified-run/gameday.json").read_text())
        assert all(f["measured"] for f in gameday["fault_evidence"]), gameday["fault_evidence"]
        # The moved pod went before the registry came back: the second node is still cold.
        assert DEMO_IMAGE not in node_images(second)
    finally:
        client.delete(Namespace, namespace)


def test_registry_outage_recovery_game_day_measures_the_back_off(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_dir = tmp_path / "ledger"
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(ledger_dir))
    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    process, journal = run_gameday(kube_cluster, tmp_path, "registry-outage-recovery")
    assert process.returncode == 0, process.stdout[-3000:]
    out = outputs(journal)
    during = out["pods-in-back-off-during-the-outage"]
    recovery = out["heal-to-every-pod-running"]
    print(
        "\nregistry-outage-recovery:",
        json.dumps(
            {
                "during": {k: during[k] for k in ("in_back_off", "waiting", "max_delay_seconds")},
                "recovery": {k: v for k, v in recovery.items() if k != "pods"},
                "pods": [
                    {
                        k: p[k]
                        for k in (
                            "pod",
                            "failed_pulls",
                            "seconds",
                            "back_off_seconds",
                            "back_off_left_seconds",
                        )
                    }
                    for p in recovery["pods"]
                ],
            }
        ),
    )
    # Every new pod was on the cold node, failed its pull during the outage and waited.
    assert during["in_back_off"] == during["count"] == 3
    assert during["max_delay_seconds"] >= 20
    assert recovery["recovered"] is True
    second = nodes_of(kube_cluster.layout, 2)[1]
    subnet = ipaddress.ip_network(second.pod_subnet)
    assert all(p["node"] == second.name for p in recovery["pods"])
    # Their addresses came from the second node's own bridge and subnet.
    assert all(ipaddress.ip_address(p["ip"]) in subnet for p in recovery["pods"])
    # After a 60 s cut each pod has failed 2-3 pulls (delays 10, 20, then 40 s): the kubelet
    # takes them up again well after the heal, and that wait is most of the recovery.
    assert all(p["failed_pulls"] >= 2 for p in recovery["pods"])
    assert 10 <= recovery["back_off_seconds"] <= recovery["seconds"] + 1
    # The first pod taken up again pulled the image, so it waited out its own back-off (the
    # API's whole seconds make each figure up to 1 s early). The others may not have: the
    # kubelet looks for the image on the node before it consults a pod's back-off, so once the
    # first pull lands, a pod whose own delay has seconds left starts at its next sync anyway.
    first = min(recovery["pods"], key=lambda p: p["back_off_seconds"])
    assert first["back_off_left_seconds"] <= first["back_off_seconds"] + 1
    # The faults were undone: the partition healed, the Deployment scaled back to zero.
    entries = Ledger(ledger_dir).all()
    assert {e.kind for e in entries} == {"network.partition", "deploy.scale"}
    assert all(e.state is FaultState.REVERTED for e in entries)
    cold = kube_cluster.client.get(Deployment, COLD_START_NAME, namespace=DEMO_NAMESPACE)
    assert cold.spec is not None and cold.spec.replicas == 0
    # The image is on the cold node now, pulled by its own containerd.
    assert DEMO_IMAGE in node_images(second)
    gameday = json.loads((tmp_path / "registry-outage-recovery-run/gameday.json").read_text())
    assert all(f["measured"] for f in gameday["fault_evidence"]), gameday["fault_evidence"]


def test_head_of_line_pulls_an_unrelated_pull_waits_behind_a_slow_one_only_when_serialized(
    kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_dir = tmp_path / "ledger"
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(ledger_dir))
    monkeypatch.setenv("CHAOSREGISTRY_KUBECONFIG", str(kube_cluster.kubeconfig))
    process, journal = run_gameday(kube_cluster, tmp_path, "head-of-line-pulls")
    assert process.returncode == 0, process.stdout[-3000:]
    out = outputs(journal)
    figures = {
        name: {
            "pull": out[name]["kubelet_pull_seconds"],
            "queue": out[name]["kubelet_queue_seconds"],
            "total": out[name]["total_seconds"],
        }
        for name in (
            "serial-node-other-alone",
            "parallel-node-other-alone",
            "parallel-node-slow-release",
            "parallel-node-other-behind-slow",
            "serial-node-slow-release",
            "serial-node-other-behind-slow",
        )
    }
    print("\nhead-of-line-pulls:", json.dumps(figures))
    # The slow releases were slow: 1.2 MB of new content through a 100 kB/s cap, about 12 s.
    for node in ("serial", "parallel"):
        assert figures[f"{node}-node-slow-release"]["pull"][0] >= 6, figures
    # Alone, the unrelated release's pull (a manifest) waited for nothing on either node.
    for node in ("serial", "parallel"):
        assert figures[f"{node}-node-other-alone"]["queue"][0] <= 0.5, figures
    # Behind the slow pull: on the serializing node it waited for the slow pull to end (the
    # head start was 4 s of about 12), on the parallel node it did not wait.
    serial = figures["serial-node-other-behind-slow"]
    assert serial["queue"][0] >= 3, figures
    assert serial["queue"][0] <= figures["serial-node-slow-release"]["pull"][0], figures
    assert serial["total"] >= serial["queue"][0], figures
    assert figures["parallel-node-other-behind-slow"]["queue"][0] <= 1, figures
    # The probes judge the last release alone: the pull behind the slow one.
    for node in ("serial", "parallel"):
        assert out[f"{node}-node-queue"]["queue_seconds"]["count"] == 1, out[f"{node}-node-queue"]
    assert out["parallel-node-queue"]["max_queue_seconds"] <= 1
    assert out["serial-node-queue"]["max_queue_seconds"] == serial["queue"][0]
    entries = Ledger(ledger_dir).all()
    assert [e.kind for e in entries] == ["network.bandwidth"]
    assert entries[0].state is FaultState.REVERTED
    gameday = json.loads((tmp_path / "head-of-line-pulls-run/gameday.json").read_text())
    assert all(f["measured"] for f in gameday["fault_evidence"]), gameday["fault_evidence"]


def test_down_leaves_nothing_of_either_node(kube_cluster: KubeCluster) -> None:
    layout = kube_cluster.layout
    remaining = down(kube_cluster.state_dir, progress=lambda line: print(f"cluster: {line}"))
    assert not any(remaining.values()), remaining
    assert not any(leftovers(layout, strays(layout)).values())
    for link in (*layout.instance.bridges, layout.instance.node_interface):
        assert not Path("/sys/class/net", link).exists(), link
