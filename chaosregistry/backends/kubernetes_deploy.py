"""Deployment faults of the kubernetes backend: the bad image tag and its undo, a scale and its
undo, rollout restart.

``bad_tag_plan`` records the original image (ledger and annotation) before a JSON patch guarded
by a ``test`` op sets the bad one; the ``kubernetes.rollout-undo`` handler is ``kubectl rollout
undo`` to the revision recorded then. Both pass the blast-radius guard of
:mod:`chaosregistry.backends.kubernetes` first.

The fault is also recorded on the Deployment itself (label ``chaosregistry.io/fault=bad-tag``,
annotation ``chaosregistry.io/bad-tag``: its expiry and its undo), the safety net for a ledger
that is lost or on another machine: :func:`revert_expired_bad_tags` (run by ``cluster status``
and before our Kubernetes actions and probes) reverts every expired one it can see.
"""

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
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
from chaosregistry.backends.plan import UNCONFIRMED, FaultPlan, confirmed
from chaosregistry.errors import ConfigError
from chaosregistry.faults.undo import UndoError, undo_handler
from chaosregistry.kubernetes import client as kube
from chaosregistry.kubernetes.rollout import (
    BAD_TAG_ANNOTATION,
    BAD_TAG_LABEL,
    BAD_TAG_LABEL_VALUE,
    ORIGINAL_IMAGE_ANNOTATION,
    ROLLOUT_STARTED_ANNOTATION,
    owned_replica_sets,
    pod_template_patch,
    revision_of,
    with_tag,
)

ROLLOUT_UNDO = "kubernetes.rollout-undo"
SCALE_RESTORE = "kubernetes.scale-restore"


def _container_index(deployment: Deployment, container: str) -> tuple[int, str, str]:
    """(index, name, image) of ``container`` ('' = the only container)."""
    assert deployment.spec is not None and deployment.spec.template.spec is not None
    containers = deployment.spec.template.spec.containers
    names = [c.name for c in containers]
    if not container:
        if len(containers) != 1:
            raise ConfigError(
                f"deployment has {len(containers)} containers ({', '.join(names)}): "
                "name one with container"
            )
        return 0, containers[0].name, containers[0].image or ""
    if container not in names:
        raise ConfigError(
            f"container {container!r} is not in the pod spec (containers: {', '.join(names)})"
        )
    index = names.index(container)
    return index, container, containers[index].image or ""


def release_target(
    settings: KubernetesSettings, *, deployment: str, namespace: str, container: str
) -> tuple[Client, Deployment, int, str, str]:
    """The blast-radius guard for a release, then (client, the Deployment, container index,
    name and image); ConfigError (nothing changed) when refused."""
    namespace = settings.namespace_or(namespace)
    refuse_protected(namespace)
    client = settings.client()
    guard_namespace(client, namespace)
    found = get_deployment(client, namespace, deployment)
    guard(client, namespace, selector_of(found), settings.max_pods)
    index, name, image = _container_index(found, container)
    return client, found, index, name, image


