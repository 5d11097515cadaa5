"""The single-node test cluster, for real: built binaries, containerd, kubelet, the sandbox.

One cluster (with its own sandbox) serves the whole module; the last test brings it down and
checks the host is as it was. Select with ``-m cluster``; skipped (with the reason) only when
the host lacks root or the Debian packages the cluster runs.
"""

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.authentication_v1 import SelfSubjectReview
from lightkube.resources.core_v1 import Namespace, Node, Pod, ServiceAccountToken
from support.cluster import build_failure, cluster_instance, skip_reason
from support.polling import eventually
from support.ports import free_base_port

from chaosregistry.cluster import admin_client, down, up
from chaosregistry.cluster.build import BuildError
from chaosregistry.cluster.cli import cluster_group
from chaosregistry.cluster.host import (
    HOST_STATE,
    KUBELET_HOST_PATHS,
    SYSCTLS,
    all_veths,
    iptables_rules_of_ours,
    leftovers,
    link_exists,
    other_instances_up,
)
from chaosregistry.cluster.images import (
    DEMO_REPOSITORY,
    DEMO_TAG,
    MISSING_TAG,
    image_name,
)
from chaosregistry.cluster.layout import (
    CHAOS_LABEL,
    DEMO_NAMESPACE,
    NODE_NAME,
    PORT_SPAN,
    REGISTRY_HOST,
    Instance,
    Layout,
)
from chaosregistry.cluster.processes import strays
from chaosregistry.cluster.readiness import deployment_condition, deployment_not_available
from chaosregistry.cluster.versions import KUBERNETES_VERSION
from chaosregistry.cluster.workloads import DEMO_LABELS, DEMO_NAME, DEMO_REPLICAS
from chaosregistry.kubernetes import client as kube
from chaosregistry.sandbox.toxiproxy import Toxiproxy

CHAOS_MESH = ("chaos-mesh.org", "v1alpha1")


@dataclass
class RunningCluster:
    state_dir: Path
    settings: dict[str, Any]
    client: Client
    up_seconds: float
    host_before: dict[str, Any]
    # Other instances' clusters up when this one came up: they change the machine's own.
    others_before: list[Instance]

    @property
    def endpoints(self) -> dict[str, Any]:
        endpoints: dict[str, Any] = self.settings["sandbox_endpoints"]
        return endpoints


