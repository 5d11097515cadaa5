"""Deployment faults (kubernetes backend): ship a bad image tag, scale a Deployment, and undo
both.

``deploy_bad_tag`` points one container of a Deployment at an image that cannot be pulled, the
way a broken release does. Before the patch, the original image is written to the fault ledger
(with the Deployment's revision) and to the annotation ``chaosregistry.io/original-image`` on the
Deployment. The undo is the equivalent of ``kubectl rollout undo``: the pod template of the
revision before the fault is restored. It runs on the experiment's rollback
(``rollback_deployment``), when ``duration`` is up, or at once if ``chaos run`` dies, by the
watchdog. The expiry and the undo are also written on the Deployment: with the watchdog and the
ledger both gone, the next of our Kubernetes actions or ``chaosregistry cluster status`` reverts
an expired bad tag (``kubernetes_deploy.revert_expired_bad_tags``). Every call first passes the
blast-radius guard (see ``chaosregistry.backends.kubernetes``); with ``configuration.dry_run``
it only logs the patches.

``scale_deployment`` sets a Deployment's replica count (its new pods must pull their image on
whatever node they land, a cold one included); the original count goes to the ledger first and
comes back on ``rollback_deployment``, on expiry or when ``chaos run`` dies.
"""

import time
from typing import Annotated, Any

from chaosregistry.backends.kubernetes_deploy import (
    bad_tag_plan,
    release_target,
    restart,
    scale_plan,
    set_image,
    sweep,
)
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import (
    KUBE_NAME,
    FaultSeconds,
    OneOf,
    Range,
    Seconds,
    Target,
)
from chaosregistry.experiment.settings import Namespace, settings_for
from chaosregistry.faults.injection import check_duration, inject_plan, revert_matching
from chaosregistry.kubernetes import delivery
from chaosregistry.kubernetes.rollout import with_digest, with_tag
from chaosregistry.observability.sli import sink_for
from chaosregistry.oci.reference import split_image_name

__all__ = [
    "deploy_bad_tag",
    "push_to_running",
    "restart_rollout",
    "rollback_deployment",
    "scale_deployment",
]