def bad_tag_plan(
    settings: KubernetesSettings,
    *,
    deployment: str,
    container: str,
    image: str,
    tag: str,
    namespace: str,
    duration: float,
) -> tuple[FaultPlan | None, dict[str, Any]]:
    """Check everything and plan the bad image; (None, what it would do) in dry-run mode.

    ``duration`` (seconds) is written on the Deployment as the fault's expiry, next to the undo.
    """
    namespace = settings.namespace_or(namespace)
    refuse_protected(namespace)
    client = settings.client()
    guard_namespace(client, namespace)
    found = get_deployment(client, namespace, deployment)
    index, container_name, original = _container_index(found, container)
    bad_image = image or with_tag(original, tag)
    if bad_image == original:
        raise ConfigError(f"container {container_name!r} already runs {original}")
    pods = guard(client, namespace, selector_of(found), settings.max_pods)
    revision = revision_of(found)
    annotation_patch = {
        "metadata": {
            "annotations": {
                ORIGINAL_IMAGE_ANNOTATION: json.dumps({container_name: original}),
            }
        }
    }
    image_patch = [
        {
            "op": "test",
            "path": f"/spec/template/spec/containers/{index}/image",
            "value": original,
        },
        {
            "op": "replace",
            "path": f"/spec/template/spec/containers/{index}/image",
            "value": bad_image,
        },
    ]
    intent = {
        "deployment": deployment,
        "namespace": namespace,
        "container": container_name,
        "original_image": original,
        "image": bad_image,
        "revision": revision,
        "pods": len(pods),
    }
    if settings.dry_run:
        would = {"merge-patch": annotation_patch, "json-patch": image_patch}
        log.warning(
            "dry run: would patch deployment %s/%s: %s", namespace, deployment, json.dumps(would)
        )
        return None, {**intent, "dry_run": True, "would_apply": would}

    kubeconfig, context, timeout = settings.kubeconfig, settings.context, settings.timeout
    undo_params = {
        "kubeconfig": str(kubeconfig),
        "context": context,
        "timeout": timeout,
        "namespace": namespace,
        "deployment": deployment,
        "container": container_name,
        "original_image": original,
        "bad_image": bad_image,
        "revision": revision,
    }

    def apply() -> dict[str, Any]:
        patch_client = kube.client(kubeconfig, timeout=timeout, context=context)
        now = time.time()
        started = f"{now:.3f}"
        metadata = annotation_patch["metadata"]
        metadata["annotations"][ROLLOUT_STARTED_ANNOTATION] = started
        # The ledger's expiry was set a moment ago, so this one is never earlier than it.
        marker = {k: v for k, v in undo_params.items() if k not in ("kubeconfig", "context")}
        marker["expires_at"] = round(now + duration, 3)
        metadata["annotations"][BAD_TAG_ANNOTATION] = json.dumps(marker, sort_keys=True)
        metadata["labels"] = {BAD_TAG_LABEL: BAD_TAG_LABEL_VALUE}
        with kube.translated():
            patch_client.patch(
                Deployment,
                deployment,
                annotation_patch,
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
            patched = patch_client.patch(
                Deployment, deployment, image_patch, namespace=namespace, patch_type=PatchType.JSON
            )
        # The API's answer to the patch is the Deployment as stored: it names the bad image.
        template = patched.spec.template.spec if patched.spec and patched.spec.template else None
        stored = [
            c.image for c in (template.containers if template else []) if c.name == container_name
        ]
        return {
            "image": bad_image,
            "original_image": original,
            "generation": patched.metadata.generation if patched.metadata else None,
            "rollout_started_at": float(started),
            **(
                confirmed(f"deployment {namespace}/{deployment} stored with image {bad_image}")
                if stored == [bad_image]
                else {"injected": UNCONFIRMED}
            ),
        }

    plan = FaultPlan(
        kind="deploy.bad-tag",
        target=f"deployment:{namespace}/{deployment}",
        parameters={k: v for k, v in intent.items() if k != "pods"},
        apply=apply,
        undo={"kind": ROLLOUT_UNDO, "params": undo_params},
    )
    return plan, intent


def scale_plan(
    settings: KubernetesSettings, *, deployment: str, namespace: str, replicas: int
) -> tuple[FaultPlan | None, dict[str, Any]]:
    """Check everything and plan a Deployment's scale to ``replicas``; (None, what it would do)
    in dry-run mode.

    The blast radius: the namespace's opt-in, and ``replicas`` at most ``max_pods`` (the pods the
    fault creates; a Deployment at zero replicas has none to count yet). The original replica
    count goes to the ledger; the patch is a JSON patch guarded by a ``test`` of it.
    """
    namespace = settings.namespace_or(namespace)
    refuse_protected(namespace)
    client = settings.client()
    guard_namespace(client, namespace)
    found = get_deployment(client, namespace, deployment)
    if not selector_of(found):
        raise ConfigError(f"deployment {deployment} has no label selector: refused")
    if replicas > settings.max_pods:
        raise ConfigError(
            f"replicas {replicas} is more than configuration.max_pods ({settings.max_pods}): "
            "refused"
        )
    original = int((found.spec.replicas if found.spec else None) or 0)
    if original == replicas:
        raise ConfigError(f"deployment {deployment} already has {replicas} replicas")
    patch = [
        {"op": "test", "path": "/spec/replicas", "value": original},
        {"op": "replace", "path": "/spec/replicas", "value": replicas},
    ]
    intent = {
        "deployment": deployment,
        "namespace": namespace,
        "original_replicas": original,
        "replicas": replicas,
    }
    if settings.dry_run:
        log.warning("dry run: would patch deployment %s/%s: %s", namespace, deployment, patch)
        return None, {**intent, "dry_run": True, "would_apply": {"json-patch": patch}}
    kubeconfig, context, timeout = settings.kubeconfig, settings.context, settings.timeout
    undo_params = {
        "kubeconfig": str(kubeconfig),
        "context": context,
        "timeout": timeout,
        **intent,
    }

    def apply() -> dict[str, Any]:
        patch_client = kube.client(kubeconfig, timeout=timeout, context=context)
        started = time.time()
        with kube.translated():
            patched = patch_client.patch(
                Deployment, deployment, patch, namespace=namespace, patch_type=PatchType.JSON
            )
        stored = patched.spec.replicas if patched.spec else None
        return {
            "replicas": replicas,
            "original_replicas": original,
            "scaled_at": started,
            **(
                confirmed(f"deployment {namespace}/{deployment} stored with {replicas} replicas")
                if stored == replicas
                else {"injected": UNCONFIRMED}
            ),
        }

    plan = FaultPlan(
        kind="deploy.scale",
        target=f"deployment:{namespace}/{deployment}",
        parameters=dict(intent),
        apply=apply,
        undo={"kind": SCALE_RESTORE, "params": undo_params},
    )
    return plan, intent


@undo_handler(SCALE_RESTORE)
def scale_restore(params: Mapping[str, Any]) -> None:
    """Scale the Deployment back to its recorded replica count, then verify the stored spec.

    Only while it still has the count the fault set: a Deployment someone has scaled since is
    left alone. Idempotent; a deleted Deployment has nothing left to undo.
    """
    namespace, name = str(params["namespace"]), str(params["deployment"])
    original, scaled = int(params["original_replicas"]), int(params["replicas"])
    client = kube.client(
        str(params["kubeconfig"]),
        timeout=float(params.get("timeout") or kube.DEFAULT_TIMEOUT),
        context=params.get("context") or None,
    )
    with kube.translated():
        try:
            deployment = client.get(Deployment, name, namespace=namespace)
        except Exception as exc:
            if getattr(getattr(exc, "status", None), "code", None) == 404:
                return
            raise
        current = (deployment.spec.replicas if deployment.spec else None) or 0
        if current != scaled:
            return
        ops = [
            {"op": "test", "path": "/spec/replicas", "value": scaled},
            {"op": "replace", "path": "/spec/replicas", "value": original},
        ]
        client.patch(Deployment, name, ops, namespace=namespace, patch_type=PatchType.JSON)
        restored = client.get(Deployment, name, namespace=namespace)
    now = (restored.spec.replicas if restored.spec else None) or 0
    if now != original:
        raise UndoError(
            f"deployment {namespace}/{name} has {now} replicas, not {original}, after undo"
        )


def restart(settings: KubernetesSettings, *, deployment: str, namespace: str) -> dict[str, Any]:
    """``kubectl rollout restart``: a new pod template annotation, so every pod is replaced.

    Goes through the blast-radius guard; in dry-run mode only logs the patch.
    """
    namespace = settings.namespace_or(namespace)
    refuse_protected(namespace)
    client = settings.client()
    guard_namespace(client, namespace)
    found = get_deployment(client, namespace, deployment)
    pods = guard(client, namespace, selector_of(found), settings.max_pods)
    started = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    patch = {
        "metadata": {"annotations": {ROLLOUT_STARTED_ANNOTATION: f"{started:.3f}"}},
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}
        },
    }
    result: dict[str, Any] = {"deployment": deployment, "namespace": namespace, "pods": len(pods)}
    if settings.dry_run:
        log.warning("dry run: would patch deployment %s/%s: %s", namespace, deployment, patch)
        return {**result, "dry_run": True, "would_apply": patch}
    with kube.translated():
        patched = client.patch(
            Deployment, deployment, patch, namespace=namespace, patch_type=PatchType.MERGE
        )
    generation = patched.metadata.generation if patched.metadata else None
    return {**result, "rollout_started_at": started, "generation": generation}


