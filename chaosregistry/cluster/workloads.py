"""The objects ``cluster up`` keeps in the cluster: the opted-in namespaces, the demo and the
in-cluster registry, all on the first node; with a second node, the ``cold-start``
Deployment at zero replicas, pinned to that node (whose image store holds only the pause image
until something is scheduled there), and on each node a pair of one-pod Deployments on the
pause image, ``head-of-line-slow-N`` and ``head-of-line-other-N`` (the head-of-line-pulls
drill releases a large image to the first and times the second's pull behind it).

Built as plain dicts with the API's own field names, applied server-side (idempotent: a
second ``up`` puts back anything an experiment left changed, such as the demo's image).
"""

from typing import Any

from lightkube import Client
from lightkube.codecs import from_dict

from chaosregistry.cluster.images import (
    DEMO_REPOSITORY,
    DEMO_TAG,
    PAUSE_REPOSITORY,
    PAUSE_TAG,
    image_name,
)
from chaosregistry.cluster.layout import (
    CHAOS_LABEL,
    DEMO_NAMESPACE,
    NODE_NAME,
    REGISTRY_NAMESPACE,
)
from chaosregistry.kubernetes.client import translated


def app_labels(name: str) -> dict[str, str]:
    """The labels of the test bed's workload ``name`` (and its pods' selector)."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "chaosregistry"}


DEMO_NAME = "demo"
DEMO_REPLICAS = 3
# Short so a bad rollout is declared failed quickly (tests wait for it).
DEMO_PROGRESS_DEADLINE_SECONDS = 30
DEMO_REVISION_HISTORY_LIMIT = 3
DEMO_LABELS = app_labels(DEMO_NAME)
HOSTNAME_LABEL = "kubernetes.io/hostname"
# The test bed's own workloads stay on the first node, so a second node stays cold.
FIRST_NODE = {HOSTNAME_LABEL: NODE_NAME}
COLD_START_NAME = "cold-start"


def chaos_namespace(name: str = DEMO_NAMESPACE) -> dict[str, Any]:
    key, value = CHAOS_LABEL
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {key: value}},
    }


def pinned_deployment(
    name: str,
    *,
    node_name: str,
    image: str,
    pull_policy: str,
    replicas: int,
    grace_seconds: int,
    cpu: str,
    memory: str,
    memory_limit: str,
) -> dict[str, Any]:
    """Deployment ``name`` in the demo namespace: one container ``app`` running ``image``, its
    pods pinned to ``node_name``. Every Deployment of the test bed is one of these."""
    labels = app_labels(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": DEMO_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": grace_seconds,
                    # No cluster DNS here: say so instead of a MissingClusterDNS event per pod.
                    "dnsPolicy": "Default",
                    "nodeSelector": {HOSTNAME_LABEL: node_name},
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "imagePullPolicy": pull_policy,
                            "resources": {
                                "requests": {"cpu": cpu, "memory": memory},
                                "limits": {"memory": memory_limit},
                            },
                        }
                    ],
                },
            },
        },
    }


def demo_deployment(image: str | None = None) -> dict[str, Any]:
    """Deployment ``demo``: busybox from the sandbox, pulled on every pod start (Always)."""
    deployment = pinned_deployment(
        DEMO_NAME,
        node_name=NODE_NAME,
        image=image or image_name(DEMO_REPOSITORY, DEMO_TAG),
        pull_policy="Always",
        replicas=DEMO_REPLICAS,
        grace_seconds=5,
        cpu="10m",
        memory="16Mi",
        memory_limit="64Mi",
    )
    deployment["spec"] |= {
        "revisionHistoryLimit": DEMO_REVISION_HISTORY_LIMIT,
        "progressDeadlineSeconds": DEMO_PROGRESS_DEADLINE_SECONDS,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
    }
    return deployment


def cold_start_deployment(node_name: str) -> dict[str, Any]:
    """Deployment ``cold-start``: the demo's image, ``IfNotPresent``, zero replicas, pinned to
    ``node_name``. Scaling it up puts pods on a node that has never pulled the image (the
    registry-outage-recovery experiment does, with the registry cut)."""
    return pinned_deployment(
        COLD_START_NAME,
        node_name=node_name,
        image=image_name(DEMO_REPOSITORY, DEMO_TAG),
        pull_policy="IfNotPresent",
        replicas=0,
        grace_seconds=1,
        cpu="10m",
        memory="16Mi",
        memory_limit="64Mi",
    )


HEAD_OF_LINE_ROLES = ("slow", "other")


def head_of_line_name(role: str, number: int) -> str:
    """``head-of-line-<role>-<node number>``: the drill's Deployment of that role on that node."""
    return f"head-of-line-{role}-{number}"


