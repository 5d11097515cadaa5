"""Push to running: one release followed from the registry to every pod, phase by phase.

``push_to_running`` (``actions/deploy.py``) pushes a fresh tag, points the Deployment at it (or
waits for an image updater to), then polls the API server every ``POLL`` seconds and stamps
each phase:

=========  =====================================================================================
phase      ends when
=========  =====================================================================================
push       the fresh tag's manifest is stored (a PUT of the current image's manifest with an
           annotation: a new digest, the same blobs, as a pipeline's re-tag makes)
trigger    the Deployment's pod template names the new image (at once in ``direct`` mode; an
           updater's poll interval in ``observe`` mode)
schedule   a new pod has a node (from when we first saw it)
pull       its containers have an image ID (the kubelet pulled the image and created the
           container); the kubelet's own pull times come from its Pulled events
start      it is Ready
finish     the rollout is complete and Available (old pods gone), as ``kubectl rollout status``
           (from the last new pod Ready)
=========  =====================================================================================

Beside them, off the rollout's path in ``direct`` mode, the **registry event**: from the push's
start to the registry's push notification recorded by the sandbox's event receiver (a sandbox
with its second site; ``registry_event``), the signal a webhook-driven image updater acts on.

``schedule``, ``pull`` and ``start`` are each new pod's own (a rolling update starts its pods one
after another, so the slowest phase of the release is the one its pods spend longest in): the
result gives their mean and every pod's stamps. Stamps come from our polls, so each is within
``POLL`` of the truth; the kubelet's pull seconds are its own exact figures.
"""

import io
import json
import secrets
import tarfile
import time
from datetime import datetime
from typing import Any

from lightkube import Client
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import Event, Pod

from chaosregistry.backends.kubernetes import get_deployment, selector_of
from chaosregistry.errors import ConfigError
from chaosregistry.kubernetes import client as kube
from chaosregistry.kubernetes.rollout import (
    PULL_ERRORS,
    TEMPLATE_HASH_LABEL,
    container_images,
    health,
    owned_replica_sets,
    parse_pull_message,
    revision_of,
)
from chaosregistry.observability.registry_events import events_source, find_push_event
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.reference import ImageReference

POLL = 0.2
# How long after the rollout to keep looking for a push event not recorded yet.
EVENT_WAIT = 2.0
PULL_EVENT_REASONS = ("Pulling", "Pulled", "Failed", "BackOff", "ErrImageNeverPull")
PHASES = ("push", "trigger", "schedule", "pull", "start", "finish")
PUSHED_AT_ANNOTATION = "io.chaosregistry.pushed-at"


def new_pods(client: Client, deployment: Deployment) -> list[Pod]:
    """The pods of the Deployment's newest ReplicaSet (the one its revision names)."""
    assert deployment.metadata is not None
    namespace, selector = deployment.metadata.namespace, selector_of(deployment)
    with kube.translated():
        replica_sets = owned_replica_sets(
            deployment, client.list(ReplicaSet, namespace=namespace, labels=selector)
        )
        newest = [rs for rs in replica_sets if revision_of(rs) == revision_of(deployment)]
        if not newest or newest[0].metadata is None:
            return []
        template_hash = (newest[0].metadata.labels or {}).get(TEMPLATE_HASH_LABEL)
        if not template_hash:
            return []
        return list(
            client.list(
                Pod, namespace=namespace, labels={**selector, TEMPLATE_HASH_LABEL: template_hash}
            )
        )


def _event_time(event: Event) -> datetime | None:
    for value in (event.lastTimestamp, event.eventTime, event.firstTimestamp):
        if isinstance(value, datetime):
            return value
    return event.metadata.creationTimestamp if event.metadata else None