def set_image(
    settings: KubernetesSettings, *, deployment: str, namespace: str, container: str, image: str
) -> dict[str, Any]:
    """``kubectl set image``: one container of a Deployment to ``image``, the rollout's start
    written to ``chaosregistry.io/rollout-started-at``. Not a fault (a release, as a pipeline
    makes one): no ledger entry. Goes through the blast-radius guard; in dry-run mode only logs
    the patch."""
    namespace = settings.namespace_or(namespace)
    client, found, index, name, before = release_target(
        settings, deployment=deployment, namespace=namespace, container=container
    )
    started = time.time()
    path = f"/spec/template/spec/containers/{index}/image"
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": path, "value": before},
        {"op": "replace", "path": path, "value": image},
        {
            "op": "add",
            "path": "/metadata/annotations/" + ROLLOUT_STARTED_ANNOTATION.replace("/", "~1"),
            "value": f"{started:.3f}",
        },
    ]
    result: dict[str, Any] = {
        "deployment": deployment,
        "namespace": namespace,
        "container": name,
        "previous_image": before,
        "image": image,
    }
    if settings.dry_run:
        log.warning("dry run: would patch deployment %s/%s: %s", namespace, deployment, patch)
        return {**result, "dry_run": True, "would_apply": patch}
    if not (found.metadata and found.metadata.annotations):
        patch.insert(1, {"op": "add", "path": "/metadata/annotations", "value": {}})
    with kube.translated():
        patched = client.patch(
            Deployment, deployment, patch, namespace=namespace, patch_type=PatchType.JSON
        )
    generation = patched.metadata.generation if patched.metadata else None
    return {**result, "rollout_started_at": started, "generation": generation}


