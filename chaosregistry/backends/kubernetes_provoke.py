"""The blast radius's provocations as faults (kubernetes backend): a Deployment restarted,
scaled up by one, or moved to a node without its image, each with its undo.

One fault kind, ``deploy.provoke``, on ``deployment:<namespace>/<name>``; its parameters carry
the prediction it tests (class and reason) so the probe that judges it
(``prediction_agreement``) reads what was predicted from the ledger, taken before anything was
provoked. The undo (``kubernetes.provoke-undo``): a scale-up goes back to its replica count
(``kubernetes_deploy.scale_restore``); a move gets its original node selector back, so the
Deployment returns to its old ReplicaSet, verified once the moved pods are gone; a restart
leaves nothing to undo (the new pods are the old ones again, as ``restart_rollout`` says).
Each passes the blast-radius guard of :mod:`chaosregistry.backends.kubernetes` first.
"""

import time
from collections.abc import Mapping
from typing import Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from chaosregistry.backends.kubernetes import (
    KubernetesSettings,
    get_deployment,
    guard,
    guard_namespace,
    log,
    refuse_protected,
    selector_of,
)
from chaosregistry.backends.kubernetes_deploy import restart, scale_restore
from chaosregistry.backends.plan import UNCONFIRMED, FaultPlan, confirmed
from chaosregistry.errors import ConfigError
from chaosregistry.faults.undo import UndoError, undo_handler
from chaosregistry.kubernetes import client as kube
from chaosregistry.kubernetes.verification import (
    HOSTNAME_LABEL,
    MOVE,
    PROVOKE_KIND,
    RESTART,
    SCALE_UP,
    Provocation,
)

__all__ = ["PROVOKE_KIND", "PROVOKE_UNDO", "provoke_plan", "provoke_undo"]

PROVOKE_UNDO = "kubernetes.provoke-undo"
# How long an undone move may take to remove its pods (their grace period included), polled.
MOVED_PODS_GONE_WITHIN = 60.0
POLL = 0.5


def _node_selector_patch(node: str | None) -> dict[str, Any]:
    # A merge patch: the selector's other keys stay; None removes the key.
    return {"spec": {"template": {"spec": {"nodeSelector": {HOSTNAME_LABEL: node}}}}}


def _hostname_selected(deployment: Deployment) -> str | None:
    spec = deployment.spec.template.spec if deployment.spec and deployment.spec.template else None
    return ((spec.nodeSelector if spec else None) or {}).get(HOSTNAME_LABEL)