@activity
def deploy_bad_tag(
    deployment: Annotated[str, KUBE_NAME],
    container: str = "",
    image: str = "",
    tag: str = "does-not-exist",
    namespace: Namespace = "",
    duration: FaultSeconds = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Roll out an image that cannot be pulled to a Deployment; undone after ``duration``.

    Arguments:
      deployment: the Deployment's name.
      container: the container to change; may be empty when the pod has only one.
      image: the full bad image to set; when empty, the current image with ``tag`` instead.
      tag: the tag that does not exist (used when ``image`` is empty).
      namespace: the Deployment's namespace (default ``configuration.namespace``); it must be
        labelled ``chaosregistry.io/chaos=enabled`` and is never kube-system or kube-public.
      duration: seconds until the rollout is undone by itself (required, > 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (deploy.bad-tag), ``target``
    (``deployment:<namespace>/<name>``), ``state``, ``parameters`` (container,
    ``original_image``, ``image``, ``revision``...), ``applied`` ({image, original_image,
    generation, rollout_started_at}), ``injected_at``, ``expires_at``, ``expires_in``. In dry-run
    mode: ``dry_run`` true and ``would_apply`` (the patches), nothing changed. Raises
    ActivityFailed (one line, nothing changed) for an unknown Deployment or container, a bad
    duration, or a target outside the blast radius.
    """
    seconds = check_duration(duration)
    if not isinstance(deployment, str) or not deployment:
        raise ConfigError("deployment must name a Deployment")
    if image and tag != "does-not-exist":
        raise ConfigError("give image or tag, not both")
    settings = settings_for(configuration)
    sweep(settings.kubernetes)
    plan, intent = bad_tag_plan(
        settings.kubernetes,
        deployment=deployment,
        container=container,
        image=image,
        tag=tag,
        namespace=namespace,
        duration=seconds,
    )
    if plan is None:
        return intent
    return inject_plan(plan, seconds, settings)


@activity
def scale_deployment(
    deployment: Annotated[str, KUBE_NAME],
    replicas: Annotated[int, Range(0, 1000)] = 1,
    namespace: Namespace = "",
    duration: FaultSeconds = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Scale a Deployment to ``replicas``; scaled back to its count before after ``duration``.

    The new pods pull their image on the nodes they land on: with a Deployment pinned to a node
    that lacks the image (the two-node test cluster's ``cold-start``), every one of them pulls
    from the registry, which is what a registry outage stops.

    Arguments:
      deployment: the Deployment's name.
      replicas: the replica count to set (at most ``configuration.max_pods``).
      namespace: its namespace (default ``configuration.namespace``); it must be labelled
        ``chaosregistry.io/chaos=enabled`` and is never kube-system or kube-public.
      duration: seconds until the count is restored by itself (required, > 0, at most 3600).

    Returns the fault: ``fault_id``, ``kind`` (deploy.scale), ``target``
    (``deployment:<namespace>/<name>``), ``state``, ``parameters`` (``original_replicas``,
    ``replicas``), ``applied`` ({replicas, original_replicas, scaled_at}), ``injected_at``,
    ``expires_at``, ``expires_in``. In dry-run mode: ``dry_run`` true and ``would_apply``,
    nothing changed. Raises ActivityFailed (one line, nothing changed) for an unknown
    Deployment, a count it already has or above ``max_pods``, a bad duration, or a namespace
    outside the blast radius. Undo: ``rollback_deployment``.
    """
    seconds = check_duration(duration)
    if not isinstance(deployment, str) or not deployment:
        raise ConfigError("deployment must name a Deployment")
    settings = settings_for(configuration)
    sweep(settings.kubernetes)
    plan, intent = scale_plan(
        settings.kubernetes, deployment=deployment, namespace=namespace, replicas=replicas
    )
    if plan is None:
        return intent
    return inject_plan(plan, seconds, settings)


@activity
def rollback_deployment(
    deployment: Annotated[str, KUBE_NAME] = "",
    namespace: Namespace = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``deploy_bad_tag`` and ``scale_deployment``: undo what they changed.

    Arguments:
      deployment: only this Deployment (all when empty).
      namespace: its namespace (default ``configuration.namespace``).

    A bad tag: the Deployment gets the pod template of its revision before the fault (as
    ``kubectl rollout undo``); its fault is marked reverted once the Deployment runs the
    original image again. A scale: the replica count before it, verified stored. Idempotent.
    Returns ``count`` and ``reverted``.
    """
    settings = settings_for(configuration)
    sweep(settings.kubernetes)
    target = ""
    if deployment:
        target = f"deployment:{settings.kubernetes.namespace_or(namespace)}/{deployment}"
    return revert_matching(settings, kind_prefix="deploy.", target=target)


@activity
def restart_rollout(
    deployment: Annotated[str, KUBE_NAME],
    namespace: Namespace = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Start a rollout that replaces every pod of a Deployment (``kubectl rollout restart``).

    Not a fault: the new pods are the same as the old ones, so there is nothing to undo and
    nothing is written to the fault ledger. It makes the nodes pull the image again, so a
    rollout can be timed (``rollout_time``) with and without a fault on the registry. It passes
    the blast-radius guard first and only logs the patch in dry-run mode.

    Arguments:
      deployment: the Deployment's name.
      namespace: its namespace (default ``configuration.namespace``).

    Returns a mapping: ``deployment``, ``namespace``, ``pods`` (before the restart),
    ``rollout_started_at`` (epoch seconds, also written to the annotation
    ``chaosregistry.io/rollout-started-at`` for ``rollout_time``) and ``generation``.
    Raises ActivityFailed for an unknown Deployment or a target outside the blast radius.
    """
    if not isinstance(deployment, str) or not deployment:
        raise ConfigError("deployment must name a Deployment")
    settings = settings_for(configuration).kubernetes
    sweep(settings)
    return restart(settings, deployment=deployment, namespace=namespace)


@activity
def push_to_running(
    deployment: Annotated[str, KUBE_NAME],
    container: str = "",
    image: str = "",
    mode: Annotated[str, OneOf(("direct", "observe"))] = "direct",
    namespace: Namespace = "",
    target: Target = "registry",
    timeout: Seconds = 180,
    tag: str = "",
    new_layer_bytes: Annotated[int, Range(0, 100_000_000, unit="bytes")] = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Push a release and follow it until every pod runs it, timing each phase.

    How long from push to running, phase by phase (``chaosregistry.kubernetes.delivery`` names the
    phases and how each is stamped).

    Not a fault: a release as a pipeline makes one (nothing goes to the ledger). Without
    ``image``, the container's current image is pushed again under a fresh tag
    (``push-<epoch ms>``, the same blobs with a pushed-at annotation: a new digest every node
    must pull) to ``target``, the registry the nodes pull that image from. It passes the
    blast-radius guard first.

    Arguments:
      deployment: the Deployment's name.
      container: the container (may be empty when the pod has one).
      image: a tag your pipeline pushed already (the full name, as pods name it); then nothing
        is pushed.
      mode: ``direct``: this action points the Deployment at the image (``kubectl set
        image``); ``observe``: it waits for your image updater to (Flux, Keel, Argo CD Image
        Updater), and ``trigger`` is the updater's delay.
      namespace: its namespace (default ``configuration.namespace``).
      target: the registry to push to (``registry``, ``mirror`` or a URL).
      timeout: seconds from the push until the rollout must be complete.
      tag: push under this tag instead of ``push-<epoch ms>``: the moving tag your image
        updater follows (``chaosregistry tag-poller`` is a minimal one). ``observe`` mode then
        waits for the Deployment to name that tag or the pushed digest (``name@digest``, as an
        updater following a tag by digest writes it); ``direct`` mode points it at the pushed
        digest, since the same tag again would start no rollout.
      new_layer_bytes: the release also ships a new layer of this many random bytes
        (uncompressed, built in memory, at most 100 MB): what every node downloads, where 0
        (the default) gives a release whose pull fetches only its manifest. Not with ``image``.

    Returns a mapping: ``ok``, ``image``, ``digest``, ``phases`` {push, trigger, schedule,
    pull, start, finish: seconds or null; schedule, pull and start are the mean of each new
    pod's own time in them}, ``slowest`` (the phase), ``total_seconds`` (push start to
    rollout complete), ``pods`` {pod: {seen, schedule, pull, start: seconds from the push
    start}}, ``kubelet_pull_seconds`` (the kubelet's own pull times from
    its Pulled events), ``kubelet_queue_seconds`` (for each of those pulls, how long it waited
    for the node's image puller before it began: the message's "including waiting" less the
    pull), ``registry_event`` {supported, seconds (the push's start to the
    registry's push notification recorded by the sandbox's event receiver: a sandbox with its
    second site), delivery_seconds, note (why there is no figure)}, ``failed_phase`` and ``error``
    {class: image-pull, stalled or timeout; message} (null when ok), ``health`` (as
    ``rollout_health``). Raises ActivityFailed for an unknown Deployment or container, a bad
    argument, a refused push, or a target outside the blast radius.
    """
    if tag and image:
        raise ConfigError("give image or tag, not both")
    if new_layer_bytes and image:
        raise ConfigError("give image or new_layer_bytes, not both")
    if tag:
        with_tag("name", tag)  # a bad tag: one line, nothing pushed
    settings = settings_for(configuration)
    kubernetes = settings.kubernetes
    sweep(kubernetes)
    chosen = kubernetes.namespace_or(namespace)
    # Guarded before anything is pushed: a refusal changes nothing, in the registry either.
    client, _, _, name, current = release_target(
        kubernetes, deployment=deployment, namespace=chosen, container=container
    )
    registry = settings.registry.resolve(secrets, target)
    started = time.time()
    pushed: dict[str, Any] = {"digest": None, "seconds": None}
    pushed_tag = ""  # empty when the pipeline pushed the image already
    with registry.client() as registry_client:
        if image:
            reference = split_image_name(image)[1]
            pushed["digest"] = registry_client.get_manifest(
                reference.repository, reference.reference
            ).digest
        else:
            pushed_tag = tag or f"push-{int(started * 1000)}"
            reference = split_image_name(current)[1]
            pushed = delivery.push_fresh_tag(
                registry_client, reference, pushed_tag, new_layer_bytes=new_layer_bytes
            )
            image = with_tag(current, pushed_tag)
            if tag and mode == "direct":
                image = with_digest(current, str(pushed["digest"]))
    pushed_at = time.time()
    if mode == "direct":
        set_image(kubernetes, deployment=deployment, namespace=chosen, container=name, image=image)
    followed = delivery.follow(
        client,
        chosen,
        deployment,
        container=name,
        image=image,
        since=started,
        timeout=float(timeout),
        digest=str(pushed["digest"]) if pushed_tag else None,
    )
    image = followed["image"]
    phases = {"push": pushed["seconds"], **delivery.phase_seconds(followed, pushed_at)}
    timed = {k: v for k, v in phases.items() if v is not None}
    events = delivery.kubelet_pull_events(client, chosen, deployment, started - 1)
    pulls = [e for e in events if e["pull_seconds"] is not None and e.get("image") == image]
    registry_event = delivery.registry_event(
        dict(settings.registry.endpoints()),
        registry.url,
        repository=reference.repository,
        tag=pushed_tag,
        digest=pushed["digest"] if pushed_tag else None,
        push_started=started,
    )
    ok = followed["error"] is None
    sink_for(configuration).deploy(ok=ok)
    return {
        "ok": ok,
        "deployment": deployment,
        "namespace": chosen,
        "container": name,
        "image": image,
        "previous_image": current,
        "digest": pushed["digest"],
        "mode": mode,
        "phases": phases,
        "slowest": max(timed, key=lambda k: timed[k]) if timed else None,
        "total_seconds": round(followed["finish"] - started, 3) if ok else None,
        "pods": {
            pod: {k: round(v - started, 3) for k, v in stamps.items()}
            for pod, stamps in followed["pods"].items()
        },
        "kubelet_pull_seconds": [e["pull_seconds"] for e in pulls],
        "kubelet_queue_seconds": [delivery.queue_seconds(e) for e in pulls],
        "registry_event": registry_event,
        "failed_phase": followed["failed_phase"],
        "error": followed["error"],
        "health": followed["health"],
    }