def head_of_line_deployments(node_names: list[str]) -> list[dict[str, Any]]:
    """One pod each of ``head-of-line-slow-N`` and ``head-of-line-other-N`` pinned to node N.

    On the pause image, which every node holds already (its pod sandboxes run it), so they start
    without a pull and leave a cold node cold; ``IfNotPresent``, as most workloads pull. A
    release to ``slow`` of a large new image then occupies the node's puller while a release to
    ``other`` (only a new manifest to fetch) shows how long an unrelated pull waits behind it.
    The pause image's sleep ignores SIGTERM as pid 1: a 1 s grace period."""
    return [
        pinned_deployment(
            head_of_line_name(role, number),
            node_name=node_name,
            image=image_name(PAUSE_REPOSITORY, PAUSE_TAG),
            pull_policy="IfNotPresent",
            replicas=1,
            grace_seconds=1,
            cpu="5m",
            memory="8Mi",
            memory_limit="32Mi",
        )
        for number, node_name in enumerate(node_names, start=1)
        for role in HEAD_OF_LINE_ROLES
    ]


REGISTRY_NAME = "registry"
REGISTRY_REPLICAS = 2
REGISTRY_LABELS = app_labels(REGISTRY_NAME)
REGISTRY_STORAGE_MOUNT = "/var/lib/registry"


def registry_statefulset(image: str, storage: str, base_port: int) -> dict[str, Any]:
    """StatefulSet ``registry``: two Distribution replicas serving the sandbox's storage.

    Host network, each on ``base_port + ordinal`` on loopback: there is no kube-proxy here, so
    the load balancer in front of them (``registry-lb``, an nginx process of the cluster) names
    the replicas by port, and a killed replica comes back under the same name on the same port
    (a StatefulSet's pods keep their names). Readiness is checked from inside the pod.
    """
    port = "$((REGISTRY_BASE_PORT + REGISTRY_ORDINAL))"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": REGISTRY_NAME,
            "namespace": REGISTRY_NAMESPACE,
            "labels": REGISTRY_LABELS,
        },
        "spec": {
            "replicas": REGISTRY_REPLICAS,
            "serviceName": REGISTRY_NAME,
            # Replace a killed pod at once, whatever the state of the other.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": REGISTRY_LABELS},
            "template": {
                "metadata": {"labels": REGISTRY_LABELS},
                "spec": {
                    "hostNetwork": True,
                    "dnsPolicy": "Default",
                    "nodeSelector": FIRST_NODE,
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "registry",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "env": [
                                {"name": "REGISTRY_BASE_PORT", "value": str(base_port)},
                                {
                                    "name": "REGISTRY_ORDINAL",
                                    "valueFrom": {
                                        "fieldRef": {
                                            "fieldPath": "metadata.labels"
                                            "['apps.kubernetes.io/pod-index']"
                                        }
                                    },
                                },
                            ],
                            "readinessProbe": {
                                "exec": {
                                    "command": [
                                        "/bin/sh",
                                        "-c",
                                        f"wget -q -O /dev/null http://127.0.0.1:{port}/v2/",
                                    ]
                                },
                                "periodSeconds": 1,
                                "timeoutSeconds": 2,
                                "failureThreshold": 2,
                            },
                            "volumeMounts": [
                                {"name": "storage", "mountPath": REGISTRY_STORAGE_MOUNT}
                            ],
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "32Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                        }
                    ],
                    "volumes": [
                        {"name": "storage", "hostPath": {"path": storage, "type": "Directory"}}
                    ],
                },
            },
        },
    }


def apply_objects(kube: Client, documents: list[dict[str, Any]]) -> None:
    with translated():
        for document in documents:
            kube.apply(from_dict(document), force=True)