def kubelet_pull_events(
    client: Client, namespace: str, deployment: str, since: float
) -> list[dict[str, Any]]:
    """The kubelet's image events (Pulling, Pulled, Failed, BackOff...) for a Deployment's pods
    from epoch ``since``, oldest first, each with what its message reports (image, pull
    seconds, size: ``parse_pull_message``)."""
    prefix = f"{deployment}-"
    with kube.translated():
        events = list(
            client.list(Event, namespace=namespace, fields={"involvedObject.kind": "Pod"})
        )
    found: list[dict[str, Any]] = []
    for event in events:
        pod = event.involvedObject.name or ""
        # Pods of a Deployment are named <deployment>-<template hash>-<5 chars>.
        rest = pod[len(prefix) :] if pod.startswith(prefix) else ""
        if not rest or rest.count("-") != 1 or event.reason not in PULL_EVENT_REASONS:
            continue
        message = event.message or ""
        if event.reason in ("Failed", "BackOff") and "image" not in message.lower():
            continue  # a container crash, not a pull
        when = _event_time(event)
        stamp = when.timestamp() if when else 0.0
        if stamp < since:
            continue
        found.append(
            {
                "pod": pod,
                "reason": event.reason,
                "type": event.type,
                "message": message,
                "count": event.count or 1,
                "time": stamp,
                **parse_pull_message(message),
            }
        )
    found.sort(key=lambda e: (e["time"], e["pod"]))
    return found


