"""Rollout probes (kubernetes backend): is a Deployment rolled out, how long did it take, what
did the kubelet's pulls do.

They only read. The cluster comes from the kubernetes backend's configuration (``kubeconfig``,
``namespace``...; see ``chaosregistry.backends.kubernetes``).
"""

import time
from collections.abc import Callable
from typing import Annotated, Any

from lightkube import Client
from lightkube.resources.apps_v1 import ReplicaSet

from chaosregistry.backends.kubernetes import get_deployment, selector_of
from chaosregistry.errors import ConfigError, PullError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import (
    KUBE_NAME,
    PlatformName,
    ResultKind,
    Returns,
    Seconds,
    Target,
)
from chaosregistry.experiment.settings import Namespace, settings_for
from chaosregistry.kubernetes import client as kube
from chaosregistry.kubernetes.delivery import kubelet_pull_events, new_pods, queue_seconds
from chaosregistry.kubernetes.rollout import (
    DEFAULT_REVISION_HISTORY_LIMIT,
    ROLLOUT_STARTED_ANNOTATION,
    health,
    owned_replica_sets,
    revision_of,
    template_images,
)
from chaosregistry.observability.sli import sink_for
from chaosregistry.oci.reference import Platform, split_image_name
from chaosregistry.stats import percentile

__all__ = [
    "image_pull_events",
    "rollback_readiness",
    "rollout_failure",
    "rollout_health",
    "rollout_time",
]


def _snapshot(client: Client, namespace: str, name: str) -> dict[str, Any]:
    found = get_deployment(client, namespace, name)
    return health(found, new_pods(client, found))


@activity
def rollout_health(
    deployment: Annotated[str, KUBE_NAME],
    namespace: Namespace = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "healthy complete stalled available message generation observed_generation",
        "revision replicas current_replicas updated_replicas ready_replicas",
        "available_replicas unavailable_replicas progressing images new_pods waiting",
        "image_pull_errors",
        kind=ResultKind.ROLLOUT_HEALTH,
    ),
]:
    """Report a Deployment's rollout as ``kubectl rollout status`` judges it, with pull errors.

    Arguments:
      deployment: the Deployment's name.
      namespace: its namespace (default ``configuration.namespace``).

    Returns a mapping: ``healthy`` (rolled out and Available), ``complete`` (kubectl's
    "successfully rolled out"), ``stalled`` (the Progressing condition says
    ProgressDeadlineExceeded), ``available``, ``message`` (kubectl's line), ``generation``,
    ``observed_generation``, ``revision``, ``replicas``, ``current_replicas``,
    ``updated_replicas``, ``ready_replicas``, ``available_replicas``,
    ``unavailable_replicas``, ``progressing`` {status, reason, message}, ``images``
    {container: image}, ``new_pods``, ``waiting`` {reason: containers} and
    ``image_pull_errors`` (new pods' containers waiting in ErrImagePull, ImagePullBackOff or
    InvalidImageName). Raises ActivityFailed for an unknown Deployment.
    """
    client, chosen = settings_for(configuration).kubernetes.deployment_target(deployment, namespace)
    return _snapshot(client, chosen, deployment)


@activity
def rollout_time(
    deployment: Annotated[str, KUBE_NAME],
    namespace: Namespace = "",
    timeout: Seconds = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "complete seconds started_at started_from waited already_complete completed_at",
        "health",
        kind=ResultKind.ROLLOUT_TIME,
    ),
]:
    """Wait until a Deployment is rolled out and Available; report how long the rollout took.

    Arguments:
      deployment: the Deployment's name.
      namespace: its namespace (default ``configuration.namespace``).
      timeout: the longest to wait, in seconds.

    Returns a mapping: ``complete`` (false when ``timeout`` passed first), ``seconds`` (from
    the start of the rollout to complete, or to giving up), ``started_at`` and
    ``started_from`` (``annotation``: the time our action started it, recorded in
    ``chaosregistry.io/rollout-started-at``; ``probe``: when this probe began, for rollouts
    started elsewhere), ``waited`` (seconds this probe waited), ``already_complete`` (it was
    complete at the first look: ``seconds`` then only bounds the rollout), ``completed_at``,
    the last ``health`` (as ``rollout_health``). Raises ActivityFailed for an unknown Deployment.

    A rollout this probe saw complete counts once in
    ``chaosregistry_deploys_total{outcome="success"}`` (``chaosregistry.observability.sli``): one
    it watched finish, or one our action started (``started_from: annotation``), even when it
    finished before this probe looked; not one already complete when a probe of unknown start
    looked.
    """
    client, chosen, began, started_at, started_from = _start(
        deployment, namespace, timeout, configuration
    )
    snapshot, now, _ = _wait(client, chosen, deployment, began, timeout, lambda h: h["healthy"])
    already = bool(snapshot["healthy"] and now - began < 0.5)
    if snapshot["healthy"] and (not already or started_from == "annotation"):
        _count_outcome(configuration, (chosen, deployment, started_at), ok=True)
    return {
        "complete": snapshot["healthy"],
        "already_complete": already,
        "seconds": round(now - started_at, 3),
        "started_at": started_at,
        "started_from": started_from,
        "waited": round(now - began, 3),
        "completed_at": now if snapshot["healthy"] else None,
        "health": snapshot,
    }


