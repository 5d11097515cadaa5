"""The blast radius of a registry outage (kubernetes backend): which workloads keep running,
which are degraded, which break, predicted from the cluster's API objects.

Read-only. The cluster comes from the kubernetes backend's configuration (``kubeconfig``,
``kube_context``, ``registry_mirrors``; see ``chaosregistry.backends.kubernetes``). The same
result as ``chaosregistry blast-radius --json``.
"""

from typing import Annotated

from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import KUBE_NAME, ResultKind, Returns, Seconds
from chaosregistry.experiment.settings import settings_for
from chaosregistry.kubernetes.inventory import predict

__all__ = ["blast_radius"]


@activity
def blast_radius(
    registry: str = "",
    outage: Seconds = 600,
    namespace: Annotated[str, KUBE_NAME] = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "workloads classes keeps_running degraded breaks outage nodes schedulable_nodes pods",
        "capped_nodes notes list_seconds analysis_seconds",
        kind=ResultKind.BLAST_RADIUS,
    ),
]:
    """Predict what cutting a registry off the nodes would do to every workload of the cluster.

    Lists, once per kind and paged, the nodes, pods, ReplicaSets, Deployments, StatefulSets,
    DaemonSets, Jobs, CronJobs, HorizontalPodAutoscalers and PodDisruptionBudgets, and classes
    each workload (a controller, or a bare pod) by its containers' and init containers' images:
    ``breaks`` when a pod of it already waits on a pull error (the image is not pullable even
    now), or its image's registry is cut and it pulls ``Always`` (written, or defaulted for
    ``:latest`` and no tag), or the image is on no node; ``degraded`` when the image is on some
    schedulable nodes (neither cordoned nor NotReady) but not all (it cannot scale up or move
    to the others); ``keeps-running`` when its registry (or a configured mirror of it) is not
    cut, it pulls ``Never``, or it pulls ``IfNotPresent`` and every schedulable node holds the
    image. A node's image list (``node.status.images``) is capped by the kubelet at 50: nodes
    listing exactly 50 are named in ``capped_nodes``, and an image missing only from them is
    ``uncertain``. Scheduling constraints (affinity, taints) are not read.

    Arguments:
      registry: the registry host cut off (``docker.io``, ``registry.example:5000``; a URL's
        host is taken); empty: every registry, mirrors included.
      outage: how long the outage lasts, in seconds (gives the kubelet's back-off reached by
        its end, ``outage.backoff_after_heal_seconds``).
      namespace: only this namespace's workloads (default: every namespace).

    Returns a mapping: ``workloads`` [{kind, namespace, name, class, reason, replicas, pods,
    nodes, hpa {name, min_replicas, max_replicas, current_replicas} or null, pdbs [{name,
    min_available, max_unavailable, disruptions_allowed}], containers [{name, init, image,
    host, repository, tag, digest, pinned (digest or tag), pull_policy, pull_policy_source
    (written or defaulted), sources (hosts pulled from, mirrors first), cut, nodes_with_image,
    on_every_node, uncertain, class, reason}]}] (breaks first), ``classes`` {class:
    workloads}, ``keeps_running``, ``degraded``, ``breaks`` (counts), ``outage``
    {registries (null: every one), seconds, backoff_after_heal_seconds}, ``nodes``,
    ``schedulable_nodes``, ``pods``, ``capped_nodes``, ``notes``, ``list_seconds`` and
    ``analysis_seconds``. Raises ActivityFailed when the cluster cannot be listed.
    """
    return predict(
        settings_for(configuration).kubernetes,
        registry=registry,
        outage_seconds=float(outage),
        namespace=namespace,
    )
