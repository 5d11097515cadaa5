"""The blast radius of a registry outage (kubernetes backend): which workloads keep running,
which are degraded, which break, predicted from the cluster's API objects; and that prediction
verified against what provoked workloads then do.

Read-only. The cluster comes from the kubernetes backend's configuration (``kubeconfig``,
``kube_context``, ``registry_mirrors``; see ``chaosregistry.backends.kubernetes``).
``blast_radius`` is the same result as ``chaosregistry blast-radius --json``;
``prediction_agreement`` reads the ledger's provocations (``provoke_blast_radius``) and the
pods.
"""

import operator
import time
from collections.abc import Callable
from typing import Annotated, Any

from lightkube.resources.core_v1 import Pod

from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import (
    KUBE_NAME,
    ResultKind,
    Returns,
    Seconds,
)
from chaosregistry.experiment.settings import Namespace, settings_for
from chaosregistry.faults.ledger import Ledger, current_run
from chaosregistry.kubernetes import client as kube
from chaosregistry.kubernetes.inventory import predict
from chaosregistry.kubernetes.verification import PROVOKE_KIND, agreement, judge

__all__ = ["blast_radius", "prediction_agreement"]

POLL = 1.0
# The judgement reads pods as the API writes them (camelCase JSON), as the blast radius does.
as_json: Callable[[Any], dict[str, Any]] = operator.methodcaller("to_dict")


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
    ``uncertain``. A kubelet lists its node's images only once its image cache is filled (about
    30 s after it starts): while a schedulable node lists none, the nodes are listed again, for
    up to 60 s, before predicting. Scheduling constraints (affinity, taints) are not read.

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


@activity
def prediction_agreement(
    namespace: Namespace = "",
    timeout: Seconds = 60,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "workloads verified agreed agreement disagreements waited_seconds timeout",
        kind=ResultKind.PREDICTION_AGREEMENT,
    ),
]:
    """Compare what each workload this run provoked did with what its blast radius predicted.

    Reads this run's active provocations of ``namespace`` from the fault ledger
    (``provoke_blast_radius`` wrote the prediction with each, before provoking), then lists the
    namespace's pods (one call a poll) until every provoked workload shows its outcome or
    ``timeout`` passes: every new pod running (keeps running); a new pod waiting on a pull
    error after a restart or a scale-up (breaks); the moved pod waiting on a pull error while
    an old one still runs where the image is (degraded; breaks when none runs). A workload
    that shows nothing decided by then disagrees.

    Arguments:
      namespace: the provoked Deployments' namespace (default ``configuration.namespace``).
      timeout: the longest wait for the outcomes, in seconds.

    Returns a mapping: ``workloads`` [{kind, namespace, name, predicted, reason, provocation,
    node (a move's), observed (a class, or null when nothing was decided), why, seconds (from
    the provocation to the outcome seen), agrees}], ``verified`` (workloads compared),
    ``agreed``, ``agreement`` (agreed / verified; 0.0 when nothing was provoked: nothing
    proven), ``disagreements`` (one line each), ``waited_seconds`` and ``timeout``. Raises
    ActivityFailed when the pods cannot be listed.
    """
    settings = settings_for(configuration)
    kubernetes = settings.kubernetes
    namespace = kubernetes.namespace_or(namespace)
    run = current_run()
    provoked = [
        entry
        for entry in Ledger(settings.ledger_dir).active()
        if entry.run_id == run
        and entry.kind == PROVOKE_KIND
        and entry.target.startswith(f"deployment:{namespace}/")
    ]
    client = kubernetes.client()
    started = time.monotonic()
    decided: dict[str, dict[str, Any]] = {}
    latest: dict[str, dict[str, Any]] = {}
    while True:
        with kube.translated():
            pods = [as_json(pod) for pod in client.list(Pod, namespace=namespace)]
        now = time.time()
        for entry in provoked:
            if entry.id in decided:
                continue
            params = entry.parameters
            applied = entry.applied if isinstance(entry.applied, dict) else {}
            provoked_at = float(applied.get("provoked_at") or entry.injected_at or now)
            seen = judge(str(params["provocation"]), provoked_at, params["selector"], pods)
            seen["seconds"] = round(now - provoked_at, 1)
            latest[entry.id] = seen
            if seen["observed"] is not None:
                decided[entry.id] = seen
        waited = time.monotonic() - started
        if len(decided) == len(provoked) or waited >= float(timeout):
            break
        time.sleep(POLL)
    rows = []
    for entry in provoked:
        params = entry.parameters
        seen = decided.get(entry.id) or latest.get(entry.id) or {}
        rows.append(
            {
                "kind": "Deployment",
                "namespace": namespace,
                "name": params.get("deployment"),
                "predicted": params.get("predicted"),
                "reason": params.get("reason"),
                "provocation": params.get("provocation"),
                "node": params.get("node"),
                "observed": seen.get("observed"),
                "why": seen.get("why"),
                "seconds": seen.get("seconds") if entry.id in decided else None,
                "agrees": seen.get("observed") == params.get("predicted"),
            }
        )
    rows.sort(key=lambda r: str(r["name"]))
    return {
        "workloads": rows,
        **agreement(rows),
        "waited_seconds": round(time.monotonic() - started, 1),
        "timeout": float(timeout),
    }