def provoke_plan(
    settings: KubernetesSettings,
    *,
    namespace: str,
    workload: Mapping[str, Any],
    provocation: Provocation,
) -> tuple[FaultPlan | None, dict[str, Any]]:
    """Check everything and plan ``provocation`` of the Deployment ``workload`` (a row of the
    blast radius) names; (None, what it would do) in dry-run mode. ConfigError (nothing
    changed) for a target outside the blast radius or a scale-up above ``max_pods``."""
    name = str(workload.get("name"))
    refuse_protected(namespace)
    client = settings.client()
    found = get_deployment(client, namespace, name)
    selector = selector_of(found)
    if not selector:
        raise ConfigError(f"deployment {name} has no label selector: refused")
    replicas = int((found.spec.replicas if found.spec else None) or 0)
    if provocation.kind == SCALE_UP:
        # As a scale: the pods it creates count (a Deployment at zero replicas has none yet).
        guard_namespace(client, namespace)
    else:
        guard(client, namespace, selector, settings.max_pods)
    if provocation.kind == SCALE_UP and replicas + 1 > settings.max_pods:
        raise ConfigError(
            f"deployment {name}: {replicas + 1} replicas is more than configuration.max_pods "
            f"({settings.max_pods}): refused"
        )
    intent = {
        "deployment": name,
        "namespace": namespace,
        "provocation": provocation.kind,
        "node": provocation.node,
        "predicted": workload.get("class"),
        "reason": workload.get("reason"),
        "selector": selector,
        "original_replicas": replicas,
        "replicas": replicas + 1 if provocation.kind == SCALE_UP else replicas,
        "original_node": _hostname_selected(found),
    }
    if settings.dry_run:
        log.warning("dry run: would %s deployment %s/%s", provocation.kind, namespace, name)
        return None, {**intent, "dry_run": True}
    kubeconfig, context, timeout = settings.kubeconfig, settings.context, settings.timeout
    undo_params = {"kubeconfig": str(kubeconfig), "context": context, "timeout": timeout, **intent}

    def apply() -> dict[str, Any]:
        started = time.time()
        if provocation.kind == RESTART:
            restarted = restart(settings, deployment=name, namespace=namespace)
            return {
                "provoked_at": started,
                "generation": restarted.get("generation"),
                **confirmed(f"deployment {namespace}/{name} restarted (a new pod template)"),
            }
        patch_client = kube.client(kubeconfig, timeout=timeout, context=context)
        with kube.translated():
            if provocation.kind == SCALE_UP:
                ops = [
                    {"op": "test", "path": "/spec/replicas", "value": replicas},
                    {"op": "replace", "path": "/spec/replicas", "value": replicas + 1},
                ]
                patched = patch_client.patch(
                    Deployment, name, ops, namespace=namespace, patch_type=PatchType.JSON
                )
                stored = patched.spec.replicas if patched.spec else None
                seen = stored == replicas + 1
                what = f"{replicas + 1} replicas"
            else:
                patched = patch_client.patch(
                    Deployment,
                    name,
                    _node_selector_patch(provocation.node),
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                )
                seen = _hostname_selected(patched) == provocation.node
                what = f"its pods pinned to {provocation.node}"
        return {
            "provoked_at": started,
            **(
                confirmed(f"deployment {namespace}/{name} stored with {what}")
                if seen
                else {"injected": UNCONFIRMED}
            ),
        }

    plan = FaultPlan(
        kind=PROVOKE_KIND,
        target=f"deployment:{namespace}/{name}",
        parameters=dict(intent),
        apply=apply,
        undo={"kind": PROVOKE_UNDO, "params": undo_params},
    )
    return plan, intent


@undo_handler(PROVOKE_UNDO)
def provoke_undo(params: Mapping[str, Any]) -> None:
    """Undo one provocation, then verify: a scale-up back to its replica count, a move back to
    its node selector (only while it still names the node the move set: a Deployment changed
    since is left alone) and no pod of it left on that node, a restart nothing. Idempotent; a
    deleted Deployment has nothing left."""
    provocation = str(params.get("provocation"))
    if provocation == RESTART:
        return
    if provocation == SCALE_UP:
        scale_restore(params)
        return
    if provocation != MOVE:
        raise UndoError(f"unknown provocation {provocation!r}")
    namespace, name = str(params["namespace"]), str(params["deployment"])
    moved_to, original = params.get("node"), params.get("original_node")
    client = kube.client(
        str(params["kubeconfig"]),
        timeout=float(params.get("timeout") or kube.DEFAULT_TIMEOUT),
        context=params.get("context") or None,
    )
    deployment = kube.get_if_exists(client, Deployment, name, namespace)
    if deployment is None or _hostname_selected(deployment) != moved_to:
        return
    with kube.translated():
        client.patch(
            Deployment,
            name,
            _node_selector_patch(original),
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        restored = client.get(Deployment, name, namespace=namespace)
    now = _hostname_selected(restored)
    if now != original:
        raise UndoError(
            f"deployment {namespace}/{name} selects node {now!r}, not {original!r}, after undo"
        )
    # The fault is gone once its pods are: until the kubelet has let go of a moved pod, it may
    # still pull the image onto the node the move chose (after the registry heals, say).
    deadline = time.monotonic() + MOVED_PODS_GONE_WITHIN
    while True:
        with kube.translated():
            left = [
                pod.metadata.name
                for pod in client.list(Pod, namespace=namespace, labels=params["selector"])
                # the moved template's pods: pinned where the move pinned them
                if pod.metadata
                and pod.spec
                and (pod.spec.nodeSelector or {}).get(HOSTNAME_LABEL) == moved_to
            ]
        if not left:
            return
        if time.monotonic() > deadline:
            raise UndoError(
                f"deployment {namespace}/{name}: pod(s) {', '.join(map(str, left))} still on "
                f"{moved_to} {MOVED_PODS_GONE_WITHIN:g} s after the move was undone"
            )
        time.sleep(POLL)