def _host_snapshot(instance: Instance) -> dict[str, Any]:
    return {
        "veths": all_veths(),
        "iptables": iptables_rules_of_ours(instance),
        "kubelet_paths": [str(p) for p in KUBELET_HOST_PATHS if p.exists()],
        "sysctls": {key: Path("/proc/sys", key).read_text() for key in SYSCTLS},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    """A running cluster with its own sandbox in a temp state dir; always brought down."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    state_dir = tmp_path_factory.mktemp("cluster")
    with cluster_instance() as number:
        instance = Instance(number)
        before, others = _host_snapshot(instance), other_instances_up(instance)
        started = time.monotonic()
        try:
            try:
                settings = up(
                    state_dir,
                    base_port=free_base_port(PORT_SPAN, part=0, parts=2),
                    sandbox_base_port=free_base_port(part=1, parts=2),
                    instance=number,
                    progress=lambda line: print(f"cluster: {line}", flush=True),
                )
            except BuildError as exc:
                pytest.fail(build_failure(exc))
            elapsed = time.monotonic() - started
            print(f"cluster up took {elapsed:.1f} s")
            client = admin_client(state_dir)
            yield RunningCluster(state_dir, settings, client, elapsed, before, others)
        finally:
            down(state_dir, progress=lambda line: print(f"cluster: {line}", flush=True))


def demo_pods(client: Client) -> list[Pod]:
    labels: dict[str, Any] = dict(DEMO_LABELS)
    return list(client.list(Pod, namespace=DEMO_NAMESPACE, labels=labels))


def waiting_reasons(pod: Pod) -> set[str]:
    statuses = (pod.status.containerStatuses if pod.status else None) or []
    return {
        s.state.waiting.reason
        for s in statuses
        if s.state and s.state.waiting and s.state.waiting.reason
    }


def set_demo_image(client: Client, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    client.patch(Deployment, DEMO_NAME, patch, namespace=DEMO_NAMESPACE)


def manifest_requests(cluster: RunningCluster, repository: str) -> int:
    """GETs/HEADs of ``repository``'s manifests in the sandbox's nginx access log."""
    log = Path(cluster.endpoints["logs_dir"]) / "nginx-access.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return sum(1 for line in lines if f"/v2/{repository}/manifests/" in line)


def test_node_registers_and_becomes_ready(cluster: RunningCluster) -> None:
    node = cluster.client.get(Node, NODE_NAME)
    assert node.status is not None and node.status.nodeInfo is not None
    assert node.status.nodeInfo.kubeletVersion == KUBERNETES_VERSION
    assert node.status.nodeInfo.containerRuntimeVersion.startswith("containerd://")
    ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
    assert ready and ready[0].status == "True", ready


def test_demo_namespace_is_opted_in_to_chaos(cluster: RunningCluster) -> None:
    namespace = cluster.client.get(Namespace, DEMO_NAMESPACE)
    key, value = CHAOS_LABEL
    assert namespace.metadata is not None and namespace.metadata.labels is not None
    assert namespace.metadata.labels.get(key) == value


def test_demo_deployment_is_available_with_images_from_the_sandbox(
    cluster: RunningCluster,
) -> None:
    assert deployment_not_available(cluster.client, DEMO_NAMESPACE, DEMO_NAME) is None
    deployment = cluster.client.get(Deployment, DEMO_NAME, namespace=DEMO_NAMESPACE)
    assert deployment.spec is not None
    assert deployment.spec.progressDeadlineSeconds == 30
    assert deployment.spec.revisionHistoryLimit is not None
    pods = [p for p in demo_pods(cluster.client) if p.status and p.status.phase == "Running"]
    assert len(pods) == DEMO_REPLICAS
    for pod in pods:
        assert pod.status is not None
        (status,) = pod.status.containerStatuses or []
        assert status.image == image_name(DEMO_REPOSITORY, DEMO_TAG)
        # The digest containerd resolved is the manifest we pushed to the sandbox.
        assert status.imageID.startswith(f"{REGISTRY_HOST}/{DEMO_REPOSITORY}@sha256:")
    # Each pod start pulled (imagePullPolicy Always): the registry saw the manifest requests.
    assert manifest_requests(cluster, DEMO_REPOSITORY) >= DEMO_REPLICAS


def test_pulls_go_through_the_toxiproxy_hop(cluster: RunningCluster) -> None:
    """With the client-registry hop disabled a pull fails; enabled again, the same pod starts."""
    name = f"hop-check-{uuid.uuid4().hex[:6]}"
    pod = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": DEMO_NAMESPACE},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "app",
                        "image": image_name(DEMO_REPOSITORY, DEMO_TAG),
                        "imagePullPolicy": "Always",
                    }
                ],
            },
        }
    )
    before = manifest_requests(cluster, DEMO_REPOSITORY)
    with Toxiproxy(cluster.endpoints["toxiproxy"]) as toxiproxy:
        toxiproxy.set_enabled("client-registry", False)
        try:
            cluster.client.create(pod)

            def pull_failed() -> bool:
                current = cluster.client.get(Pod, name, namespace=DEMO_NAMESPACE)
                return bool(waiting_reasons(current) & {"ErrImagePull", "ImagePullBackOff"})

            eventually(
                "ErrImagePull while the hop is disabled", pull_failed, timeout=60, interval=1.0
            )
            assert manifest_requests(cluster, DEMO_REPOSITORY) == before
        finally:
            toxiproxy.set_enabled("client-registry", True)
    try:

        def running() -> bool:
            current = cluster.client.get(Pod, name, namespace=DEMO_NAMESPACE)
            return bool(current.status and current.status.phase == "Running")

        # The kubelet retries after its image pull back-off (10 s, then 20 s).
        eventually("pod running once the hop is back", running, timeout=90, interval=1.0)
        assert manifest_requests(cluster, DEMO_REPOSITORY) > before
    finally:
        cluster.client.delete(Pod, name, namespace=DEMO_NAMESPACE, grace_period=0)


def test_bad_tag_rollout_shows_pull_errors_and_exceeds_its_deadline(
    cluster: RunningCluster,
) -> None:
    client = cluster.client
    set_demo_image(client, image_name(DEMO_REPOSITORY, MISSING_TAG))
    try:

        def new_pod_cannot_pull() -> list[str]:
            return [
                p.metadata.name
                for p in demo_pods(client)
                if p.metadata
                and p.metadata.name
                and waiting_reasons(p) & {"ErrImagePull", "ImagePullBackOff"}
            ]

        stuck = eventually(
            "a new pod in ErrImagePull/ImagePullBackOff",
            new_pod_cannot_pull,
            timeout=60,
            interval=1.0,
        )
        assert stuck

        def deadline_exceeded() -> bool:
            deployment = client.get(Deployment, DEMO_NAME, namespace=DEMO_NAMESPACE)
            progressing = deployment_condition(deployment, "Progressing")
            return bool(progressing and progressing.reason == "ProgressDeadlineExceeded")

        eventually("ProgressDeadlineExceeded", deadline_exceeded, timeout=90, interval=1.0)
        # maxUnavailable 0: the old pods keep serving while the rollout is stuck.
        deployment = client.get(Deployment, DEMO_NAME, namespace=DEMO_NAMESPACE)
        assert deployment.status is not None
        assert deployment.status.availableReplicas == DEMO_REPLICAS
    finally:
        set_demo_image(client, image_name(DEMO_REPOSITORY, DEMO_TAG))
    eventually(
        "the demo Available again after undoing the bad tag",
        lambda: deployment_not_available(client, DEMO_NAMESPACE, DEMO_NAME) is None,
        timeout=120,
        interval=1.0,
    )


def _chaos_object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "/".join(CHAOS_MESH),
        "kind": kind,
        "metadata": {"name": name, "namespace": DEMO_NAMESPACE},
        "spec": spec,
    }


def test_chaos_mesh_crds_accept_valid_objects_and_reject_invalid_ones(
    cluster: RunningCluster,
) -> None:
    network_chaos = kube.custom_resource(*CHAOS_MESH, "NetworkChaos", "networkchaos")
    pod_chaos = kube.custom_resource(*CHAOS_MESH, "PodChaos", "podchaos")
    selector = {"namespaces": [DEMO_NAMESPACE], "labelSelectors": DEMO_LABELS}
    suffix = uuid.uuid4().hex[:6]
    delay = _chaos_object(
        "NetworkChaos",
        f"delay-{suffix}",
        {
            "action": "delay",
            "mode": "all",
            "selector": selector,
            "delay": {"latency": "300ms", "jitter": "10ms"},
            "duration": "30s",
        },
    )
    kill = _chaos_object(
        "PodChaos", f"kill-{suffix}", {"action": "pod-kill", "mode": "one", "selector": selector}
    )
    created = [
        cluster.client.create(network_chaos.from_dict(delay)),
        cluster.client.create(pod_chaos.from_dict(kill)),
    ]
    try:
        for obj in created:
            assert obj.metadata.uid
        stored = cluster.client.get(network_chaos, f"delay-{suffix}", namespace=DEMO_NAMESPACE)
        assert stored["spec"]["delay"]["latency"] == "300ms"

        invalid = _chaos_object(
            "NetworkChaos",
            f"bad-{suffix}",
            {"action": "teleport", "mode": "all", "selector": selector},
        )
        with pytest.raises(kube.KubeError) as rejected, kube.translated():
            cluster.client.create(network_chaos.from_dict(invalid))
        assert rejected.value.status == 422
        assert "spec.action" in str(rejected.value)
    finally:
        cluster.client.delete(network_chaos, f"delay-{suffix}", namespace=DEMO_NAMESPACE)
        cluster.client.delete(pod_chaos, f"kill-{suffix}", namespace=DEMO_NAMESPACE)


def test_service_account_tokens_authenticate(cluster: RunningCluster) -> None:
    request = ServiceAccountToken(
        metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=600)
    )
    issued = cluster.client.create(request, "default", namespace=DEMO_NAMESPACE)
    assert issued.status is not None and issued.status.token
    as_sa = kube.client_with_token(
        Layout.at(cluster.state_dir).kubeconfig, issued.status.token, timeout=10
    )
    review = as_sa.create(SelfSubjectReview())
    assert review.status is not None and review.status.userInfo is not None
    assert review.status.userInfo.username == f"system:serviceaccount:{DEMO_NAMESPACE}:default"
    # RBAC applies to it: a fresh service account may not list pods.
    with pytest.raises(kube.KubeError) as denied, kube.translated():
        list(as_sa.list(Pod, namespace=DEMO_NAMESPACE))
    assert denied.value.status == 403
    forged = kube.client_with_token(
        Layout.at(cluster.state_dir).kubeconfig, "not-a-token", timeout=10
    )
    with pytest.raises(kube.KubeError) as unauthenticated, kube.translated():
        forged.create(SelfSubjectReview())
    assert unauthenticated.value.status == 401


def test_second_up_keeps_every_process_and_is_quick(cluster: RunningCluster) -> None:
    result = CliRunner().invoke(
        cluster_group, ["status", "--state-dir", str(cluster.state_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    before = json.loads(result.output)["processes"]
    started = time.monotonic()
    up(
        cluster.state_dir,
        base_port=cluster.settings["base_port"],
        sandbox_base_port=cluster.settings["sandbox_base_port"],
        instance=cluster.settings["instance"],
        progress=lambda line: print(f"cluster: {line}"),
    )
    elapsed = time.monotonic() - started
    after = CliRunner().invoke(
        cluster_group, ["status", "--state-dir", str(cluster.state_dir), "--json"]
    )
    status = json.loads(after.output)
    assert status["processes"] == before
    assert status["node_ready"] is True and status["demo_available"] is True
    assert elapsed < 60, f"a second up on a running cluster took {elapsed:.0f} s"


def test_down_leaves_nothing_of_ours_on_the_host(cluster: RunningCluster) -> None:
    layout = Layout.at(cluster.state_dir, cluster.settings["instance"])
    instance = layout.instance
    assert strays(layout), "the cluster's processes should be running before down"
    remaining = down(cluster.state_dir, progress=lambda line: print(f"cluster: {line}"))
    assert not any(remaining.values()), remaining
    # Checked again independently of what down reported.
    assert not any(leftovers(layout, strays(layout)).values())
    assert not [link for link in (*instance.bridges, instance.node_interface) if link_exists(link)]
    others = other_instances_up(instance)
    if others:
        # The machine's sysctls and kubelet paths stay as a running cluster's kubelet set them:
        # the last cluster down puts them back.
        assert HOST_STATE.exists(), others
    else:
        assert not HOST_STATE.exists()
        if not cluster.others_before:
            # The host is as it was: links, rules, sysctls and the paths the kubelet makes.
            assert _host_snapshot(instance) == cluster.host_before
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(cluster.state_dir) not in mounts
    sandbox_processes = subprocess.run(
        ["pgrep", "-f", str(cluster.state_dir)], capture_output=True, text=True, check=False
    )
    assert sandbox_processes.stdout.strip() == ""
    status = CliRunner().invoke(cluster_group, ["status", "--state-dir", str(cluster.state_dir)])
    assert status.exit_code == 3
