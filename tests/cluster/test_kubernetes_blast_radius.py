"""The blast radius on the real test cluster: workloads of several kinds and classes in a
namespace of their own (uniquely named, deleted afterwards), predicted by
``chaosregistry blast-radius`` (table and JSON) and by the probe, from the same API.

The cluster has one node, so "degraded" (cached on some nodes, not all) cannot occur here; the
unit tests cover it. The table is printed (run with ``-s`` to see it).
"""

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import Namespace, Node, Pod
from support.cluster import KubeCluster
from support.polling import eventually

from chaosregistry.cluster.images import DEMO_REPOSITORY, DEMO_TAG, MISSING_TAG, image_name
from chaosregistry.cluster.layout import REGISTRY_HOST
from chaosregistry.probes.blast_radius import blast_radius

pytest_plugins = ["support.cluster"]

BIN = Path(sys.executable).parent
CACHED = image_name(DEMO_REPOSITORY, DEMO_TAG)  # the demo Deployment keeps it on the node
NEVER_PULLED = image_name("tiny/hello", "tiny-dev-0.0.1")  # in the sandbox, on no node
MISSING = image_name(DEMO_REPOSITORY, MISSING_TAG)  # not in the registry


def pod_spec(image: str, policy: str | None, *, init: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if policy:
        container["imagePullPolicy"] = policy
    spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
    }
    if init:
        spec["initContainers"] = [
            {"name": "warm-up", "image": init, "imagePullPolicy": "Always", "command": ["true"]}
        ]
    return spec


def template(name: str, image: str, policy: str | None, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": name}}, "spec": pod_spec(image, policy, **extra)}


def deployment(name: str, namespace: str, image: str, policy: str, replicas: int = 1) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, image, policy),
        },
    }


@pytest.fixture
def workloads(kube_cluster: KubeCluster) -> Iterator[str]:
    """A namespace holding a workload of each case; its name. Deleted afterwards."""
    namespace = f"blast-{uuid.uuid4().hex[:6]}"
    client = kube_cluster.client
    client.create(
        from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    )
    objects = [
        deployment("cached", namespace, CACHED, "IfNotPresent"),
        deployment("always", namespace, CACHED, "Always"),
        deployment("cold", namespace, NEVER_PULLED, "IfNotPresent", replicas=0),
        deployment("missing", namespace, MISSING, "IfNotPresent"),
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": template("agent", CACHED, "IfNotPresent"),
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": namespace},
            "spec": {
                "schedule": "0 3 * * *",
                "suspend": True,
                "jobTemplate": {
                    "spec": {
                        "template": {"spec": {**pod_spec(CACHED, None), "restartPolicy": "Never"}}
                    }
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "debug", "namespace": namespace, "labels": {"app": "debug"}},
            "spec": pod_spec(CACHED, "IfNotPresent", init=CACHED),
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "cached", "namespace": namespace},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cached"},
                "minReplicas": 1,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "cached", "namespace": namespace},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "cached"}}},
        },
    ]
    try:
        for obj in objects:
            client.create(from_dict(obj))
        yield namespace
    finally:
        client.delete(Namespace, namespace)


def pods_settled(kube_cluster: KubeCluster, namespace: str) -> bool:
    """cached, always, agent and debug Running; missing's pod waiting on its pull error."""
    pods = list(kube_cluster.client.list(Pod, namespace=namespace))
    running = {
        (p.metadata.labels or {}).get("app")
        for p in pods
        if p.metadata and p.status and p.status.phase == "Running"
    }
    waiting = {
        (p.metadata.labels or {}).get("app")
        for p in pods
        if p.metadata and p.status
        for s in p.status.containerStatuses or ()
        if s.state
        and s.state.waiting
        and s.state.waiting.reason in ("ErrImagePull", "ImagePullBackOff")
    }
    return {"cached", "always", "agent", "debug"} <= running and "missing" in waiting


def node_lists(kube_cluster: KubeCluster, image: str) -> bool:
    """The node's status names ``image`` (the kubelet refreshes its image list every 30 s)."""
    return any(
        image in (found.names or ())
        for node in kube_cluster.client.list(Node)
        for found in ((node.status.images if node.status else None) or ())
    )


def command(kube_cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "chaosregistry"), "blast-radius", "--vars", str(kube_cluster.vars_file), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def classes(result: dict[str, Any], namespace: str) -> dict[str, tuple[str, str]]:
    return {
        f"{w['kind']}/{w['name']}": (w["class"], w["reason"])
        for w in result["workloads"]
        if w["namespace"] == namespace
    }


def test_blast_radius_classes_each_workload_from_the_clusters_api(
    kube_cluster: KubeCluster, workloads: str
) -> None:
    eventually(
        "the scratch workloads started (and missing's pull failed)",
        lambda: pods_settled(kube_cluster, workloads),
        timeout=120,
    )
    eventually(
        f"the node lists {CACHED} in its status",
        lambda: node_lists(kube_cluster, CACHED),
        timeout=90,
    )
    shown = command(kube_cluster, "--registry", REGISTRY_HOST, "--outage", "10m")
    assert shown.returncode == 0, shown.stderr
    print(f"\nchaosregistry blast-radius --registry {REGISTRY_HOST} --outage 10m:\n{shown.stdout}")

    as_json = command(kube_cluster, "--registry", REGISTRY_HOST, "--namespace", workloads, "--json")
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    found = classes(result, workloads)
    assert {name: klass for name, (klass, _) in found.items()} == {
        "Deployment/cached": "keeps-running",
        "Deployment/always": "breaks",
        "Deployment/cold": "breaks",
        "Deployment/missing": "breaks",
        "DaemonSet/agent": "keeps-running",
        "CronJob/nightly": "keeps-running",
        "Pod/debug": "breaks",
    }
    assert "pullPolicy Always (written)" in found["Deployment/always"][1]
    assert "image on no node" in found["Deployment/cold"][1]
    assert "cannot be pulled even now (ErrImagePull" in found["Deployment/missing"][1] or (
        "cannot be pulled even now (ImagePullBackOff" in found["Deployment/missing"][1]
    )
    assert found["Pod/debug"][1].startswith("warm-up: pullPolicy Always")
    assert "suspended" in found["CronJob/nightly"][1]
    cached = next(w for w in result["workloads"] if w["name"] == "cached")
    assert cached["hpa"]["max_replicas"] == 3
    assert [p["name"] for p in cached["pdbs"]] == ["cached"]
    (container,) = cached["containers"]
    assert container["host"] == REGISTRY_HOST and container["pinned"] == "tag"
    assert container["nodes_with_image"] and container["on_every_node"]
    # The CronJob's policy was not written: the API server defaulted it, and says so.
    nightly = next(w for w in result["workloads"] if w["name"] == "nightly")
    assert nightly["containers"][0]["pull_policy"] == "IfNotPresent"

    # The probe reads the same objects to the same prediction.
    probed = blast_radius(
        registry=REGISTRY_HOST,
        namespace=workloads,
        configuration=kube_cluster.vars_configuration(),
    )
    # (missing's reason follows its pod from ErrImagePull to ImagePullBackOff: classes only)
    assert {n: k for n, (k, _) in classes(probed, workloads).items()} == {
        n: k for n, (k, _) in found.items()
    }

    # Another registry's outage leaves every one running except the image not in the registry.
    elsewhere = json.loads(
        command(kube_cluster, "--registry", "quay.io", "--namespace", workloads, "--json").stdout
    )
    assert {n for n, (k, _) in classes(elsewhere, workloads).items() if k != "keeps-running"} == {
        "Deployment/missing"
    }