@activity
def rollout_failure(
    deployment: Annotated[str, KUBE_NAME],
    namespace: Namespace = "",
    timeout: Seconds = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "failed reason seconds started_from waited first_pull_error_after",
        "serving_replicas health",
        kind=ResultKind.ROLLOUT_FAILURE,
    ),
]:
    """Wait until a Deployment's rollout is declared failed; report how long detection took.

    Failed means what ``kubectl rollout status`` reports as an error: the Progressing condition
    says ProgressDeadlineExceeded (after the Deployment's ``progressDeadlineSeconds``).

    Arguments:
      deployment: the Deployment's name.
      namespace: its namespace (default ``configuration.namespace``).
      timeout: the longest to wait, in seconds.

    Returns a mapping: ``failed`` (false when ``timeout`` passed first, or the rollout
    completed instead), ``reason``, ``seconds`` (from the start of the rollout, see
    ``rollout_time``), ``started_from``, ``waited``, ``first_pull_error_after`` (seconds from
    the start until a new pod first waited on an image pull error; null if none was seen),
    ``serving_replicas`` (available replicas when it failed: old pods still serving) and the
    last ``health`` (as ``rollout_health``). Raises ActivityFailed for an unknown Deployment.

    A rollout this probe saw declared failed (or complete instead) counts once in
    ``chaosregistry_deploys_total{outcome="failure"}`` (``"success"``), by the rule of
    ``rollout_time``.
    """
    client, chosen, began, started_at, started_from = _start(
        deployment, namespace, timeout, configuration
    )
    snapshot, now, first_error = _wait(
        client, chosen, deployment, began, timeout, lambda h: h["stalled"] or h["healthy"]
    )
    progressing = snapshot["progressing"] or {}
    if (snapshot["stalled"] or snapshot["healthy"]) and (
        now - began >= 0.5 or started_from == "annotation"
    ):
        _count_outcome(configuration, (chosen, deployment, started_at), ok=not snapshot["stalled"])
    return {
        "failed": snapshot["stalled"],
        "reason": progressing.get("reason"),
        "seconds": round(now - started_at, 3),
        "started_from": started_from,
        "waited": round(now - began, 3),
        "first_pull_error_after": (
            round(first_error - started_at, 3) if first_error is not None else None
        ),
        "serving_replicas": snapshot["available_replicas"],
        "health": snapshot,
    }


# Rollouts already counted by this process, by (namespace, deployment, start): two probes
# watching the same rollout count it once.
_COUNTED: set[tuple[str, str, float]] = set()


def _count_outcome(
    configuration: Configuration | None, rollout: tuple[str, str, float], ok: bool
) -> None:
    """One rollout outcome to ``chaosregistry_deploys_total``
    (``chaosregistry.observability.sli``)."""
    if rollout not in _COUNTED:
        _COUNTED.add(rollout)
        sink_for(configuration).deploy(ok=ok)