@undo_handler(ROLLOUT_UNDO)
def rollout_undo(params: Mapping[str, Any]) -> None:
    """``kubectl rollout undo`` to the revision recorded before the bad image, then verify.

    Restores the pod template of the ReplicaSet with the recorded revision (the original image
    alone when that ReplicaSet is gone). Only while the container still runs the bad image: a
    Deployment someone has since changed is left alone. Idempotent.
    """
    namespace, name = str(params["namespace"]), str(params["deployment"])
    container, original = str(params["container"]), str(params["original_image"])
    bad_image = str(params["bad_image"])
    client = kube.client(
        str(params["kubeconfig"]),
        timeout=float(params.get("timeout") or kube.DEFAULT_TIMEOUT),
        context=params.get("context") or None,
    )
    deployment = kube.get_if_exists(client, Deployment, name, namespace)
    if deployment is None:
        return  # deleted: nothing left to undo
    with kube.translated():
        index, _, current = _container_index(deployment, container)
        if current != bad_image:
            # Rolled back already, or changed by someone else since: only our marks go.
            _clear_marks(client, deployment)
            return
        template = _previous_template(client, deployment, int(params.get("revision") or 0))
        path = f"/spec/template/spec/containers/{index}/image"
        ops: list[dict[str, Any]] = [{"op": "test", "path": path, "value": bad_image}]
        if template is not None and _image_in(template, container) == original:
            ops.append({"op": "replace", "path": "/spec/template", "value": template})
        else:
            ops.append({"op": "replace", "path": path, "value": original})
        client.patch(Deployment, name, ops, namespace=namespace, patch_type=PatchType.JSON)
        client.patch(
            Deployment,
            name,
            _marks_removed({ROLLOUT_STARTED_ANNOTATION: f"{time.time():.3f}"}),
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        restored = client.get(Deployment, name, namespace=namespace)
    _, _, now = _container_index(restored, container)
    if now != original:
        raise UndoError(f"deployment {namespace}/{name} runs {now}, not {original}, after undo")


def _previous_template(client: Client, deployment: Deployment, revision: int) -> Any:
    if revision <= 0 or deployment.metadata is None:
        return None
    replica_sets = client.list(
        ReplicaSet, namespace=deployment.metadata.namespace, labels=selector_of(deployment)
    )
    for rs in owned_replica_sets(deployment, replica_sets):
        if revision_of(rs) == revision and rs.spec is not None and rs.spec.template is not None:
            return pod_template_patch(rs.spec.template.to_dict())
    return None


def _image_in(template: Mapping[str, Any], container: str) -> str | None:
    for item in (template.get("spec") or {}).get("containers") or []:
        if item.get("name") == container:
            return str(item.get("image"))
    return None


def _marks_removed(annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The merge patch that removes the fault's label and annotations (plus ``annotations``)."""
    return {
        "metadata": {
            "annotations": {
                ORIGINAL_IMAGE_ANNOTATION: None,
                BAD_TAG_ANNOTATION: None,
                **(annotations or {}),
            },
            "labels": {BAD_TAG_LABEL: None},
        }
    }


def _clear_marks(client: Client, deployment: Deployment) -> None:
    """Remove the bad-tag label and annotations (the fault is over) if they are there."""
    metadata = deployment.metadata
    if metadata is None or not (
        (metadata.labels or {}).get(BAD_TAG_LABEL)
        or BAD_TAG_ANNOTATION in (metadata.annotations or {})
    ):
        return
    client.patch(
        Deployment,
        str(metadata.name),
        _marks_removed(),
        namespace=metadata.namespace,
        patch_type=PatchType.MERGE,
    )


# kubeconfig/context -> when it was last swept: a chaos run's many activities sweep once.
_last_sweep: dict[tuple[str, str | None], float] = {}
SWEEP_EVERY = 10.0


def revert_expired_bad_tags(
    kubeconfig: Path | str,
    *,
    context: str | None = None,
    timeout: float = kube.DEFAULT_TIMEOUT,
    namespace: str = "",
    throttle: bool = True,
) -> list[str]:
    """Revert every bad-tag fault past its expiry that the Deployments themselves record.

    The ledger's watchdog normally does this; this is for a ledger that is lost or elsewhere.
    Lists Deployments labelled ``chaosregistry.io/fault=bad-tag`` in every namespace (only in
    ``namespace`` when the credentials may not list them all) and runs the same undo as the
    ledger's (``rollout_undo``: only while the bad image is still set). Returns
    ``namespace/name`` of each reverted. Never raises for the API: a failed sweep is logged, so
    it cannot break the command that runs it. ``throttle``: at most once per ``SWEEP_EVERY``
    seconds per kubeconfig and context in this process.
    """
    key = (str(kubeconfig), context)
    now = time.time()
    if throttle and now - _last_sweep.get(key, 0.0) < SWEEP_EVERY:
        return []
    _last_sweep[key] = now
    reverted: list[str] = []
    selector: dict[str, Any] = {BAD_TAG_LABEL: BAD_TAG_LABEL_VALUE}
    try:
        client = kube.client(kubeconfig, timeout=timeout, context=context)
        try:
            with kube.translated():
                found = list(client.list(Deployment, namespace="*", labels=selector))
        except kube.KubeError:
            if not namespace:
                raise
            with kube.translated():
                found = list(client.list(Deployment, namespace=namespace, labels=selector))
    except (kube.KubeError, OSError) as exc:
        log.warning("could not look for expired bad-tag faults: %s", exc)
        return reverted
    for deployment in found:
        metadata = deployment.metadata
        if metadata is None:
            continue
        where = f"{metadata.namespace}/{metadata.name}"
        try:
            marker = json.loads((metadata.annotations or {}).get(BAD_TAG_ANNOTATION) or "{}")
            expires_at = float(marker["expires_at"])
        except (ValueError, KeyError, TypeError):
            log.warning(
                "deployment %s: unreadable %s annotation; left alone", where, BAD_TAG_ANNOTATION
            )
            continue
        if expires_at > now:
            continue
        params = {
            **marker,
            "kubeconfig": str(kubeconfig),
            "context": context,
            "timeout": timeout,
            "namespace": metadata.namespace,
            "deployment": metadata.name,
        }
        try:
            rollout_undo(params)
        except (kube.KubeError, UndoError, ConfigError, KeyError) as exc:
            log.warning("deployment %s: expired bad tag not reverted: %s", where, exc)
            continue
        log.warning(
            "deployment %s: bad-tag fault expired %.1fs ago with nobody to undo it; reverted",
            where,
            now - expires_at,
        )
        reverted.append(where)
    return reverted


def sweep(settings: KubernetesSettings) -> list[str]:
    """:func:`revert_expired_bad_tags` on the cluster ``settings`` name (throttled)."""
    return revert_expired_bad_tags(
        settings.kubeconfig,
        context=settings.context,
        timeout=settings.timeout,
        namespace=settings.namespace,
    )
