"""Image-pull back-off probes (kubernetes backend): which pods wait out the kubelet's back-off,
and how much of a recovery after a registry outage that wait is.

They only read: pod status and the kubelet's events (``chaosregistry.kubernetes.backoff``).
The cluster comes from the kubernetes backend's configuration (``kubeconfig``,
``namespace``...; see ``chaosregistry.backends.kubernetes``).
"""

import time
from typing import Annotated, Any

from lightkube import Client
from lightkube.resources.core_v1 import Pod

from chaosregistry.backends.kubernetes import get_deployment, selector_of
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import KUBE_NAME, ResultKind, Returns, Seconds
from chaosregistry.experiment.settings import Namespace, settings_for
from chaosregistry.kubernetes import client as kube
from chaosregistry.kubernetes.backoff import backoff_summary, pod_backoff, recovery_timeline
from chaosregistry.kubernetes.delivery import kubelet_pull_events, new_pods

__all__ = ["image_pull_backoff", "recovery_after_heal"]

POLL = 0.5


def _read(
    client: Client, namespace: str, deployment: str, current: bool = False
) -> tuple[int, list[dict[str, Any]]]:
    """(the Deployment's desired replicas, each live pod's back-off state); with ``current``,
    only the pods of its current revision (a rollout's old pods are not what it waits for)."""
    found = get_deployment(client, namespace, deployment)
    with kube.translated():
        listed = (
            new_pods(client, found)
            if current
            else client.list(Pod, namespace=namespace, labels=selector_of(found))
        )
        pods = [
            pod
            for pod in listed
            if pod.metadata is not None and pod.metadata.deletionTimestamp is None
        ]
    events = kubelet_pull_events(client, namespace, deployment, 0.0)
    desired = int((found.spec.replicas if found.spec else None) or 0)
    states = [pod_backoff(pod, events) for pod in pods]
    return desired, sorted(states, key=lambda p: str(p["pod"]))


@activity
def image_pull_backoff(
    deployment: Annotated[str, KUBE_NAME],
    namespace: Namespace = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "pods count desired running in_back_off waiting failed_pulls back_offs max_delay_seconds",
        kind=ResultKind.IMAGE_PULL_BACKOFF,
    ),
]:
    """Each pod of a Deployment in image-pull back-off, or not, as the kubelet has it now.

    The kubelet waits 10 s after a pod's first failed pull of an image, doubling after each
    failure up to 300 s; meanwhile the container waits with reason ``ErrImagePull`` or
    ``ImagePullBackOff``. The delay is derived from the failed pulls the kubelet's events count
    (the kubelet does not publish it).

    Arguments:
      deployment: the Deployment's name.
      namespace: its namespace (default ``configuration.namespace``).

    Returns a mapping: ``pods`` [{pod, node, ip, phase, waiting_reason, waiting_message,
    in_back_off, running, running_at, pull_attempts (``Pulling`` events), failed_pulls,
    back_offs (``BackOff`` events), pulled, pull_seconds, last_attempt_at, last_failure_at,
    delay_seconds (the back-off now in force, null when not in back-off), next_attempt_after
    (epoch seconds)}], ``count``, ``desired`` (the Deployment's replicas), ``running``,
    ``in_back_off`` (pods waiting with ErrImagePull or ImagePullBackOff), ``waiting``
    {reason: pods}, ``failed_pulls``, ``back_offs``, ``max_delay_seconds``. Times are the API's
    whole seconds. Raises ActivityFailed for an unknown Deployment.
    """
    client, chosen = settings_for(configuration).kubernetes.deployment_target(deployment, namespace)
    desired, pods = _read(client, chosen, deployment)
    return {**backoff_summary(pods), "desired": desired}


@activity
def recovery_after_heal(
    deployment: Annotated[str, KUBE_NAME],
    namespace: Namespace = "",
    timeout: Seconds = 600,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "recovered seconds back_off_seconds back_off_left_seconds back_off_share",
        "pull_to_running_seconds",
        "healed_at pods failed_pulls",
        kind=ResultKind.BACKOFF_RECOVERY,
    ),
]:
    """Wait until every pod of a Deployment runs; say how much of the wait was back-off.

    Call it right after the step that heals the registry: its start is taken as the heal.
    It polls until the Deployment's current revision has as many pods as the Deployment wants,
    each with every container running, or ``timeout``: after a scale, every pod; during a
    rollout (a release that met the fault), the new pods only, the old ones not counted. Then,
    per pod, from the kubelet's events: the time from the heal until the kubelet took the pod
    up again (its first ``Pulling``, or ``Pulled`` "already present" when another pod's pull
    brought the image, after the heal): the back-off still to wait out plus the pod worker's
    next re-sync (about 10 s); 0 for a pod that never failed a pull. And from that moment to
    the container's start (the pull and start themselves).

    Arguments:
      deployment: the Deployment's name.
      namespace: its namespace (default ``configuration.namespace``).
      timeout: the longest to wait, in seconds (the kubelet's back-off reaches 300 s).

    Returns a mapping: ``recovered`` (every pod running before ``timeout``), ``seconds``
    (from the heal to every pod running, as polled every 0.5 s; to giving up otherwise),
    ``back_off_seconds`` (the longest any pod waited after the heal for the kubelet to take it
    up again), ``back_off_left_seconds`` (the longest back-off still in force at the heal,
    derived from the pod's failed pulls: the rest of ``back_off_seconds`` is re-sync; a pod
    whose image another pod's pull brought starts at its next sync, back-off or not),
    ``back_off_share`` (``back_off_seconds`` / ``seconds``), ``pull_to_running_seconds`` (the
    longest from being taken up to running), ``healed_at`` (epoch seconds), ``failed_pulls``
    (over every pod), ``pods`` (as ``image_pull_backoff``'s, each with ``resumed_at``,
    ``seconds``, ``back_off_seconds``, ``back_off_left_seconds`` and
    ``pull_to_running_seconds``). Per-pod times are the API's whole seconds. Raises
    ActivityFailed for an unknown Deployment.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"timeout must be positive seconds, got {timeout!r}")
    client, chosen = settings_for(configuration).kubernetes.deployment_target(deployment, namespace)
    healed_at = time.time()
    while True:
        desired, pods = _read(client, chosen, deployment, current=True)
        now = time.time()
        running = sum(1 for pod in pods if pod["running"])
        recovered = desired > 0 and running >= desired and len(pods) == desired
        if recovered or now - healed_at >= timeout:
            break
        time.sleep(POLL)
    timeline = recovery_timeline(pods, healed_at)["pods"]
    waits = [p["back_off_seconds"] for p in timeline if p["back_off_seconds"] is not None]
    pulls = [
        p["pull_to_running_seconds"] for p in timeline if p["pull_to_running_seconds"] is not None
    ]
    seconds = round(now - healed_at, 3)
    back_off = max(waits) if waits else None
    left = max((p["back_off_left_seconds"] for p in timeline), default=None)
    return {
        "recovered": recovered,
        "seconds": seconds,
        "back_off_seconds": back_off,
        "back_off_share": (
            round(min(back_off, seconds) / seconds, 3) if back_off is not None and seconds else None
        ),
        "back_off_left_seconds": left,
        "pull_to_running_seconds": max(pulls) if pulls else None,
        "healed_at": healed_at,
        "failed_pulls": sum(p["failed_pulls"] for p in timeline),
        "pods": timeline,
    }