def _start(
    deployment: str, namespace: str, timeout: float, configuration: Configuration | None
) -> tuple[Any, str, float, float, str]:
    """Client, namespace, now, and when the current rollout started (and how we know)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"timeout must be positive seconds, got {timeout!r}")
    client, chosen = settings_for(configuration).kubernetes.deployment_target(deployment, namespace)
    began = time.time()
    found = get_deployment(client, chosen, deployment)
    annotations = (found.metadata.annotations if found.metadata else None) or {}
    try:
        marked = float(annotations.get(ROLLOUT_STARTED_ANNOTATION, ""))
    except ValueError:
        marked = began + 1
    if marked <= began:
        return client, chosen, began, marked, "annotation"
    return client, chosen, began, began, "probe"


def _wait(
    client: Any,
    namespace: str,
    deployment: str,
    began: float,
    timeout: float,
    done: Callable[[dict[str, Any]], bool],
) -> tuple[dict[str, Any], float, float | None]:
    """Poll the rollout until ``done`` or ``timeout``: last health, when, first pull error."""
    first_error: float | None = None
    while True:
        snapshot = _snapshot(client, namespace, deployment)
        now = time.time()
        if first_error is None and snapshot["image_pull_errors"]:
            first_error = now
        if done(snapshot) or now - began >= timeout:
            return snapshot, now, first_error
        time.sleep(0.25)


@activity
def image_pull_events(
    deployment: Annotated[str, KUBE_NAME],
    namespace: Namespace = "",
    since: float = 0,
    latest_release: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "events counts pulled pull_failures back_offs pull_seconds queue_seconds "
        "max_queue_seconds images",
        kind=ResultKind.IMAGE_PULL_EVENTS,
    ),
]:
    """The kubelet's image events for a Deployment's pods, with the pull times it reports.

    Arguments:
      deployment: the Deployment's name (its pods are ``<deployment>-<hash>-<id>``).
      namespace: its namespace (default ``configuration.namespace``).
      since: epoch seconds; a negative number is relative to now (``-60``: the last minute);
        0 keeps every event the API still holds (about an hour by default).
      latest_release: only the pods of the Deployment's current revision (its last release),
        so that earlier releases (an earlier run's too) never count.

    Returns a mapping: ``events`` [{pod, reason, type, message, count, time (epoch seconds),
    image, pull_seconds}], ``counts`` {reason: events} over Pulling, Pulled, Failed, BackOff,
    ``pulled`` (successful pulls), ``pull_failures`` (failed pull attempts), ``back_offs``,
    ``pull_seconds`` {count, mean, p50, max} from the kubelet's Pulled messages,
    ``queue_seconds`` {count, mean, p50, max}: how long each of those pulls waited for the
    node's image puller before it began (a pull queued behind another with the kubelet's
    default ``serializeImagePulls: true``), ``max_queue_seconds`` (their maximum, null without
    a Pulled event: a tolerance on it then fails), and ``images`` (the images named). Raises
    ActivityFailed for an unknown Deployment.
    """
    if isinstance(since, bool) or not isinstance(since, int | float):
        raise ConfigError(f"since must be epoch seconds or negative seconds, got {since!r}")
    client, chosen = settings_for(configuration).kubernetes.deployment_target(deployment, namespace)
    found_deployment = get_deployment(client, chosen, deployment)
    threshold = time.time() + since if since < 0 else float(since)
    found = kubelet_pull_events(client, chosen, deployment, threshold)
    if latest_release:
        current = {pod.metadata.name for pod in new_pods(client, found_deployment) if pod.metadata}
        found = [e for e in found if e["pod"] in current]
    counts: dict[str, int] = {}
    for item in found:
        counts[item["reason"]] = counts.get(item["reason"], 0) + item["count"]
    pulled = [e for e in found if e["pull_seconds"] is not None]
    seconds = sorted(e["pull_seconds"] for e in pulled)
    queued = sorted(queue_seconds(e) for e in pulled)
    return {
        "events": found,
        "counts": counts,
        "pulled": counts.get("Pulled", 0),
        "pull_failures": sum(
            e["count"] for e in found if e["message"].startswith("Failed to pull image")
        ),
        "back_offs": counts.get("BackOff", 0),
        "pull_seconds": _summary(seconds),
        "queue_seconds": _summary(queued),
        "max_queue_seconds": queued[-1] if queued else None,
        "images": sorted({e["image"] for e in found if e["image"]}),
    }


def _summary(ordered: list[float]) -> dict[str, Any]:
    return {
        "count": len(ordered),
        "mean": sum(ordered) / len(ordered) if ordered else None,
        "p50": percentile(ordered, 50) if ordered else None,
        "max": ordered[-1] if ordered else None,
    }


# How long rollback_readiness waits for the Deployment controller to observe the Deployment's
# latest spec: until it has, the revision annotation and the ReplicaSets describe the spec before
# (read right after a `set image`, undo would seem to have no earlier revision).
OBSERVE_TIMEOUT = 10.0


def _observed_deployment(client: Client, namespace: str, name: str) -> Any:
    """The Deployment once its controller has observed its latest generation (polled, as
    ``kubectl rollout status`` waits for it), or as it is after :data:`OBSERVE_TIMEOUT`."""
    deadline = time.monotonic() + OBSERVE_TIMEOUT
    while True:
        found = get_deployment(client, namespace, name)
        generation = (found.metadata.generation if found.metadata else None) or 0
        observed = (found.status.observedGeneration if found.status else None) or 0
        if observed >= generation or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


@activity
def rollback_readiness(
    deployment: Annotated[str, KUBE_NAME],
    namespace: Namespace = "",
    target: Target = "registry",
    platform: PlatformName = "linux/amd64",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "ready reason revision undo_revision revision_history_limit revisions undo_images",
        "images registry seconds",
        kind=ResultKind.ROLLBACK_READINESS,
    ),
]:
    """Whether ``kubectl rollout undo`` would work now: its revision's images are pullable.

    The revision undo would go back to, and whether that revision's images can be pulled
    from the registry at this moment (the check that makes "we can roll back" a fact).

    Arguments:
      deployment: the Deployment's name.
      namespace: its namespace (default ``configuration.namespace``).
      target: the registry the nodes pull these images from (``registry``, ``mirror`` or a
        URL): each image's registry host is taken to be it, as the nodes' runtime maps it.
      platform: the nodes' platform, for multi-platform images.

    Returns a mapping: ``ready`` (an earlier revision is kept and every image of it is
    pullable), ``reason`` (why not, one line; null when ready), ``revision`` (the current),
    ``undo_revision`` (the one undo goes back to, or null), ``revision_history_limit``,
    ``revisions`` [{revision, replica_set, images {container: image}, replicas}],
    ``undo_images`` {container: image}, ``images`` [{container, image, host, pullable,
    manifest_digest, blobs, missing_blobs, error {class, message} or null, seconds}] (the
    manifest resolved, then a HEAD of every blob it names: the check a node's pull would fail),
    ``registry`` (the URL checked), ``seconds``. Raises ActivityFailed for an unknown
    Deployment or a bad argument; a registry that fails the check is data (``error``).
    """
    client, chosen = settings_for(configuration).kubernetes.deployment_target(deployment, namespace)
    wanted = Platform.parse(platform)
    registry = settings_for(configuration).registry.resolve(secrets, target)
    started = time.perf_counter()
    found = _observed_deployment(client, chosen, deployment)
    with kube.translated():
        owned = owned_replica_sets(
            found, client.list(ReplicaSet, namespace=chosen, labels=selector_of(found))
        )
    current = revision_of(found)
    revisions: list[dict[str, Any]] = [
        {
            "revision": revision_of(rs),
            "replica_set": rs.metadata.name if rs.metadata else None,
            "images": template_images(rs.spec.template if rs.spec else None),
            "replicas": (rs.status.replicas if rs.status else 0) or 0,
        }
        for rs in owned
    ]
    earlier = [r for r in revisions if 0 < r["revision"] < current]
    undo = earlier[-1] if earlier else None
    limit = found.spec.revisionHistoryLimit if found.spec else None
    result: dict[str, Any] = {
        "ready": False,
        "reason": None,
        "revision": current,
        "undo_revision": undo["revision"] if undo else None,
        "revision_history_limit": DEFAULT_REVISION_HISTORY_LIMIT if limit is None else limit,
        "revisions": revisions,
        "undo_images": dict(undo["images"]) if undo else {},
        "images": [],
        "registry": registry.url,
    }
    if undo is None:
        result["reason"] = (
            f"no earlier revision kept (revisionHistoryLimit "
            f"{result['revision_history_limit']}): rollout undo has nothing to go back to"
        )
    else:
        with registry.client() as registry_client:
            result["images"] = [
                _pullable(registry_client, container, image, wanted)
                for container, image in undo["images"].items()
            ]
        broken = [i for i in result["images"] if not i["pullable"]]
        if broken:
            first = broken[0]
            why = (first["error"] or {}).get("message") or (
                f"blobs missing: {', '.join(first['missing_blobs'])}"
            )
            result["reason"] = (
                f"revision {undo['revision']}'s image {first['image']} cannot be pulled from "
                f"{registry.url} now: {why}"
            )
    result["ready"] = undo is not None and result["reason"] is None
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _pullable(client: Any, container: str, image: str, platform: Platform) -> dict[str, Any]:
    """Resolve ``image``'s manifest on the registry, then HEAD every blob it names."""
    started = time.perf_counter()
    host, reference = split_image_name(image)
    checked: dict[str, Any] = {
        "container": container,
        "image": image,
        "host": host,
        "pullable": False,
        "manifest_digest": None,
        "blobs": 0,
        "missing_blobs": [],
        "error": None,
    }
    try:
        resolved = client.resolve(reference, platform)
        checked["manifest_digest"] = resolved.manifest_digest
        checked["blobs"] = len(resolved.blobs)
        checked["missing_blobs"] = [
            b.digest for b in resolved.blobs if not client.has_blob(reference.repository, b.digest)
        ]
        checked["pullable"] = not checked["missing_blobs"]
    except PullError as exc:
        checked["error"] = {"class": str(exc.error_class), "message": str(exc)}
    checked["seconds"] = round(time.perf_counter() - started, 3)
    return checked