# An uncompressed layer: its digest is its diff ID, and random bytes would not compress anyway.
OCI_TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_TAR_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def random_layer(size: int) -> bytes:
    """A tar of one file of ``size`` random bytes (new content no registry or node has)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entry = tarfile.TarInfo(f"chaosregistry-release/{secrets.token_hex(8)}.bin")
        entry.size, entry.mode = size, 0o644
        tar.addfile(entry, io.BytesIO(secrets.token_bytes(size)))
    return out.getvalue()


def _with_new_layer(
    client: RegistryClient, repository: str, body: dict[str, Any], size: int
) -> dict[str, Any]:
    """``body`` (an image manifest) with a new layer of ``size`` random bytes on top, its blob
    and the config that lists its diff ID pushed first (containerd checks that the config's
    ``rootfs.diff_ids`` match the layers)."""
    if not isinstance(body.get("config"), dict) or not isinstance(body.get("layers"), list):
        raise ConfigError(
            f"{repository}: a new layer needs a single-platform image manifest, not an index"
        )
    config_descriptor = body["config"]
    config = json.loads(
        client.read_blob(repository, config_descriptor["digest"], int(config_descriptor["size"]))
    )
    layer = random_layer(size)
    layer_digest = client.push_blob(repository, layer)
    rootfs = dict(config.get("rootfs") or {"type": "layers"})
    rootfs["diff_ids"] = [*(rootfs.get("diff_ids") or []), layer_digest]
    config["rootfs"] = rootfs
    if isinstance(config.get("history"), list):
        config["history"] = [
            *config["history"],
            {"created_by": f"chaosregistry push_to_running: {size} random bytes"},
        ]
    config_data = json.dumps(config, separators=(",", ":")).encode()
    config_digest = client.push_blob(repository, config_data)
    docker = body.get("mediaType") == DOCKER_MANIFEST
    return {
        **body,
        "config": {**config_descriptor, "digest": config_digest, "size": len(config_data)},
        "layers": [
            *body["layers"],
            {
                "mediaType": DOCKER_TAR_LAYER if docker else OCI_TAR_LAYER,
                "digest": layer_digest,
                "size": len(layer),
            },
        ],
    }


def push_fresh_tag(
    client: RegistryClient, reference: ImageReference, tag: str, *, new_layer_bytes: int = 0
) -> dict[str, Any]:
    """Store ``reference``'s manifest again under ``tag`` with a pushed-at annotation: a new
    digest a node must pull, over blobs the registry already has. With ``new_layer_bytes``, a
    new layer of that many random bytes on top (uncompressed: the bytes a node downloads), as
    a release that ships new content. Returns {digest, seconds}."""
    started = time.perf_counter()
    manifest = client.get_manifest(reference.repository, reference.reference)
    body = manifest.json()
    if new_layer_bytes:
        body = _with_new_layer(client, reference.repository, body, new_layer_bytes)
    annotations = dict(body.get("annotations") or {})
    annotations[PUSHED_AT_ANNOTATION] = f"{time.time():.3f}"
    body["annotations"] = annotations
    data = json.dumps(body, separators=(",", ":")).encode()
    media_type = manifest.media_type or str(body.get("mediaType") or "")
    digest = client.push_manifest(reference.repository, tag, data, media_type)
    return {"digest": digest, "seconds": round(time.perf_counter() - started, 3)}


def queue_seconds(pulled: dict[str, Any]) -> float:
    """How long a pull waited for the node's image puller before it began (a Pulled event as
    ``kubelet_pull_events`` gives it): its "including waiting" figure less the pull itself,
    0 when the message has none. With ``serializeImagePulls`` (the kubelet's default) a pull
    waits for every pull queued before it; with parallel pulls only above
    ``maxParallelImagePulls``."""
    waited = pulled.get("pull_seconds_including_waiting")
    if waited is None or pulled.get("pull_seconds") is None:
        return 0.0
    return round(max(0.0, float(waited) - float(pulled["pull_seconds"])), 3)


def _scheduled(pod: Pod) -> bool:
    return bool(pod.spec and pod.spec.nodeName)


def _pulled(pod: Pod) -> bool:
    statuses = (pod.status.containerStatuses if pod.status else None) or []
    return bool(statuses) and all(s.imageID for s in statuses)


def _ready(pod: Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


POD_PHASES = (("schedule", _scheduled), ("pull", _pulled), ("start", _ready))


def follow(
    client: Client,
    namespace: str,
    name: str,
    *,
    container: str,
    image: str,
    since: float,
    timeout: float,
    digest: str | None = None,
) -> dict[str, Any]:
    """Poll the rollout of ``image`` from ``since`` until complete, stalled or ``timeout``.

    With ``digest``, the pod template naming the image by that digest (``name@digest``, as an
    image updater following a tag by digest writes it) is the trigger too, and that name is
    the image followed from then on.

    Returns {trigger (epoch or None), image (the one followed), pods {name: {seen, schedule,
    pull, start: epoch}}, finish (epoch or None), failed_phase, error {class, message} or
    null, health}.
    """
    trigger: float | None = None
    pods: dict[str, dict[str, float]] = {}
    first_pull_error: str | None = None
    snapshot: dict[str, Any] = {}
    while True:
        now = time.time()
        found = get_deployment(client, namespace, name)
        named = container_images(found).get(container) or ""
        if trigger is None and (named == image or (digest and named.endswith(f"@{digest}"))):
            trigger, image = now, named
        if trigger is not None:
            current = new_pods(client, found)
            snapshot = health(found, current)
            for pod in current:
                stamps = pods.setdefault(str(pod.metadata.name if pod.metadata else ""), {})
                stamps.setdefault("seen", now)
                for phase, reached in POD_PHASES:
                    if phase not in stamps and reached(pod):
                        stamps[phase] = now
            if snapshot["image_pull_errors"] and first_pull_error is None:
                first_pull_error = ", ".join(
                    f"{reason} x{n}" for reason, n in snapshot["waiting"].items()
                    if reason in PULL_ERRORS
                )  # fmt: skip
            if snapshot["healthy"] and snapshot["images"].get(container) == image:
                for stamps in pods.values():  # a phase passed between two polls
                    for phase, _ in POD_PHASES:
                        stamps.setdefault(phase, now)
                return _followed(trigger, image, pods, now, None, None, snapshot)
        stalled = bool(snapshot.get("stalled"))
        if stalled or now - since >= timeout:
            failed = "trigger" if trigger is None else _first_unreached(pods)
            if first_pull_error:
                error = {"class": "image-pull", "message": f"new pods: {first_pull_error}"}
            elif stalled:
                error = {"class": "stalled", "message": str(snapshot.get("message"))}
            else:
                error = {
                    "class": "timeout",
                    "message": f"phase {failed} not reached within {timeout:g} s",
                }
            return _followed(trigger, image, pods, None, failed, error, snapshot)
        time.sleep(POLL)


def _first_unreached(pods: dict[str, dict[str, float]]) -> str:
    for phase, _ in POD_PHASES:
        if not pods or any(phase not in stamps for stamps in pods.values()):
            return phase
    return "finish"


def _followed(
    trigger: float | None,
    image: str,
    pods: dict[str, dict[str, float]],
    finish: float | None,
    failed: str | None,
    error: dict[str, str] | None,
    snapshot: dict[str, Any],
) -> dict[str, Any]:
    return {
        "trigger": trigger,
        "image": image,
        "pods": pods,
        "finish": finish,
        "failed_phase": failed,
        "error": error,
        "health": snapshot,
    }


def phase_seconds(followed: dict[str, Any], pushed_at: float) -> dict[str, float | None]:
    """Seconds per phase: ``trigger`` from the push's end; ``schedule``, ``pull`` and
    ``start`` the mean over the new pods of each pod's own time in that phase (from when it
    was first seen, scheduled, pulled); ``finish`` from the last pod Ready to the rollout
    complete. None for a phase not reached."""
    seconds: dict[str, float | None] = {p: None for p in PHASES[1:]}
    trigger = followed["trigger"]
    if trigger is None:
        return seconds
    seconds["trigger"] = round(max(0.0, trigger - pushed_at), 3)
    previous = "seen"
    for phase, _ in POD_PHASES:
        spans = [
            max(0.0, stamps[phase] - stamps[previous])
            for stamps in followed["pods"].values()
            if phase in stamps and previous in stamps
        ]
        if spans and len(spans) == len(followed["pods"]):
            seconds[phase] = round(sum(spans) / len(spans), 3)
        previous = phase
    if followed["finish"] is not None and followed["pods"]:
        last_ready = max(stamps["start"] for stamps in followed["pods"].values())
        seconds["finish"] = round(max(0.0, followed["finish"] - last_ready), 3)
    return seconds


def registry_event(
    endpoints: dict[str, Any],
    registry_url: str,
    *,
    repository: str,
    tag: str,
    digest: str | None,
    push_started: float,
    wait: float = EVENT_WAIT,
) -> dict[str, Any]:
    """The registry-event phase of a push to ``registry_url`` of ``repository:tag`` at
    ``digest``, from the sandbox's events file (``endpoints``: the sandbox's).

    Returns {supported, seconds (push start -> the receiver recorded the event: the registry
    notifies as it stores the manifest, often before its answer to the push is back; null when
    not seen), delivery_seconds (the registry's event timestamp -> recorded), note (why there is
    no figure)}. Looks for ``wait`` seconds at most: it runs after the rollout, by when a
    notification has long been sent.
    """

    def unsupported(note: str, supported: bool = False) -> dict[str, Any]:
        return {"supported": supported, "seconds": None, "delivery_seconds": None, "note": note}

    if not digest or not tag:
        return unsupported("nothing pushed: the image was given")
    events_file, supported, note = events_source(endpoints)
    if not supported or events_file is None:
        return unsupported(note)
    ours = {str(endpoints.get(key) or "").rstrip("/") for key in ("registry", "registry_direct")}
    if registry_url.rstrip("/") not in ours:
        return unsupported(f"the push went to {registry_url}, not the sandbox's registry")
    deadline = time.time() + wait
    while (event := find_push_event(events_file, repository, tag, digest)) is None:
        if time.time() >= deadline:
            return unsupported(f"no push event recorded within {wait:g} s after the rollout", True)
        time.sleep(POLL)
    received = float(event.get("received_at") or 0)
    created = event.get("event_time")
    return {
        "supported": True,
        "seconds": round(max(0.0, received - push_started), 3),
        "delivery_seconds": (
            round(received - float(created), 3) if isinstance(created, int | float) else None
        ),
        "note": "",
    }
