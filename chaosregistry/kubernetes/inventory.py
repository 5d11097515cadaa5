"""The cluster's workloads, nodes, autoscalers and disruption budgets, listed for the blast
radius (``kubernetes/blast_radius.py``, which reads them without I/O).

One list call per kind across every namespace, paged (``limit`` and ``continue``,
:data:`PAGE_SIZE` objects a page): never a call per pod, so a cluster of thousands of pods costs
a handful of requests. Read-only.
"""

import operator
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from lightkube import Client
from lightkube.resources.apps_v1 import DaemonSet, Deployment, ReplicaSet, StatefulSet
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.batch_v1 import CronJob, Job
from lightkube.resources.core_v1 import Node, Pod
from lightkube.resources.policy_v1 import PodDisruptionBudget

from chaosregistry.kubernetes import client as kube
from chaosregistry.kubernetes.blast_radius import (
    Inventory,
    Outage,
    analyze,
    is_schedulable,
    registry_host,
)

if TYPE_CHECKING:
    from chaosregistry.experiment.settings import KubernetesSettings

__all__ = [
    "PAGE_SIZE",
    "list_inventory",
    "list_reported_inventory",
    "outage_for",
    "predict",
    "silent_nodes",
    "wait_for_image_reports",
]

PAGE_SIZE = 500

# Inventory field -> the kind listed into it.
KINDS: Mapping[str, Any] = {
    "nodes": Node,
    "pods": Pod,
    "replica_sets": ReplicaSet,
    "deployments": Deployment,
    "stateful_sets": StatefulSet,
    "daemon_sets": DaemonSet,
    "jobs": Job,
    "cron_jobs": CronJob,
    "autoscalers": HorizontalPodAutoscaler,
    "disruption_budgets": PodDisruptionBudget,
}


def _listed(client: Client, kind: Any, namespace: str) -> list[dict[str, Any]]:
    if kind is Node:
        found: Iterable[Any] = client.list(kind, chunk_size=PAGE_SIZE)
    else:
        found = client.list(kind, namespace=namespace or "*", chunk_size=PAGE_SIZE)
    # The analysis reads the objects as the API writes them (camelCase JSON), as recorded.
    as_json: Callable[[Any], dict[str, Any]] = operator.methodcaller("to_dict")
    return [as_json(item) for item in found]


def list_inventory(client: Client, *, namespace: str = "") -> Inventory:
    """Every kind the blast radius reads, in ``namespace`` ("" : all), nodes cluster-wide.
    Raises ``KubeError`` (one line) when a list call fails."""
    with kube.translated():
        return Inventory(**{name: _listed(client, kind, namespace) for name, kind in KINDS.items()})


# A kubelet lists its node's images in the node's status only once its image cache is filled:
# on the test cluster every node listed none for 30-40 s after `cluster up` returned, and a
# prediction then read "no image cached on any node" (Deployments on the pause image, which every
# node holds, predicted to break). A node that has run a pod lists its pause image at least, so a
# schedulable node listing nothing has not reported yet: wait for it, bounded, and after that
# predict with what there is (a node may really hold no image).
IMAGE_REPORT_WAIT = 60.0
IMAGE_REPORT_POLL = 2.0


def silent_nodes(inventory: Inventory) -> list[str]:
    """The schedulable nodes whose status lists no image (their kubelet has not reported)."""
    return [
        str((node.get("metadata") or {}).get("name"))
        for node in inventory.nodes
        if is_schedulable(node) and not (node.get("status") or {}).get("images")
    ]


def list_reported_inventory(client: Client, *, namespace: str = "") -> Inventory:
    """``list_inventory`` once every schedulable node has reported its images (see
    ``wait_for_image_reports``)."""
    return wait_for_image_reports(lambda: list_inventory(client, namespace=namespace))


def wait_for_image_reports(
    listing: Callable[[], Inventory],
    *,
    wait: float = IMAGE_REPORT_WAIT,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Inventory:
    """``listing()`` once no schedulable node is silent (``silent_nodes``), listed again every
    IMAGE_REPORT_POLL seconds for up to ``wait``; then the last list as it is."""
    deadline = clock() + wait
    inventory = listing()
    while silent_nodes(inventory) and clock() < deadline:
        sleep(IMAGE_REPORT_POLL)
        inventory = listing()
    return inventory


def outage_for(settings: "KubernetesSettings", registry: str, seconds: float) -> Outage:
    """``registry`` ("": every registry) cut for ``seconds``, with the mirrors ``settings``
    configure (``registry_mirrors``)."""
    return Outage(
        hosts=frozenset({registry_host(registry)}) if registry else None,
        seconds=seconds,
        mirrors={
            registry_host(host): tuple(mirrors)
            for host, mirrors in settings.registry_mirrors.items()
        },
    )


def predict(
    settings: "KubernetesSettings",
    *,
    registry: str = "",
    outage_seconds: float = 600.0,
    namespace: str = "",
) -> dict[str, Any]:
    """The blast radius of cutting ``registry`` ("": every registry) for ``outage_seconds``,
    on the cluster ``settings`` name, with its configured ``registry_mirrors``: the result of
    ``blast_radius.analyze`` plus ``list_seconds`` and ``analysis_seconds``."""
    started = time.perf_counter()
    inventory = list_reported_inventory(settings.client(), namespace=namespace)
    listed = time.perf_counter()
    result = analyze(inventory, outage_for(settings, registry, outage_seconds))
    result["list_seconds"] = round(listed - started, 3)
    result["analysis_seconds"] = round(time.perf_counter() - listed, 3)
    return result
