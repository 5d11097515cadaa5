"""The blast radius provoked (kubernetes backend): each Deployment of a namespace made to do
what its predicted class says it cannot (or can) do while the registry is cut, and the undo.

``provoke_blast_radius`` predicts the namespace's blast radius (as the probe ``blast_radius``
does), then provokes each Deployment's case as one fault each (``deploy.provoke``, see
``chaosregistry.backends.kubernetes_provoke``): a rollout restart for one predicted to keep
running, to pull ``Always`` or with an image that cannot be pulled; one replica more for one
whose image is on no node; a move to a schedulable node without its image for a degraded one.
The prediction goes to the ledger with each fault, before it is applied, for the probe
``prediction_agreement`` to compare with what the pods then do. Undone by
``end_provocations``, after ``duration``, or at once if ``chaos run`` dies (the watchdog).
"""

from typing import Any

from chaosregistry.backends.kubernetes import refuse_protected
from chaosregistry.backends.kubernetes_deploy import sweep
from chaosregistry.backends.kubernetes_provoke import provoke_plan
from chaosregistry.backends.plan import FaultPlan
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import FaultSeconds
from chaosregistry.experiment.settings import Namespace, settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, revert_matching
from chaosregistry.kubernetes.blast_radius import analyze, is_schedulable
from chaosregistry.kubernetes.inventory import list_reported_inventory, outage_for
from chaosregistry.kubernetes.verification import PROVOKE_KIND, not_provoked, provocation_for

__all__ = ["end_provocations", "provoke_blast_radius"]


@activity
def provoke_blast_radius(
    registry: str = "",
    namespace: Namespace = "",
    duration: FaultSeconds = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Provoke, per Deployment of a namespace, the case its predicted blast radius names.

    Predicts first (every kind listed once, as ``blast_radius``), then, per Deployment: its
    class ``keeps-running``, or ``breaks`` because it pulls ``Always`` or its image cannot be
    pulled: a rollout restart (``restart``); ``breaks`` because its image is on no node: one
    replica more (``scale-up``); ``degraded``: its pod template pinned
    (``kubernetes.io/hostname``) to a schedulable node without its image (``move``). Other
    kinds are not provoked (listed in ``skipped``). Each provocation is a fault in the ledger
    with the prediction it tests; run it while the registry is cut (``partition``), then judge
    with ``prediction_agreement``.

    Arguments:
      registry: the registry host cut (as for ``blast_radius``); empty: every registry.
      namespace: the Deployments' namespace (default ``configuration.namespace``); it must be
        labelled ``chaosregistry.io/chaos=enabled`` and is never kube-system or kube-public.
      duration: seconds until the provocations are undone by themselves (required, > 0, at
        most 3600).

    Returns ``namespace``, ``provoked`` (one fault each, as the other actions return them:
    ``fault_id``, ``kind`` (deploy.provoke), ``target``, ``parameters`` {deployment,
    provocation, node, predicted, reason, ...}, ``applied`` {provoked_at...}), ``skipped``
    [{kind, name, class, why}] and ``count``. In dry-run mode ``provoked`` holds what each
    would do, nothing changed. Raises ActivityFailed (one line, nothing changed) for a
    namespace outside the blast radius, a bad duration, or a cluster it cannot list.
    Undo: ``end_provocations``.
    """
    seconds = check_duration(duration)
    settings = settings_for(configuration)
    kubernetes = settings.kubernetes
    namespace = kubernetes.namespace_or(namespace)
    refuse_protected(namespace)
    sweep(kubernetes)
    inventory = list_reported_inventory(kubernetes.client(), namespace=namespace)
    prediction = analyze(inventory, outage_for(kubernetes, registry, seconds))
    nodes = [
        str((node.get("metadata") or {}).get("name"))
        for node in inventory.nodes
        if is_schedulable(node)
    ]
    plans: list[FaultPlan] = []
    dry: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    # Every plan is checked before the first is applied: a refusal changes nothing.
    for workload in prediction["workloads"]:
        provocation = provocation_for(workload, nodes)
        if provocation is None:
            skipped.append(
                {
                    "kind": workload["kind"],
                    "name": workload["name"],
                    "class": workload["class"],
                    "why": not_provoked(workload, nodes),
                }
            )
            continue
        plan, intent = provoke_plan(
            kubernetes, namespace=namespace, workload=workload, provocation=provocation
        )
        if plan is None:
            dry.append(intent)
        else:
            plans.append(plan)
    provoked = dry or [inject_plan(plan, seconds, settings) for plan in plans]
    return {
        "namespace": namespace,
        "provoked": provoked,
        "skipped": skipped,
        "count": len(provoked),
    }


@activity
def end_provocations(
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``provoke_blast_radius``: undo every provocation of this run, verified.

    A scale-up goes back to its replica count, a move to its node selector (the Deployment
    returns to its old pods, the moved one goes); a restart leaves nothing to undo. Other
    runs' provocations are left alone. Idempotent. Returns ``count`` and ``reverted``.
    """
    return revert_matching(settings_for(configuration), kind_prefix=PROVOKE_KIND)
